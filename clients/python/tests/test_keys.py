"""S19: key rotation: a rotated key keeps its id and gets a new token; the old token is refused
at once with ``grace_ms=0``, and accepted beside the new one within a grace; a grace over 72
hours is a 422 naming ``grace_ms``."""

from __future__ import annotations

import pytest

import rota

from .conftest import Server


def _works(server: Server, token: str) -> bool:
    """Whether the token is accepted: list the queues with a client of its own."""
    with rota.Client(server.url, token) as c:
        try:
            c.queues()
        except rota.Unauthorized:
            return False
    return True


def test_s19_a_rotated_key_keeps_its_id_and_the_old_token_ends_with_the_grace(
    server: Server, client: rota.Client
) -> None:
    made = client.create_key(["reader"], name="s19-rotation")
    assert made.rotated_at is None and made.previous_secret_until is None
    assert _works(server, made.token)

    # grace_ms 0: the old token is refused at once.
    first = client.rotate_key(made.id, grace_ms=0)
    assert first.id == made.id and first.roles == ["reader"]
    assert first.token.startswith(f"rota_{made.id}_") and first.token != made.token
    assert first.rotated_at is not None and first.previous_secret_until is None
    assert _works(server, first.token)
    with rota.Client(server.url, made.token) as old:
        with pytest.raises(rota.Unauthorized) as refused:
            old.queues()
    assert refused.value.status == 401

    # An hour's grace: the token just replaced works beside the new one until then.
    second = client.rotate_key(made.id, grace_ms=3_600_000)
    assert second.token.startswith(f"rota_{made.id}_") and second.token != first.token
    assert second.rotated_at is not None and second.previous_secret_until is not None
    assert second.previous_secret_until > second.rotated_at
    assert _works(server, second.token) and _works(server, first.token)
    assert not _works(server, made.token)
    shown = client.key(made.id)
    assert shown.previous_secret_until == second.previous_secret_until
    client.revoke_key(made.id)


def test_s19_a_grace_over_72_hours_is_a_422_naming_grace_ms(client: rota.Client) -> None:
    made = client.create_key(["reader"], name="s19-grace")
    with pytest.raises(rota.InvalidRequest) as bad:
        client.rotate_key(made.id, grace_ms=259_200_001)
    assert bad.value.status == 422 and bad.value.code == "invalid_field"
    assert "grace_ms" in bad.value.message
    assert client.key(made.id).rotated_at is None  # nothing changed
    client.revoke_key(made.id)
