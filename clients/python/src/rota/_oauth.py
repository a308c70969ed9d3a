"""OAuth 2.0 client credentials (``POST /oauth/token``): the token request's form, and the
access-token caches behind a client built with ``client_id`` and ``client_secret``.

A cache fetches a token on first use and again once the token is within ``REFRESH_MARGIN_S``
of its end (or half its life, for a short one); a request answered 401 drops the token it
was sent with, so the client's one retry fetches a new one. One refresh runs at a time: the
threads (or tasks) that need a token meanwhile wait for it rather than ask for their own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Awaitable, Callable, Dict, Optional, Sequence, Union

from .models import AccessToken

REFRESH_MARGIN_S = 60.0
"""A token is replaced this long before it ends (at most half its life before)."""

Scope = Union[str, Sequence[str], None]
"""Space-separated scope items, or a list of them (``["tasks:read", "queues/reports-*"]``)."""


def token_form(client_id: str, client_secret: str, scope: Scope) -> Dict[str, str]:
    """The token endpoint's form for the client credentials grant."""
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    if scope is not None:
        form["scope"] = scope if isinstance(scope, str) else " ".join(scope)
    return form


def _refresh_at(fetched_at: float, expires_in: int) -> float:
    return fetched_at + expires_in - min(REFRESH_MARGIN_S, expires_in / 2)


class TokenCache:
    """The access token of a :class:`Client` built with client credentials (thread-safe)."""

    def __init__(self, fetch: Callable[[], AccessToken]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._token: Optional[str] = None
        self._refresh_at = 0.0

    def token(self) -> str:
        """The token to send, fetched first when there is none or it is about to end."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._refresh_at:
                started = time.monotonic()
                got = self._fetch()
                self._token, self._refresh_at = got.access_token, _refresh_at(started, got.expires_in)
            return self._token

    def refused(self, token: str) -> None:
        """A request sent with ``token`` was answered 401: the next :meth:`token` fetches a new
        one, unless another request has done so already."""
        with self._lock:
            if self._token == token:
                self._token = None


class AsyncTokenCache:
    """The access token of an :class:`AsyncClient` built with client credentials."""

    def __init__(self, fetch: Callable[[], Awaitable[AccessToken]]) -> None:
        self._fetch = fetch
        # Made on first use, inside the event loop that uses it (Python 3.9 binds a lock to the
        # loop current when it is made).
        self._lock: Optional[asyncio.Lock] = None
        self._token: Optional[str] = None
        self._refresh_at = 0.0

    async def token(self) -> str:
        """The token to send, fetched first when there is none or it is about to end."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._token is None or time.monotonic() >= self._refresh_at:
                started = time.monotonic()
                got = await self._fetch()
                self._token, self._refresh_at = got.access_token, _refresh_at(started, got.expires_in)
            return self._token

    def refused(self, token: str) -> None:
        """A request sent with ``token`` was answered 401: the next :meth:`token` fetches a new
        one, unless another request has done so already."""
        if self._token == token:
            self._token = None
