// pg-boss 10: enqueue N no-op jobs with `insert` (its bulk insert), in batches, then drain them
// with 4 workers, each `work(queue, { batchSize: 1000, pollingIntervalSeconds: 0.5 }, handler)`.
//
//   node pgboss.mjs CONNECTION_STRING [TASKS]
//
// A pg-boss worker fetches a batch, runs the handler, completes the batch, and then sleeps what is
// left of its polling interval (2 s by default; 0.5 s is the least pg-boss accepts) before the next
// fetch. `boss.start()` (which creates and migrates the schema) and `createQueue` run before
// either clock starts. Enqueue: from the first insert to the last one's return. Drain: from the
// first `work()` call to `getQueueSize(queue, { before: "completed" })` (jobs not yet completed)
// reaching 0, polled every 20 ms.
import PgBoss from "pg-boss";
import { args, enqueueAll, now, report, seconds, waitUntilZero } from "./common.mjs";

const opts = args("pgboss");
const queue = "bench";
const workers = Number(process.env.PGBOSS_WORKERS ?? 4);
const boss = new PgBoss({ connectionString: opts.url });
boss.on("error", (e) => console.error(e));
await boss.start();
await boss.createQueue(queue);

let t0 = now();
await enqueueAll(opts, (count) =>
  boss.insert(Array.from({ length: count }, () => ({ name: queue, data: {} }))));
const enqueueSecs = seconds(t0);
if ((await boss.getQueueSize(queue, { before: "completed" })) !== opts.tasks) {
  throw new Error("not every job was enqueued");
}

t0 = now();
for (let i = 0; i < workers; i++) {
  await boss.work(queue, { batchSize: 1000, pollingIntervalSeconds: 0.5 }, async () => {});
}
await waitUntilZero(() => boss.getQueueSize(queue, { before: "completed" }));
const drainSecs = seconds(t0);

await boss.stop({ graceful: false, wait: true });
report("pg-boss", opts.tasks, enqueueSecs, drainSecs);
