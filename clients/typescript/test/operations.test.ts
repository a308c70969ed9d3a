import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { RotaError, type RotaClient } from "../src/index.js";
import { TestServer, queueName } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

test("maintenance_mode_refuses_writes_until_it_ends", async () => {
  assert.equal(await rota.maintenance.get(), null);
  const on = await rota.maintenance.set({ mode: "on", message: "upgrading" });
  assert.equal(on?.message, "upgrading");
  assert.equal(on?.refusing, true);
  const refused = await rota.tasks.enqueue(queueName("maint"), {}).catch((e: unknown) => e);
  assert.ok(refused instanceof RotaError && refused.status === 503 && refused.code === "maintenance");
  assert.ok(refused.retryAfter !== undefined && refused.retryAfter > 0);
  assert.equal((await rota.whoami()).maintenance?.message, "upgrading");
  await rota.maintenance.end();
  assert.equal(await rota.maintenance.get(), null);
  await rota.tasks.enqueue(queueName("maint"), {});
});

test("health_readiness_metrics_doctor_and_processes", async () => {
  assert.equal(await rota.healthy(), true);
  assert.equal((await rota.ready()).status, "ok");
  assert.match(await rota.metrics(), /rota_tasks_enqueued_total/);
  const report = await rota.doctor();
  assert.equal(typeof report.ok, "boolean");
  assert.ok(Array.isArray(report.findings));
  assert.deepEqual(await rota.processes.list(), []);
  await assert.rejects(rota.processes.quiet("no-such-worker"), (e: unknown) => e instanceof RotaError && e.status === 404);
  const ticket = await rota.events.ticket();
  assert.ok(ticket.ticket.length > 0);
});

test("heartbeat_progress_and_single_complete_and_fail", async () => {
  const queue = queueName("beat");
  await rota.tasks.enqueueBatch(queue, [{ kind: "a" }, { kind: "b", max_attempts: 1 }]);
  const [a, b] = await rota.tasks.claim(queue, { worker: "w", max: 2, lease_ms: 5_000 });
  const beat = await rota.tasks.heartbeat(a.id, a.lease!.token!, { lease_ms: 10_000, progress: { done: 50 } });
  assert.deepEqual(beat.progress, { done: 50 });
  assert.equal((await rota.tasks.complete(a.id, a.lease!.token!, [1, 2])).state, "succeeded");
  const lost = await rota.tasks.complete(a.id, a.lease!.token!).catch((e: unknown) => e);
  assert.ok(lost instanceof RotaError && lost.leaseLost, "completing twice is lease_lost");
  assert.equal((await rota.tasks.fail(b.id, b.lease!.token!, "broken")).state, "dead");
});

test("webhook_secret_rotation_callbacks_and_delivery_retry", async () => {
  const hook = await rota.webhooks.create({ url: "http://127.0.0.1:1025/never", events: ["task.dead"] });
  const rotated = await rota.webhooks.rotateSecret(hook.id, 1_000);
  assert.ok(rotated.secret && rotated.secret !== hook.secret);
  assert.ok(rotated.previous_secret_until);
  assert.deepEqual((await rota.webhooks.deliveries(hook.id)).deliveries, []);
  await assert.rejects(rota.webhooks.retryDelivery(hook.id, 999_999), (e: unknown) => e instanceof RotaError && e.status === 404);
  await rota.webhooks.delete(hook.id);

  assert.equal((await rota.webhooks.callbacks()).configured, false);
  const secret = await rota.webhooks.rotateCallbackSecret();
  assert.equal(secret.configured, true);
  assert.ok(secret.secret);
  const key = await rota.keys.create({ roles: ["reader"] });
  assert.equal((await rota.keys.revokeSessions(key.id)).id, key.id);
});
