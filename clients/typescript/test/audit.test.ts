import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type AuditEntry, RotaError, type RotaClient } from "../src/index.js";
import { TestServer, queueName } from "./harness.js";

// S22: the audit log. The admin's changes (a queue's settings, a pause, a new key) are read back
// newest first with who made them, what they were done to and the settings before and after;
// filters by action prefix, target, time and tenant; pages of one followed through
// `next_cursor` give each entry once; a producer's key gets 403 and `limit: 0` a 422.

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

// Entries of the same millisecond are ordered by their (random) ids: the tests leave this much
// between changes whose order they check.
const APART_MS = 10;

const isStatus = (status: number, code?: string) => (e: unknown) =>
  e instanceof RotaError && e.status === status && (code === undefined || e.code === code);

const ids = (entries: AuditEntry[]) => entries.map((e) => e.id);

/** The admin's own actor, `key:<its key id>`, from whoami's `key <id>`. */
async function adminActor(): Promise<string> {
  const { principal } = await rota.whoami();
  assert.match(principal, /^key [0-9a-f]+$/);
  return `key:${principal.slice("key ".length)}`;
}

test("test_s22_the_audit_log_records_the_admins_changes", async () => {
  const actor = await adminActor();
  const queue = queueName("s22");
  await rota.queues.update(queue, { max_attempts: 7 });
  await sleep(APART_MS);
  await rota.queues.pause(queue);
  await sleep(APART_MS);
  const key = await rota.keys.create({ roles: ["producer"], name: "s22-producer" });

  // The queue's two entries, newest first, and the key's.
  const page = await rota.audit.list({ target: `queues/${queue}` });
  assert.equal(page.next_cursor, null);
  assert.deepEqual(page.entries.map((e) => e.action), ["queue.pause", "queue.update"]);
  const [paused, updated] = page.entries as [AuditEntry, AuditEntry];
  for (const entry of page.entries) {
    assert.equal(entry.actor, actor);
    assert.equal(entry.tenant, "default");
    assert.equal(entry.target, `queues/${queue}`);
    assert.match(entry.id, /^[0-9a-f]{16}$/);
    assert.ok(entry.request_id && entry.source, "the request's id and address are kept");
  }
  assert.equal(updated.after?.max_attempts, 7);
  assert.equal(updated.before?.max_attempts, 25, "the default before the change");
  assert.ok(Date.parse(paused.at) > Date.parse(updated.at));
  const keyEntries = (await rota.audit.list({ target: `keys/${key.id}` })).entries;
  assert.equal(keyEntries.length, 1);
  const created = keyEntries[0]!;
  assert.equal(created.action, "key.create");
  assert.equal(created.actor, actor);
  assert.ok(Date.parse(created.at) > Date.parse(paused.at));
  assert.deepEqual(created.after?.roles, ["producer"]);
  assert.equal(created.after?.name, "s22-producer");
  assert.ok(!("token" in (created.after ?? {})), "no secret is written");

  // The exact action, and every action of an object (a trailing dot).
  const exact = await rota.audit.list({ action: "queue.update", target: `queues/${queue}` });
  assert.deepEqual(ids(exact.entries), [updated.id]);
  const prefixed = (await rota.audit.list({ action: "queue.", actor, limit: 500 })).entries;
  assert.ok(prefixed.every((e) => e.action.startsWith("queue.")), "only queue actions");
  assert.ok(ids(prefixed).includes(paused.id) && ids(prefixed).includes(updated.id));
  assert.ok(!ids(prefixed).includes(created.id));
  // The admin's own tenant by name; none from a tenant without entries.
  const own = await rota.audit.list({ tenant: "default", target: `queues/${queue}` });
  assert.deepEqual(ids(own.entries), [paused.id, updated.id]);
  assert.deepEqual((await rota.audit.list({ tenant: "s22-no-such-tenant" })).entries, []);

  // since is inclusive and until exclusive.
  const atUpdate = await rota.audit.list({ target: `queues/${queue}`, since: updated.at, until: paused.at });
  assert.deepEqual(ids(atUpdate.entries), [updated.id]);
  const afterUpdate = new Date(Date.parse(updated.at) + 1).toISOString();
  assert.deepEqual(ids((await rota.audit.list({ target: `queues/${queue}`, since: afterUpdate })).entries), [paused.id]);
  assert.deepEqual((await rota.audit.list({ target: `queues/${queue}`, until: updated.at })).entries, []);

  // Pages of one, newest first, each entry once, until next_cursor is null.
  const since = updated.at;
  const whole = await rota.audit.list({ actor, since, limit: 500 });
  assert.equal(whole.next_cursor, null);
  assert.ok(whole.entries.length >= 3);
  const seen: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i <= whole.entries.length; i++) {
    const one = await rota.audit.list({ actor, since, limit: 1, cursor });
    assert.equal(one.entries.length, 1);
    seen.push(one.entries[0]!.id);
    cursor = one.next_cursor ?? undefined;
    if (cursor === undefined) break;
  }
  assert.equal(cursor, undefined, "the pages did not end");
  assert.deepEqual(seen, ids(whole.entries));
  assert.equal(new Set(seen).size, seen.length, "each entry once");
  for (const id of [created.id, paused.id, updated.id]) assert.ok(seen.includes(id), id);
  // iterate follows the cursors itself.
  const iterated: string[] = [];
  for await (const entry of rota.audit.iterate({ actor, since, limit: 1 })) iterated.push(entry.id);
  assert.deepEqual(iterated, seen);

  // A producer lacks audit:read.
  const refused = await server.client({ token: key.token }).audit.list().catch((e: unknown) => e);
  assert.ok(isStatus(403, "forbidden")(refused), `a 403, got ${refused}`);
  assert.match((refused as RotaError).message, /audit:read/);
  // A limit out of 1..500, and a cursor this server did not give: 422.
  const bad = await rota.audit.list({ limit: 0 }).catch((e: unknown) => e);
  assert.ok(isStatus(422, "invalid_field")(bad), `a 422, got ${bad}`);
  assert.match((bad as RotaError).message, /limit/);
  await assert.rejects(rota.audit.list({ cursor: "not-a-cursor" }), isStatus(422, "invalid_field"));
  await assert.rejects(rota.audit.list({ limit: 501 }), isStatus(422, "invalid_field"));
  // A time that is not RFC 3339: 400.
  await assert.rejects(rota.audit.list({ since: "yesterday" }), isStatus(400));
  await rota.keys.revoke(key.id);
});

test("test_s22_a_tenant_admin_reads_only_its_own_tenant", async () => {
  const queue = queueName("s22-tenant-admin");
  await rota.queues.update(queue, { max_attempts: 3 });
  const key = await rota.keys.create({ roles: ["tenant-admin"], name: "s22-tenant-admin" });
  const tenantAdmin = server.client({ token: key.token });
  const { entries } = await tenantAdmin.audit.list({ target: `queues/${queue}` });
  assert.deepEqual(
    entries.map((e) => [e.action, e.after]),
    [["queue.update", { max_attempts: 3 }]],
  );
  await assert.rejects(tenantAdmin.audit.list({ tenant: "s22-another-tenant" }), isStatus(403, "forbidden"));
  await rota.keys.revoke(key.id);
});
