"""S17: tasks added after submission: a handler that spawns tasks and runs again with their
results, a spawn under a wrong lease, and an open batch that takes members until closed."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import pytest

import rota
from rota import Job, NewBatchTask, NewWorkflowTask
from rota._job import handing_off
from rota.worker._common import End, end_for_heartbeat_error

from .conftest import Server
from .helpers import InThread, wait_until


def test_s17_a_handler_spawns_then_runs_again_with_their_results(client: rota.Client, queue: str) -> None:
    pages = f"{queue}-pages"
    parent = client.enqueue(queue, "merge", {"pages": 3})
    runs: List[Dict[str, Any]] = []
    spawned: List[rota.Spawned] = []
    seen: Dict[str, Any] = {}
    lock = threading.Lock()

    def merge(job: Job) -> Any:
        with lock:
            runs.append({"attempt": job.attempt, "dependencies": job.task.dependencies})
        if not job.dependencies:  # the first run: fan out, then return at once
            assert job.task.lease is not None and job.task.lease.token
            lease = job.task.lease.token
            out = client.spawn(job, [NewBatchTask(pages, kind="page", payload=i) for i in range(3)])
            with lock:
                spawned.append(out)
            seen["spawned"] = job.spawned
            # The lease is given up: a heartbeat under it is refused, and the worker's own
            # heartbeats (every 0.05 s) meanwhile do not stop this handler. (What the handler
            # raises now is not reported either, so the test body checks what it saw.)
            try:
                client.heartbeat(job.id, lease)
            except rota.LeaseLost as e:
                seen["heartbeat"] = e.code
            seen["stopped"] = job.stopped.wait(0.3)
            return "not reported"
        return [d.result for d in job.dependencies]

    def page(job: Job) -> Any:
        return {"page": job.payload}

    workers = [
        rota.Worker(client, queue, merge, heartbeat_every=0.05, poll_wait=0.2),
        rota.Worker(client, pages, page, concurrency=3, poll_wait=0.2),
    ]
    running = [InThread(w.run) for w in workers]
    done = wait_until(lambda: (t := client.get_task(parent.id)).is_final and t, timeout=30)
    for w in workers:
        w.stop()
    merged, paged = (r.join() for r in running)

    assert seen == {"spawned": True, "heartbeat": "lease_lost", "stopped": False}
    # The run that spawned reported nothing; the second run completed the task.
    assert merged.spawned == 1 and merged.succeeded == 1
    assert merged.lease_lost == 0 and merged.failed == 0 and merged.cancelled == 0
    assert paged.succeeded == 3
    assert done.state == "succeeded" and done.result == [{"page": 0}, {"page": 1}, {"page": 2}]
    assert done.errors == []  # no failed attempt: the spawn gave the attempt back

    (out,) = spawned
    # Waiting for them, or already released if the page worker finished them before the answer.
    assert out.task.id == parent.id and out.task.state in ("waiting", "ready")
    assert [t.queue for t in out.tasks] == [pages] * 3 and [t.payload for t in out.tasks] == [0, 1, 2]
    ids = [t.id for t in out.tasks]
    assert out.task.depends_on == ids and done.depends_on == ids

    assert len(runs) == 2 and runs[0]["dependencies"] is None
    assert runs[1]["attempt"] == runs[0]["attempt"]  # the same attempt, run again
    assert runs[1]["dependencies"] == [
        rota.DependencyResult(ids[i], pages, "page", "succeeded", {"page": i}) for i in range(3)
    ]
    types = [e.type for e in client.events(queue=queue, limit=100).events]
    assert "task.waiting" in types and "task.released" in types
    assert client.get_task(parent.id).state == "succeeded"


def test_s17_a_spawn_under_a_wrong_lease_stores_nothing(client: rota.Client, queue: str) -> None:
    pages = f"{queue}-pages"
    made = client.enqueue(queue, "merge")
    (held,) = client.claim(queue, "w1")
    assert held.lease is not None and held.lease.token
    with pytest.raises(rota.LeaseLost) as lost:
        client.spawn(made.id, [NewBatchTask(pages, kind="page")], lease="not-the-lease")
    assert lost.value.status == 409 and lost.value.code == "lease_lost"
    with pytest.raises(ValueError):
        client.spawn(made.id, [NewBatchTask(pages)])  # an id needs its lease
    with pytest.raises(ValueError):
        client.spawn(made, [NewBatchTask(pages)])  # as enqueued: it carries no lease
    assert pages not in [q.name for q in client.queues()]  # nothing stored, not even the queue
    still = client.get_task(made.id)
    assert still.state == "running" and still.depends_on == []

    # The claimed task under its own lease spawns; then its lease no longer completes it.
    out = client.spawn(held, [NewBatchTask(pages, kind="page")], on_dependency_failure="run")
    assert out.task.state == "waiting" and out.task.on_dependency_failure == "run"
    with pytest.raises(rota.LeaseLost):
        client.complete(made.id, held.lease.token, "late")
    # A spawned task cancelled: with "run" the spawner runs again and sees how it ended.
    client.cancel(out.tasks[0].id)
    assert wait_until(lambda: client.get_task(made.id).state == "ready")
    (again,) = client.claim(queue, "w1")
    assert again.id == made.id and again.attempt == held.attempt
    assert again.dependencies is not None and [d.state for d in again.dependencies] == ["cancelled"]


def test_s17_the_worker_ignores_a_lost_lease_once_its_handler_spawned() -> None:
    job = Job(_any_task())
    lost = rota.LeaseLost(409, "lease_lost", "the lease is not held")
    cancelled = rota.TaskCancelled(409, "task_cancelled", "cancelled")
    assert end_for_heartbeat_error(lost, job) is End.LEASE_LOST
    with handing_off(job):  # a spawn in flight
        assert end_for_heartbeat_error(lost, job) is None and not job.spawned
    assert job.spawned and end_for_heartbeat_error(lost, job) is None
    assert end_for_heartbeat_error(cancelled, job) is End.CANCELLED
    failed = Job(_any_task())
    with pytest.raises(RuntimeError), handing_off(failed):
        raise RuntimeError("the spawn was refused")
    assert not failed.spawned and not failed.handing_off


def _any_task() -> rota.Task:
    now = datetime.now(timezone.utc)
    return rota.Task("t", "q", "k", "running", 1, 3, now, now, now)


def test_s17_an_open_batch_takes_members_until_closed(client: rota.Client, queue: str) -> None:
    other = f"{queue}-cb"
    made = client.submit_batch([], NewBatchTask(other, kind="report", payload="cb"), open=True)
    assert made.kind == "batch" and made.open is True and made.state == "running"
    assert [t.name for t in made.tasks] == ["callback"]
    callback = made.task("callback")
    assert callback.state == "waiting" and callback.depends_on == []

    (member,) = client.add_to_batch(made.id, [NewBatchTask(queue, kind="member", payload=7)])
    assert member.queue == queue and member.workflow == made.id and member.state == "ready"
    got = client.get_batch(made.id)
    assert got.open is True and [t.name for t in got.tasks] == ["callback", "m0"]  # added: m<n>
    assert got.task("m0").id == member.id
    assert got.task("callback").depends_on == [member.id]

    runs: List[Job] = []
    lock = threading.Lock()

    def handler(job: Job) -> Any:
        with lock:
            runs.append(job)
        return job.payload

    workers = [rota.Worker(client, q, handler, poll_wait=0.2) for q in (queue, other)]
    running = [InThread(w.run) for w in workers]
    try:
        assert wait_until(lambda: client.get_task(member.id).state == "succeeded")
        # The member ended, but the batch is open: its callback waits for the close too.
        assert not wait_until_or_none(lambda: client.get_task(callback.id).state != "waiting", 0.5)
        closed = client.close_batch(made.id)
        assert closed.open is False and closed.id == made.id
        done = wait_until(lambda: (b := client.get_batch(made.id)).is_final and b, timeout=30)
    finally:
        for w in workers:
            w.stop()
        for r in running:
            r.join()

    assert done.state == "succeeded" and done.open is False
    assert done.task("callback").state == "succeeded" and done.task("callback").result == "cb"
    cb_runs = [j for j in runs if j.kind == "report"]
    assert len(cb_runs) == 1
    assert cb_runs[0].batch == rota.BatchSummary(made.id, succeeded=[member.id], dead=[], cancelled=[])

    # Closed: another member is refused and nothing is stored; closing again changes nothing.
    with pytest.raises(rota.Conflict) as refused:
        client.add_to_batch(made.id, [NewBatchTask(queue, kind="late")])
    assert refused.value.status == 409 and refused.value.code == "conflict"
    assert len(client.get_batch(made.id).tasks) == 2
    assert client.close_batch(made.id).open is False
    # A plain workflow is no batch to add to; an unknown id is not found.
    plain = client.submit_workflow([NewWorkflowTask("a", queue)])
    assert plain.open is None
    with pytest.raises(rota.InvalidRequest) as not_batch:
        client.add_to_batch(plain.id, [NewBatchTask(queue)])
    assert not_batch.value.status == 422
    with pytest.raises(rota.NotFound) as missing:
        client.add_to_batch("01a20c27-4e6d-7000-8000-000000000000", [NewBatchTask(queue)])
    assert missing.value.status == 404 and missing.value.code == "workflow_not_found"

    # Once its tasks all ended, the batch logs workflow.succeeded (maintenance, within ~1 s).
    ended = wait_until(
        lambda: [e for e in client.events(types=["workflow.succeeded"], limit=1000).events if _of(e, made.id)]
    )
    assert ended[0].data["state"] == "succeeded" and ended[0].task_id == callback.id


def _of(event: rota.Event, workflow: str) -> bool:
    return isinstance(event.data, dict) and event.data.get("workflow") == workflow


def wait_until_or_none(check: Any, timeout: float) -> Optional[Any]:
    """``check()``'s first truthy value within ``timeout`` seconds, else None."""
    try:
        return wait_until(check, timeout=timeout)
    except AssertionError:
        return None


