import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { RotaError, type RotaClient } from "../src/index.js";
import { TestServer } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

const isStatus = (status: number, code?: string) => (e: unknown) =>
  e instanceof RotaError && e.status === status && (code === undefined || e.code === code);

/** Lists the queues with a client of the token's own: resolves when the token is accepted. */
const useToken = (token: string) => server.client({ token }).queues.list();

test("test_s19_a_rotated_key_keeps_its_id_and_the_old_token_ends_with_the_grace", async () => {
  const made = await rota.keys.create({ roles: ["reader"], name: "s19-rotation" });
  assert.equal(made.rotated_at, null);
  assert.equal(made.previous_secret_until, null);
  await useToken(made.token);

  // grace 0: the old token is refused at once.
  const first = await rota.keys.rotate(made.id, 0);
  assert.equal(first.id, made.id);
  assert.deepEqual(first.roles, ["reader"]);
  assert.ok(first.token.startsWith(`rota_${made.id}_`), first.token);
  assert.notEqual(first.token, made.token);
  assert.ok(first.rotated_at, "rotated_at is set");
  assert.equal(first.previous_secret_until, null);
  await useToken(first.token);
  await assert.rejects(useToken(made.token), isStatus(401, "unauthorized"), "the old token is refused");

  // An hour's grace: the token just replaced works beside the new one until then.
  const second = await rota.keys.rotate(made.id, 3_600_000);
  assert.ok(second.token.startsWith(`rota_${made.id}_`), second.token);
  assert.notEqual(second.token, first.token);
  assert.ok(second.rotated_at && second.previous_secret_until, "rotated_at and previous_secret_until are set");
  assert.ok(Date.parse(second.previous_secret_until) > Date.parse(second.rotated_at));
  await useToken(second.token);
  await useToken(first.token);
  await assert.rejects(useToken(made.token), isStatus(401, "unauthorized"));
  assert.equal((await rota.keys.get(made.id)).previous_secret_until, second.previous_secret_until);
  await rota.keys.revoke(made.id);
});

test("test_s19_a_grace_over_72_hours_is_a_422_naming_grace_ms", async () => {
  const made = await rota.keys.create({ roles: ["reader"], name: "s19-grace" });
  const err = await rota.keys.rotate(made.id, 259_200_001).catch((e: unknown) => e);
  assert.ok(err instanceof RotaError, `a RotaError, got ${err}`);
  assert.equal(err.status, 422);
  assert.equal(err.code, "invalid_field");
  assert.match(err.message, /grace_ms/);
  assert.equal((await rota.keys.get(made.id)).rotated_at, null, "nothing changed");
  await rota.keys.revoke(made.id);
});
