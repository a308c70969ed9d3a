"""What the sync and async clients share about HTTP: configuration from arguments and the
environment, headers, query strings, request ids, the retry rule, and reading an answer."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional, Union
from urllib.parse import quote

import httpx

from ._version import __version__
from .errors import ApiError, DecodeError, RotaError, error_for

DEFAULT_URL = "http://127.0.0.1:7070"
DEFAULT_TIMEOUT = 30.0
READ_ATTEMPTS = 3
"""Tries a read gets when no answer comes (0.2 s and 0.4 s apart). Writes get one."""

QueryValue = Union[str, int, bool, Iterable[str], None]


@dataclass(frozen=True)
class Config:
    base_url: str
    headers: Dict[str, str]
    timeout: float
    read_attempts: int


def make_config(
    url: Optional[str],
    token: Optional[str],
    tenant: Optional[str],
    timeout: float,
    read_attempts: int,
) -> Config:
    """Arguments first, then ``ROTA_URL``, ``ROTA_TOKEN`` and ``ROTA_TENANT``."""
    url = url or os.environ.get("ROTA_URL") or DEFAULT_URL
    if token is None:
        token = os.environ.get("ROTA_TOKEN")
        if token is not None and not token.strip():
            raise RotaError(
                "ROTA_TOKEN is set but empty; set it to an API key's token "
                "(e.g. ROTA_TOKEN=$(cat rota-data/admin-token))"
            )
    if tenant is None:
        tenant = os.environ.get("ROTA_TENANT") or None
    headers = {"user-agent": f"rota-python/{__version__}", "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if tenant:
        headers["rota-tenant"] = tenant
    return Config(url.rstrip("/"), headers, timeout, max(1, read_attempts))


def seg(value: str) -> str:
    """One path segment, percent-encoded. Empty, ``.`` and ``..`` are refused here: a URL
    parser would drop or fold them into another route (``complete(".")`` would post to the
    batch endpoint)."""
    text = str(value)
    if text in ("", ".", ".."):
        raise ValueError(f"{text!r} cannot be a name or id in a URL path")
    return quote(text, safe="")


def query(**params: QueryValue) -> Dict[str, str]:
    """Query parameters without the unset ones; a list becomes comma-separated."""
    out: Dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, (str, int)):
            out[name] = str(value)
        else:
            out[name] = ",".join(value)
    return out


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_headers(request_id: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    headers = {"x-request-id": request_id}
    if extra:
        headers.update(extra)
    return headers


def retry_delay(attempt: int) -> float:
    """Seconds before try ``attempt + 1`` of a read."""
    return 0.1 * float(2**attempt)


def is_read(method: str) -> bool:
    return method == "GET"


def to_transport_error(e: httpx.TransportError, method: str, url: str) -> RotaError:
    from .errors import TransportError

    err = TransportError(f"{method} {url}: no answer from the Rota server ({type(e).__name__}: {e})")
    err.__cause__ = e
    return err


def _retry_after(response: httpx.Response) -> Optional[float]:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def error_from(response: httpx.Response, body: bytes) -> ApiError:
    """Rota's ``{"error": {"code", "message"}}``, or OAuth's ``{"error", "error_description"}``
    (the token endpoint's, RFC 6749), whose ``error`` becomes the code."""
    request_id = response.headers.get("x-request-id")
    try:
        answer = json.loads(body)
        detail = answer["error"]
        if isinstance(detail, str):
            code, message = detail, str(answer.get("error_description") or detail)
        else:
            code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message = "unknown", body.decode("utf-8", "replace")[:500]
    return error_for(
        response.status_code,
        code,
        message,
        request_id=request_id,
        retry_after=_retry_after(response),
    )


def read_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as e:
        raise DecodeError(f"the server's answer is not JSON: {e}") from None


def dump(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
