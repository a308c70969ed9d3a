"""The worker runtime on threads: :class:`Worker`.

One thread claims (in batches, with long-poll), a pool of ``concurrency`` threads runs the
handlers, one thread heartbeats every running task and enforces timeouts, and one sends the
outcomes in batches (whatever arrived while the previous batch was in flight). A handler is
stopped by raising :class:`HandlerStopped` inside its thread (and setting ``job.stopped``);
a handler blocked in C code (a socket read, ``time.sleep``) sees it when that call returns,
while its outcome has already been reported.
"""

from __future__ import annotations

import ctypes
import queue as queue_lib
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence

from .._sync_client import Client
from ..errors import RotaError
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
    HandlerStopped,
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

Handler = Callable[[Job], JSON]

_STOP = object()


def _raise_in(thread_id: int) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(HandlerStopped))


def _clear_pending() -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.get_ident()), None)


class Worker:
    """Runs ``handler`` for the tasks of ``queue`` until :meth:`stop` (or SIGINT/SIGTERM, with
    ``run(install_signals=True)`` from the main thread), then lets running handlers finish for
    ``grace`` seconds, claims nothing more, and hands back what still runs (a temporary failure
    with no delay, so it runs again elsewhere at once without spending an attempt).

    The handler gets a :class:`Job` and returns the task's result (any JSON, or None). An
    exception fails the attempt; raise :class:`HandlerError` to choose the retry delay, send
    the task to the dead letters (``dead=True``) or give the attempt back (``temporary=True``).
    A task cancelled while it runs, or whose lease is lost, has its handler stopped within one
    heartbeat (``heartbeat_every``, 1 s, at most a third of the lease) and nothing is reported.
    A handler that spawns tasks (``client.spawn(job, tasks)``) hands its task off: whatever it
    returns after, that run reports nothing (``stats.spawned``), and the task runs again once
    the spawned tasks end, with their results in ``job.dependencies``.
    """

    def __init__(
        self,
        client: Client,
        queue: str,
        handler: Handler,
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
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._slots = threading.Condition()
        self._free = self.concurrency
        # By lease: a task claimed again (its old lease lost, its old handler not yet back)
        # is another run, and the old one ending must not take the new one's place away.
        self._running: Dict[str, Run] = {}
        self._running_lock = threading.Lock()
        self._reports: "queue_lib.Queue[object]" = queue_lib.Queue()
        self._fatal: Optional[BaseException] = None

    # ---- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Begins a graceful shutdown: claim nothing more, let running handlers finish."""
        self._stopping.set()
        with self._slots:
            self._slots.notify_all()

    @property
    def stats(self) -> WorkerStats:
        return self._counters.snapshot()

    def run(self, *, install_signals: bool = False) -> WorkerStats:
        """Works until :meth:`stop`; returns what it did. A claim the server refuses (a 4xx
        other than 429) stops the worker and is raised here."""
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.stop())
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"rota-{self.queue}")
        beater = threading.Thread(target=self._heartbeats, name="rota-heartbeats", daemon=True)
        sender = threading.Thread(target=self._send_reports, name="rota-reports", daemon=True)
        claimer = threading.Thread(target=self._claim_loop, args=(pool,), name="rota-claims", daemon=True)
        beater.start()
        sender.start()
        claimer.start()
        try:
            while not self._stopping.wait(0.2):
                pass
        except KeyboardInterrupt:
            self.stop()
        self._drain(self.grace if self._fatal is None else 0.0)
        self._finished.set()
        pool.shutdown(wait=False)
        self._reports.put(_STOP)
        sender.join()
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    # ---- claiming -----------------------------------------------------------------------------

    def _claim_loop(self, pool: ThreadPoolExecutor) -> None:
        unreachable = False
        while True:
            with self._slots:
                while self._free == 0 and not self._stopping.is_set():
                    self._slots.wait()
                full = min(self.concurrency, MAX_CLAIM)
                gather_until = time.monotonic() + CLAIM_GATHER_S
                while self._free < full and not self._stopping.is_set():
                    left = gather_until - time.monotonic()
                    if left <= 0:
                        break
                    self._slots.wait(left)
                if self._stopping.is_set():
                    return
                want = min(self._free, MAX_CLAIM)
            try:
                tasks = self.client.claim(
                    self.queue,
                    self.name,
                    max=want,
                    kinds=self.kinds,
                    wait_ms=int(self.poll_wait * 1000),
                    lease_ms=self.lease_ms,
                )
            except RotaError as e:
                if is_fatal_claim_error(e):
                    self._fatal = e
                    self.stop()
                    return
                if not unreachable:
                    log.warning("cannot claim from %s, retrying every second: %s", self.queue, e)
                    unreachable = True
                if self._stopping.wait(1.0):
                    return
                continue
            except Exception:  # not the server's answer: logged, and the claimer goes on
                log.exception("claiming from %s failed; retrying in a second", self.queue)
                if self._stopping.wait(1.0):
                    return
                continue
            if unreachable:
                log.info("claiming from %s again", self.queue)
                unreachable = False
            if self._stopping.is_set():
                # Claimed as shutdown began: hand them straight back.
                self._hand_back(tasks)
                return
            for task in tasks:
                self._start(pool, task)

    def _hand_back(self, tasks: List[Task]) -> None:
        items = [
            FailItem(t.id, t.lease.token, "worker shut down before the task started", retry_in_ms=0, temporary=True)
            for t in tasks
            if t.lease is not None and t.lease.token
        ]
        if items:
            try:
                self.client.fail_batch(items)
            except Exception:  # noqa: BLE001 - the client may be closed by now
                pass  # their leases expire and they run again

    def _start(self, pool: ThreadPoolExecutor, task: Task) -> None:
        if task.lease is None or not task.lease.token:
            return
        run = Run(task, task.lease.token, self.beat_every, self.timeout)
        with self._slots:
            self._free -= 1
        with self._running_lock:
            self._running[run.lease] = run
        try:
            pool.submit(self._execute, run)
        except RuntimeError:  # the pool shut down as this claim came back
            with self._running_lock:
                self._running.pop(run.lease, None)
            self._hand_back([task])

    # ---- running ------------------------------------------------------------------------------

    def _execute(self, run: Run) -> None:
        try:
            try:
                with run.lock:
                    run.thread = threading.get_ident()
                    run.in_handler = run.end is None
                if run.in_handler:
                    try:
                        value = self.handler(run.job)
                        end, detail = End.DONE, value
                    except HandlerStopped:
                        end, detail = End.INTERRUPTED, None
                    except Exception as e:
                        end, detail = End.FAILED, failure_from(e)
                    with run.lock:
                        run.in_handler = False
                    if run.job.spawned and end is not End.INTERRUPTED:
                        if end is End.FAILED:
                            log.warning("task %s spawned, then its handler failed: %s", run.task.id, detail.message)
                        end = End.SPAWNED  # the lease was given up: nothing to report
                    if end is not End.INTERRUPTED:
                        self._end(run, end, detail)
            except HandlerStopped:
                pass  # stopped from outside as the handler returned; the stopper reported
            finally:
                _clear_pending()
        finally:
            with self._running_lock:
                self._running.pop(run.lease, None)
            with self._slots:
                self._free += 1
                self._slots.notify()

    def _end(self, run: Run, end: End, value: object = None) -> None:
        """Ends the run if nothing ended it yet, reports it, and stops its handler if it runs."""
        if not run.finish(end, value):
            return
        with run.lock:
            if run.in_handler and run.thread is not None and end not in HANDLER_RETURNED:
                _raise_in(run.thread)
        report = report_for(run, self.timeout, self._counters)
        if report is not None:
            self._reports.put(report)

    # ---- heartbeats and timeouts --------------------------------------------------------------

    def _heartbeats(self) -> None:
        tick = min(self.beat_every / 4, 0.05)
        # Each run's beat on a pool of its own: one slow or hung heartbeat delays neither the
        # other runs' beats nor the timeouts checked here.
        with ThreadPoolExecutor(max_workers=min(self.concurrency, 16), thread_name_prefix="rota-beat") as beats:
            while not self._finished.wait(tick):
                now = time.monotonic()
                with self._running_lock:
                    runs = list(self._running.values())
                for run in runs:
                    if run.end is not None:
                        continue
                    if run.deadline is not None and now >= run.deadline:
                        self._end(run, End.TIMED_OUT)
                    elif now >= run.next_beat and not run.beating and not run.job.spawned:
                        run.next_beat = now + self.beat_every
                        run.beating = True
                        beats.submit(self._beat, run)

    def _beat(self, run: Run) -> None:
        try:
            self.client.heartbeat(run.task.id, run.lease, lease_ms=self.lease_ms, progress=run.job.progress)
        except RotaError as e:
            end = end_for_heartbeat_error(e, run.job)
            if end is not None:
                self._end(run, end)
            # Otherwise retried at the next beat: the lease has two more beats of slack.
        except Exception:  # an unexpected answer must not end this run's heartbeats for good
            log.exception("heartbeat of task %s failed; retrying at the next beat", run.task.id)
        finally:
            run.beating = False

    # ---- shutdown -----------------------------------------------------------------------------

    def _drain(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        with self._slots:
            while self._free < self.concurrency and time.monotonic() < deadline:
                self._slots.wait(max(0.0, min(0.1, deadline - time.monotonic())))
        with self._running_lock:
            left = list(self._running.values())
        for run in left:
            self._end(run, End.INTERRUPTED)

    # ---- reporting ----------------------------------------------------------------------------

    def _send_reports(self) -> None:
        done_sending = False
        while not done_sending:
            first = self._reports.get()
            if first is _STOP:
                return
            batch: List[Report] = [first]  # type: ignore[list-item]
            while len(batch) < MAX_REPORT_BATCH:
                try:
                    item = self._reports.get_nowait()
                except queue_lib.Empty:
                    break
                if item is _STOP:
                    done_sending = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            done, failed = split(batch)
            if done:
                self._complete(done)
            if failed:
                self._fail(failed)

    def _with_retry(self, call: Callable[[], object]) -> object:
        attempt = 0
        while True:
            try:
                return call()
            except RETRYABLE:
                attempt += 1
                if attempt >= REPORT_ATTEMPTS:
                    raise
                time.sleep(report_retry_delay(attempt - 1))

    def _complete(self, items: List[CompleteItem]) -> None:
        try:
            outcomes = self._with_retry(lambda: self.client.complete_batch(items))
        except REFUSED_ITEM:
            for item in items:
                self._complete_one(item)
            return
        except RotaError:
            self._counters.add("lease_lost", len(items))
            return
        self._counters.count_outcomes(outcomes, "succeeded")  # type: ignore[arg-type]

    def _complete_one(self, item: CompleteItem) -> None:
        """Completes one task; a result the server refuses fails the task with the reason."""
        from ..errors import TaskCancelled

        try:
            self.client.complete(item.id, item.lease, item.result)
            self._counters.add("succeeded")
        except REFUSED_ITEM as e:
            try:
                self.client.fail(item.id, item.lease, f"the server refused the task's result: {e.message}")
                self._counters.add("failed")
            except TaskCancelled:
                self._counters.add("cancelled")
            except RotaError:
                self._counters.add("lease_lost")
        except TaskCancelled:
            self._counters.add("cancelled")
        except RotaError:
            self._counters.add("lease_lost")

    def _fail(self, items: List[FailItem]) -> None:
        try:
            outcomes = self._with_retry(lambda: self.client.fail_batch(items))
        except RotaError:
            self._counters.add("lease_lost", len(items))
            return
        self._counters.count_outcomes(outcomes, "failed")  # type: ignore[arg-type]
