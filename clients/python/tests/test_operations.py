"""The rest of the API: operator changes to tasks, leases kept by heartbeats, maintenance,
doctor, health, metrics, event tickets, Faktory worker processes."""

from __future__ import annotations

import time

import pytest

import rota

from .helpers import InThread, wait_until


def test_operator_changes_to_tasks(client: rota.Client, queue: str) -> None:
    later = client.enqueue(queue, "k", delay_ms=600_000)
    assert client.run_now(later.id).state == "ready"
    killed = client.kill(client.enqueue(queue, "k").id, "bad data")
    assert killed.state == "dead" and killed.errors[-1].message == "bad data"
    gone = client.delete_task(killed.id)
    assert gone.id == killed.id
    with pytest.raises(rota.NotFound):
        client.get_task(killed.id)


def test_low_level_worker_calls(client: rota.Client, queue: str) -> None:
    a, b = client.enqueue(queue, "k"), client.enqueue(queue, "k")
    claimed = {t.id: t for t in client.claim(queue, "w", max=2, lease_ms=5000)}
    lease_a = claimed[a.id].lease.token  # type: ignore[union-attr]
    lease_b = claimed[b.id].lease.token  # type: ignore[union-attr]
    beat = client.heartbeat(a.id, lease_a, lease_ms=10_000, progress={"pct": 50})  # type: ignore[arg-type]
    assert beat.progress == {"pct": 50}
    out = client.complete_batch([rota.CompleteItem(a.id, lease_a, 1), rota.CompleteItem(b.id, "wrong", 2)])  # type: ignore[arg-type]
    assert out[0].ok and out[0].state == "succeeded"
    assert not out[1].ok and out[1].error is not None and out[1].error.code == "lease_lost"
    failed = client.fail_batch([rota.FailItem(b.id, lease_b, "nope", dead=True)])  # type: ignore[arg-type]
    assert failed[0].ok and failed[0].state == "dead"
    with pytest.raises(rota.LeaseLost):
        client.complete(a.id, lease_a, 1)  # type: ignore[arg-type]


def test_heartbeats_keep_a_short_lease(client: rota.Client, queue: str) -> None:
    task = client.enqueue(queue, "k", max_attempts=1)

    def handler(job: rota.Job) -> str:
        job.stopped.wait(2.5)  # well past the 1 s lease (the least the server allows)
        return "kept"

    worker = rota.Worker(client, queue, handler, lease_ms=1000, poll_wait=0.5)
    running = InThread(worker.run)
    wait_until(lambda: client.get_task(task.id).is_final, timeout=10)
    worker.stop()
    stats = running.join()
    done = client.get_task(task.id)
    assert done.state == "succeeded" and done.result == "kept" and stats.lease_lost == 0


def test_maintenance_doctor_health_metrics_ticket(client: rota.Client, queue: str) -> None:
    assert client.maintenance() is None
    on = client.set_maintenance("announce", "upgrade at noon")
    assert on is not None and on.message == "upgrade at noon" and not on.refusing
    assert client.whoami().maintenance is not None
    client.end_maintenance()
    assert client.maintenance() is None
    client.enqueue(queue, "k")
    report = client.doctor(queue=queue)
    assert isinstance(report.ok, bool) and isinstance(report.findings, list)
    assert client.healthy() and client.ready().ok
    assert "rota_tasks_enqueued_total" in client.metrics()
    ticket = client.event_ticket()
    assert ticket.ticket and ticket.expires_at.timestamp() > time.time()
    assert client.workers() == []
    with pytest.raises(rota.NotFound):
        client.quiet_worker("no-such-worker")
