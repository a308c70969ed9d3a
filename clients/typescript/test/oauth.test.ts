import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { RotaClient, RotaError } from "../src/index.js";
import { TestServer, queueName } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

const isError = (status: number, code: string) => (e: unknown) => e instanceof RotaError && e.status === status && e.code === code;

// S21: OAuth 2.0 client credentials: a key's id and token become an access token (Bearer, an
// hour) that acts as the key, narrowed by its scope; a client built with client credentials
// fetches and renews its own; a wrong secret is invalid_client, an unknown scope item
// invalid_scope; a revoked key ends its tokens (401 after the client's one retry).
test("test_s21_oauth_client_credentials", async () => {
  const key = await rota.keys.create({ roles: ["producer"], name: "s21-oauth" });
  const credentials = { clientId: key.id, clientSecret: key.token };
  const token = await rota.fetchToken(credentials);
  assert.equal(token.token_type, "Bearer");
  assert.equal(token.expires_in, 3600);
  assert.ok(token.scope.split(" ").includes("tasks:enqueue"), token.scope);
  // The access token is a bearer token like any other, acting as its key.
  assert.ok((await server.client({ token: token.access_token }).whoami()).principal.includes(key.id));

  // A client built with client credentials fetches its token itself.
  const queue = queueName("s21");
  const byCredentials = new RotaClient({ url: server.url, clientCredentials: credentials });
  const task = await byCredentials.tasks.enqueue(queue, { kind: "s21.k", payload: { n: 1 } });
  assert.deepEqual((await rota.tasks.get(task.id)).payload, { n: 1 });

  // Narrowed to reading the reports-* queues' tasks.
  await rota.tasks.enqueue("reports-eu", { kind: "s21.report" });
  await rota.tasks.enqueue("emails", { kind: "s21.email" });
  const narrowed = await rota.fetchToken({ ...credentials, scope: "tasks:read queues/reports-*" });
  assert.equal(narrowed.scope, "tasks:read queues/reports-*");
  const reader = server.client({ token: narrowed.access_token });
  assert.deepEqual((await reader.tasks.list("reports-eu")).tasks.map((t) => t.kind), ["s21.report"]);
  const refused = await reader.tasks.enqueue("reports-eu", { kind: "s21.report" }).catch((e: unknown) => e);
  assert.ok(isError(403, "forbidden")(refused), `a 403, got ${refused}`);
  assert.match((refused as RotaError).message, /scope/);
  await assert.rejects(reader.tasks.list("emails"), isError(403, "forbidden"));
  // The same scope given to a client built with client credentials, as a list.
  const scoped = new RotaClient({ url: server.url, clientCredentials: { ...credentials, scope: ["tasks:read", "queues/reports-*"] } });
  assert.equal((await scoped.tasks.list("reports-eu")).tasks.length, 1);
  await assert.rejects(scoped.tasks.list("emails"), isError(403, "forbidden"));

  // OAuth's errors become RotaErrors, the OAuth error as the code.
  const wrong = await rota.fetchToken({ clientId: key.id, clientSecret: `rota_${key.id}_${"0".repeat(64)}` }).catch((e: unknown) => e);
  assert.ok(isError(401, "invalid_client")(wrong), `invalid_client, got ${wrong}`);
  assert.ok((wrong as RotaError).message, "with OAuth's error_description");
  const badScope = await rota.fetchToken({ ...credentials, scope: "tasks:fly" }).catch((e: unknown) => e);
  assert.ok(isError(400, "invalid_scope")(badScope), `invalid_scope, got ${badScope}`);
  assert.match((badScope as RotaError).message, /tasks:fly/);

  // The event stream is opened with the access token too.
  for await (const event of byCredentials.events.follow({ queue })) {
    assert.equal(event.type, "task.enqueued");
    assert.equal(event.task_id, task.id);
    break;
  }

  // Revoking the key ends its tokens: the client's next request is refused, it asks for a new
  // token once, and that is refused too.
  await byCredentials.tasks.list(queue);
  await rota.keys.revoke(key.id);
  await assert.rejects(byCredentials.tasks.list(queue), isError(401, "invalid_client"));
});

test("test_s21_credentials_are_a_token_or_client_credentials", () => {
  assert.throws(
    () => new RotaClient({ url: server.url, token: "a-token", clientCredentials: { clientId: "k", clientSecret: "rota_k_s" } }),
    TypeError,
  );
});

/** A stand-in for the token endpoint and `GET /v1/queues`, as a `fetch`: tokens t1, t2... lasting `expiresIn` s, accepted while `accepting` and valid. */
function fakeServer(expiresIn = 3600, tokenDelayMs = 0) {
  const state = { forms: [] as Record<string, string>[], bearers: [] as string[], valid: new Set<string>(), accepting: true };
  const fake = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    const headers = new Headers(init?.headers);
    if (url.pathname === "/oauth/token") {
      assert.equal(headers.get("authorization"), null, "the token request carries no credential of the client's");
      assert.equal(headers.get("content-type"), "application/x-www-form-urlencoded");
      const form = Object.fromEntries(new URLSearchParams(String(init?.body)));
      await sleep(tokenDelayMs);
      state.forms.push(form);
      const token = `t${state.forms.length}`;
      state.valid.add(token);
      return Response.json({ access_token: token, token_type: "Bearer", expires_in: expiresIn, scope: "" });
    }
    const bearer = (headers.get("authorization") ?? "").replace(/^Bearer /, "");
    state.bearers.push(bearer);
    if (state.accepting && state.valid.has(bearer)) return Response.json({ queues: [] });
    return Response.json({ error: { code: "unauthorized", message: "not a valid token" } }, { status: 401 });
  };
  const client = (scope?: string) =>
    new RotaClient({ url: "http://rota.test", fetch: fake as typeof fetch, clientCredentials: { clientId: "k", clientSecret: "rota_k_s", scope } });
  return { state, client };
}

test("test_s21_a_token_is_renewed_before_it_ends", async () => {
  const { state, client } = fakeServer(1); // renewed after half its life
  const c = client("tasks:read");
  await c.queues.list();
  await c.queues.list();
  assert.deepEqual(state.bearers, ["t1", "t1"]);
  await sleep(600);
  await c.queues.list();
  assert.equal(state.bearers.at(-1), "t2");
  assert.deepEqual(state.forms[0], { grant_type: "client_credentials", client_id: "k", client_secret: "rota_k_s", scope: "tasks:read" });
});

test("test_s21_a_401_gets_one_new_token_and_one_retry", async () => {
  const { state, client } = fakeServer();
  const c = client();
  await c.queues.list();
  state.valid.delete("t1"); // the server no longer takes it: a new one is fetched
  await c.queues.list();
  assert.deepEqual(state.bearers, ["t1", "t1", "t2"]);
  assert.equal(state.forms.length, 2);
  state.accepting = false; // no token works: one retry, then the 401
  await assert.rejects(c.queues.list(), isError(401, "unauthorized"));
  assert.deepEqual(state.bearers.slice(3), ["t2", "t3"]);
  assert.equal(state.forms.length, 3);
});

test("test_s21_one_refresh_at_a_time", async () => {
  const { state, client } = fakeServer(3600, 200);
  const c = client();
  await Promise.all(Array.from({ length: 8 }, () => c.queues.list()));
  assert.equal(state.forms.length, 1);
  assert.deepEqual(state.bearers, Array(8).fill("t1"));
});
