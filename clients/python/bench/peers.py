"""The no-op task of each peer, all on one Redis (REDIS_URL). Each increments a counter in
Redis when it has run, which is how the harness sees the drain finish (one INCR per task:
a small cost the peers pay and the Rota worker does not; Rota's count is the server's)."""

from __future__ import annotations

import os

import redis

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DONE_KEY = os.environ.get("BENCH_DONE_KEY", "bench:done")
QUEUE = "bench"

_redis = redis.Redis.from_url(REDIS_URL)


def mark_done() -> None:
    _redis.incr(DONE_KEY)


def done() -> int:
    return int(_redis.get(DONE_KEY) or 0)
