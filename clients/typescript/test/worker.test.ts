import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { HandlerError, type RotaClient, TaskAbortedError, Worker, type WorkerStats } from "../src/index.js";
import { TestServer, eventually, queueName } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

/** Starts `worker`; `stop()` aborts it and resolves with its stats. */
function start(worker: Worker): { stop: () => Promise<WorkerStats>; done: Promise<WorkerStats> } {
  const ac = new AbortController();
  const done = worker.run(ac.signal);
  return {
    done,
    stop: () => {
      ac.abort();
      return done;
    },
  };
}

async function counts(queue: string) {
  return (await rota.queues.stats(queue)).counts;
}

test("test_s04_worker_runs_handlers_batch_claims_and_batch_completes", async (t) => {
  const queue = queueName("s04");
  const n = 200;
  await rota.tasks.enqueueBatch(queue, Array.from({ length: n }, (_, i) => ({ kind: "double", payload: { i } })));
  const paths: string[] = [];
  const counting = server.client({
    fetch: (input, init) => {
      paths.push(`${init?.method} ${new URL(String(input)).pathname}`);
      return fetch(input, init);
    },
  });
  let running = 0;
  let most = 0;
  const worker = new Worker(
    counting,
    queue,
    async (task) => {
      running++;
      most = Math.max(most, running);
      await sleep(5);
      running--;
      return { doubled: (task.payload as { i: number }).i * 2 };
    },
    { concurrency: 20, pollWaitMs: 200 },
  );
  const run = start(worker);
  await eventually(async () => (await counts(queue)).succeeded === n, "every task to succeed");
  const stats = await run.stop();
  assert.equal(stats.succeeded, n);
  assert.equal(stats.failed, 0);
  assert.ok(most <= 20, `at most 20 handlers at once, saw ${most}`);
  assert.ok(most > 1, "handlers ran concurrently");
  const claims = paths.filter((p) => p === `POST /v1/queues/${queue}/claim`).length;
  const completes = paths.filter((p) => p === "POST /v1/tasks/complete").length;
  t.diagnostic(`${claims} claims and ${completes} completion batches for ${n} tasks`);
  assert.ok(claims <= n / 2, `claims came in batches (${claims} claims for ${n} tasks)`);
  assert.ok(completes >= 1 && completes <= n / 2, `completions came in batches (${completes} for ${n} tasks)`);
  assert.equal(paths.filter((p) => /^POST \/v1\/tasks\/[^/]+\/complete$/.test(p)).length, 0);
  for await (const task of rota.tasks.iterate(queue, { state: "succeeded" })) {
    assert.deepEqual(task.result, { doubled: (task.payload as { i: number }).i * 2 });
  }
});

test("test_s05_handler_error_retries_dead_error_goes_to_dead_letters", async () => {
  const queue = queueName("s05");
  await rota.queues.update(queue, { backoff: { base_ms: 10, max_ms: 10 } });
  const flaky = await rota.tasks.enqueue(queue, { kind: "flaky" });
  const fatal = await rota.tasks.enqueue(queue, { kind: "fatal" });
  const deadOnce = new Set<string>();
  const worker = new Worker(
    rota,
    queue,
    (task) => {
      if (task.kind === "flaky" && task.attempt === 1) throw new Error("smtp down");
      if (task.kind === "fatal" && !deadOnce.has(task.id)) {
        deadOnce.add(task.id);
        throw HandlerError.dead("bad address");
      }
      return "ok";
    },
    { concurrency: 4, pollWaitMs: 200 },
  );
  const run = start(worker);
  const retried = await eventually(async () => {
    const t = await rota.tasks.get(flaky.id);
    return t.state === "succeeded" && t;
  }, "the flaky task to succeed on its second attempt");
  assert.equal(retried.attempt, 2);
  assert.equal(retried.errors.length, 1);
  assert.equal(retried.errors[0].message, "smtp down");

  const dead = await eventually(async () => {
    const t = await rota.tasks.get(fatal.id);
    return t.state === "dead" && t;
  }, "the fatal task to be dead");
  assert.equal(dead.attempt, 1, "a dead error is not retried");
  assert.equal(dead.errors[0].message, "bad address");
  const letters = await rota.queues.deadLetters(queue);
  assert.deepEqual(letters.tasks.map((t) => t.id), [fatal.id]);

  assert.equal((await rota.tasks.retry(fatal.id)).state, "ready");
  await eventually(async () => (await rota.tasks.get(fatal.id)).state === "succeeded", "the retried task to succeed");
  const stats = await run.stop();
  assert.equal(stats.failed, 2);
  assert.equal(stats.succeeded, 2);
});

test("test_s05b_handler_timeout_fails_the_attempt", async () => {
  const queue = queueName("s05b");
  const task = await rota.tasks.enqueue(queue, { kind: "slow", max_attempts: 1 });
  let reason: unknown;
  const worker = new Worker(
    rota,
    queue,
    (_task, signal) =>
      new Promise((_, fail) => {
        signal.addEventListener("abort", () => {
          reason = signal.reason;
          fail(signal.reason);
        });
      }),
    { timeoutMs: 200, pollWaitMs: 200 },
  );
  const run = start(worker);
  const dead = await eventually(async () => {
    const t = await rota.tasks.get(task.id);
    return t.state === "dead" && t;
  }, "the timed-out task to fail");
  assert.match(dead.errors[0].message, /timed out after 200 ms/);
  assert.ok(reason instanceof TaskAbortedError && reason.reason === "timeout");
  await run.stop();
});

