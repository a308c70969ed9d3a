"""The worker runtime on asyncio: :class:`AsyncWorker`.

One coroutine claims (in batches, with long-poll), each claimed task runs as its own asyncio
task (at most ``concurrency`` at once), one coroutine heartbeats the running tasks and enforces
timeouts, and one sends the outcomes in batches. A handler is stopped by cancelling its task.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Set

from .._async_client import AsyncClient
from ..errors import RotaError, TaskCancelled
from ..models import JSON, CompleteItem, FailItem, Task
from ._common import (
    CLAIM_GATHER_S,
    HANDLER_RETURNED,
    MAX_CLAIM,
    MAX_REPORT_BATCH,
    REFUSED_ITEM,
    REPORT_ATTEMPTS,
    RETRYABLE,
    Counters,
    End,
    Job,
    Report,
    Run,
    WorkerStats,
    default_name,
    end_for_heartbeat_error,
    failure_from,
    heartbeat_interval,
    is_fatal_claim_error,
    log,
    report_for,
    report_retry_delay,
    split,
)

AsyncHandler = Callable[[Job], Awaitable[JSON]]


class AsyncWorker:
    """The asyncio twin of :class:`rota.Worker`, with the same guarantees; the handler is a
    coroutine function. ``await worker.run()`` works until :meth:`stop`."""

    def __init__(
        self,
        client: AsyncClient,
        queue: str,
        handler: AsyncHandler,
        *,
        kinds: Optional[Sequence[str]] = None,
        concurrency: int = 1,
        timeout: Optional[float] = None,
        lease_ms: int = 30_000,
        heartbeat_every: float = 1.0,
        poll_wait: float = 20.0,
        grace: float = 10.0,
        name: Optional[str] = None,
    ) -> None:
        self.client = client
        self.queue = queue
        self.handler = handler
        self.kinds = list(kinds) if kinds else None
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.lease_ms = lease_ms
        self.beat_every = heartbeat_interval(heartbeat_every, lease_ms)
        self.poll_wait = poll_wait
        self.grace = grace
        self.name = name or default_name()
        self._counters = Counters()
        self._stopping: Optional[asyncio.Event] = None
        self._running: Dict[str, Run] = {}
        self._beats: Set["asyncio.Future[None]"] = set()
        self._reports: "Optional[asyncio.Queue[Optional[Report]]]" = None
        self._slot_freed: Optional[asyncio.Event] = None

    def stop(self) -> None:
        """Begins a graceful shutdown (from the worker's event loop)."""
        if self._stopping is not None:
            self._stopping.set()

    @property
    def stats(self) -> WorkerStats:
        return self._counters.snapshot()

    async def run(self, *, install_signals: bool = False) -> WorkerStats:
        """Works until :meth:`stop`; returns what it did. A claim the server refuses (a 4xx
        other than 429) stops the worker and is raised here."""
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._reports = asyncio.Queue()
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
        sender = asyncio.ensure_future(self._send_reports())
        beater = asyncio.ensure_future(self._heartbeats())
        fatal: Optional[BaseException] = None
        try:
            await self._claim_loop()
        except RotaError as e:
            fatal = e
        await self._drain(0.0 if fatal is not None else self.grace)
        beater.cancel()
        for beat in list(self._beats):
            beat.cancel()
        await self._reports.put(None)
        await sender
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        if fatal is not None:
            raise fatal
        return self.stats

    # ---- claiming -----------------------------------------------------------------------------

    async def _until_stopping(self, aw: Awaitable[Any]) -> Any:
        """``aw``'s value, or the stop sentinel when shutdown begins first (``aw`` abandoned)."""
        assert self._stopping is not None
        work = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if work.done():
            return work.result()
        work.cancel()
        return _STOPPED

    async def _claim_loop(self) -> None:
        assert self._stopping is not None and self._slot_freed is not None
        unreachable = False
        while not self._stopping.is_set():
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._slot_freed.clear()
                await self._until_stopping(self._slot_freed.wait())
                continue
            if free < min(self.concurrency, MAX_CLAIM) and self._running:
                await asyncio.sleep(CLAIM_GATHER_S)
                free = self.concurrency - len(self._running)
            claim = self.client.claim(
                self.queue,
                self.name,
                max=min(free, MAX_CLAIM),
                kinds=self.kinds,
                wait_ms=int(self.poll_wait * 1000),
                lease_ms=self.lease_ms,
            )
            try:
                tasks = await self._until_stopping(claim)
            except RotaError as e:
                if is_fatal_claim_error(e):
                    raise
                if not unreachable:
                    log.warning("cannot claim from %s, retrying every second: %s", self.queue, e)
                    unreachable = True
                await self._until_stopping(asyncio.sleep(1.0))
                continue
            except Exception:  # not the server's answer: logged, and the claimer goes on
                log.exception("claiming from %s failed; retrying in a second", self.queue)
                await self._until_stopping(asyncio.sleep(1.0))
                continue
            if tasks is _STOPPED:
                # A claim in flight as shutdown began is abandoned: tasks it may have leased
                # come back when that lease ends.
                return
            if unreachable:
                log.info("claiming from %s again", self.queue)
                unreachable = False
            for task in tasks:
                self._start(task)

    def _start(self, task: Task) -> None:
        if task.lease is None or not task.lease.token:
            return
        run = Run(task, task.lease.token, self.beat_every, self.timeout)
        self._running[run.lease] = run  # by lease: see the thread worker
        run.runner = asyncio.ensure_future(self._execute(run))

    # ---- running ------------------------------------------------------------------------------

    async def _execute(self, run: Run) -> None:
        try:
            value = await self.handler(run.job)
            self._end(run, End.SPAWNED if run.job.spawned else End.DONE, value)
        except asyncio.CancelledError:
            if run.end is None:  # cancelled from outside the worker: the loop is closing
                self._end(run, End.INTERRUPTED)
        except Exception as e:
            if run.job.spawned:  # the lease was given up: nothing to report
                log.warning("task %s spawned, then its handler failed: %s", run.task.id, e)
            self._end(run, End.SPAWNED if run.job.spawned else End.FAILED, failure_from(e))
        finally:
            self._running.pop(run.lease, None)
            assert self._slot_freed is not None
            self._slot_freed.set()

    def _end(self, run: Run, end: End, value: object = None) -> None:
        if not run.finish(end, value):
            return
        if end not in HANDLER_RETURNED and run.runner is not None:
            run.runner.cancel()
        report = report_for(run, self.timeout, self._counters)
        if report is not None:
            assert self._reports is not None
            self._reports.put_nowait(report)

    # ---- heartbeats and timeouts --------------------------------------------------------------

    async def _heartbeats(self) -> None:
        tick = min(self.beat_every / 4, 0.05)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for run in list(self._running.values()):
                if run.end is not None:
                    continue
                if run.deadline is not None and now >= run.deadline:
                    self._end(run, End.TIMED_OUT)
                elif now >= run.next_beat and not run.beating and not run.job.spawned:
                    run.next_beat = now + self.beat_every
                    run.beating = True
                    # Its own task: one slow or hung heartbeat holds up no other run's beat,
                    # nor the timeouts checked here.
                    beat = asyncio.ensure_future(self._beat(run))
                    self._beats.add(beat)
                    beat.add_done_callback(self._beats.discard)

    async def _beat(self, run: Run) -> None:
        try:
            await self.client.heartbeat(run.task.id, run.lease, lease_ms=self.lease_ms, progress=run.job.progress)
        except RotaError as e:
            end = end_for_heartbeat_error(e, run.job)
            if end is not None:
                self._end(run, end)
        except Exception:  # an unexpected answer must not end this run's heartbeats for good
            log.exception("heartbeat of task %s failed; retrying at the next beat", run.task.id)
        finally:
            run.beating = False

    # ---- shutdown -----------------------------------------------------------------------------

    async def _drain(self, grace: float) -> None:
        runners = [r.runner for r in self._running.values() if r.runner is not None]
        if runners and grace > 0:
            await asyncio.wait(runners, timeout=grace)
        for run in list(self._running.values()):
            self._end(run, End.INTERRUPTED)
        left = [r.runner for r in self._running.values() if r.runner is not None]
        if left:
            await asyncio.wait(left)

    # ---- reporting ----------------------------------------------------------------------------

    async def _send_reports(self) -> None:
        assert self._reports is not None
        finished = False
        while not finished:
            first = await self._reports.get()
            if first is None:
                return
            batch: List[Report] = [first]
            while len(batch) < MAX_REPORT_BATCH and not self._reports.empty():
                item = self._reports.get_nowait()
                if item is None:
                    finished = True
                    break
                batch.append(item)
            done, failed = split(batch)
            if done:
                await self._complete(done)
            if failed:
                await self._fail(failed)

    async def _with_retry(self, call: Callable[[], Awaitable[Any]]) -> Any:
        attempt = 0
        while True:
            try:
                return await call()
            except RETRYABLE:
                attempt += 1
                if attempt >= REPORT_ATTEMPTS:
                    raise
                await asyncio.sleep(report_retry_delay(attempt - 1))

    async def _complete(self, items: List[CompleteItem]) -> None:
        try:
            outcomes = await self._with_retry(lambda: self.client.complete_batch(items))
        except REFUSED_ITEM:
            for item in items:
                await self._complete_one(item)
            return
        except RotaError:
            self._counters.add("lease_lost", len(items))
            return
        self._counters.count_outcomes(outcomes, "succeeded")

    async def _complete_one(self, item: CompleteItem) -> None:
        """Completes one task; a result the server refuses fails the task with the reason."""
        try:
            await self.client.complete(item.id, item.lease, item.result)
            self._counters.add("succeeded")
        except REFUSED_ITEM as e:
            try:
                await self.client.fail(item.id, item.lease, f"the server refused the task's result: {e.message}")
                self._counters.add("failed")
            except TaskCancelled:
                self._counters.add("cancelled")
            except RotaError:
                self._counters.add("lease_lost")
        except TaskCancelled:
            self._counters.add("cancelled")
        except RotaError:
            self._counters.add("lease_lost")

    async def _fail(self, items: List[FailItem]) -> None:
        try:
            outcomes = await self._with_retry(lambda: self.client.fail_batch(items))
        except RotaError:
            self._counters.add("lease_lost", len(items))
            return
        self._counters.count_outcomes(outcomes, "failed")


_STOPPED = object()
