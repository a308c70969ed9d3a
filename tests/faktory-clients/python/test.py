"""Drives the unmodified `faktory` package (pinned in requirements.txt) against a running Rota
server: push and process, fail into retries and dead letters, a scheduled job, a refused
duplicate jid, and a graceful stop when an operator asks. Checks through Rota's HTTP API.

Environment: FAKTORY_URL (tcp://:<key>@host:port), ROTA_URL, ROTA_TOKEN.
The package has no bulk push, so PUSHB is covered by the Node and Rust clients.
"""

import datetime
import json
import os
import sys
import threading
import time
import urllib.request

import faktory
from faktory import Worker

ROTA_URL = os.environ["ROTA_URL"]
ROTA_TOKEN = os.environ["ROTA_TOKEN"]


def rota(method, path):
    req = urllib.request.Request(
        ROTA_URL + path, method=method, headers={"Authorization": "Bearer " + ROTA_TOKEN}
    )
    with urllib.request.urlopen(req) as res:
        return json.load(res)


def counts(queue):
    return rota("GET", "/v1/queues/" + queue)["counts"]


def until(what, check, seconds):
    deadline = time.time() + seconds
    while True:
        got = check()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


def step(name, f):
    t = time.time()
    f()
    print("ok - %s (%d ms)" % (name, (time.time() - t) * 1000), flush=True)


seen = []


def add(a, b):
    seen.append(a + b)


def boom():
    raise RuntimeError("kaboom")


def main():
    worker = Worker(queues=["py-basic", "py-fail", "py-later"], concurrency=2, use_threads=True)
    worker.send_heartbeat_every = 1
    worker.register("add", add)
    worker.register("boom", boom)
    running = threading.Thread(target=worker.run, daemon=True)
    running.start()

    def basic():
        with faktory.connection() as client:
            assert client.queue("add", args=(1, 2), queue="py-basic")
        until("the job to succeed", lambda: counts("py-basic")["succeeded"] == 1, 10)
        assert 3 in seen, seen

    def failing():
        with faktory.connection() as client:
            jid = client.random_job_id()
            assert client.queue("boom", queue="py-fail", jid=jid, retry=1)
        until("a retry scheduled", lambda: counts("py-fail")["scheduled"] == 1, 10)
        # Faktory's backoff: 15 to 44 seconds before the retry.
        until("the job to die", lambda: counts("py-fail")["dead"] == 1, 75)
        task = rota("GET", "/v1/queues/py-fail/tasks?state=dead")["tasks"][0]
        assert task["payload"]["jid"] == jid
        assert len(task["errors"]) == 2
        assert "RuntimeError: kaboom" in task["errors"][0]["message"], task["errors"]

    def scheduled():
        at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
        with faktory.connection() as client:
            assert client.queue("add", args=(10, 20), queue="py-later", at=at.isoformat())
        assert counts("py-later")["scheduled"] == 1
        until("the scheduled job to run", lambda: counts("py-later")["succeeded"] == 1, 15)
        assert datetime.datetime.now(datetime.timezone.utc) >= at

    def duplicate():
        with faktory.connection() as client:
            jid = client.random_job_id()
            assert client.queue("add", args=(0, 0), queue="py-held", jid=jid)
            try:
                refused = not client.queue("add", args=(0, 0), queue="py-held", jid=jid)
            except Exception as e:  # the package raises on an -ERR reply
                refused = "already" in str(e)
            assert refused
        assert counts("py-held")["ready"] == 1

    def stop():
        listed = rota("GET", "/v1/workers")["workers"]
        assert any(w["wid"] == worker.worker_id for w in listed), listed
        rota("POST", "/v1/workers/%s/quiet" % worker.worker_id)
        until("the worker to quiet down", lambda: worker.is_quiet, 10)
        rota("POST", "/v1/workers/%s/terminate" % worker.worker_id)
        running.join(timeout=40)
        assert not running.is_alive(), "the worker did not stop"
        until(
            "the worker to disconnect",
            lambda: not any(w["wid"] == worker.worker_id for w in rota("GET", "/v1/workers")["workers"]),
            10,
        )

    step("a pushed job is processed and its task succeeds", basic)
    step("a failing job is retried with backoff, then dead", failing)
    step("a job scheduled with `at` waits for its time", scheduled)
    step("a second live job with a used jid is refused", duplicate)
    step("the worker stops gracefully when an operator asks it to", stop)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print("not ok - %r" % e, flush=True)
        raise
    sys.exit(0)
