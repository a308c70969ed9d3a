import { setMaxListeners } from "node:events";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { RotaClient } from "./client.js";
import { Completer, type WorkerStats } from "./completer.js";
import { RotaError, TransportError } from "./errors.js";
import { forgetRun, handedOff, handingOff, watchRun } from "./handoff.js";
import { HandlerError, TaskAbortedError } from "./handler-error.js";
import { Slots } from "./slots.js";
import type { ClaimedTask, Json } from "./types.js";

/**
 * Runs one task. Its return value (any JSON, or nothing) is stored as the task's result; a
 * throw fails the attempt (see {@link HandlerError}). `signal` fires when the task is cancelled,
 * its lease is lost, its time is up or the worker shuts down past its grace period: stop then,
 * as whatever the handler does afterwards is not reported. A task that waited for others
 * (`depends_on`) carries them in `task.dependencies`, with their results.
 *
 * A handler that finds more work may hand its task off: `await client.tasks.spawn(task, tasks)`
 * and return. That run reports nothing (its return value or throw is ignored); the task waits
 * for the spawned tasks and runs again, as the same attempt, with their results in
 * `task.dependencies`, which is how a handler tells its two runs apart.
 */
export type Handler = (task: ClaimedTask, signal: AbortSignal) => Promise<Json | undefined | void> | Json | undefined | void;

export interface WorkerOptions {
  /** Only tasks of these kinds. */
  kinds?: string[];
  /** Handlers running at once. Default 1. */
  concurrency?: number;
  /** Longest a handler may run, in ms; past it the attempt fails. Default: no limit. */
  timeoutMs?: number;
  /** Lease asked for on claim and on each heartbeat, in ms. Default 30,000. */
  leaseMs?: number;
  /**
   * How often a running task's lease is renewed, in ms (at most every third of the lease). The
   * heartbeat's answer is also how a cancel reaches the handler. Default 1,000.
   */
  heartbeatMs?: number;
  /** Longest a claim waits for work before asking again, in ms. Default 20,000. */
  pollWaitMs?: number;
  /** How long running tasks may finish after shutdown begins, in ms. Default 10,000. */
  graceMs?: number;
  /** The worker's name in leases. Default `<hostname>-<pid>`. */
  name?: string;
  /** Where the worker says it cannot reach the server. Default `console`. */
  logger?: Pick<Console, "warn" | "info">;
}

/** Most tasks one claim asks for; a worker with more free slots claims again at once. */
const MAX_CLAIM = 100;

type End =
  | { kind: "done"; result: Json | undefined }
  | { kind: "threw"; error: unknown }
  | { kind: "aborted"; why: TaskAbortedError }
  /** The handler spawned tasks: the lease was given up, nothing to report. */
  | { kind: "spawned" };

/**
 * The worker runtime: claims in batches with long-poll, runs up to `concurrency` handlers at
 * once, heartbeats each running task, and reports outcomes in batches.
 *
 * A handler's throw or timeout fails the attempt (the worker keeps running); a task that is
 * cancelled (heartbeat answered 409 `task_cancelled`) or whose lease is lost (409 `lease_lost`)
 * has its handler's signal aborted within one heartbeat interval and is abandoned without
 * reporting. On shutdown (the `signal` given to {@link Worker.run} aborts) nothing more is
 * claimed; running tasks may finish within the grace period, and those still running then are
 * failed as temporary with `retry_in_ms: 0` so they run again elsewhere at once. A claim the
 * server refuses (4xx) stops the worker the same way and `run` rejects with the error. A run
 * whose handler spawned tasks (`client.tasks.spawn(task, …)`) reports nothing: its lease was
 * given up, and the task runs again once the spawned tasks end.
 */
export class Worker {
  private readonly opts: Required<Omit<WorkerOptions, "timeoutMs" | "kinds">> & Pick<WorkerOptions, "timeoutMs" | "kinds">;

  constructor(
    private readonly client: RotaClient,
    readonly queue: string,
    private readonly handler: Handler,
    options: WorkerOptions = {},
  ) {
    this.opts = {
      concurrency: Math.max(1, options.concurrency ?? 1),
      leaseMs: options.leaseMs ?? 30_000,
      heartbeatMs: options.heartbeatMs ?? 1_000,
      pollWaitMs: options.pollWaitMs ?? 20_000,
      graceMs: options.graceMs ?? 10_000,
      name: options.name ?? `${hostname()}-${process.pid}`,
      logger: options.logger ?? console,
      timeoutMs: options.timeoutMs,
      kinds: options.kinds,
    };
  }

