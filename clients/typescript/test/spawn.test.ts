import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { type ClaimedTask, type Json, RotaError, type RotaClient, type Spawned, Worker } from "../src/index.js";
import { TestServer, eventually, queueName } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

test("test_s17_handler_spawns_and_runs_again_with_their_results", async () => {
  const parents = queueName("s17-parent");
  const pages = queueName("s17-pages");
  const parent = await rota.tasks.enqueue(parents, { kind: "listing", payload: { pages: 3 } });

  const runs: ClaimedTask[] = [];
  let spawned: Spawned | undefined;
  let oldLease: string | undefined;
  let abortedAfterSpawn = false;
  const stop = new AbortController();
  const parentWorker = new Worker(
    rota,
    parents,
    async (task, signal): Promise<Json> => {
      runs.push(task);
      if (task.dependencies === undefined) {
        // The first run finds three pages and waits for them.
        const n = (task.payload as { pages: number }).pages;
        oldLease = task.lease?.token ?? undefined;
        spawned = await rota.tasks.spawn(
          task,
          Array.from({ length: n }, (_, i) => ({ queue: pages, kind: "page", payload: { i } })),
        );
        // Heartbeats after the spawn (every 20 ms) would be answered lease_lost: not an abort.
        await sleep(200);
        abortedAfterSpawn = signal.aborted;
        return { ignored: "the run that spawned reports nothing" };
      }
      // The second run merges what the spawned tasks returned.
      const rows = task.dependencies.map((d) => (d.result as { row: number }).row);
      return { rows };
    },
    { concurrency: 2, pollWaitMs: 200, heartbeatMs: 20, leaseMs: 5_000 },
  );
  const pageWorker = new Worker(
    rota,
    pages,
    async (task) => {
      await sleep(50);
      return { row: (task.payload as { i: number }).i * 10 };
    },
    { concurrency: 3, pollWaitMs: 200 },
  );
  const running = [parentWorker.run(stop.signal), pageWorker.run(stop.signal)];

  const done = await eventually(async () => {
    const t = await rota.tasks.get(parent.id);
    return t.state === "succeeded" && t;
  }, "the spawner to run again and succeed");
  stop.abort();
  const [parentStats, pageStats] = await Promise.all(running);

  // The spawn's answer: the spawner waiting, and the three tasks in the other queue.
  assert.ok(spawned, "the handler spawned");
  assert.equal(spawned.task.id, parent.id);
  assert.equal(spawned.task.state, "waiting");
  assert.equal(spawned.tasks.length, 3);
  const ids = spawned.tasks.map((t) => t.id);
  for (const t of spawned.tasks) assert.equal(t.queue, pages);
  assert.deepEqual(spawned.task.depends_on, ids);
  assert.equal(abortedAfterSpawn, false, "the handler's signal did not fire after the spawn");

  // The run that spawned reported nothing; the second run (the same attempt) got the results.
  assert.equal(runs.length, 2);
  assert.equal(runs[0].dependencies, undefined);
  assert.equal(runs[1].attempt, runs[0].attempt, "the second run is the same attempt");
  assert.deepEqual(
    runs[1].dependencies,
    ids.map((id, i) => ({ id, queue: pages, kind: "page", state: "succeeded", result: { row: i * 10 } })),
  );
  assert.deepEqual(done.result, { rows: [0, 10, 20] });
  assert.deepEqual(
    { succeeded: parentStats.succeeded, failed: parentStats.failed, leaseLost: parentStats.leaseLost, spawned: parentStats.spawned },
    { succeeded: 1, failed: 0, leaseLost: 0, spawned: 1 },
  );
  assert.equal(pageStats.succeeded, 3);

  // The first run's lease was given up: completing under it is lease_lost.
  assert.ok(oldLease);
  const lost = await rota.tasks.complete(parent.id, oldLease, { late: true }).catch((e: unknown) => e);
  assert.ok(lost instanceof RotaError && lost.status === 409 && lost.leaseLost, `lease_lost, got ${lost}`);
});

