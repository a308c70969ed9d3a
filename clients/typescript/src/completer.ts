import { setTimeout as sleep } from "node:timers/promises";
import { RotaError, TransportError } from "./errors.js";
import type { Tasks } from "./tasks.js";
import type { CompleteItem, FailItem, ItemOutcome } from "./types.js";

/** What the worker did, returned when it stops. */
export interface WorkerStats {
  succeeded: number;
  failed: number;
  /** Tasks abandoned because their lease was lost. */
  leaseLost: number;
  /** Tasks whose handler was stopped because the task was cancelled while it ran. */
  cancelled: number;
  /** Tasks failed back to the queue because the worker shut down. */
  interrupted: number;
  /**
   * Runs that spawned tasks (`tasks.spawn`) and reported nothing: each task waits for what it
   * spawned, then runs again.
   */
  spawned: number;
}

/** Most outcomes one batch request carries. */
const MAX_BATCH = 500;

/**
 * Sends outcomes in batches: whatever arrived while the previous batch was in flight goes in
 * the next one. Completing twice is safe (the second answer is `lease_lost`), so transport
 * failures are retried a few times; if the server stays away, the leases expire and the tasks
 * run again.
 */
export class Completer {
  private done: CompleteItem[] = [];
  private failed: FailItem[] = [];
  private sending: Promise<void> | undefined;

  constructor(
    private readonly tasks: Tasks,
    private readonly stats: WorkerStats,
  ) {}

  complete(item: CompleteItem): void {
    this.done.push(item);
    this.kick();
  }

  fail(item: FailItem): void {
    this.failed.push(item);
    this.kick();
  }

  /** Resolves once every outcome handed in so far has been sent. */
  async flush(): Promise<void> {
    while (this.sending) await this.sending;
  }

  private kick(): void {
    this.sending ??= this.drain().finally(() => {
      this.sending = undefined;
    });
  }

  private async drain(): Promise<void> {
    // Let the handlers finishing in this turn of the event loop join the batch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.done.length > 0 || this.failed.length > 0) {
      const done = this.done.splice(0, MAX_BATCH);
      const failed = this.failed.splice(0, MAX_BATCH);
      if (done.length > 0) await this.sendCompletes(done);
      if (failed.length > 0) await this.sendFails(failed);
    }
  }

  private async sendCompletes(items: CompleteItem[]): Promise<void> {
    try {
      this.count(await withRetry(() => this.tasks.completeBatch(items)), "succeeded");
    } catch (err) {
      if (err instanceof RotaError && (err.status === 413 || err.status === 422 || err.status === 400)) {
        // One item (a result over the size limit, say) made the server refuse the whole batch:
        // send them one by one, so only that item fails.
        for (const item of items) await this.completeOne(item);
      } else {
        this.stats.leaseLost += items.length;
      }
    }
  }

  private async sendFails(items: FailItem[]): Promise<void> {
    try {
      this.count(await withRetry(() => this.tasks.failBatch(items)), "failed");
    } catch {
      this.stats.leaseLost += items.length;
    }
  }

  /** Completes one task; a result the server refuses fails the task with the reason instead. */
  private async completeOne(item: CompleteItem): Promise<void> {
    try {
      await this.tasks.complete(item.id, item.lease, item.result);
      this.stats.succeeded++;
    } catch (err) {
      if (!(err instanceof RotaError)) {
        this.stats.leaseLost++;
      } else if (err.cancelled) {
        this.stats.cancelled++;
      } else if (err.status === 413 || err.status === 422 || err.status === 400) {
        try {
          await this.tasks.fail(item.id, item.lease, `the server refused the task's result: ${err.message}`);
          this.stats.failed++;
        } catch (again) {
          if (again instanceof RotaError && again.cancelled) this.stats.cancelled++;
          else this.stats.leaseLost++;
        }
      } else {
        this.stats.leaseLost++;
      }
    }
  }

  private count(outcomes: ItemOutcome[], ok: "succeeded" | "failed"): void {
    for (const item of outcomes) {
      if (item.ok) this.stats[ok]++;
      else if (item.error?.code === "task_cancelled") this.stats.cancelled++;
      else this.stats.leaseLost++;
    }
  }
}

async function withRetry<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const retriable = err instanceof TransportError || (err instanceof RotaError && err.transient);
      if (!retriable || attempt >= 4) throw err;
      await sleep(100 << attempt);
    }
  }
}
