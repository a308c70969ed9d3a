import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { after, before, test } from "node:test";
import { SignatureError, verifyDelivery, type RotaClient } from "../src/index.js";
import { TestServer, eventually, queueName } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

interface Received {
  body: Buffer;
  headers: IncomingHttpHeaders;
}

test("test_s10_webhooks_create_list_delete_and_verify_a_real_delivery", async (t) => {
  const received: Received[] = [];
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ body: Buffer.concat(chunks), headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((done) => receiver.listen(0, "127.0.0.1", done));
  t.after(() => receiver.close());
  const url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;

  const queue = queueName("s10");
  const hook = await rota.webhooks.create({ url, events: ["task.enqueued"], queues: [queue], description: "test" });
  assert.ok(hook.secret, "the secret is shown on creation");
  assert.ok((await rota.webhooks.list()).some((w) => w.id === hook.id));
  assert.equal((await rota.webhooks.get(hook.id)).secret ?? null, null, "and never again");

  const task = await rota.tasks.enqueue(queue, { kind: "k" });
  const delivery = await eventually(async () => received[0], "the delivery");
  const verified = verifyDelivery(delivery.body, delivery.headers, { secret: hook.secret!, url });
  assert.equal(verified.webhookId, hook.id);
  const event = JSON.parse(delivery.body.toString());
  assert.equal(event.type, "task.enqueued");
  assert.equal(event.task_id, task.id);

  // A tampered body, another URL, a wrong secret or an old timestamp are refused.
  const tampered = Buffer.from(delivery.body.toString().replace(task.id, "01a20c27-4e6d-7000-8000-000000000000"));
  assert.throws(() => verifyDelivery(tampered, delivery.headers, { secret: hook.secret!, url }), SignatureError);
  assert.throws(() => verifyDelivery(delivery.body, delivery.headers, { secret: hook.secret!, url: `${url}2` }), SignatureError);
  assert.throws(() => verifyDelivery(delivery.body, delivery.headers, { secret: "whsec_wrong", url }), SignatureError);
  assert.throws(
    () => verifyDelivery(delivery.body, delivery.headers, { secret: hook.secret!, url, now: Date.now() + 3_600_000 }),
    SignatureError,
  );
  // During a rotation either secret verifies.
  assert.ok(verifyDelivery(delivery.body, delivery.headers, { secret: ["whsec_new", hook.secret!], url }));

  const deliveries = await eventually(async () => {
    const list = await rota.webhooks.deliveries(hook.id, { state: "delivered" });
    return list.deliveries.length > 0 && list;
  }, "the delivery to be recorded as delivered");
  assert.equal(deliveries.deliveries[0].event.task_id, task.id);
  const disabled = await rota.webhooks.update(hook.id, { enabled: false });
  assert.equal(disabled.enabled, false);

  await rota.webhooks.delete(hook.id);
  assert.ok(!(await rota.webhooks.list()).some((w) => w.id === hook.id));
});
