"""Checking that a webhook delivery (or a task result sent to ``callback_url``) came from Rota.

A receiver passes the request's headers, its raw body and its own URL exactly as registered:

    from rota.signature import verify_delivery, InvalidSignature

    try:
        verify_delivery(secret, url=URL, headers=request.headers, body=request.body)
    except InvalidSignature:
        return 401
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Iterable, Mapping, Optional, Union

from .errors import RotaError

TOLERANCE_S = 300
"""How far the delivery's ``Rota-Timestamp`` may be from the receiver's clock."""


class InvalidSignature(RotaError):
    """The delivery is not signed by any of the secrets, or its timestamp is too old."""


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    if value is None:
        raise InvalidSignature(f"the request has no {name} header")
    return value


def sign_v2(secret: str, timestamp: str, delivery_id: str, webhook_id: str, url: str, body: bytes) -> str:
    """The ``v2`` HMAC-SHA256 (hex) Rota sends for a delivery."""
    signed = f"{timestamp}\n{delivery_id}\n{webhook_id}\n{url}\n".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_delivery(
    secrets: Union[str, Iterable[str]],
    *,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    webhook_id: Optional[str] = None,
    now: Optional[float] = None,
    tolerance_s: float = TOLERANCE_S,
) -> None:
    """Raises :class:`InvalidSignature` unless some ``v2=`` signature in ``Rota-Signature``
    matches one of ``secrets`` over this body, delivery, webhook and ``url``, and
    ``Rota-Timestamp`` is within ``tolerance_s`` of ``now``. With ``webhook_id`` (or
    ``"callbacks"`` for task results) the ``Rota-Webhook-Id`` header must name it. Deduplicate
    accepted deliveries by their ``Rota-Delivery-Id`` yourself."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    timestamp = _header(headers, "Rota-Timestamp")
    delivery = _header(headers, "Rota-Delivery-Id")
    hook = _header(headers, "Rota-Webhook-Id")
    signature = _header(headers, "Rota-Signature")
    if webhook_id is not None and hook != webhook_id:
        raise InvalidSignature(f"the delivery is for webhook {hook!r}, not {webhook_id!r}")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise InvalidSignature("Rota-Timestamp is not a number") from None
    clock = time.time() if now is None else now
    if abs(clock - sent_at) > tolerance_s:
        raise InvalidSignature("Rota-Timestamp is too far from this clock (a replayed request?)")
    offered = [s[3:] for s in (p.strip() for p in signature.split(",")) if s.startswith("v2=")]
    for key in keys:
        want = sign_v2(key, timestamp, delivery, hook, url, body)
        # Bytes: compare_digest refuses a str with non-ASCII characters, which a forged header
        # may carry; that must be a refusal, not an error.
        if any(hmac.compare_digest(want.encode(), s.encode()) for s in offered):
            return
    raise InvalidSignature("no v2 signature matches")
