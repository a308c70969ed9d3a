// One timed drain: enqueue N no-op tasks (not timed), then time a worker with concurrency 100
// until every task has completed. Prints one JSON line.
//
//   node drain.mjs rota   <rota url> <token> <queue> <n>
//   node drain.mjs bullmq <redis port> <queue> <n>
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

const CONCURRENCY = 100;
const [system, ...args] = process.argv.slice(2);

async function rota(url, token, queue, n) {
  const { RotaClient, Worker } = await import("../dist/index.js");
  const client = new RotaClient({ url, token });
  for (let i = 0; i < n; i += 10_000) {
    const size = Math.min(10_000, n - i);
    await client.tasks.enqueueBatch(queue, Array.from({ length: size }, (_, j) => ({ kind: "noop", payload: { i: i + j } })));
  }
  const stop = new AbortController();
  const started = performance.now();
  const worker = new Worker(client, queue, async () => undefined, { concurrency: CONCURRENCY, pollWaitMs: 1_000 });
  const running = worker.run(stop.signal);
  for (;;) {
    const { counts } = await client.queues.stats(queue);
    if (counts.succeeded >= n) break;
    await sleep(20);
  }
  const seconds = (performance.now() - started) / 1000;
  stop.abort();
  const stats = await running;
  if (stats.succeeded !== n) throw new Error(`the worker counted ${stats.succeeded} of ${n}`);
  return seconds;
}

async function bullmq(port, queue, n) {
  const { Queue, Worker } = await import("bullmq");
  const connection = { host: "127.0.0.1", port: Number(port), maxRetriesPerRequest: null };
  const q = new Queue(queue, { connection });
  for (let i = 0; i < n; i += 1_000) {
    const size = Math.min(1_000, n - i);
    await q.addBulk(Array.from({ length: size }, (_, j) => ({ name: "noop", data: { i: i + j } })));
  }
  let done = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const started = performance.now();
  const worker = new Worker(queue, async () => undefined, { connection, concurrency: CONCURRENCY });
  worker.on("completed", () => {
    if (++done === n) finish();
  });
  worker.on("failed", (_job, err) => {
    throw err;
  });
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await worker.close();
  await q.close();
  return seconds;
}

const n = Number(args.at(-1));
const seconds = system === "rota" ? await rota(...args.slice(0, 3), n) : await bullmq(...args.slice(0, 2), n);
console.log(JSON.stringify({ system, n, seconds: Number(seconds.toFixed(2)), per_s: Math.round(n / seconds) }));
process.exit(0);
