import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { RotaError, type RotaClient } from "../src/index.js";
import { TestServer, eventually, queueName } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

test("test_s09_schedules_create_list_get_delete", async () => {
  const queue = queueName("s09");
  const name = `nightly-${process.pid}`;
  const created = await rota.schedules.put(name, { queue, every_ms: 3_600_000, kind: "report", payload: { full: true } });
  assert.equal(created.name, name);
  assert.equal(created.queue, queue);
  assert.equal(created.every_ms, 3_600_000);
  assert.ok(created.next_run_at);
  assert.ok((await rota.schedules.list()).some((s) => s.name === name));
  const got = await rota.schedules.get(name);
  assert.deepEqual(got.payload, { full: true });

  assert.equal((await rota.schedules.pause(name)).paused, true);
  assert.equal((await rota.schedules.resume(name)).paused, false);
  await rota.schedules.trigger(name);
  const fired = await eventually(async () => (await rota.tasks.list(queue)).tasks[0], "the triggered task");
  assert.equal(fired.kind, "report");

  await rota.schedules.delete(name);
  await assert.rejects(rota.schedules.get(name), (e: unknown) => e instanceof RotaError && e.status === 404);
  assert.ok(!(await rota.schedules.list()).some((s) => s.name === name));
});
