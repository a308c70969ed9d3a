"""The worker runtime: :class:`Worker` (threads) and :class:`AsyncWorker` (asyncio)."""

from ._asyncio import AsyncWorker
from ._common import HandlerError, HandlerStopped, Job, WorkerStats
from ._threads import Worker

__all__ = ["AsyncWorker", "HandlerError", "HandlerStopped", "Job", "Worker", "WorkerStats"]
