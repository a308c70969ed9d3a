"""Checks that need no server: the generated sync client is current, and the signature helper
on a delivery signed here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rota.signature import InvalidSignature, sign_v2, verify_delivery

ROOT = Path(__file__).resolve().parents[1]


def test_sync_client_is_generated_from_the_async_one() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_signature_accepts_any_current_secret_during_a_rotation() -> None:
    body = b'{"cursor":1}'
    url = "https://example.com/hook"
    new = sign_v2("whsec_new", "1700000000", "42", "wh_1", url, body)
    old = sign_v2("whsec_old", "1700000000", "42", "wh_1", url, body)
    headers = {
        "rota-timestamp": "1700000000",
        "rota-delivery-id": "42",
        "rota-webhook-id": "wh_1",
        "rota-signature": f"v1=00,v2={new},v1=11,v2={old}",
    }
    verify_delivery("whsec_old", url=url, headers=headers, body=body, now=1700000010)
    verify_delivery(["whsec_x", "whsec_new"], url=url, headers=headers, body=body, now=1700000010)
    with pytest.raises(InvalidSignature):
        verify_delivery("whsec_x", url=url, headers=headers, body=body, now=1700000010)
    with pytest.raises(InvalidSignature):
        verify_delivery(
            "whsec_new", url=url, headers={**headers, "rota-signature": f"v1={new}"}, body=body, now=1700000010
        )
    with pytest.raises(InvalidSignature):
        verify_delivery("whsec_new", url=url, headers={}, body=body)
    # A forged header with non-ASCII text is a refusal, not a TypeError (a 500 in a receiver).
    with pytest.raises(InvalidSignature):
        verify_delivery("whsec_new", url=url, headers={**headers, "rota-signature": "v2=é"}, body=body, now=1700000010)


def test_version_matches_the_server_workspace() -> None:
    import re

    import rota

    cargo = (ROOT.parents[1] / "Cargo.toml").read_text()
    workspace = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', cargo, re.M | re.S)
    assert workspace is not None, "no version in the workspace Cargo.toml"
    assert rota.__version__ == workspace.group(1)


def test_dot_segments_are_refused_before_any_request() -> None:
    from rota._http import seg

    for bad in ("", ".", ".."):
        with pytest.raises(ValueError):
            seg(bad)
    assert seg("a/b c") == "a%2Fb%20c"
