"""S08: queue stats, pause and resume, purge, settings, groups."""

from __future__ import annotations

import rota
from rota import Backoff, NewTask, Rate


def test_s08_queue_stats_pause_resume_purge_settings_groups(client: rota.Client, queue: str) -> None:
    client.enqueue_batch(queue, [NewTask(kind="k", payload=i) for i in range(3)])
    stats = client.queue(queue)
    assert stats.name == queue and stats.counts.ready == 3
    assert stats.settings.max_attempts == 25 and stats.settings.backoff.base_ms > 0
    assert stats.flow is not None and stats.flow.running == 0
    assert queue in [q.name for q in client.queues()]

    paused = client.pause_queue(queue)
    assert paused.settings.paused
    assert client.claim(queue, "w", max=3) == []
    assert client.resume_queue(queue).settings.paused is False
    claimed = client.claim(queue, "w", max=3)
    assert len(claimed) == 3
    for t in claimed:
        assert t.lease is not None and t.lease.token
        client.fail(t.id, t.lease.token, "no", dead=True)
    assert client.queue(queue).counts.dead == 3
    assert client.purge(queue, "dead") == 3
    assert client.queue(queue).counts.dead == 0

    patched = client.update_queue(
        queue,
        concurrency=2,
        rate=Rate(limit=100, period_ms=1000),
        group_concurrency=1,
        max_attempts=3,
        lease_ms=10_000,
        backoff=Backoff(base_ms=500, max_ms=5000),
    )
    s = patched.settings
    assert s.concurrency == 2 and s.group_concurrency == 1 and s.max_attempts == 3
    assert s.rate is not None and (s.rate.limit, s.rate.period_ms) == (100, 1000)
    assert s.backoff == Backoff(base_ms=500, max_ms=5000) and s.lease_ms == 10_000
    lifted = client.update_queue(queue, concurrency=None, rate=None)
    assert lifted.settings.concurrency is None and lifted.settings.rate is None
    assert lifted.settings.group_concurrency == 1  # untouched

    # Groups: one running task per group; the second task of a group waits its turn.
    a1 = client.enqueue(queue, "k", group="acme")
    client.enqueue(queue, "k", group="acme")
    b1 = client.enqueue(queue, "k", group="globex")
    assert a1.group == "acme"
    got = client.claim(queue, "w", max=10)
    assert sorted(t.id for t in got) == sorted([a1.id, b1.id])
    groups = client.groups(queue)
    by_name = {g.group: g for g in groups.groups}
    assert by_name["acme"].running == 1 and by_name["acme"].ready == 1
    held = client.queue(queue).flow
    assert held is not None and held.held.group_concurrency == 1
    own = client.put_group(queue, "acme", concurrency=2)
    assert own.settings.concurrency == 2
    assert [t.group for t in client.claim(queue, "w", max=10)] == ["acme"]
