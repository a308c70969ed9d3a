// graphile-worker 0.17: enqueue N no-op jobs with WorkerUtils.addJobs (its bulk `add_jobs`), then
// drain them with one worker pool in the configuration of graphile-worker's own performance page
// (https://worker.graphile.org/docs/performance): concurrentJobs 24, maxPoolSize 25, local queue
// of 500, batched completion and failure (completeJobBatchDelay / failJobBatchDelay 0).
//
//   node graphile.mjs CONNECTION_STRING [TASKS]
//
// The schema is migrated before either clock starts. Enqueue: from the first addJobs call to the
// last one's return. Drain: from `run()` to the jobs table being empty (graphile-worker deletes a
// job when it completes): the `job:success` events are counted in the process, and once all N
// have run the table is polled every 5 ms until the last batched completions have committed.
//
// NO_LOG_SUCCESS=1 (graphile-worker reads it in dist/worker.js) skips its info log line per
// completed job; the logger here drops everything below error anyway.
//
// PHASE (profile.sh uses it): `both` (the default: migrate, enqueue, drain, as above), `migrate`
// (only create the schema), `enqueue` (migrate, enqueue, print the enqueue rate), `drain` (drain
// the TASKS jobs already in the table, print the drain rate).
import { EventEmitter } from "node:events";
import { args, drained, enqueueAll, makeCounter, now, report, seconds } from "./common.mjs";

process.env.NO_LOG_SUCCESS = "1";
const { Logger, makeWorkerUtils, run, runMigrations } = await import("graphile-worker");

const opts = args("graphile");
const quiet = new Logger(() => (level, message) => {
  if (level === "error") console.error(message);
});
const counter = makeCounter(opts.tasks);
const events = new EventEmitter();
events.on("job:success", () => counter.add(1));
const preset = {
  worker: {
    connectionString: opts.url,
    concurrentJobs: 24,
    maxPoolSize: 25,
    localQueue: { size: 500 },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
    logger: quiet,
    events,
  },
};

const phase = process.env.PHASE ?? "both";
if (!["both", "migrate", "enqueue", "drain"].includes(phase)) {
  console.error(`PHASE=${phase}: expected both, migrate, enqueue or drain`);
  process.exit(2);
}
if (phase !== "drain") await runMigrations({ preset });
if (phase === "migrate") process.exit(0);
const utils = await makeWorkerUtils({ preset });

let t0 = now();
let enqueueSecs = NaN;
if (phase !== "drain") {
  await enqueueAll(opts, (count) =>
    utils.addJobs(Array.from({ length: count }, () => ({ identifier: "noop", payload: {} }))));
  enqueueSecs = seconds(t0);
}

const remaining = async () =>
  Number((await utils.withPgClient((c) =>
    c.query("select count(*) as n from graphile_worker._private_jobs"))).rows[0].n);
if ((await remaining()) !== opts.tasks) throw new Error(`not ${opts.tasks} jobs in the table`);
if (phase === "enqueue") {
  await utils.release();
  console.log(JSON.stringify({ peer: "graphile-worker", phase, enqueue_per_s: Math.round(opts.tasks / enqueueSecs), tasks: opts.tasks }));
  process.exit(0);
}

t0 = now();
const runner = await run({ preset, noHandleSignals: true, taskList: { noop: async () => {} } });
await drained(counter, opts.tasks, remaining);
const drainSecs = seconds(t0);

await runner.stop();
await utils.release();
if (phase === "drain") {
  console.log(JSON.stringify({ peer: "graphile-worker", phase, drain_per_s: Math.round(opts.tasks / drainSecs), tasks: opts.tasks }));
} else {
  report("graphile-worker", opts.tasks, enqueueSecs, drainSecs);
}
