"""S16: workflows and dependencies: a graph of named tasks across queues run by the worker,
a task that waits for another, cancelling a workflow, a bad graph refused, and batches."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, List, Optional

import pytest

import rota
from rota import Job, NewBatchTask, NewWorkflowTask

from .conftest import Server
from .helpers import InThread, wait_until


def test_s16_workflow_fans_out_and_joins_across_two_queues(client: rota.Client, queue: str) -> None:
    other = f"{queue}-2"
    made = client.submit_workflow(
        [
            NewWorkflowTask("a", queue, kind="step", payload="a"),
            NewWorkflowTask("b", queue, depends_on=["a"], kind="step", payload="b"),
            NewWorkflowTask("c", other, depends_on=["a"], kind="step", payload="c"),
            NewWorkflowTask("join", other, depends_on=["b", "c"], kind="step", payload="join", priority=3),
        ]
    )
    assert made.state == "running" and not made.is_final
    assert [t.name for t in made.tasks] == ["a", "b", "c", "join"]
    assert made.counts.ready == 1 and made.counts.waiting == 3
    a, b, c, join = (made.task(n) for n in ("a", "b", "c", "join"))
    assert a.state == "ready" and a.depends_on == [] and a.workflow == made.id
    assert b.state == "waiting" and b.depends_on == [a.id] and b.queue == queue
    assert c.state == "waiting" and c.queue == other
    assert sorted(join.depends_on) == sorted([b.id, c.id]) and join.priority == 3
    assert join.on_dependency_failure == "cancel"
    assert client.queue(other).counts.waiting == 2

    order: List[str] = []
    inputs: Dict[str, Optional[List[rota.DependencyResult]]] = {}
    lock = threading.Lock()

    def handler(job: Job) -> Any:
        with lock:
            order.append(job.payload)
            inputs[job.payload] = job.task.dependencies
        return {"ran": job.payload}

    workers = [rota.Worker(client, q, handler, concurrency=4, poll_wait=0.2) for q in (queue, other)]
    running = [InThread(w.run) for w in workers]
    done = wait_until(lambda: (w := client.get_workflow(made.id)).is_final and w, timeout=30)
    for w in workers:
        w.stop()
    for r in running:
        r.join()

    assert done.state == "succeeded"
    assert done.counts == rota.StateCounts(succeeded=4)
    assert order[0] == "a" and order[-1] == "join" and sorted(order[1:3]) == ["b", "c"]
    assert all(t.task.state == "succeeded" and t.task.result == {"ran": t.name} for t in done.tasks)
    # The join, as claimed, carries b's and c's results in depends_on order; a task that waited
    # for none carries no dependencies.
    assert inputs["a"] is None
    assert inputs["b"] == [rota.DependencyResult(a.id, queue, "step", "succeeded", {"ran": "a"})]
    got = inputs["join"]
    assert got is not None and [d.id for d in got] == join.depends_on
    by_id = {d.id: d for d in got}
    assert by_id[b.id] == rota.DependencyResult(b.id, queue, "step", "succeeded", {"ran": "b"})
    assert by_id[c.id] == rota.DependencyResult(c.id, other, "step", "succeeded", {"ran": "c"})
    assert not any(d.result_omitted for d in got)
    listed = client.list_workflows(limit=100)
    mine = [w for w in listed.workflows if w.id == made.id]
    assert mine and mine[0].state == "succeeded" and mine[0].tasks == []
    assert made.id in [w.id for w in client.iter_workflows(page_size=2)]


def test_s16_depends_on_waits_then_is_released(client: rota.Client, queue: str) -> None:
    first = client.enqueue(queue, "first")
    then = client.enqueue(queue, "then", {"n": 1}, depends_on=[first.id])
    assert then.state == "waiting" and then.depends_on == [first.id] and then.workflow is None
    counts = client.queue(queue).counts
    assert counts.waiting == 1 and counts.ready == 1
    types = [e.type for e in client.events(queue=queue, limit=100).events]
    assert types == ["task.enqueued", "task.waiting"]
    claimed = client.claim(queue, "w1", max=10)
    assert [t.id for t in claimed] == [first.id]  # the waiting task is not claimable
    assert claimed[0].lease is not None and claimed[0].lease.token
    client.complete(first.id, claimed[0].lease.token, "done")
    released = wait_until(lambda: (t := client.get_task(then.id)).state == "ready" and t)
    assert released.depends_on == [first.id]
    (got,) = client.claim(queue, "w1")
    assert got.id == then.id and got.payload == {"n": 1}
    assert got.dependencies == [rota.DependencyResult(first.id, queue, "first", "succeeded", "done")]
    assert rota.Job(got).dependencies == got.dependencies and rota.Job(claimed[0]).dependencies == []

    # A result past the claim's bound (64 KiB of results) is left out, marked result_omitted.
    big = client.enqueue(queue, "big")
    after = client.enqueue(queue, "after", depends_on=[big.id])
    (held,) = client.claim(queue, "w1")
    assert held.id == big.id and held.lease is not None and held.lease.token
    client.complete(big.id, held.lease.token, "x" * (70 * 1024))
    assert wait_until(lambda: client.get_task(after.id).state == "ready")
    (late,) = client.claim(queue, "w1")
    assert late.id == after.id and late.dependencies is not None
    assert late.dependencies[0].result is None and late.dependencies[0].result_omitted
    assert "task.released" in [e.type for e in client.events(queue=queue, types=["task.released"]).events]

    # A dependency cancelled: the waiter is cancelled with the reason, unless it runs anyway.
    gone = client.enqueue(queue, "gone")
    dropped = client.enqueue(queue, "dropped", depends_on=[gone.id])
    anyway = client.enqueue(queue, "anyway", depends_on=[gone.id], on_dependency_failure="run")
    assert anyway.on_dependency_failure == "run" and anyway.state == "waiting"
    client.cancel(gone.id)
    cancelled = wait_until(lambda: (t := client.get_task(dropped.id)).state == "cancelled" and t)
    assert cancelled.errors and gone.id in cancelled.errors[-1].message
    assert wait_until(lambda: client.get_task(anyway.id).state == "ready")

    with pytest.raises(rota.InvalidRequest) as bad:
        client.enqueue(queue, "k", on_dependency_failure="run")
    assert bad.value.status == 422 and "depends_on" in bad.value.message


def test_s16_a_bad_graph_is_refused_whole(client: rota.Client, queue: str) -> None:
    with pytest.raises(rota.InvalidRequest) as cycle:
        client.submit_workflow(
            [
                NewWorkflowTask("a", queue, depends_on=["b"]),
                NewWorkflowTask("b", queue, depends_on=["a"]),
                NewWorkflowTask("free", queue),
            ]
        )
    assert cycle.value.status == 422 and cycle.value.code == "invalid_field"
    assert "cycle" in cycle.value.message
    assert "a -> b -> a" in cycle.value.message or "b -> a -> b" in cycle.value.message
    with pytest.raises(rota.InvalidRequest) as unknown:
        client.submit_workflow([NewWorkflowTask("a", queue, depends_on=["nobody"])])
    assert unknown.value.status == 422 and "nobody" in unknown.value.message
    with pytest.raises(rota.InvalidRequest):
        client.submit_workflow([NewWorkflowTask("a", queue), NewWorkflowTask("a", queue)])
    assert queue not in [q.name for q in client.queues()]  # nothing stored, not even the queue
    with pytest.raises(rota.NotFound):
        client.get_workflow("01a20c27-4e6d-7000-8000-000000000000")


def test_s16_cancel_a_workflow_async(server: Server, queue: str) -> None:
    async def main() -> None:
        async with rota.AsyncClient(server.url, server.token) as c:
            made = await c.submit_workflow(
                [
                    NewWorkflowTask("a", queue),
                    NewWorkflowTask("b", queue, depends_on=["a"], on_dependency_failure="run"),
                ]
            )
            assert made.task("b").on_dependency_failure == "run"
            got = await c.get_workflow(made.id)
            assert got.id == made.id and got.counts.waiting == 1
            gone = await c.cancel_workflow(made.id)
            assert gone.state == "cancelled" and gone.counts.cancelled == 2
            assert all(t.task.state == "cancelled" for t in gone.tasks)
            page = await c.list_workflows(limit=1)
            assert len(page.workflows) == 1 and page.workflows[0].id == made.id
            seen = [w.id async for w in c.iter_workflows(page_size=1)]
            assert seen[0] == made.id and len(seen) == len(set(seen))

    asyncio.run(main())


def test_s16_batch_callback_runs_once_with_the_members_outcomes(client: rota.Client, queue: str) -> None:
    other = f"{queue}-cb"
    made = client.submit_batch(
        [
            NewBatchTask(queue, kind="member", payload="ok"),
            NewBatchTask(queue, kind="member", payload="bad", max_attempts=1),
            NewBatchTask(queue, kind="member", payload="gone"),
        ],
        NewBatchTask(other, kind="publish", payload={"n": 3}),
    )
    assert made.kind == "batch" and made.state == "running"
    assert [t.name for t in made.tasks][-1] == "callback" and len(made.tasks) == 4
    ok, bad, gone = (t.task for t in made.tasks[:3])
    callback = made.task("callback")
    assert callback.state == "waiting" and callback.queue == other and callback.workflow == made.id
    assert sorted(callback.depends_on) == sorted([ok.id, bad.id, gone.id])
    assert client.get_batch(made.id).id == made.id
    client.cancel(gone.id)

    runs: List[Job] = []
    lock = threading.Lock()

    def handler(job: Job) -> Any:
        if job.kind == "publish":
            with lock:
                runs.append(job)
            return "published"
        if job.payload == "bad":
            raise RuntimeError("no variant")
        assert job.batch is None
        return job.payload

    workers = [rota.Worker(client, q, handler, concurrency=4, poll_wait=0.2) for q in (queue, other)]
    running = [InThread(w.run) for w in workers]
    done = wait_until(lambda: (b := client.get_batch(made.id)).is_final and b, timeout=30)
    for w in workers:
        w.stop()
    for r in running:
        r.join()

    assert done.kind == "batch" and done.state == "failed"  # a member is dead
    assert done.task("callback").state == "succeeded" and done.task("callback").result == "published"
    assert [t.task.state for t in done.tasks[:3]] == ["succeeded", "dead", "cancelled"]
    assert len(runs) == 1
    want = rota.BatchSummary(made.id, succeeded=[ok.id], dead=[bad.id], cancelled=[gone.id])
    assert runs[0].batch == want and runs[0].task.batch == want
    assert runs[0].payload == {"n": 3}
    assert client.get_workflow(made.id).kind == "batch"


def test_s16_batch_only_on_success_and_refusals(client: rota.Client, queue: str) -> None:
    # A claimed callback carries the batch; a plain claimed task does not.
    one = client.submit_batch([NewBatchTask(queue, kind="m")], NewBatchTask(queue, kind="cb"))
    member = one.tasks[0].task
    (got,) = client.claim(queue, "w1")
    assert got.id == member.id and got.batch is None and got.lease is not None and got.lease.token
    client.complete(member.id, got.lease.token, 1)
    assert wait_until(lambda: client.get_task(one.task("callback").id).state == "ready")
    (cb,) = client.claim(queue, "w1")
    assert cb.id == one.task("callback").id
    assert cb.batch == rota.BatchSummary(one.id, succeeded=[member.id], dead=[], cancelled=[])
    assert cb.dependencies is not None and [d.id for d in cb.dependencies] == [member.id]

    # only_on_success: a dead member cancels the callback.
    strict = client.submit_batch(
        [NewBatchTask(queue, kind="m", max_attempts=1), NewBatchTask(queue, kind="m")],
        NewBatchTask(queue, kind="cb"),
        only_on_success=True,
    )
    first, second = (t.task for t in strict.tasks[:2])
    tokens: Dict[str, str] = {}
    for t in client.claim(queue, "w1", max=10):
        assert t.lease is not None and t.lease.token
        tokens[t.id] = t.lease.token
    assert set(tokens) == {first.id, second.id}
    client.fail(first.id, tokens[first.id], "broken", dead=True)
    client.complete(second.id, tokens[second.id])
    end = wait_until(lambda: (b := client.get_batch(strict.id)).is_final and b, timeout=30)
    assert end.task("callback").state == "cancelled" and end.state == "failed"
    assert client.claim(queue, "w1") == []

    # A plain workflow is not a batch; a batch's tasks take no names.
    plain = client.submit_workflow([NewWorkflowTask("a", queue)])
    assert plain.kind == "workflow"
    with pytest.raises(rota.NotFound) as missing:
        client.get_batch(plain.id)
    assert missing.value.status == 404 and missing.value.code == "batch_not_found"
    with pytest.raises(rota.InvalidRequest):
        client.submit_batch([NewWorkflowTask("x", queue)], NewBatchTask(queue))  # type: ignore[list-item]


def test_s16_batch_async(server: Server, queue: str) -> None:
    async def main() -> None:
        async with rota.AsyncClient(server.url, server.token) as c:
            made = await c.submit_batch([NewBatchTask(queue), NewBatchTask(queue)], NewBatchTask(queue))
            assert made.kind == "batch" and made.counts.ready == 2 and made.counts.waiting == 1
            got = await c.get_batch(made.id)
            assert got.id == made.id and [t.name for t in got.tasks][-1] == "callback"
            gone = await c.cancel_workflow(made.id)
            assert gone.state == "cancelled" and gone.kind == "batch"

    asyncio.run(main())
