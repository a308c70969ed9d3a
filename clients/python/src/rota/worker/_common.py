"""What the thread and asyncio workers share: the handler's view of a task (:class:`Job`, from
``rota._job``), how a handler says it failed (:class:`HandlerError`), how each way a run ends
becomes a report to the server, the heartbeat schedule, and the counters."""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union

from .._job import Job as Job  # the handler's view, shared with the clients
from ..errors import (
    ApiError,
    InvalidRequest,
    LeaseLost,
    NotFound,
    RateLimited,
    TaskCancelled,
    TooLarge,
    TransportError,
    Unavailable,
)
from ..models import CompleteItem, FailItem, ItemOutcome, Task

log = logging.getLogger("rota.worker")

MAX_CLAIM = 100
"""Most tasks one claim asks for; a worker with more free slots claims again at once."""
CLAIM_GATHER_S = 0.005
"""With some slots free but fewer than a full claim, how long the claimer waits for more to
free up first: tasks that finish together are then claimed for in one request, not one each."""
MAX_REPORT_BATCH = 500
"""Most outcomes sent in one batch complete or fail."""
MIN_HEARTBEAT_S = 0.01


class HandlerError(Exception):
    """Raise from a handler to fail the attempt with a say in what happens next:
    ``retry_in_ms`` instead of the queue's backoff, ``dead`` straight to the dead letters, or
    ``temporary`` (a dependency was down) to give the attempt back. Any other exception fails
    the attempt with its text and the queue's backoff."""

    def __init__(
        self,
        message: str,
        *,
        retry_in_ms: Optional[int] = None,
        dead: bool = False,
        temporary: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_in_ms = retry_in_ms
        self.dead = dead
        self.temporary = temporary


class HandlerStopped(BaseException):
    """Raised inside a handler the worker stops: its task was cancelled, its lease lost, its
    time ran out, or the worker is shutting down. A ``BaseException`` so that a handler's
    ``except Exception`` does not swallow it."""


@dataclass
class WorkerStats:
    """What a worker did, returned when it stops."""

    succeeded: int = 0
    failed: int = 0
    lease_lost: int = 0
    """Tasks abandoned because their lease was lost."""
    cancelled: int = 0
    """Tasks whose handler was stopped because the task was cancelled while it ran."""
    interrupted: int = 0
    """Tasks handed back to the queue because the worker shut down."""
    spawned: int = 0
    """Runs that spawned tasks (:meth:`Client.spawn`): the task waits for them and runs again."""


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = WorkerStats()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self._stats, name, getattr(self._stats, name) + n)

    def count_outcomes(self, outcomes: Sequence[ItemOutcome], ok_name: str) -> None:
        """Each item the server took counts in ``ok_name``; each refused where its code says."""
        with self._lock:
            for item in outcomes:
                if item.ok:
                    name = ok_name
                elif item.error is not None and item.error.code == "task_cancelled":
                    name = "cancelled"
                else:
                    name = "lease_lost"
                setattr(self._stats, name, getattr(self._stats, name) + 1)

    def snapshot(self) -> WorkerStats:
        with self._lock:
            return WorkerStats(**vars(self._stats))


class End(enum.Enum):
    DONE = "done"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    LEASE_LOST = "lease_lost"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    SPAWNED = "spawned"
    """The handler spawned tasks and ended: the lease was given up, nothing to report."""


Report = Union[CompleteItem, FailItem]

HANDLER_RETURNED = (End.DONE, End.FAILED, End.SPAWNED)
"""Ends the handler itself came to: nothing to stop."""


class Run:
    """One claimed task while the worker holds it. ``end`` is set once, by whoever ends the
    run first: the handler returning, or the worker stopping it."""

    __slots__ = (
        "task",
        "job",
        "lease",
        "next_beat",
        "deadline",
        "end",
        "value",
        "lock",
        "thread",
        "in_handler",
        "runner",
        "beating",
    )

    def __init__(self, task: Task, lease: str, beat_every: float, timeout: Optional[float]) -> None:
        now = time.monotonic()
        self.task = task
        self.job = Job(task)
        self.lease = lease
        self.next_beat = now + beat_every
        self.deadline = None if timeout is None else now + timeout
        self.end: Optional[End] = None
        self.value: Any = None
        self.lock = threading.Lock()
        self.thread: Optional[int] = None
        self.in_handler = False
        self.runner: Any = None
        # A heartbeat of this run is in flight: the next waits for it (a slow one is not
        # followed by a burst), and other runs' beats never wait for it.
        self.beating = False

    def finish(self, end: End, value: Any = None) -> bool:
        """Records how the run ended; False when it had already ended."""
        with self.lock:
            if self.end is not None:
                return False
            self.end, self.value = end, value
        if end not in HANDLER_RETURNED:
            self.job.stopped.set()
        return True


