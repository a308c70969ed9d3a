import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { RotaClient } from "../src/index.js";
import { TestServer, queueName } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

test("test_s01_enqueue_one_and_get", async () => {
  const queue = queueName("s01");
  const task = await rota.tasks.enqueue(queue, { kind: "email.send", payload: { to: "ada@example.com" }, priority: 5, tags: ["a"] });
  assert.equal(task.duplicate, false);
  assert.equal(task.state, "ready");
  const got = await rota.tasks.get(task.id);
  assert.equal(got.id, task.id);
  assert.equal(got.queue, queue);
  assert.equal(got.kind, "email.send");
  assert.deepEqual(got.payload, { to: "ada@example.com" });
  assert.equal(got.priority, 5);
  assert.deepEqual(got.tags, ["a"]);
});

test("test_s02_batch_and_list_with_paging", async () => {
  const queue = queueName("s02");
  const tasks = await rota.tasks.enqueueBatch(
    queue,
    Array.from({ length: 25 }, (_, i) => ({ kind: "k", payload: { i } })),
  );
  assert.equal(tasks.length, 25);
  const seen = new Set<string>();
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await rota.tasks.list(queue, { limit: 10, cursor });
    assert.ok(page.tasks.length <= 10);
    for (const t of page.tasks) seen.add(t.id);
    cursor = page.next_cursor ?? undefined;
    pages++;
  } while (cursor);
  assert.equal(pages, 3);
  assert.deepEqual([...seen].sort(), tasks.map((t) => t.id).sort());
  // The same through the iterator.
  const all: string[] = [];
  for await (const t of rota.tasks.iterate(queue, { limit: 7 })) all.push(t.id);
  assert.equal(all.length, 25);
  assert.equal(new Set(all).size, 25);
});

test("test_s03_get_with_wait_ms_returns_when_finished", async () => {
  const queue = queueName("s03");
  const task = await rota.tasks.enqueue(queue, { kind: "k" });
  const [claimed] = await rota.tasks.claim(queue, { worker: "w", max: 1 });
  assert.equal(claimed.id, task.id);
  const started = Date.now();
  const waiting = rota.tasks.get(task.id, { waitMs: 10_000 });
  setTimeout(() => void rota.tasks.complete(task.id, claimed.lease!.token!, { ok: 1 }), 300);
  const done = await waiting;
  const took = Date.now() - started;
  assert.equal(done.state, "succeeded");
  assert.deepEqual(done.result, { ok: 1 });
  assert.ok(took >= 250 && took < 5_000, `the wait took ${took} ms`);
  // A wait that runs out answers the task as it is.
  const other = await rota.tasks.enqueue(queue, { kind: "k", delay_ms: 60_000 });
  const still = await rota.tasks.get(other.id, { waitMs: 200 });
  assert.equal(still.state, "scheduled");
});

test("test_s07_unique_key_keep_and_replace", async () => {
  const queue = queueName("s07");
  const first = await rota.tasks.enqueue(queue, { kind: "k", payload: 1, unique_key: "u1", delay_ms: 60_000 });
  assert.equal(first.duplicate, false);
  const kept = await rota.tasks.enqueue(queue, { kind: "k", payload: 2, unique_key: "u1", on_duplicate: "keep" });
  assert.equal(kept.duplicate, true);
  assert.equal(kept.replaced, false);
  assert.equal(kept.id, first.id);
  assert.equal(kept.payload, 1);
  const replaced = await rota.tasks.enqueue(queue, { kind: "k2", payload: 3, unique_key: "u1", on_duplicate: "replace" });
  assert.equal(replaced.duplicate, true);
  assert.equal(replaced.replaced, true);
  assert.equal(replaced.id, first.id);
  const now = await rota.tasks.get(first.id);
  assert.equal(now.payload, 3);
  assert.equal(now.kind, "k2");
  assert.equal(now.state, "ready");
  const page = await rota.tasks.list(queue, { unique_key: "u1" });
  assert.deepEqual(page.tasks.map((t) => t.id), [first.id]);
  // run-now, kill and delete on the way.
  const later = await rota.tasks.enqueue(queue, { kind: "k", delay_ms: 60_000 });
  assert.equal((await rota.tasks.runNow(later.id)).state, "ready");
  assert.equal((await rota.tasks.kill(later.id, "not needed")).state, "dead");
  assert.equal((await rota.tasks.delete(later.id)).id, later.id);
});