def test_s17_async_spawn_and_open_batch(server: Server, queue: str) -> None:
    pages = f"{queue}-pages"
    seen: List[Any] = []

    async def main() -> None:
        async with rota.AsyncClient(server.url, server.token) as c:
            parent = await c.enqueue(queue, "merge")

            async def merge(job: Job) -> Any:
                if not job.dependencies:
                    out = await c.spawn(job, [NewBatchTask(pages, kind="page", payload=i) for i in range(2)])
                    # Waiting for them, or already released when the page worker finished
                    # both before the spawn's answer was read back.
                    seen.append((job.spawned, len(out.tasks), out.task.state in ("waiting", "ready")))
                    await asyncio.sleep(0.2)  # heartbeats (every 0.05 s) meanwhile do not stop it
                    seen.append(job.stopped.is_set())
                    return None
                return sum(d.result for d in job.dependencies)

            async def page(job: Job) -> Any:
                return job.payload + 1

            workers = [
                rota.AsyncWorker(c, queue, merge, heartbeat_every=0.05, poll_wait=0.2),
                rota.AsyncWorker(c, pages, page, concurrency=2, poll_wait=0.2),
            ]
            running = [asyncio.ensure_future(w.run()) for w in workers]
            for _ in range(1500):
                if (await c.get_task(parent.id)).is_final:
                    break
                await asyncio.sleep(0.02)
            for w in workers:
                w.stop()
            merged, paged = await asyncio.gather(*running)
            done = await c.get_task(parent.id)
            assert seen == [(True, 2, True), False]
            assert done.state == "succeeded" and done.result == 3
            assert merged.spawned == 1 and merged.succeeded == 1 and merged.lease_lost == 0
            assert paged.succeeded == 2

            batch = await c.submit_batch([], NewBatchTask(queue, kind="cb"), open=True)
            added = await c.add_to_batch(batch.id, [NewBatchTask(queue), NewBatchTask(queue)])
            assert len(added) == 2 and all(t.workflow == batch.id for t in added)
            closed = await c.close_batch(batch.id)
            assert closed.open is False and closed.counts.ready == 2 and closed.counts.waiting == 1
            with pytest.raises(rota.Conflict):
                await c.add_to_batch(batch.id, [NewBatchTask(queue)])

    asyncio.run(main())
