// pg-boss 10: enqueue N no-op jobs with `insert` (its bulk insert), in batches, then drain them
// with 4 workers, each `work(queue, { batchSize: 1000, pollingIntervalSeconds: 0.5, priority }, handler)`.
//
//   node pgboss.mjs CONNECTION_STRING [TASKS]
//
// A pg-boss worker fetches a batch, runs the handler, completes the batch, and then sleeps what is
// left of its polling interval (2 s by default; 0.5 s is the least pg-boss accepts) before the next
// fetch. `boss.start()` (which creates and migrates the schema) and `createQueue` run before
// either clock starts. Enqueue: from the first insert to the last one's return. Drain: from the
// first `work()` call until `getQueueSize(queue, { before: "completed" })` (jobs not yet
// completed) is 0: the jobs handed to the handlers are counted in the process, and once all N
// have run that query is polled every 5 ms until the last completions have committed.
import PgBoss from "pg-boss";
import { args, drained, enqueueAll, makeCounter, now, report, seconds } from "./common.mjs";

const opts = args("pgboss");
const queue = "bench";
const workers = Number(process.env.PGBOSS_WORKERS ?? 4);
const priority = process.env.PGBOSS_PRIORITY !== "0";
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

const counter = makeCounter(opts.tasks);
t0 = now();
for (let i = 0; i < workers; i++) {
  await boss.work(queue, { batchSize: 1000, pollingIntervalSeconds: 0.5, priority }, async (jobs) => { counter.add(jobs.length); });
}
await drained(counter, opts.tasks, () => boss.getQueueSize(queue, { before: "completed" }));
const drainSecs = seconds(t0);

await boss.stop({ graceful: false, wait: true });
report("pg-boss", opts.tasks, enqueueSecs, drainSecs);
