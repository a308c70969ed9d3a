import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { RotaClient, RotaError, TransportError } from "../src/index.js";
import { TestServer, freePort, queueName } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

test("test_s13_errors_carry_code_and_message", async () => {
  const missing = "01a20c27-4e6d-7000-8000-000000000000";
  const notFound = await rota.tasks.get(missing).catch((e: unknown) => e);
  assert.ok(notFound instanceof RotaError);
  assert.equal(notFound.status, 404);
  assert.equal(notFound.code, "task_not_found");
  assert.ok(notFound.notFound);
  assert.match(notFound.message, /task/);
  assert.ok(notFound.requestId, "the request id comes back with the error");

  const invalid = await rota.tasks
    .enqueue(queueName("s13"), { kind: "k", priority: "high" as unknown as number })
    .catch((e: unknown) => e);
  assert.ok(invalid instanceof RotaError);
  assert.equal(invalid.status, 422);
  assert.equal(invalid.code, "invalid_field");
  assert.match(invalid.message, /priority/);

  const noToken = new RotaClient({ url: server.url, token: "rota_nope" });
  await assert.rejects(noToken.queues.list(), (e: unknown) => e instanceof RotaError && e.status === 401 && e.code === "unauthorized");
});

test("test_s13_reads_are_retried_writes_are_not_and_request_ids_are_sent", async () => {
  const sent: { method: string; id: string | null }[] = [];
  let failNext = 0;
  const flaky = server.client({
    fetch: async (input, init) => {
      const headers = new Headers(init?.headers);
      sent.push({ method: init?.method ?? "GET", id: headers.get("x-request-id") });
      if (failNext > 0) {
        failNext--;
        throw new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED") });
      }
      return fetch(input, init);
    },
  });
  const queue = queueName("s13-retry");
  const task = await flaky.tasks.enqueue(queue, { kind: "k" });

  sent.length = 0;
  failNext = 2;
  assert.equal((await flaky.tasks.get(task.id)).id, task.id, "a read is tried again");
  assert.equal(sent.length, 3);
  assert.ok(sent.every((s) => s.id && s.id === sent[0].id), "one request id across the tries");

  sent.length = 0;
  failNext = 1;
  await assert.rejects(flaky.tasks.enqueue(queue, { kind: "k" }), TransportError);
  assert.equal(sent.length, 1, "a write is tried once");
  assert.equal((await rota.queues.stats(queue)).counts.ready, 1, "and nothing more was written");

  sent.length = 0;
  await flaky.tasks.get(task.id, { requestId: "my-request-1" });
  assert.equal(sent[0].id, "my-request-1");
});

test("test_s13_timeouts_are_settable", async (t) => {
  // A server that accepts connections and never answers.
  const held = new Set<Socket>();
  const silent = createServer((socket) => {
    held.add(socket);
    socket.on("error", () => undefined);
  });
  const port = await freePort();
  await new Promise<void>((done) => silent.listen(port, "127.0.0.1", done));
  t.after(() => {
    for (const s of held) s.destroy();
    silent.close();
  });
  const client = new RotaClient({ url: `http://127.0.0.1:${port}`, token: "t", timeoutMs: 200, readAttempts: 1 });
  const started = Date.now();
  const err = await client.queues.list().catch((e: unknown) => e);
  const took = Date.now() - started;
  assert.ok(err instanceof TransportError);
  assert.match(err.message, /timed out after 200 ms/);
  assert.ok(took < 2_000, `gave up after ${took} ms`);
  // One call may set its own.
  const again = await client.queues.list({ timeoutMs: 50 }).catch((e: unknown) => e);
  assert.match((again as Error).message, /timed out after 50 ms/);
});

test("test_s13_defaults_come_from_rota_url_and_rota_token", async () => {
  const saved = { url: process.env.ROTA_URL, token: process.env.ROTA_TOKEN };
  process.env.ROTA_URL = server.url;
  process.env.ROTA_TOKEN = server.token;
  try {
    const client = new RotaClient();
    assert.equal(client.url, server.url);
    assert.equal((await client.whoami()).principal.length > 0, true);
  } finally {
    for (const [key, value] of [["ROTA_URL", saved.url], ["ROTA_TOKEN", saved.token]] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
});

test("test_s13c_dot_segments_are_refused_before_any_request", async () => {
  let sent = 0;
  const counting = server.client({
    fetch: (input, init) => {
      sent++;
      return fetch(input, init);
    },
  });
  for (const bad of ["", ".", ".."]) {
    await assert.rejects(async () => counting.tasks.get(bad), TypeError);
    await assert.rejects(async () => counting.queues.stats(bad), TypeError);
  }
  assert.equal(sent, 0, "a dot segment reached the network");
});
