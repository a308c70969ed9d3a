"""The asyncio client's workflow methods: workflows, batches (open ones too) and tasks a running
task spawns. :class:`AsyncClient` takes them in as a mixin. ``_sync_workflows.py`` is generated
from this file by ``scripts/unasync.py``: edit this one and run the script."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, Dict, List, Optional, Sequence, Type, TypeVar

from ._http import query, seg
from ._job import SpawnTarget, handing_off, spawn_target
from .models import NewBatchTask, NewWorkflowTask, Spawned, Task, Workflow, WorkflowPage

M = TypeVar("M")


class AsyncWorkflows:
    """Workflows, batches and spawned tasks (see ``docs/workflows.md``)."""

    if TYPE_CHECKING:  # the client's plumbing, which the class using this mixin has

        async def _one(self, cls: Type[M], method: str, path: str, **kw: Any) -> M: ...

        async def _many(self, cls: Type[M], key: str, method: str, path: str, **kw: Any) -> List[M]: ...

    # ---- workflows ----------------------------------------------------------------------------

    async def submit_workflow(self, tasks: Sequence[NewWorkflowTask]) -> Workflow:
        """Stores a graph of named tasks whole or not at all (an unknown or repeated name or a
        cycle is :class:`InvalidRequest`); those with ``depends_on`` wait for them."""
        body = {"tasks": [t.to_json() for t in tasks]}
        return await self._one(Workflow, "POST", "/v1/workflows", body=body)

    async def get_workflow(self, id: str) -> Workflow:
        """The workflow with its state, counts and tasks by name."""
        return await self._one(Workflow, "GET", f"/v1/workflows/{seg(id)}")

    async def list_workflows(self, *, before: Optional[str] = None, limit: Optional[int] = None) -> WorkflowPage:
        """One page, newest first, without tasks; pass ``next_before`` back as ``before``."""
        return await self._one(WorkflowPage, "GET", "/v1/workflows", params=query(before=before, limit=limit))

    async def iter_workflows(self, *, page_size: Optional[int] = None) -> AsyncIterator[Workflow]:
        """Every workflow (newest first, without tasks), page by page."""
        before: Optional[str] = None
        while True:
            page = await self.list_workflows(before=before, limit=page_size)
            for workflow in page.workflows:
                yield workflow
            if page.next_before is None or not page.workflows:
                return
            before = page.next_before

    async def cancel_workflow(self, id: str) -> Workflow:
        """Cancels every task of the workflow that is not final; answers the workflow."""
        return await self._one(Workflow, "POST", f"/v1/workflows/{seg(id)}/cancel")

    # ---- batches ------------------------------------------------------------------------------

    async def submit_batch(
        self,
        tasks: Sequence[NewBatchTask],
        callback: NewBatchTask,
        only_on_success: bool = False,
        open: bool = False,
    ) -> Workflow:
        """Stores a batch: ``tasks`` (its members) and ``callback``, which waits for every member
        and runs once they are all final, whatever they ended as; with ``only_on_success`` a
        member ending dead or cancelled cancels it instead. Its claim carries ``batch`` (a
        :class:`BatchSummary`). Answers the batch as a :class:`Workflow` of ``kind`` ``"batch"``
        whose last task is named ``"callback"``.

        An ``open`` batch takes more members (:meth:`add_to_batch`) until :meth:`close_batch`,
        and its callback waits for the close too; ``tasks`` may then be empty."""
        body: Dict[str, Any] = {"tasks": [t.to_json() for t in tasks], "callback": callback.to_json()}
        if only_on_success:
            body["only_on_success"] = True
        if open:
            body["open"] = True
        return await self._one(Workflow, "POST", "/v1/batches", body=body)

    async def get_batch(self, id: str) -> Workflow:
        """The batch with its state, counts and tasks (the members, then ``"callback"``); a
        plain workflow's id is :class:`NotFound`."""
        return await self._one(Workflow, "GET", f"/v1/batches/{seg(id)}")

    async def add_to_batch(self, batch_id: str, tasks: Sequence[NewBatchTask]) -> List[Task]:
        """Adds members to an open batch (named ``m<n>`` after the ones before); answers them as
        stored, in order. A closed batch is a :class:`Conflict` (409 ``conflict``) and a plain
        workflow an :class:`InvalidRequest`; either stores nothing."""
        body = {"tasks": [t.to_json() for t in tasks]}
        return await self._many(Task, "tasks", "POST", f"/v1/batches/{seg(batch_id)}/tasks", body=body)

    async def close_batch(self, batch_id: str) -> Workflow:
        """Closes an open batch: its callback runs once every member is final (at once if they
        all are). Answers the batch (``open`` false); closing a closed batch changes nothing."""
        return await self._one(Workflow, "POST", f"/v1/batches/{seg(batch_id)}/close", body={})

    # ---- spawning -----------------------------------------------------------------------------

    async def spawn(
        self,
        task: SpawnTarget,
        tasks: Sequence[NewBatchTask],
        *,
        lease: Optional[str] = None,
        on_dependency_failure: Optional[str] = None,
    ) -> Spawned:
        """A running task adds ``tasks`` (each with its queue) and waits for them: it gives up
        its lease (completing under it then answers :class:`LeaseLost`), and once they end it
        runs again as the same attempt, its claim carrying their results in ``dependencies``.
        A spawned task ending dead or cancelled cancels it, unless ``on_dependency_failure`` is
        ``"run"``.

        ``task`` is the handler's :class:`Job` (a worker then reports nothing for this run:
        return after spawning), a claimed :class:`Task`, or a task id with its ``lease``. A
        lease that does not hold the task is a :class:`LeaseLost` (or :class:`TaskCancelled`)
        and stores nothing."""
        id, token, job = spawn_target(task, lease)
        body: Dict[str, Any] = {"lease": token, "tasks": [t.to_json() for t in tasks]}
        if on_dependency_failure is not None:
            body["on_dependency_failure"] = on_dependency_failure
        with handing_off(job):
            return await self._one(Spawned, "POST", f"/v1/tasks/{seg(id)}/spawn", body=body)
