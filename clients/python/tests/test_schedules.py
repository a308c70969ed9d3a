"""S09: schedules."""

from __future__ import annotations

import pytest

import rota

from .helpers import wait_until


def test_s09_schedules_create_list_get_trigger_delete(client: rota.Client, queue: str) -> None:
    name = f"nightly-{queue}"[:60]
    made = client.put_schedule(name, queue, cron="0 3 * * *", kind="report", payload={"full": True}, timezone="UTC")
    assert made.name == name and made.queue == queue and made.cron == "0 3 * * *"
    assert made.next_run_at is not None and made.kind == "report"
    assert name in [s.name for s in client.schedules()]
    assert client.schedule(name).payload == {"full": True}
    assert client.pause_schedule(name).paused
    assert not client.resume_schedule(name).paused
    every = client.put_schedule(name, queue, every_ms=3_600_000, kind="report")
    assert every.every_ms == 3_600_000 and every.cron is None
    client.trigger_schedule(name)
    fired = wait_until(lambda: client.list_tasks(queue, kind="report").tasks)
    assert fired[0].kind == "report"
    client.delete_schedule(name)
    with pytest.raises(rota.NotFound):
        client.schedule(name)
