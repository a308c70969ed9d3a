"""S04, S05, S06, S14: the thread worker runtime against the server."""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from typing import Any, Dict, List

import rota
from rota import HandlerError, Job, NewTask

from .helpers import InThread, wait_until


def start(worker: rota.Worker) -> InThread:
    return InThread(worker.run)


def test_s04_worker_runs_handlers_and_completes_in_batches(client: rota.Client, queue: str) -> None:
    made = client.enqueue_batch(queue, [NewTask(kind="square", payload=i) for i in range(300)])
    seen: List[int] = []
    lock = threading.Lock()

    def handler(job: Job) -> Any:
        with lock:
            seen.append(job.payload)
        return {"square": job.payload * job.payload}

    before = requests_by_route(client)
    worker = rota.Worker(client, queue, handler, concurrency=50, poll_wait=0.5)
    running = start(worker)
    wait_until(lambda: client.queue(queue).counts.succeeded == 300, timeout=30)
    worker.stop()
    stats = running.join()
    after = requests_by_route(client)
    assert stats.succeeded == 300 and stats.failed == 0
    assert sorted(seen) == list(range(300))
    sample = client.get_task(made[17].id)
    assert sample.state == "succeeded" and sample.result == {"square": 289}
    claimed = client.events(types=["task.claimed"], queue=queue, limit=100)
    assert claimed.events and all(e.data["worker"] == worker.name for e in claimed.events)
    # Claims and completions went in batches (other tests may run meanwhile: a loose bound).
    claims = after["/v1/queues/{queue}/claim"] - before["/v1/queues/{queue}/claim"]
    completes = after["/v1/tasks/complete"] - before["/v1/tasks/complete"]
    assert 0 < claims < 100 and 0 < completes < 150
    assert after["/v1/tasks/{id}/complete"] == before["/v1/tasks/{id}/complete"]


def requests_by_route(client: rota.Client) -> Dict[str, int]:
    """Answered POSTs by route, from the server's metrics."""
    counts: Dict[str, int] = defaultdict(int)
    for line in client.metrics().splitlines():
        match = re.match(
            r'rota_http_request_duration_seconds_count\{method="POST",route="([^"]+)",status="2\d\d"\} (\d+)', line
        )
        if match:
            counts[match.group(1)] += int(match.group(2))
    return counts


def test_s04_worker_kinds_filter_and_heartbeats(client: rota.Client, queue: str) -> None:
    wanted = client.enqueue(queue, "wanted", 1)
    other = client.enqueue(queue, "other", 2)

    def handler(job: Job) -> Any:
        job.progress = {"step": 1}
        job.stopped.wait(0.6)  # longer than two heartbeats
        return job.kind

    worker = rota.Worker(client, queue, handler, kinds=["wanted"], heartbeat_every=0.1, poll_wait=0.5)
    running = start(worker)
    wait_until(lambda: client.get_task(wanted.id).state == "succeeded")
    worker.stop()
    running.join()
    done = client.get_task(wanted.id)
    assert done.result == "wanted" and done.progress == {"step": 1}
    assert client.get_task(other.id).state == "ready"


def test_s05_errors_fail_the_attempt_dead_goes_to_dead_letters(client: rota.Client, queue: str) -> None:
    flaky = client.enqueue(queue, "flaky")
    poison = client.enqueue(queue, "poison")
    crash = client.enqueue(queue, "crash", max_attempts=1)

    def handler(job: Job) -> Any:
        if job.kind == "flaky" and job.attempt == 1:
            raise HandlerError("upstream timed out", retry_in_ms=0)
        if job.kind == "poison":
            raise HandlerError("cannot parse", dead=True)
        if job.kind == "crash":
            raise KeyError("missing")
        return "ok"

    worker = rota.Worker(client, queue, handler, concurrency=4, poll_wait=0.5)
    running = start(worker)
    wait_until(lambda: client.get_task(flaky.id).state == "succeeded")
    wait_until(lambda: client.get_task(crash.id).state == "dead")
    wait_until(lambda: client.get_task(poison.id).state == "dead")
    worker.stop()
    stats = running.join()
    assert stats.succeeded == 1 and stats.failed == 3
    retried = client.get_task(flaky.id)
    assert retried.attempt == 2 and [e.message for e in retried.errors] == ["upstream timed out"]
    dead = client.get_task(poison.id)
    assert dead.attempt == 1 and dead.errors[0].message == "cannot parse"
    assert "KeyError" in client.get_task(crash.id).errors[0].message
    letters = client.dead_letters(queue)
    assert {t.id for t in letters.tasks} == {poison.id, crash.id}
    back = client.retry(poison.id)
    assert back.state == "ready" and back.attempt == 0 and len(back.errors) == 1