  /** Runs until `signal` aborts, then drains as described above. */
  async run(signal?: AbortSignal): Promise<WorkerStats> {
    const stats: WorkerStats = { succeeded: 0, failed: 0, leaseLost: 0, cancelled: 0, interrupted: 0, spawned: 0 };
    const completer = new Completer(this.client.tasks, stats);
    const slots = new Slots(this.opts.concurrency);
    const running = new Set<Promise<void>>();
    const shutdown = new AbortController();
    const stopClaiming = signal ? AbortSignal.any([signal, shutdown.signal]) : shutdown.signal;
    const interrupt = new AbortController();
    // Each running task listens for the interrupt: as many listeners as the concurrency.
    setMaxListeners(0, interrupt.signal);
    let fatal: unknown;
    let unreachable = false;

    while (!stopClaiming.aborted) {
      if (!(await slots.take(stopClaiming))) break;
      let tasks: ClaimedTask[];
      try {
        tasks = await this.client.tasks.claim(
          this.queue,
          {
            worker: this.opts.name,
            kinds: this.opts.kinds,
            max: Math.min(slots.available + 1, MAX_CLAIM),
            wait_ms: this.opts.pollWaitMs,
            lease_ms: this.opts.leaseMs,
          },
          { signal: stopClaiming },
        );
      } catch (err) {
        slots.give();
        // A claim abandoned by shutdown: tasks it may have leased come back when the lease ends.
        if (stopClaiming.aborted) break;
        // Unreachable, busy or failing (a load balancer's 502 or 504 while servers restart).
        if (err instanceof TransportError || (err instanceof RotaError && (err.transient || [500, 502, 504].includes(err.status)))) {
          // Unreachable or busy: ask again in a second, saying so once per outage.
          if (!unreachable) this.opts.logger.warn(`rota worker: cannot claim from ${this.queue}, retrying every second: ${(err as Error).message}`);
          unreachable = true;
          await sleep(1_000, undefined, { signal: stopClaiming }).catch(() => undefined);
          continue;
        }
        // A request the server refuses (a bad queue name, say) will not improve.
        fatal = err;
        shutdown.abort();
        break;
      }
      if (unreachable) {
        this.opts.logger.info(`rota worker: claiming from ${this.queue} again`);
        unreachable = false;
      }
      if (tasks.length === 0) slots.give();
      tasks.forEach((task, i) => {
        // The first slot was taken before the claim, and the claim asked for no more than were
        // free; a task beyond them is left to come back when its lease ends.
        if (i > 0 && !slots.tryTake()) {
          this.opts.logger.warn(`rota worker: the server answered more tasks than asked for; ${task.id} is left to its lease`);
          return;
        }
        const run = this.runOne(task, completer, stats, interrupt.signal).finally(() => {
          running.delete(run);
          slots.give();
        });
        running.add(run);
      });
    }

    // Shutdown: no more claims; running tasks may finish within the grace period.
    const all = Promise.all(running);
    const grace = fatal === undefined ? this.opts.graceMs : 0;
    const timer = sleep(grace, "timeout" as const, { ref: false });
    if ((await Promise.race([all, timer])) === "timeout") interrupt.abort();
    await all;
    await completer.flush();
    if (fatal !== undefined) throw fatal;
    return stats;
  }

  private async runOne(task: ClaimedTask, completer: Completer, stats: WorkerStats, interrupt: AbortSignal): Promise<void> {
    const lease = task.lease?.token;
    if (lease === undefined) return;
    // So that `tasks.spawn` under this lease marks the run as handed off.
    watchRun(lease);
    const { end: ended, settled } = this.supervise(task, lease, interrupt);
    const end = await ended;
    try {
      this.report(task, lease, end, completer, stats);
    } finally {
      // JavaScript cannot stop a handler: one that ignores its signal keeps its slot (and
      // run() waits for it), so no more handlers than `concurrency` ever run at once.
      await settled;
      forgetRun(lease);
    }
  }

