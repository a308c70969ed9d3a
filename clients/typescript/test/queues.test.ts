import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { RotaClient } from "../src/index.js";
import { TestServer, queueName } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

test("test_s08_queue_stats_pause_resume_purge_settings_and_groups", async () => {
  const queue = queueName("s08");
  await rota.tasks.enqueueBatch(queue, [{ kind: "a" }, { kind: "a" }, { kind: "a", delay_ms: 60_000 }]);
  let stats = await rota.queues.stats(queue);
  assert.equal(stats.name, queue);
  assert.equal(stats.counts.ready, 2);
  assert.equal(stats.counts.scheduled, 1);
  assert.equal(typeof stats.flow.running, "number");
  assert.ok((await rota.queues.list()).some((q) => q.name === queue));

  // Paused: a claim answers nothing; resumed: it answers.
  assert.equal((await rota.queues.pause(queue)).settings.paused, true);
  assert.deepEqual(await rota.tasks.claim(queue, { worker: "w", max: 5 }), []);
  assert.equal((await rota.queues.resume(queue)).settings.paused, false);
  const claimed = await rota.tasks.claim(queue, { worker: "w", max: 5 });
  assert.equal(claimed.length, 2);

  // Both fail as dead; purge deletes them.
  const outcomes = await rota.tasks.failBatch(claimed.map((t) => ({ id: t.id, lease: t.lease!.token!, error: "no", dead: true })));
  assert.ok(outcomes.every((o) => o.ok && o.state === "dead"));
  assert.equal((await rota.queues.stats(queue)).counts.dead, 2);
  assert.equal(await rota.queues.purge(queue, "dead"), 2);
  assert.equal((await rota.queues.stats(queue)).counts.dead, 0);

  // Flow-control settings, and tasks with a group.
  const limited = queueName("s08-flow");
  const info = await rota.queues.update(limited, {
    concurrency: 5,
    rate: { limit: 100, period_ms: 1_000, burst: 10 },
    group_concurrency: 1,
    max_attempts: 3,
  });
  assert.equal(info.settings.concurrency, 5);
  assert.equal(info.settings.rate?.limit, 100);
  assert.equal(info.settings.group_concurrency, 1);
  assert.equal(info.settings.max_attempts, 3);
  await rota.tasks.enqueueBatch(limited, [
    { kind: "k", group: "g1" },
    { kind: "k", group: "g1" },
    { kind: "k", group: "g1" },
    { kind: "k", group: "g2" },
  ]);
  const running = await rota.tasks.claim(limited, { worker: "w", max: 10 });
  assert.deepEqual(running.map((t) => t.group).sort(), ["g1", "g2"], "one task per group at once");
  stats = await rota.queues.stats(limited);
  assert.equal(stats.flow.running, 2);
  assert.equal(stats.flow.held.group_concurrency, 2);
  const groups = await rota.queues.groups(limited);
  assert.deepEqual(groups.groups.map((g) => g.group).sort(), ["g1", "g2"]);
  const g1 = await rota.queues.putGroup(limited, "g1", { concurrency: 2 });
  assert.equal(g1.settings.concurrency, 2);
  // Lifting the limits.
  const lifted = await rota.queues.update(limited, { concurrency: null, rate: null, group_concurrency: null });
  assert.equal(lifted.settings.concurrency ?? null, null);
  assert.equal(lifted.settings.rate ?? null, null);
});