test("test_s17_spawn_with_a_wrong_lease_is_a_409_and_stores_nothing", async () => {
  const queue = queueName("s17-lease");
  const other = queueName("s17-lease-other");
  const task = await rota.tasks.enqueue(queue, { kind: "k" });
  const [claimed] = await rota.tasks.claim(queue, { worker: "w" });
  assert.equal(claimed.id, task.id);

  const err = await rota.tasks.spawn(task.id, "not-the-lease", [{ queue: other, kind: "x" }]).catch((e: unknown) => e);
  assert.ok(err instanceof RotaError, `a RotaError, got ${err}`);
  assert.equal(err.status, 409);
  assert.equal(err.code, "lease_lost");

  // Nothing stored: no task in the other queue, and the task still runs under its lease.
  const listed = await rota.tasks.list(other).catch((e: unknown) => e);
  if (listed instanceof RotaError) assert.equal(listed.status, 404, "the queue was never made");
  else assert.deepEqual((listed as { tasks: unknown[] }).tasks, [], "no task was stored");
  const now = await rota.tasks.get(task.id);
  assert.equal(now.state, "running");
  assert.equal(now.depends_on, undefined);
  const completed = await rota.tasks.complete(task.id, claimed.lease!.token!, { ok: true });
  assert.equal(completed.state, "succeeded");
});

test("test_s17_open_batch_takes_members_until_closed", async () => {
  const members = queueName("s17-members");
  const done = queueName("s17-done");
  const batch = await rota.batches.submit({ tasks: [], callback: { queue: done, kind: "report" }, open: true });
  assert.equal(batch.kind, "batch");
  assert.equal(batch.open, true);
  assert.equal(batch.tasks?.length, 1, "only the callback");
  const callback = batch.tasks![0].task;
  assert.equal(callback.state, "waiting");

  // A member added after submission.
  const [member] = await rota.batches.add(batch.id, [{ queue: members, kind: "row", payload: { n: 1 } }]);
  assert.equal(member.queue, members);
  assert.equal(member.workflow, batch.id);
  assert.equal(member.state, "ready");
  const read = await rota.batches.get(batch.id);
  assert.equal(read.open, true);
  assert.deepEqual(read.tasks?.map((t) => t.task.id).sort(), [member.id, callback.id].sort());

  // Closed: open false, and closing again changes nothing. The callback still waits for the member.
  const closed = await rota.batches.close(batch.id);
  assert.equal(closed.open, false);
  assert.equal(closed.state, "running");
  assert.equal((await rota.batches.close(batch.id)).open, false);
  assert.deepEqual(await rota.tasks.claim(done, { worker: "w", max: 10 }), [], "the callback waits for the member");

  // The member ends; the callback runs, its claim carrying the batch's outcome.
  const [m] = await rota.tasks.claim(members, { worker: "w", max: 10 });
  assert.equal(m.id, member.id);
  await rota.tasks.complete(m.id, m.lease!.token!, { row: 1 });
  const [cb] = await eventually(async () => {
    const got = await rota.tasks.claim(done, { worker: "w", max: 10 });
    return got.length > 0 && got;
  }, "the callback to be released");
  assert.equal(cb.id, callback.id);
  assert.deepEqual(cb.batch, { id: batch.id, succeeded: [member.id], dead: [], cancelled: [] });
  await rota.tasks.complete(cb.id, cb.lease!.token!);
  const finished = await rota.batches.get(batch.id);
  assert.equal(finished.state, "succeeded");
  assert.equal(finished.open, false);

  // A closed batch refuses another member, and stores nothing.
  const refused = await rota.batches.add(batch.id, [{ queue: members, kind: "late" }]).catch((e: unknown) => e);
  assert.ok(refused instanceof RotaError, `a RotaError, got ${refused}`);
  assert.equal(refused.status, 409);
  assert.equal(refused.code, "conflict");
  assert.equal((await rota.batches.get(batch.id)).tasks?.length, 2);

  // A plain workflow is not a batch (422); an unknown id is a 404.
  const plain = await rota.workflows.submit([{ name: "only", queue: members, kind: "plain", delay_ms: 60_000 }]);
  const notBatch = await rota.batches.add(plain.id, [{ queue: members }]).catch((e: unknown) => e);
  assert.ok(notBatch instanceof RotaError && notBatch.status === 422, `a 422, got ${notBatch}`);
  await rota.workflows.cancel(plain.id);
  const unknown = await rota.batches.close("0190c1d2-0000-7000-8000-000000000000").catch((e: unknown) => e);
  assert.ok(unknown instanceof RotaError && unknown.status === 404, `a 404, got ${unknown}`);

  // Once every task of the batch ended, the log has its workflow.succeeded event.
  const event = await eventually(async () => {
    const page = await rota.events.page({ types: "workflow.*", queue: done });
    return page.events.find((e) => e.data.workflow === batch.id);
  }, "the batch's workflow.succeeded event");
  assert.equal(event.type, "workflow.succeeded");
  assert.equal(event.task_id, callback.id);
  assert.equal(event.data.state, "succeeded");
});