def heartbeat_interval(heartbeat_every: float, lease_ms: int) -> float:
    """At most a third of the lease, so a lost heartbeat or two does not lose it."""
    return max(MIN_HEARTBEAT_S, min(heartbeat_every, lease_ms / 3000))


def end_for_heartbeat_error(e: Exception, job: Optional[Job] = None) -> Optional[End]:
    """What a heartbeat's error means for the run; None: try again at the next beat."""
    if isinstance(e, TaskCancelled):
        return End.CANCELLED
    if isinstance(e, LeaseLost) and job is not None and job.handing_off:
        return None  # the handler spawned (or is spawning) and is finishing: the lease is given up
    if isinstance(e, (LeaseLost, NotFound)):
        return End.LEASE_LOST
    return None


def failure_from(e: BaseException) -> HandlerError:
    if isinstance(e, HandlerError):
        return e
    text = str(e)
    return HandlerError(f"{type(e).__name__}: {text}" if text else type(e).__name__)


def report_for(run: Run, timeout: Optional[float], counters: Counters) -> Optional[Report]:
    """The outcome to send for an ended run; None when nothing must be sent (a cancel is
    final, a lost lease belongs to another worker now, and a task that spawned gave its lease
    up)."""
    task_id, lease = run.task.id, run.lease
    if run.job.spawned and run.end is not End.CANCELLED:
        # Also a spawner's handler stopped (timed out, shut down) as it finished: the task
        # waits for what it spawned and runs again after, whatever became of this run.
        counters.add("spawned")
        return None
    if run.end is End.DONE:
        return CompleteItem(task_id, lease, run.value)
    if run.end is End.FAILED:
        e: HandlerError = run.value
        return FailItem(task_id, lease, e.message, e.retry_in_ms, e.dead, e.temporary)
    if run.end is End.TIMED_OUT:
        return FailItem(task_id, lease, f"handler timed out after {timeout}s")
    if run.end is End.INTERRUPTED:
        counters.add("interrupted")
        # Not the task's fault: it runs again at once, and the attempt is given back.
        return FailItem(task_id, lease, "worker shut down before the task finished", retry_in_ms=0, temporary=True)
    if run.end is End.CANCELLED:
        log.info("task %s was cancelled; its handler was stopped", task_id)
        counters.add("cancelled")
    else:
        counters.add("lease_lost")
    return None


def split(reports: Sequence[Report]) -> Tuple[List[CompleteItem], List[FailItem]]:
    done = [r for r in reports if isinstance(r, CompleteItem)]
    failed = [r for r in reports if isinstance(r, FailItem)]
    return done, failed


RETRYABLE = (TransportError, Unavailable, RateLimited)
"""Errors after which a request may succeed if sent again."""
REFUSED_ITEM = (TooLarge, InvalidRequest)
"""A batch the server refused because of one item (say a result over the size limit)."""


#: Answers after which a claim is asked again: a failing server, or a load balancer's 502 or
#: 504 while servers restart.
SERVER_FAULTS = (500, 502, 504)


def is_fatal_claim_error(e: Exception) -> bool:
    """A claim the server refuses (a bad queue name, say) will not improve."""
    return isinstance(e, ApiError) and not isinstance(e, (Unavailable, RateLimited)) and e.status not in SERVER_FAULTS


def default_name() -> str:
    host = os.environ.get("HOSTNAME") or socket.gethostname() or "worker"
    return f"{host}-{os.getpid()}"


def report_retry_delay(attempt: int) -> float:
    """Completing twice is safe (the second answer is ``lease_lost``), so a batch that got no
    answer is sent again a few times, 0.1 s, 0.2 s, 0.4 s, 0.8 s apart."""
    return 0.1 * float(2**attempt)


REPORT_ATTEMPTS = 5
