import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type BatchSummary, type ClaimedTask, type DependencyResult, RotaError, type RotaClient, type Task, Worker, type Workflow } from "../src/index.js";
import { TestServer, eventually, queueName } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

function byName(wf: Workflow): Record<string, Task> {
  return Object.fromEntries((wf.tasks ?? []).map((t) => [t.name, t.task]));
}

test("test_s16_workflow_runs_its_graph_across_queues", async () => {
  const left = queueName("s16-left");
  const right = queueName("s16-right");
  const wf = await rota.workflows.submit([
    { name: "a", queue: left, kind: "step", payload: { name: "a" } },
    { name: "b", queue: right, kind: "step", payload: { name: "b" }, depends_on: ["a"] },
    { name: "c", queue: left, kind: "step", payload: { name: "c" }, depends_on: ["a"] },
    { name: "join", queue: right, kind: "step", payload: { name: "join" }, depends_on: ["b", "c"] },
  ]);
  assert.equal(wf.state, "running");
  assert.equal(wf.kind, "workflow");
  assert.deepEqual(wf.tasks?.map((t) => t.name), ["a", "b", "c", "join"]);
  const submitted = byName(wf);
  assert.equal(submitted.a.state, "ready");
  assert.equal(submitted.a.depends_on, undefined, "a task that waits for none has no depends_on");
  for (const name of ["b", "c", "join"]) assert.equal(submitted[name].state, "waiting", `${name} waits`);
  assert.deepEqual(submitted.b.depends_on, [submitted.a.id]);
  assert.deepEqual([...(submitted.join.depends_on ?? [])].sort(), [submitted.b.id, submitted.c.id].sort());
  assert.equal(submitted.b.queue, right);
  for (const t of Object.values(submitted)) assert.equal(t.workflow, wf.id);
  assert.deepEqual(wf.counts, { waiting: 3, scheduled: 0, ready: 1, running: 0, succeeded: 0, dead: 0, cancelled: 0 });
  assert.equal((await rota.queues.stats(right)).counts.waiting, 2);

  const ran: string[] = [];
  const inputs: Record<string, DependencyResult[] | undefined> = {};
  const handler = async (task: ClaimedTask) => {
    const { name } = task.payload as { name: string };
    ran.push(name);
    inputs[name] = task.dependencies;
    return { ran: name };
  };
  const stop = new AbortController();
  const workers = [left, right].map((q) => new Worker(rota, q, handler, { concurrency: 4, pollWaitMs: 200 }).run(stop.signal));
  const done = await eventually(async () => {
    const now = await rota.workflows.get(wf.id);
    return now.state !== "running" && now;
  }, "the workflow to finish");
  stop.abort();
  await Promise.all(workers);

  assert.equal(done.state, "succeeded");
  assert.deepEqual(done.counts, { waiting: 0, scheduled: 0, ready: 0, running: 0, succeeded: 4, dead: 0, cancelled: 0 });
  assert.equal(ran.length, 4);
  assert.equal(ran[0], "a");
  assert.equal(ran[3], "join");
  assert.deepEqual(byName(done).join.result, { ran: "join" });

  // The join, when claimed, carries how b and c ended and their results, in depends_on order.
  assert.equal(inputs.a, undefined, "a task that waited for none carries no dependencies");
  assert.deepEqual(inputs.b, [{ id: submitted.a.id, queue: left, kind: "step", state: "succeeded", result: { ran: "a" } }]);
  const expected: Record<string, DependencyResult> = {
    [submitted.b.id]: { id: submitted.b.id, queue: right, kind: "step", state: "succeeded", result: { ran: "b" } },
    [submitted.c.id]: { id: submitted.c.id, queue: left, kind: "step", state: "succeeded", result: { ran: "c" } },
  };
  assert.deepEqual(inputs.join, submitted.join.depends_on?.map((id) => expected[id]));

  // Listed without its tasks; the iterator pages through.
  const page = await rota.workflows.list({ limit: 10 });
  const listed = page.workflows.find((w) => w.id === wf.id);
  assert.ok(listed, "the workflow is listed");
  assert.equal(listed.state, "succeeded");
  assert.equal(listed.tasks, undefined);
  assert.equal(listed.counts.succeeded, 4);

  // Cancelling a workflow cancels every task not final.
  const other = await rota.workflows.submit([
    { name: "first", queue: left, kind: "later", delay_ms: 60_000 },
    { name: "second", queue: right, kind: "later", depends_on: ["first"] },
  ]);
  const cancelled = await rota.workflows.cancel(other.id);
  assert.equal(cancelled.state, "cancelled");
  assert.equal(cancelled.counts.cancelled, 2);
  const ids: string[] = [];
  for await (const w of rota.workflows.iterate({ limit: 1 })) ids.push(w.id);
  assert.deepEqual(ids, [other.id, wf.id], "newest first, one page at a time");
});

