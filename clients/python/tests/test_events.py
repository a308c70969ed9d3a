"""S11: paging the event log, and a live follow that resumes from its cursor after a drop."""

from __future__ import annotations

import asyncio
import queue as queue_lib
import threading
import time
from typing import List

import rota

from .conftest import Server
from .helpers import CuttableProxy


def test_s11_events_paging(client: rota.Client, queue: str) -> None:
    made = [client.enqueue(queue, "k", i).id for i in range(5)]
    seen: List[str] = []
    after = 0
    while True:
        page = client.events(after=after, queue=queue, types=["task.enqueued"], limit=2)
        seen += [e.task_id for e in page.events if e.task_id]
        if not page.events:
            break
        assert all(e.cursor <= page.next_cursor for e in page.events)
        after = page.next_cursor
    assert seen == made
    # A long poll is woken by the next commit.
    timer = threading.Timer(0.3, lambda: client.enqueue(queue, "late"))
    timer.start()
    started = time.monotonic()
    late = client.events(after=after, queue=queue, wait_ms=5000)
    timer.join()
    assert [e.kind for e in late.events] == ["late"]
    assert 0.2 < time.monotonic() - started < 4


def test_s11_follow_resumes_after_the_connection_drops(server: Server, client: rota.Client, queue: str) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    proxy = CuttableProxy(port)
    got: "queue_lib.Queue[rota.Event]" = queue_lib.Queue()
    follower = rota.Client(proxy.url, server.token)

    def follow() -> None:
        for event in follower.follow_events(queue=queue, types=["task.enqueued"], after=0, reconnect_delay=0.1):
            got.put(event)

    threading.Thread(target=follow, daemon=True).start()
    try:
        first = [client.enqueue(queue, "k", i).id for i in range(3)]
        before = [got.get(timeout=10) for _ in range(3)]
        assert [e.task_id for e in before] == first
        proxy.cut()
        # Enqueued while the follower is disconnected: delivered after it reconnects.
        second = [client.enqueue(queue, "k", i).id for i in range(3, 6)]
        after = [got.get(timeout=10) for _ in range(3)]
        assert [e.task_id for e in after] == second
        assert proxy.connections >= 2, "the follow did not reconnect"
        assert got.empty()  # nothing repeated
        assert after[0].cursor > before[-1].cursor
    finally:
        proxy.close()


def test_s11_async_follow_resumes_after_the_connection_drops(server: Server, client: rota.Client, queue: str) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    proxy = CuttableProxy(port)

    async def main() -> None:
        async with rota.AsyncClient(proxy.url, server.token) as c:
            stream = c.follow_events(queue=queue, reconnect_delay=0.1)
            client.enqueue(queue, "one")
            first = await asyncio.wait_for(stream.__anext__(), 10)
            assert first.kind == "one"
            proxy.cut()
            client.enqueue(queue, "two")
            second = await asyncio.wait_for(stream.__anext__(), 10)
            assert second.kind == "two" and second.cursor > first.cursor
            assert proxy.connections >= 2
            await stream.aclose()

    try:
        asyncio.run(main())
    finally:
        proxy.close()
