"""The client's errors. A server's error answer becomes an :class:`ApiError` carrying its
``status``, ``code`` and ``message`` (and the request's id); subclasses name the answers a
caller branches on."""

from __future__ import annotations

from typing import Dict, Optional, Type


class RotaError(Exception):
    """Anything this library raises."""


class TransportError(RotaError):
    """The request got no answer: connection refused or reset, or a timeout."""


class DecodeError(RotaError):
    """The server's answer was not what the API describes."""


class ApiError(RotaError):
    """The server answered with an error: ``{"error": {"code", "message"}}``, or from the
    token endpoint OAuth's ``{"error", "error_description"}`` (``code`` is OAuth's ``error``)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        """Seconds the server asked to wait (``Retry-After``), when it said."""


class InvalidRequest(ApiError):
    """400 ``bad_request`` or 422 ``invalid_field``; the message names the field. From the token
    endpoint: 400 ``invalid_request``, ``invalid_scope`` or ``unsupported_grant_type``."""


class Unauthorized(ApiError):
    """401: no, unknown, expired or revoked credential (the token endpoint's ``invalid_client``)."""


class Forbidden(ApiError):
    """403: the credential lacks a permission; the message names it."""


class NotFound(ApiError):
    """404: no such task, queue, tenant, key, role, webhook... (or another tenant's)."""


class Conflict(ApiError):
    """409: the change does not fit the current state (``invalid_state``, ``conflict``...)."""


class LeaseLost(Conflict):
    """409 ``lease_lost``: the lease token no longer holds the task. Stop working on it."""


class TaskCancelled(Conflict):
    """409 ``task_cancelled``: the task was cancelled while held. Stop; nothing is retried."""


class TooLarge(ApiError):
    """413: a body, payload, result or batch over the server's limits."""


class RateLimited(ApiError):
    """429: over a request-rate limit; see ``retry_after``."""


class Unavailable(ApiError):
    """503: storage unavailable, maintenance, too many streams or requests in flight."""


_BY_STATUS: Dict[int, Type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: InvalidRequest,
    429: RateLimited,
    503: Unavailable,
}

_BY_CODE: Dict[str, Type[ApiError]] = {
    "lease_lost": LeaseLost,
    "task_cancelled": TaskCancelled,
}


def error_for(
    status: int,
    code: str,
    message: str,
    *,
    request_id: Optional[str] = None,
    retry_after: Optional[float] = None,
) -> ApiError:
    """The error class for an answer: by its code where that is more precise, else its status."""
    cls = _BY_CODE.get(code) if status == 409 else None
    cls = cls or _BY_STATUS.get(status, ApiError)
    return cls(status, code, message, request_id=request_id, retry_after=retry_after)
