import assert from "node:assert/strict";
import { createConnection, createServer, type Socket } from "node:net";
import { after, before, test } from "node:test";
import type { RotaClient, RotaEvent } from "../src/index.js";
import { TestServer, eventually, queueName } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

test("test_s11_events_paging", async () => {
  const queue = queueName("s11-page");
  const tasks = await rota.tasks.enqueueBatch(queue, Array.from({ length: 5 }, () => ({ kind: "k" })));
  const seen: RotaEvent[] = [];
  let after = 0;
  for (;;) {
    const page = await rota.events.page({ after, queue, types: ["task.enqueued"], limit: 2 });
    assert.ok(page.events.length <= 2);
    seen.push(...page.events);
    if (page.events.length === 0) break;
    after = page.next_cursor;
  }
  assert.deepEqual(seen.map((e) => e.task_id), tasks.map((t) => t.id));
  assert.ok(seen.every((e) => e.type === "task.enqueued" && e.queue === queue));
  // A long poll answers when the next event commits.
  const waiting = rota.events.page({ after, queue, waitMs: 5_000 });
  const late = await rota.tasks.enqueue(queue, { kind: "k" });
  const page = await waiting;
  assert.equal(page.events[0]?.task_id, late.id);
});

/** A TCP proxy in front of the server whose connections the test can cut. */
async function proxy(port: number): Promise<{ url: string; cut: () => number; close: () => void }> {
  const open = new Set<Socket>();
  const srv = createServer((client) => {
    const upstream = createConnection(port, "127.0.0.1");
    client.pipe(upstream).pipe(client);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on("close", () => open.delete(s));
      s.on("error", () => undefined);
    }
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((done) => srv.listen(0, "127.0.0.1", done));
  return {
    url: `http://127.0.0.1:${(srv.address() as { port: number }).port}`,
    cut: () => {
      const n = open.size;
      for (const s of open) s.destroy();
      return n;
    },
    close: () => {
      srv.close();
      for (const s of open) s.destroy();
    },
  };
}

for (const via of ["sse", "websocket"] as const) {
  test(`test_s11_live_follow_over_${via}_resumes_from_its_cursor_after_a_drop`, async (t) => {
    const queue = queueName(`s11-${via}`);
    const net = await proxy(Number(new URL(server.url).port));
    t.after(net.close);
    const follower = server.client({ url: net.url });
    const ac = new AbortController();
    const options = { queue, types: "task.enqueued", signal: ac.signal, reconnectMs: 100 };
    const stream = via === "sse" ? follower.events.follow(options) : follower.events.followWebSocket(options);
    const got: RotaEvent[] = [];
    const following = (async () => {
      for await (const event of stream) got.push(event);
    })();

    const first = await rota.tasks.enqueueBatch(queue, [{ kind: "k" }, { kind: "k" }]);
    await eventually(async () => got.length === 2, "the first two events");
    assert.ok(net.cut() > 0, "the stream's connection was cut");
    // Enqueued while the follower is disconnected: it must still see them, once each.
    const second = await rota.tasks.enqueueBatch(queue, [{ kind: "k" }, { kind: "k" }]);
    await eventually(async () => got.length >= 4, "the events committed during the drop");
    const third = await rota.tasks.enqueue(queue, { kind: "k" });
    await eventually(async () => got.length >= 5, "a live event after reconnecting");
    ac.abort();
    await following;
    assert.deepEqual(
      got.map((e) => e.task_id),
      [...first, ...second, third].map((task) => task.id),
    );
    const cursors = got.map((e) => e.cursor);
    assert.deepEqual(cursors, [...cursors].sort((a, b) => a - b));
    assert.equal(new Set(cursors).size, cursors.length);
  });
}