test("test_s05c_a_handler_that_ignores_its_signal_keeps_its_slot", async () => {
  const queue = queueName("s05c");
  await rota.tasks.enqueueBatch(queue, Array.from({ length: 6 }, () => ({ kind: "stubborn", max_attempts: 1 })));
  let now = 0;
  let most = 0;
  let started = 0;
  const worker = new Worker(
    rota,
    queue,
    async () => {
      // Times out after 50 ms, but goes on for 300 ms whatever its signal says.
      started++;
      now++;
      most = Math.max(most, now);
      await sleep(300);
      now--;
    },
    { concurrency: 2, timeoutMs: 50, pollWaitMs: 100 },
  );
  const run = start(worker);
  await eventually(async () => started >= 4 && now === 0, "four stubborn handlers to have run");
  await run.stop();
  assert.equal(now, 0, "run() returned while a handler still ran");
  assert.ok(most <= 2, `${most} handlers ran at once with concurrency 2`);
});

test("test_s06_cancel_stops_the_running_handler_and_is_not_retried", async () => {
  const queue = queueName("s06");
  const task = await rota.tasks.enqueue(queue, { kind: "long" });
  let started = false;
  let reason: unknown;
  const worker = new Worker(
    rota,
    queue,
    (_task, signal) =>
      new Promise((_, fail) => {
        started = true;
        signal.addEventListener("abort", () => {
          reason = signal.reason;
          fail(signal.reason);
        });
      }),
    { heartbeatMs: 100, pollWaitMs: 200 },
  );
  const run = start(worker);
  await eventually(async () => started, "the handler to start");
  assert.equal((await rota.tasks.cancel(task.id)).state, "cancelled");
  await eventually(async () => reason !== undefined, "the handler's signal to fire", 3_000);
  assert.ok(reason instanceof TaskAbortedError);
  assert.equal(reason.reason, "cancelled");
  await sleep(300);
  const after = await rota.tasks.get(task.id);
  assert.equal(after.state, "cancelled");
  assert.equal(after.attempt, 1, "not claimed again");
  const stats = await run.stop();
  assert.equal(stats.cancelled, 1);
  assert.equal(stats.succeeded + stats.failed, 0);
});

test("test_s06b_a_lost_lease_stops_the_handler_and_reports_nothing", async () => {
  const queue = queueName("s06b");
  // One attempt: when its lease expires the task is dead, so nothing claims it again.
  const task = await rota.tasks.enqueue(queue, { kind: "long", max_attempts: 1 });
  // Heartbeats are dropped on the way until the lease has expired; the next one is refused.
  let dropBeats = true;
  const lossy = server.client({
    fetch: (input, init) => {
      if (dropBeats && String(input).endsWith("/heartbeat")) return Promise.reject(new TypeError("fetch failed"));
      return fetch(input, init);
    },
  });
  let started = false;
  let reason: unknown;
  const worker = new Worker(
    lossy,
    queue,
    (_task, signal) =>
      new Promise((_, fail) => {
        started = true;
        signal.addEventListener("abort", () => {
          reason = signal.reason;
          fail(signal.reason);
        });
      }),
    { leaseMs: 1_000, pollWaitMs: 200, concurrency: 1 },
  );
  const run = start(worker);
  await eventually(async () => started, "the handler to start");
  await sleep(1_400);
  dropBeats = false;
  await eventually(async () => reason !== undefined, "the handler's signal to fire", 3_000);
  assert.ok(reason instanceof TaskAbortedError);
  assert.equal(reason.reason, "lease_lost");
  const stats = await run.stop();
  assert.equal(stats.leaseLost, 1);
  assert.equal(stats.succeeded + stats.failed, 0);
  const after = await rota.tasks.get(task.id);
  assert.equal(after.state, "dead");
  assert.equal(after.errors.length, 1, "the lease's expiry, and nothing from the worker");
  assert.match(after.errors[0].message, /lease/);
});

test("test_s14_graceful_shutdown_finishes_running_and_claims_nothing_new", async () => {
  const queue = queueName("s14");
  const first = await rota.tasks.enqueue(queue, { kind: "k" });
  let started = false;
  let finished = false;
  const worker = new Worker(
    rota,
    queue,
    async () => {
      started = true;
      await sleep(500);
      finished = true;
      return "finished";
    },
    { concurrency: 4, pollWaitMs: 5_000, graceMs: 5_000 },
  );
  const run = start(worker);
  await eventually(async () => started, "the handler to start");
  const stopping = run.stop();
  const second = await rota.tasks.enqueue(queue, { kind: "k" });
  const stats = await stopping;
  assert.ok(finished, "the running handler finished before run() resolved");
  assert.equal(stats.succeeded, 1);
  assert.equal(stats.interrupted, 0);
  assert.equal((await rota.tasks.get(first.id)).state, "succeeded");
  assert.deepEqual((await rota.tasks.get(first.id)).result, "finished");
  await sleep(200);
  assert.equal((await rota.tasks.get(second.id)).state, "ready", "nothing new was claimed");
});

test("test_s14b_shutdown_past_grace_hands_the_task_back", async () => {
  const queue = queueName("s14b");
  const task = await rota.tasks.enqueue(queue, { kind: "k" });
  let started = false;
  const worker = new Worker(
    rota,
    queue,
    (_task, signal) =>
      new Promise((_, fail) => {
        started = true;
        signal.addEventListener("abort", () => fail(signal.reason));
      }),
    { pollWaitMs: 200, graceMs: 100 },
  );
  const run = start(worker);
  await eventually(async () => started, "the handler to start");
  const stats = await run.stop();
  assert.equal(stats.interrupted, 1);
  const back = await rota.tasks.get(task.id);
  assert.equal(back.state, "ready");
  assert.equal(back.attempt, 0, "a temporary failure gives the attempt back");
  assert.match(back.errors[0].message, /shut down/);
});