  /** Sends the outcome of a run, or nothing for a cancelled task, a lost lease or a spawn. */
  private report(task: ClaimedTask, lease: string, end: End, completer: Completer, stats: WorkerStats): void {
    const fail = (error: string, options: { retry_in_ms?: number; dead?: boolean; temporary?: boolean } = {}) =>
      completer.fail({ id: task.id, lease, error, ...options });
    switch (end.kind) {
      case "spawned":
        stats.spawned++;
        return;
      case "done":
        completer.complete({ id: task.id, lease, result: end.result ?? null });
        return;
      case "threw": {
        const e = end.error;
        if (e instanceof HandlerError) {
          fail(e.message, { retry_in_ms: e.retryInMs, dead: e.dead, temporary: e.temporary });
        } else {
          fail(e instanceof Error ? e.message || e.name : String(e));
        }
        return;
      }
      case "aborted":
        switch (end.why.reason) {
          case "timeout":
            fail(end.why.message);
            return;
          case "shutdown":
            // Not the task's fault: it runs again at once, and the attempt is given back.
            stats.interrupted++;
            fail(end.why.message, { retry_in_ms: 0, temporary: true });
            return;
          case "cancelled":
            stats.cancelled++;
            return;
          case "lease_lost":
            stats.leaseLost++;
            return;
        }
    }
  }

  /**
   * Runs the handler beside the task's heartbeat, deadline and the worker's interrupt: `end`
   * is how the run ended (at once when it is aborted), `settled` when the handler itself
   * returned or threw.
   */
  private supervise(task: ClaimedTask, lease: string, interrupt: AbortSignal): { end: Promise<End>; settled: Promise<void> } {
    const controller = new AbortController();
    const { leaseMs, heartbeatMs, timeoutMs } = this.opts;
    const every = Math.max(10, Math.min(heartbeatMs, Math.floor(leaseMs / 3)));
    let returned: Promise<void> = Promise.resolve();
    const end = new Promise<End>((resolve) => {
      let settled = false;
      const finish = (end: End) => {
        if (settled) return;
        settled = true;
        clearInterval(beat);
        if (deadline !== undefined) clearTimeout(deadline);
        interrupt.removeEventListener("abort", onInterrupt);
        if (end.kind === "aborted") controller.abort(end.why);
        // The task spawned and gave up its lease: whatever ended the run (a return, a throw, its
        // time or shutdown while it finished), there is nothing to report. A cancel still counts.
        const cancelled = end.kind === "aborted" && end.why.reason === "cancelled";
        resolve(handedOff(lease) && !cancelled ? { kind: "spawned" } : end);
      };
      const abort = (reason: TaskAbortedError["reason"], message: string) =>
        finish({ kind: "aborted", why: new TaskAbortedError(reason, message) });
      const onInterrupt = () => abort("shutdown", "worker shut down before the task finished");

      let beating = false;
      const beat = setInterval(() => {
        if (beating) return; // a slow heartbeat is not followed by a burst of them
        if (handedOff(lease)) return; // the lease was given up: nothing to renew
        beating = true;
        this.client.tasks
          .heartbeat(task.id, lease, { lease_ms: leaseMs })
          .catch((err: unknown) => {
            // Any other failure is retried at the next tick: the lease has two more of slack.
            if (!(err instanceof RotaError)) return;
            // The handler spawned (or is spawning) and gave up the lease: not a lost lease.
            if (err.leaseLost && handingOff(lease)) return;
            if (err.cancelled) abort("cancelled", `task ${task.id} was cancelled`);
            else if (err.leaseLost || err.notFound) abort("lease_lost", `lost the lease of task ${task.id}: ${err.message}`);
          })
          .finally(() => {
            beating = false;
          });
      }, every);
      const deadline =
        timeoutMs === undefined ? undefined : setTimeout(() => abort("timeout", `handler timed out after ${timeoutMs} ms`), timeoutMs);
      interrupt.addEventListener("abort", onInterrupt, { once: true });

      returned = (async () => this.handler(task, controller.signal))().then(
        (result) => finish({ kind: "done", result: result ?? undefined }),
        (error: unknown) => finish({ kind: "threw", error }),
      );
    });
    return { end, settled: returned };
  }
}
