"""S04, S05, S06, S14 with the asyncio worker runtime."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, List, TypeVar

import rota
from rota import HandlerError, Job, NewTask

from .conftest import Server

T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
    async def poll() -> T:
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(poll(), timeout)


def run(server: Server, body: Callable[[rota.AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with rota.AsyncClient(server.url, server.token) as c:
            await body(c)

    asyncio.run(main())


def test_s04_async_worker_runs_handlers_and_completes(server: Server, queue: str) -> None:
    async def body(c: rota.AsyncClient) -> None:
        made = await c.enqueue_batch(queue, [NewTask(kind="k", payload=i) for i in range(300)])

        async def handler(job: Job) -> Any:
            await asyncio.sleep(0)
            return job.payload * 2

        worker = rota.AsyncWorker(c, queue, handler, concurrency=50, poll_wait=0.5)
        running = asyncio.ensure_future(worker.run())
        await until(lambda: _succeeded(c, queue, 300), timeout=30)
        worker.stop()
        stats = await running
        assert stats.succeeded == 300
        assert (await c.get_task(made[5].id)).result == 10

    run(server, body)


async def _succeeded(c: rota.AsyncClient, queue: str, n: int) -> bool:
    return (await c.queue(queue)).counts.succeeded == n


def test_s05_async_errors_retry_and_dead(server: Server, queue: str) -> None:
    async def body(c: rota.AsyncClient) -> None:
        flaky = await c.enqueue(queue, "flaky")
        poison = await c.enqueue(queue, "poison")

        async def handler(job: Job) -> Any:
            if job.kind == "flaky" and job.attempt == 1:
                raise RuntimeError("boom")
            if job.kind == "poison":
                raise HandlerError("bad input", dead=True)
            return "ok"

        await c.update_queue(queue, backoff={"base_ms": 1, "max_ms": 1})
        worker = rota.AsyncWorker(c, queue, handler, poll_wait=0.5)
        running = asyncio.ensure_future(worker.run())
        await until(lambda: _state(c, flaky.id, "succeeded"))
        await until(lambda: _state(c, poison.id, "dead"))
        worker.stop()
        stats = await running
        assert stats.succeeded == 1 and stats.failed == 2
        assert (await c.get_task(flaky.id)).errors[0].message == "RuntimeError: boom"
        letters = await c.dead_letters(queue)
        assert [t.id for t in letters.tasks] == [poison.id]
        assert (await c.retry(poison.id)).state == "ready"

    run(server, body)


async def _state(c: rota.AsyncClient, id: str, state: str) -> bool:
    return (await c.get_task(id)).state == state


def test_s06_async_cancel_stops_the_handler(server: Server, queue: str) -> None:
    async def body(c: rota.AsyncClient) -> None:
        task = await c.enqueue(queue, "long")
        started = asyncio.Event()
        stopped: List[bool] = []

        async def handler(job: Job) -> Any:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                stopped.append(True)
                raise

        worker = rota.AsyncWorker(c, queue, handler, heartbeat_every=0.1, poll_wait=0.5)
        running = asyncio.ensure_future(worker.run())
        await asyncio.wait_for(started.wait(), 10)
        await c.cancel(task.id)
        await until(lambda: _true(stopped), timeout=5)
        worker.stop()
        stats = await running
        assert stats.cancelled == 1 and stats.failed == 0
        after = await c.get_task(task.id)
        assert after.state == "cancelled" and after.attempt == 1

    run(server, body)


async def _true(flags: List[bool]) -> bool:
    return bool(flags)


def test_s14_async_graceful_shutdown(server: Server, queue: str) -> None:
    async def body(c: rota.AsyncClient) -> None:
        first = await c.enqueue(queue, "slow")
        started = asyncio.Event()

        async def handler(job: Job) -> Any:
            started.set()
            await asyncio.sleep(1.0)
            return "finished"

        worker = rota.AsyncWorker(c, queue, handler, poll_wait=0.5)
        running = asyncio.ensure_future(worker.run())
        await asyncio.wait_for(started.wait(), 10)
        second = await c.enqueue(queue, "slow")
        worker.stop()
        stats = await running
        assert stats.succeeded == 1 and stats.interrupted == 0
        assert (await c.get_task(first.id)).state == "succeeded"
        assert (await c.get_task(second.id)).state == "ready"

    run(server, body)
