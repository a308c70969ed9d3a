"""S01, S02, S03, S07: enqueueing, reading, paging, waiting, unique keys."""

from __future__ import annotations

import asyncio
import threading
import time

import rota
from rota import NewTask

from .conftest import Server


def test_s01_enqueue_one_and_get_it(client: rota.Client, queue: str) -> None:
    made = client.enqueue(queue, "email.send", {"to": "ada@example.com"}, priority=5, tags=["a"])
    assert made.state == "ready" and not made.duplicate and not made.replaced
    got = client.get_task(made.id)
    assert got.id == made.id
    assert got.queue == queue and got.kind == "email.send"
    assert got.payload == {"to": "ada@example.com"}
    assert got.priority == 5 and got.tags == ["a"] and got.attempt == 0


def test_s01_enqueue_one_and_get_it_async(server: Server, queue: str) -> None:
    async def main() -> None:
        async with rota.AsyncClient(server.url, server.token) as c:
            made = await c.enqueue(queue, "k", [1, 2, 3], delay_ms=60_000)
            assert made.state == "scheduled"
            got = await c.get_task(made.id)
            assert got.payload == [1, 2, 3] and got.run_at > got.created_at

    asyncio.run(main())


def test_s02_batch_then_page_through_the_queue(client: rota.Client, queue: str) -> None:
    made = client.enqueue_batch(queue, [NewTask(kind="k", payload=i) for i in range(25)])
    assert len(made) == 25 and [t.payload for t in made] == list(range(25))
    seen = []
    cursor = None
    pages = 0
    while True:
        page = client.list_tasks(queue, limit=10, cursor=cursor)
        pages += 1
        seen += [t.id for t in page.tasks]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert sorted(seen) == sorted(t.id for t in made)
    assert len(set(seen)) == 25
    # The iterator helper walks the same pages.
    assert [t.id for t in client.iter_tasks(queue, page_size=7)] == seen


def test_s03_get_with_wait_ms_returns_once_finished(client: rota.Client, queue: str) -> None:
    task = client.enqueue(queue, "k")
    claimed = client.claim(queue, "w1", max=1)
    assert [t.id for t in claimed] == [task.id]
    lease = claimed[0].lease
    assert lease is not None and lease.token

    def finish_later() -> None:
        time.sleep(0.5)
        client.complete(task.id, lease.token, {"ok": True})  # type: ignore[arg-type]

    threading.Thread(target=finish_later).start()
    started = time.monotonic()
    done = client.get_task(task.id, wait_ms=10_000)
    waited = time.monotonic() - started
    assert done.state == "succeeded" and done.result == {"ok": True}
    assert 0.3 < waited < 5
    # Nothing to wait for: answers at once with the task as it is.
    other = client.enqueue(queue, "k")
    started = time.monotonic()
    assert client.get_task(other.id, wait_ms=300).state == "ready"
    assert time.monotonic() - started < 5


def test_s07_unique_key_keep_and_replace(client: rota.Client, queue: str) -> None:
    first = client.enqueue(queue, "sync", {"v": 1}, unique_key="user-7")
    kept = client.enqueue(queue, "sync", {"v": 2}, unique_key="user-7")
    assert kept.duplicate and not kept.replaced
    assert kept.id == first.id and kept.payload == {"v": 1}
    replaced = client.enqueue(queue, "sync", {"v": 3}, unique_key="user-7", on_duplicate="replace")
    assert replaced.duplicate and replaced.replaced
    assert replaced.id == first.id and replaced.payload == {"v": 3}
    assert client.get_task(first.id).payload == {"v": 3}
    live = client.list_tasks(queue, unique_key="user-7").tasks
    assert [t.id for t in live] == [first.id]
    # Once the holder is final the key is free again.
    client.cancel(first.id)
    fresh = client.enqueue(queue, "sync", {"v": 4}, unique_key="user-7")
    assert not fresh.duplicate and fresh.id != first.id