test("test_s16_depends_on_waits_for_its_dependency", async () => {
  const queue = queueName("s16-dep");
  const first = await rota.tasks.enqueue(queue, { kind: "first" });
  const second = await rota.tasks.enqueue(queue, { kind: "second", depends_on: [first.id] });
  assert.equal(second.state, "waiting");
  assert.deepEqual(second.depends_on, [first.id]);
  assert.equal((await rota.queues.stats(queue)).counts.waiting, 1);

  const claimed = await rota.tasks.claim(queue, { worker: "w", max: 10 });
  assert.deepEqual(claimed.map((t) => t.id), [first.id], "a waiting task is not claimed");
  assert.equal(claimed[0].dependencies, undefined, "a task that waited for none carries no dependencies");
  await rota.tasks.complete(first.id, claimed[0].lease!.token!, { rows: [1, 2] });
  const released = await eventually(async () => {
    const t = await rota.tasks.get(second.id);
    return t.state !== "waiting" && t;
  }, "the dependent to be released");
  assert.equal(released.state, "ready");
  const [dependent] = await rota.tasks.claim(queue, { worker: "w", max: 10 });
  assert.equal(dependent.id, second.id);
  assert.deepEqual(dependent.dependencies, [{ id: first.id, queue, kind: "first", state: "succeeded", result: { rows: [1, 2] } }]);
  await rota.tasks.complete(second.id, dependent.lease!.token!);

  // A dependency that ends cancelled cancels its dependent, unless it runs anyway.
  const gone = await rota.tasks.enqueue(queue, { kind: "gone", delay_ms: 60_000 });
  const cancels = await rota.tasks.enqueue(queue, { kind: "k", depends_on: [gone.id] });
  const runs = await rota.tasks.enqueue(queue, { kind: "k", depends_on: [gone.id], on_dependency_failure: "run" });
  assert.equal(cancels.on_dependency_failure, undefined, "the default is not shown");
  assert.equal(runs.on_dependency_failure, "run");
  await rota.tasks.cancel(gone.id);
  const [c, r] = await eventually(async () => {
    const both = await Promise.all([rota.tasks.get(cancels.id), rota.tasks.get(runs.id)]);
    return both.every((t) => t.state !== "waiting") && both;
  }, "both dependents to move");
  assert.equal(c.state, "cancelled");
  assert.ok(c.errors.at(-1)?.message.includes(gone.id), `the reason names the dependency: ${c.errors.at(-1)?.message}`);
  assert.equal(r.state, "ready");
});

test("test_s16_a_cycle_is_refused_with_the_servers_message", async () => {
  const queue = queueName("s16-cycle");
  const before = (await rota.workflows.list()).workflows.length;
  const err = await rota.workflows
    .submit([
      { name: "x", queue, depends_on: ["z"] },
      { name: "y", queue, depends_on: ["x"] },
      { name: "z", queue, depends_on: ["y"] },
    ])
    .catch((e: unknown) => e);
  assert.ok(err instanceof RotaError, `a RotaError, got ${err}`);
  assert.equal(err.status, 422);
  assert.match(err.message, /the dependencies form a cycle: \w -> \w -> \w -> \w/);
  const unknown = await rota.workflows.submit([{ name: "x", queue, depends_on: ["nope"] }]).catch((e: unknown) => e);
  assert.ok(unknown instanceof RotaError && unknown.status === 422);
  assert.match(unknown.message, /`nope` is not the name of a task in this workflow/);
  assert.equal((await rota.workflows.list()).workflows.length, before, "nothing was stored");
  await assert.rejects(rota.tasks.list(queue), (e: unknown) => e instanceof RotaError && e.status === 404, "not even the queue was made");
});

