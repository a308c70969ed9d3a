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

const isStatus = (status: number, code?: string) => (e: unknown) =>
  e instanceof RotaError && e.status === status && (code === undefined || e.code === code);

test("test_s12_admin_tenants_keys_and_roles", async () => {
  // Tenants.
  const name = `acme${process.pid}`;
  const tenant = await rota.tenants.create({ name, limits: { requests_per_minute: 1_000 } });
  assert.equal(tenant.name, name);
  assert.ok((await rota.tenants.list()).some((x) => x.name === name));
  assert.equal((await rota.tenants.get(name)).limits?.requests_per_minute, 1_000);
  const patched = await rota.tenants.update(name, { event_retention_ms: 86_400_000 });
  assert.equal(patched.event_retention_ms, 86_400_000);

  // A key in that tenant (acting in it as the admin), used with its own token.
  const inTenant = server.client({ tenant: name });
  const producer = await inTenant.keys.create({ roles: ["producer"], name: "producer" });
  assert.ok(producer.token.startsWith("rota_"));
  const asProducer = server.client({ token: producer.token });
  const me = await asProducer.whoami();
  assert.equal(me.tenant, name);
  assert.deepEqual(me.roles, ["producer"]);
  const queue = queueName("s12");
  const task = await asProducer.tasks.enqueue(queue, { kind: "k" });
  assert.equal((await inTenant.tasks.get(task.id)).id, task.id);
  await assert.rejects(rota.tasks.get(task.id), isStatus(404), "another tenant's task is not found");
  await assert.rejects(asProducer.tasks.claim(queue, { worker: "w" }), isStatus(403, "forbidden"));
  assert.ok((await inTenant.keys.list()).some((k) => k.id === producer.id));
  assert.equal((await inTenant.keys.get(producer.id)).name, "producer");

  // A custom role, a key that holds it, and revocation.
  const role = await inTenant.roles.put("claimer", [
    { resource: `queues/${queue}`, action: "tasks:claim", effect: "allow" },
    { resource: "queues/*", action: "tasks:read", effect: "allow" },
  ]);
  assert.equal(role.builtin, false);
  assert.equal((await inTenant.roles.get("claimer")).rules.length, 2);
  const roles = await inTenant.roles.list();
  assert.ok(roles.some((r) => r.name === "admin" && r.builtin));
  assert.ok(roles.some((r) => r.name === "claimer"));
  const claimer = await inTenant.keys.create({ roles: ["claimer"] });
  const asClaimer = server.client({ token: claimer.token });
  assert.equal((await asClaimer.tasks.claim(queue, { worker: "w" }))[0]?.id, task.id);
  await assert.rejects(inTenant.roles.delete("claimer"), isStatus(409), "a live key holds it");
  assert.ok((await inTenant.keys.revoke(claimer.id)).revoked_at);
  await assert.rejects(asClaimer.tasks.get(task.id), isStatus(401, "unauthorized"));
  await inTenant.roles.delete("claimer");
  await assert.rejects(inTenant.roles.get("claimer"), isStatus(404));

  await rota.tenants.delete(name);
  await assert.rejects(rota.tenants.get(name), isStatus(404));
});
