"""Drains N no-op tasks with each worker, interleaved, and prints the median of the rounds.

Run through ``run.sh``, which starts Redis and ``rota serve`` and sets REDIS_URL, ROTA_URL and
ROTA_TOKEN. Each measurement: enqueue N tasks (not timed), start the worker process, and time
from its start until N tasks are done; then stop it. Startup is in every figure."""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import redis

import rota

HERE = Path(__file__).resolve().parent
PY = sys.executable
ROUNDS_DEFAULT = 3


class System:
    name = ""

    def enqueue(self, n: int) -> None: ...

    def command(self) -> List[str]: ...

    def done(self) -> int: ...

    def reset(self) -> None: ...


class RotaPython(System):
    def __init__(self, mode: str, concurrency: int) -> None:
        self.mode, self.concurrency = mode, concurrency
        self.name = f"rota-python {mode} (concurrency {concurrency})"
        self.client = rota.Client()

    def enqueue(self, n: int) -> None:
        for start in range(0, n, 10_000):
            self.client.enqueue_batch("bench", [rota.NewTask(kind="noop") for _ in range(min(10_000, n - start))])

    def command(self) -> List[str]:
        return [PY, str(HERE / "rota_worker.py"), self.mode, str(self.concurrency)]

    def done(self) -> int:
        return self.client.queue("bench").counts.succeeded

    def reset(self) -> None:
        try:
            self.client.purge("bench", "succeeded")
        except rota.NotFound:
            pass  # no queue yet


class RedisPeer(System):
    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(os.environ["REDIS_URL"])

    def done(self) -> int:
        return int(self.redis.get(os.environ["BENCH_DONE_KEY"]) or 0)

    def reset(self) -> None:
        self.redis.flushdb()


class Celery(RedisPeer):
    name = "celery 5.4.0 (threads pool, concurrency 8, prefetch x100)"

    def enqueue(self, n: int) -> None:
        from celery_app import noop

        with noop.app.producer_or_acquire() as producer:
            for _ in range(n):
                noop.apply_async(producer=producer)

    def command(self) -> List[str]:
        return [
            PY,
            "-m",
            "celery",
            "-A",
            "celery_app",
            "worker",
            "-P",
            "threads",
            "-c",
            "8",
            "-l",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]


class Dramatiq(RedisPeer):
    name = "dramatiq 1.17.1 (1 process, 8 threads)"

    def enqueue(self, n: int) -> None:
        from dramatiq_app import noop

        for _ in range(n):
            noop.send()

    def command(self) -> List[str]:
        return [PY, "-m", "dramatiq", "dramatiq_app", "--processes", "1", "--threads", "8"]


class Rq(RedisPeer):
    name = "rq 2.1.0 (SimpleWorker, no fork per job)"

    def enqueue(self, n: int) -> None:
        from rq import Queue
        from rq_job import noop

        q = Queue("bench", connection=self.redis)
        for start in range(0, n, 1000):
            with self.redis.pipeline() as pipe:
                q.enqueue_many([Queue.prepare_data(noop) for _ in range(min(1000, n - start))], pipeline=pipe)
                pipe.execute()

    def command(self) -> List[str]:
        return [
            PY,
            "-m",
            "rq.cli",
            "worker",
            "--url",
            os.environ["REDIS_URL"],
            "--worker-class",
            "rq.worker.SimpleWorker",
            "--logging_level",
            "WARNING",
            "bench",
        ]


def measure(system: System, n: int, timeout: float) -> float:
    system.reset()
    system.enqueue(n)
    started = time.monotonic()
    proc = subprocess.Popen(system.command(), cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while system.done() < n:
            if proc.poll() is not None:
                raise RuntimeError(f"{system.name} exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{system.name}: {system.done()} of {n} after {timeout}s")
            time.sleep(0.02)
        return time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=ROUNDS_DEFAULT)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--only", default="", help="comma-separated name prefixes")
    parser.add_argument("--out", default=str(HERE / "results" / "drain.json"))
    args = parser.parse_args()
    systems: List[System] = [
        RotaPython("sync", 100),
        RotaPython("async", 100),
        Celery(),
        Dramatiq(),
        Rq(),
    ]
    if args.only:
        systems = [s for s in systems if any(s.name.startswith(p) for p in args.only.split(","))]
    times: Dict[str, List[float]] = {s.name: [] for s in systems}
    for r in range(args.rounds):
        for system in systems:
            t = measure(system, args.tasks, args.timeout)
            times[system.name].append(t)
            print(f"round {r + 1} {system.name}: {t:.2f}s ({args.tasks / t:,.0f} tasks/s)", flush=True)
    print(f"\n{args.tasks:,} no-op tasks, median of {args.rounds} interleaved rounds:\n")
    print("| worker | median drain | tasks/s | runs (s) |\n|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.2f} s | {args.tasks / med:,.0f} | {', '.join(f'{t:.2f}' for t in ts)} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"tasks": args.tasks, "rounds": args.rounds, "seconds": times}, indent=2))


if __name__ == "__main__":
    main()