def test_s05_temporary_failure_gives_the_attempt_back(client: rota.Client, queue: str) -> None:
    task = client.enqueue(queue, "k", max_attempts=1)
    calls: List[int] = []

    def handler(job: Job) -> Any:
        calls.append(job.attempt)
        if len(calls) == 1:
            raise HandlerError("database restarting", retry_in_ms=0, temporary=True)
        return "done"

    worker = rota.Worker(client, queue, handler, poll_wait=0.5)
    running = start(worker)
    wait_until(lambda: client.get_task(task.id).state == "succeeded")
    worker.stop()
    running.join()
    assert calls == [1, 1]


def test_s06_cancel_stops_the_running_handler(client: rota.Client, queue: str) -> None:
    task = client.enqueue(queue, "long")
    started = threading.Event()
    stopped = threading.Event()

    def handler(job: Job) -> Any:
        started.set()
        try:
            while True:
                time.sleep(0.02)  # plain Python code: stopped by the worker all the same
        finally:
            stopped.set()

    worker = rota.Worker(client, queue, handler, heartbeat_every=0.1, poll_wait=0.5)
    running = start(worker)
    assert started.wait(10)
    client.cancel(task.id)
    assert stopped.wait(5), "the handler was not stopped"
    time.sleep(0.5)
    worker.stop()
    stats = running.join()
    assert stats.cancelled == 1 and stats.succeeded == 0 and stats.failed == 0
    after = client.get_task(task.id)
    assert after.state == "cancelled" and after.attempt == 1 and after.errors == []


def test_s06_timeout_fails_the_attempt(client: rota.Client, queue: str) -> None:
    task = client.enqueue(queue, "slow", max_attempts=1)

    def handler(job: Job) -> Any:
        job.stopped.wait(30)
        return "late"

    worker = rota.Worker(client, queue, handler, timeout=0.3, poll_wait=0.5)
    running = start(worker)
    dead = wait_until(lambda: (t := client.get_task(task.id)).state == "dead" and t)
    worker.stop()
    running.join()
    assert "timed out" in dead.errors[0].message


def test_s14_graceful_shutdown_finishes_running_and_claims_nothing_new(client: rota.Client, queue: str) -> None:
    first = client.enqueue(queue, "slow")
    started = threading.Event()

    def handler(job: Job) -> Any:
        started.set()
        time.sleep(1.0)
        return "finished"

    worker = rota.Worker(client, queue, handler, concurrency=1, poll_wait=0.5, grace=10)
    running = start(worker)
    assert started.wait(10)
    second = client.enqueue(queue, "slow")
    worker.stop()
    stats = running.join()
    assert stats.succeeded == 1 and stats.interrupted == 0
    assert client.get_task(first.id).state == "succeeded"
    assert client.get_task(second.id).state == "ready"


def test_s14_shutdown_hands_back_what_outlives_the_grace(client: rota.Client, queue: str) -> None:
    task = client.enqueue(queue, "stuck")
    started = threading.Event()

    def handler(job: Job) -> Any:
        started.set()
        job.stopped.wait(60)

    worker = rota.Worker(client, queue, handler, poll_wait=0.5, grace=0.2)
    running = start(worker)
    assert started.wait(10)
    worker.stop()
    stats = running.join()
    assert stats.interrupted == 1
    back = client.get_task(task.id)
    assert back.state == "ready" and back.attempt == 0
    assert back.errors[0].message == "worker shut down before the task finished"


def test_s14_a_refused_claim_stops_the_worker(client: rota.Client) -> None:
    worker = rota.Worker(client, "bad queue name", lambda job: None, poll_wait=0.5)
    try:
        worker.run()
    except rota.InvalidRequest as e:
        assert e.code == "bad_request"
    else:
        raise AssertionError("run() should raise the claim's error")
