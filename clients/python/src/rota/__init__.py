"""Rota's Python client: a typed client for the HTTP API (:class:`Client`, :class:`AsyncClient`)
and a worker runtime (:class:`Worker` on threads, :class:`AsyncWorker` on asyncio)."""

from ._async_client import AsyncClient
from ._body import UNSET
from ._sync_client import Client
from ._version import __version__
from .errors import (
    ApiError,
    Conflict,
    DecodeError,
    Forbidden,
    InvalidRequest,
    LeaseLost,
    NotFound,
    RateLimited,
    RotaError,
    TaskCancelled,
    TooLarge,
    TransportError,
    Unauthorized,
    Unavailable,
)
from .models import *  # noqa: F401,F403
from .models import __all__ as _models
from .signature import InvalidSignature, verify_delivery
from .worker import AsyncWorker, HandlerError, Job, Worker, WorkerStats

__all__ = [
    "__version__",
    "UNSET",
    "AsyncClient",
    "Client",
    "ApiError",
    "Conflict",
    "DecodeError",
    "Forbidden",
    "InvalidRequest",
    "LeaseLost",
    "NotFound",
    "RateLimited",
    "RotaError",
    "TaskCancelled",
    "TooLarge",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "InvalidSignature",
    "verify_delivery",
    "AsyncWorker",
    "HandlerError",
    "Job",
    "Worker",
    "WorkerStats",
    *_models,
]
