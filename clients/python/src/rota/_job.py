"""The handler's view of a claimed task (:class:`Job`, re-exported by :mod:`rota.worker`), here
so that the clients can mark a job whose task spawned (:meth:`Client.spawn`) without importing
the worker runtime."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple, Union

from .models import JSON, BatchSummary, DependencyResult, Task


class Job:
    """A claimed task as a handler sees it: the :class:`Task`, its payload, and ``stopped``,
    set when the worker stops the handler (cancel, lost lease, timeout, shutdown). A handler
    that waits should wait on it (``job.stopped.wait(5)``) rather than ``time.sleep``, so it
    can be stopped at once. ``progress`` is sent with the next heartbeat.

    A handler that calls ``client.spawn(job, tasks)`` hands its task off: the task gives up its
    lease and waits for the spawned tasks, then runs again with their results in
    ``dependencies``. ``spawned`` is then true, and the worker reports nothing for this run."""

    __slots__ = ("task", "stopped", "progress", "_spawning", "_spawned")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.stopped = threading.Event()
        self.progress: JSON = None
        self._spawning = 0
        self._spawned = False

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def kind(self) -> str:
        return self.task.kind

    @property
    def payload(self) -> JSON:
        return self.task.payload

    @property
    def attempt(self) -> int:
        return self.task.attempt

    @property
    def dependencies(self) -> List[DependencyResult]:
        """The tasks this one waited for, with their results (empty for one that waited for none)."""
        return self.task.dependencies or []

    @property
    def batch(self) -> Optional[BatchSummary]:
        """For a batch's callback, how the batch's members ended; ``None`` otherwise."""
        return self.task.batch

    @property
    def spawned(self) -> bool:
        """This run spawned tasks (:meth:`Client.spawn`): its lease is given up, the task waits
        for them and runs again after (the same attempt), and this run reports nothing."""
        return self._spawned

    @property
    def handing_off(self) -> bool:
        """A spawn is in flight or done: a heartbeat answered ``lease_lost`` is expected."""
        return self._spawned or self._spawning > 0

    def __repr__(self) -> str:
        return f"Job(id={self.task.id!r}, kind={self.task.kind!r}, attempt={self.task.attempt})"


SpawnTarget = Union[Job, Task, str]
"""What :meth:`Client.spawn` spawns from: the handler's job, a claimed task, or a task's id."""


def spawn_target(target: SpawnTarget, lease: Optional[str]) -> Tuple[str, str, Optional[Job]]:
    """The task id and lease a spawn sends, and the job to mark handed off (if one was given)."""
    if isinstance(target, str):
        if not lease:
            raise ValueError("spawn from a task id needs its lease (lease=)")
        return target, lease, None
    job = target if isinstance(target, Job) else None
    task = target.task if isinstance(target, Job) else target
    token = lease or (task.lease.token if task.lease is not None else None)
    if not token:
        raise ValueError(f"task {task.id} carries no lease: spawn from a claimed task, or pass lease=")
    return task.id, token, job


@contextmanager
def handing_off(job: Optional[Job]) -> Iterator[None]:
    """Around a spawn request: while it is in flight, a heartbeat answered ``lease_lost`` does
    not stop the handler (the spawn gives the lease up); once it succeeded, ``job.spawned``."""
    if job is None:
        yield
        return
    job._spawning += 1
    ok = False
    try:
        yield
        ok = True
    finally:
        if ok:
            job._spawned = True
        job._spawning -= 1