test("test_s16_batch_callback_runs_once_with_the_members_outcomes", async () => {
  const members = queueName("s16-batch");
  const done = queueName("s16-batch-done");
  const batch = await rota.batches.submit({
    tasks: [
      { queue: members, kind: "good", payload: { n: 1 } },
      { queue: members, kind: "bad", max_attempts: 1 },
      { queue: members, kind: "late", delay_ms: 60_000 },
    ],
    callback: { queue: done, kind: "publish" },
  });
  assert.equal(batch.kind, "batch");
  assert.equal(batch.state, "running");
  assert.equal(batch.tasks?.map((t) => t.name).at(-1), "callback", "the callback is the last task");
  assert.equal(batch.tasks?.length, 4);
  const [good, bad, late, callback] = (batch.tasks ?? []).map((t) => t.task);
  assert.equal(callback.state, "waiting");
  assert.equal(callback.queue, done);
  for (const t of [good, bad, late, callback]) assert.equal(t.workflow, batch.id);
  assert.equal(late.state, "scheduled");

  // Read back as a batch, and as a workflow; a plain workflow is not a batch.
  const read = await rota.batches.get(batch.id);
  assert.equal(read.kind, "batch");
  assert.deepEqual(read.tasks?.map((t) => t.task.id), [good.id, bad.id, late.id, callback.id]);
  assert.equal((await rota.workflows.get(batch.id)).kind, "batch");
  const plain = await rota.workflows.submit([{ name: "only", queue: members, kind: "plain", delay_ms: 60_000 }]);
  const notBatch = await rota.batches.get(plain.id).catch((e: unknown) => e);
  assert.ok(notBatch instanceof RotaError, `a RotaError, got ${notBatch}`);
  assert.equal(notBatch.status, 404);
  assert.equal(notBatch.code, "batch_not_found");
  await rota.workflows.cancel(plain.id);

  const ran: string[] = [];
  const summaries: (BatchSummary | undefined)[] = [];
  const stop = new AbortController();
  const workers = [
    new Worker(
      rota,
      members,
      (task) => {
        ran.push(task.kind);
        assert.equal(task.batch, undefined, "a member carries no batch");
        if (task.kind === "bad") throw new Error("bad member");
        return { ok: task.kind };
      },
      { concurrency: 2, pollWaitMs: 200 },
    ),
    new Worker(
      rota,
      done,
      (task) => {
        ran.push(task.kind);
        summaries.push(task.batch);
        return { published: true };
      },
      { concurrency: 2, pollWaitMs: 200 },
    ),
  ].map((w) => w.run(stop.signal));

  // good succeeds, bad dies on its only attempt; the callback still waits for late.
  await eventually(async () => {
    const [g, b] = await Promise.all([rota.tasks.get(good.id), rota.tasks.get(bad.id)]);
    return g.state === "succeeded" && b.state === "dead";
  }, "the good member to succeed and the bad one to die");
  assert.equal((await rota.tasks.get(callback.id)).state, "waiting", "the callback waits for every member");
  await rota.tasks.cancel(late.id);

  const finished = await eventually(async () => {
    const now = await rota.batches.get(batch.id);
    return now.state !== "running" && now;
  }, "the batch to finish");
  stop.abort();
  await Promise.all(workers);

  assert.deepEqual(ran.filter((k) => k === "publish"), ["publish"], "the callback ran once");
  assert.deepEqual(summaries, [{ id: batch.id, succeeded: [good.id], dead: [bad.id], cancelled: [late.id] }]);
  const ended = Object.fromEntries((finished.tasks ?? []).map((t) => [t.name, t.task]));
  assert.equal(ended.callback.state, "succeeded");
  assert.deepEqual(ended.callback.result, { published: true });
  assert.deepEqual(finished.counts, { waiting: 0, scheduled: 0, ready: 0, running: 0, succeeded: 2, dead: 1, cancelled: 1 });
});

test("test_s16_batch_only_on_success", async () => {
  const members = queueName("s16-oos");
  const done = queueName("s16-oos-done");

  // A dead member cancels the callback.
  const failing = await rota.batches.submit({
    tasks: [
      { queue: members, kind: "ok" },
      { queue: members, kind: "dies", max_attempts: 1 },
    ],
    callback: { queue: done, kind: "publish" },
    only_on_success: true,
  });
  const [ok, dies, callback] = (failing.tasks ?? []).map((t) => t.task);
  const claimed = await rota.tasks.claim(members, { worker: "w", max: 10 });
  assert.deepEqual(claimed.map((t) => t.id).sort(), [ok.id, dies.id].sort());
  for (const t of claimed) {
    if (t.id === ok.id) await rota.tasks.complete(t.id, t.lease!.token!);
    else await rota.tasks.fail(t.id, t.lease!.token!, "broken");
  }
  assert.equal((await rota.tasks.get(dies.id)).state, "dead");
  const cancelled = await eventually(async () => {
    const t = await rota.tasks.get(callback.id);
    return t.state !== "waiting" && t;
  }, "the callback to be cancelled");
  assert.equal(cancelled.state, "cancelled");
  assert.deepEqual(await rota.tasks.claim(done, { worker: "w", max: 10 }), [], "the cancelled callback is never claimed");

  // When every member succeeds, the callback runs, and a direct claim carries the batch.
  const passing = await rota.batches.submit({
    tasks: [{ queue: members, kind: "ok" }, { queue: members, kind: "ok" }],
    callback: { queue: done, kind: "publish" },
    only_on_success: true,
  });
  const ids = (passing.tasks ?? []).slice(0, 2).map((t) => t.task.id);
  for (const t of await rota.tasks.claim(members, { worker: "w", max: 10 })) await rota.tasks.complete(t.id, t.lease!.token!);
  const [cb] = await eventually(async () => {
    const got = await rota.tasks.claim(done, { worker: "w", max: 10 });
    return got.length > 0 && got;
  }, "the callback to be released");
  assert.equal(cb.id, passing.tasks?.at(-1)?.task.id);
  assert.deepEqual(cb.batch, { id: passing.id, succeeded: ids, dead: [], cancelled: [] });
  await rota.tasks.complete(cb.id, cb.lease!.token!);
  assert.equal((await rota.batches.get(passing.id)).state, "succeeded");
});
