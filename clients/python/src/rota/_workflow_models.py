"""The workflow models of :mod:`rota.models` (workflows, batches, spawned tasks), in a module
of their own to keep that one short. Import them from :mod:`rota.models` (or :mod:`rota`),
which re-exports them; the task models they build on come from :mod:`rota._task_models`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional

from ._task_models import JSON, StateCounts, Task, _input_json

WORKFLOW_STATES = ("running", "succeeded", "failed", "cancelled")


@dataclass
class WorkflowTask:
    """A task of a workflow, under the name it was submitted with."""

    name: str
    task: Task


@dataclass
class Workflow:
    """A workflow: ``tasks`` when read one at a time (empty in a list), ``counts`` always."""

    id: str
    state: str
    """``running`` while a task is not final; then ``failed`` if one is dead, else
    ``cancelled`` if one is cancelled, else ``succeeded``."""
    created_at: datetime
    counts: StateCounts
    tasks: List[WorkflowTask] = field(default_factory=list)
    kind: str = "workflow"
    """``"workflow"`` (:meth:`Client.submit_workflow`) or ``"batch"`` (:meth:`Client.submit_batch`,
    whose callback is the task named ``"callback"``)."""
    open: Optional[bool] = None
    """A batch: whether it still takes members (:meth:`Client.add_to_batch`) until
    :meth:`Client.close_batch`; ``None`` for a workflow."""

    @property
    def is_final(self) -> bool:
        return self.state != "running"

    def task(self, name: str) -> Task:
        """The task submitted as ``name``."""
        for t in self.tasks:
            if t.name == name:
                return t.task
        raise KeyError(name)


@dataclass
class WorkflowPage:
    workflows: List[Workflow]
    next_before: Optional[str] = None


@dataclass
class NewWorkflowTask:
    """One task of a workflow to submit: a :class:`NewTask` (without ``unique_key``) with a
    ``name`` unique in the workflow, its ``queue``, and the names of the tasks it waits for."""

    name: str
    queue: str
    depends_on: Optional[List[str]] = None
    """Names of other tasks of this workflow that must succeed first."""
    on_dependency_failure: Optional[str] = None
    kind: Optional[str] = None
    payload: JSON = None
    priority: Optional[int] = None
    run_at: Optional[datetime] = None
    delay_ms: Optional[int] = None
    max_attempts: Optional[int] = None
    tags: Optional[List[str]] = None
    group: Optional[str] = None
    callback_url: Optional[str] = None
    traceparent: Optional[str] = None
    """As on :class:`NewTask`: the W3C trace context the task continues."""
    tracestate: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        return _input_json(self)


@dataclass
class NewBatchTask:
    """A member or the callback of a batch to submit, a member added to an open batch, or a
    task a running task spawns: a :class:`NewTask` (without ``unique_key`` or dependencies)
    with its ``queue``; the batch (or the spawner) decides what waits for it."""

    queue: str
    kind: Optional[str] = None
    payload: JSON = None
    priority: Optional[int] = None
    run_at: Optional[datetime] = None
    delay_ms: Optional[int] = None
    max_attempts: Optional[int] = None
    tags: Optional[List[str]] = None
    group: Optional[str] = None
    callback_url: Optional[str] = None
    traceparent: Optional[str] = None
    """As on :class:`NewTask`: the W3C trace context the task continues."""
    tracestate: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        return _input_json(self)


@dataclass
class Spawned:
    """What :meth:`Client.spawn` answers: the spawner as it stands (``waiting`` for the tasks,
    or already released if they all ended) and the tasks it spawned, in the order given."""

    task: Task
    tasks: List[Task] = field(default_factory=list)
