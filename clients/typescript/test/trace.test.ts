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

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const tracestate = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

test("test_s18_trace_context_round_trips_through_get_and_claim", async () => {
  const queue = queueName("s18");
  const made = await rota.tasks.enqueue(queue, { kind: "traced", traceparent, tracestate });
  assert.deepEqual([made.traceparent, made.tracestate], [traceparent, tracestate]);
  const got = await rota.tasks.get(made.id);
  assert.deepEqual([got.traceparent, got.tracestate], [traceparent, tracestate]);
  const [claimed] = await rota.tasks.claim(queue, { worker: "w1", max: 1 });
  assert.equal(claimed.id, made.id);
  assert.deepEqual([claimed.traceparent, claimed.tracestate], [traceparent, tracestate]);

  const plain = await rota.tasks.enqueue(queue, { kind: "untraced" });
  assert.equal(plain.traceparent, undefined);
  assert.equal(plain.tracestate, undefined);

  const flow = await rota.workflows.submit([{ name: "a", queue, kind: "traced", traceparent, tracestate }]);
  assert.deepEqual(
    flow.tasks?.map((t) => [t.task.traceparent, t.task.tracestate]),
    [[traceparent, tracestate]],
  );
});

test("test_s18_a_bad_traceparent_is_a_422_naming_it", async () => {
  const queue = queueName("s18-bad");
  const err = await rota.tasks.enqueue(queue, { kind: "traced", traceparent: "00-not-a-trace-01" }).catch((e: unknown) => e);
  assert.ok(err instanceof RotaError, `a RotaError, got ${err}`);
  assert.equal(err.status, 422);
  assert.equal(err.code, "invalid_field");
  assert.match(err.message, /traceparent/);
  await assert.rejects(rota.tasks.list(queue), (e: unknown) => e instanceof RotaError && e.status === 404, "nothing stored, not even the queue");
});
