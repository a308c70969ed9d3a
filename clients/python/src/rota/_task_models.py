"""The task models of :mod:`rota.models` (tasks, what enqueueing, completing and failing them
send, counts by state) and the pieces the other model modules share (``JSON``, the request
helper). Both :mod:`rota.models` and the workflow models import this module; import its names
from :mod:`rota.models` (or :mod:`rota`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional

JSON = Any
"""Any JSON value as :mod:`json` decodes it."""

TASK_STATES = ("waiting", "scheduled", "ready", "running", "succeeded", "dead", "cancelled")
FINAL_STATES = ("succeeded", "dead", "cancelled")


# ---- tasks -------------------------------------------------------------------------------------


@dataclass
class Lease:
    worker: str
    expires_at: datetime
    token: Optional[str] = None
    """The fencing token; shown only to a caller that may complete the task."""


@dataclass
class AttemptError:
    attempt: int
    message: str
    at: datetime


@dataclass
class DependencyResult:
    """A dependency of a claimed task: how it ended and its result, in ``depends_on`` order."""

    id: str
    queue: str
    kind: str
    state: str
    """``succeeded``, or ``dead``/``cancelled`` for a task that runs anyway."""
    result: JSON = None
    result_omitted: bool = False
    """The result is not inline (past the claim's 64 KiB of results, or in a queue the claimer
    may not read): :meth:`Client.get_task` has it."""


@dataclass
class BatchSummary:
    """How a batch's members ended, as its callback's claim carries it (``task.batch``)."""

    id: str
    """The batch (a workflow id)."""
    succeeded: List[str] = field(default_factory=list)
    dead: List[str] = field(default_factory=list)
    cancelled: List[str] = field(default_factory=list)


@dataclass
class Task:
    id: str
    queue: str
    kind: str
    state: str
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    updated_at: datetime
    priority: int = 0
    payload: JSON = None
    finished_at: Optional[datetime] = None
    started_at: Optional[datetime] = None
    """When the latest attempt was claimed; ``None`` before the first claim."""
    lease: Optional[Lease] = None
    progress: JSON = None
    result: JSON = None
    errors: List[AttemptError] = field(default_factory=list)
    unique_key: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    group: Optional[str] = None
    callback_url: Optional[str] = None
    depends_on: List[str] = field(default_factory=list)
    """The ids of the tasks this one waits for (``waiting`` until they all succeed)."""
    on_dependency_failure: str = "cancel"
    """What a dependency that ends dead or cancelled does: ``"cancel"`` this task, or ``"run"`` it."""
    workflow: Optional[str] = None
    """The id of the workflow the task was submitted in."""
    traceparent: Optional[str] = None
    """The W3C trace context the task continues (the enqueue's ``traceparent``, or the
    request's header); ``None`` when it has none."""
    tracestate: Optional[str] = None
    """The vendors' part of the trace context, carried beside ``traceparent``."""
    dependencies: Optional[List[DependencyResult]] = None
    """Only on a claimed task enqueued with ``depends_on``: its first 100 dependencies with
    their results (see :class:`DependencyResult`); ``None`` otherwise."""
    batch: Optional[BatchSummary] = None
    """Only on a batch's callback as claimed: the ids of its members that succeeded, died or
    were cancelled (see :class:`BatchSummary`); ``None`` otherwise."""

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass
class EnqueuedTask(Task):
    """A task as enqueue answers it."""

    duplicate: bool = False
    """``unique_key`` matched a live task, which is returned instead."""
    replaced: bool = False
    """That live task was waiting and took this task's fields (``on_duplicate="replace"``)."""


@dataclass
class TaskPage:
    tasks: List[Task]
    next_cursor: Optional[str] = None


@dataclass
class NewTask:
    """One task to enqueue (in a batch, or as :meth:`Client.enqueue`'s keyword arguments)."""

    kind: Optional[str] = None
    payload: JSON = None
    priority: Optional[int] = None
    run_at: Optional[datetime] = None
    delay_ms: Optional[int] = None
    max_attempts: Optional[int] = None
    unique_key: Optional[str] = None
    on_duplicate: Optional[str] = None
    """``"keep"`` (default) or ``"replace"`` (debounce)."""
    tags: Optional[List[str]] = None
    group: Optional[str] = None
    callback_url: Optional[str] = None
    depends_on: Optional[List[str]] = None
    """Ids of tasks (of this tenant, any queue) that must succeed first; until then ``waiting``."""
    on_dependency_failure: Optional[str] = None
    """``"cancel"`` (default) or ``"run"``: what a dependency ending dead or cancelled does."""
    traceparent: Optional[str] = None
    """A W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``, lower case) the task continues;
    default: the request's ``traceparent`` header, if any."""
    tracestate: Optional[str] = None
    """The W3C ``tracestate`` beside it (at most 512 bytes); needs ``traceparent``."""

    def to_json(self) -> Dict[str, Any]:
        return _input_json(self)


def _input_json(obj: Any) -> Dict[str, Any]:
    """A request object's fields that are set, times as RFC 3339."""
    out: Dict[str, Any] = {}
    for name, value in vars(obj).items():
        if value is None:
            continue
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


@dataclass
class CompleteItem:
    id: str
    lease: str
    result: JSON = None

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"id": self.id, "lease": self.lease}
        if self.result is not None:
            out["result"] = self.result
        return out


@dataclass
class FailItem:
    id: str
    lease: str
    error: str
    retry_in_ms: Optional[int] = None
    dead: bool = False
    temporary: bool = False

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"id": self.id, "lease": self.lease, "error": self.error}
        if self.retry_in_ms is not None:
            out["retry_in_ms"] = self.retry_in_ms
        if self.dead:
            out["dead"] = True
        if self.temporary:
            out["temporary"] = True
        return out


@dataclass
class ErrorDetail:
    code: str
    message: str


@dataclass
class ItemOutcome:
    """One item's answer in a batch complete or fail."""

    id: str
    ok: bool
    state: Optional[str] = None
    error: Optional[ErrorDetail] = None


@dataclass
class StateCounts:
    """How many tasks are in each state (a queue's, a workflow's)."""

    waiting: int = 0
    scheduled: int = 0
    ready: int = 0
    running: int = 0
    succeeded: int = 0
    dead: int = 0
    cancelled: int = 0
