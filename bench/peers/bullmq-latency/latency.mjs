// BullMQ's enqueue->start latency at a paced rate: the peer of `rota bench --mode latency`
// (crates/rota/src/bench/latency.rs), built the same way.
//
// - One producer calls `queue.add` once per task, paced at --rate tasks/s (task i is due at
//   start + i/rate; a late tick sends what is due at once), with at most 256 adds in flight.
//   Each job's data carries its send time in µs, taken just before `queue.add`.
// - --workers BullMQ Workers (default 4), concurrency 1 each: Rota's 4 consumers, each
//   long-polling for one task at a time. The processor notes receipt - send; the job then
//   completes (BullMQ's moveToFinished, which also fetches that Worker's next job).
// - Tasks sent in the first second are not counted (warm-up); then --secs (default 10) seconds
//   are measured; 1.5 s after the last send the Workers stop.
//
// The clock is process.hrtime (CLOCK_MONOTONIC, µs): one clock for every thread of the process,
// so receipt - send needs no wall-clock agreement between threads. By default the Workers run on
// a worker thread of their own and the producer on the main thread (Rota's bench runs both on
// one multi-threaded tokio runtime); --consumers-in main puts all on Node's one event loop.
//
//   node latency.mjs --redis-port 6379 [--rate 1000] [--secs 10] [--workers 4]
//                    [--consumers-in thread|main] [--json]
import { Worker as Thread, isMainThread, parentPort, workerData } from "node:worker_threads";
import { setTimeout as sleep } from "node:timers/promises";
import { once } from "node:events";

const MAX_IN_FLIGHT = 256;
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

function parseArgs(argv) {
  const o = { redisHost: "127.0.0.1", redisPort: 6379, rate: 1000, secs: 10, workers: 4, consumersIn: "thread", json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--redis-host") o.redisHost = next();
    else if (a === "--redis-port") o.redisPort = Number(next());
    else if (a === "--rate") o.rate = Number(next());
    else if (a === "--secs") o.secs = Number(next());
    else if (a === "--workers") o.workers = Number(next());
    else if (a === "--consumers-in") o.consumersIn = next();
    else if (a === "--queue") o.queue = next();
    else if (a === "--json") o.json = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!["thread", "main"].includes(o.consumersIn)) throw new Error("--consumers-in is thread or main");
  o.queue ??= `bench-latency-${process.pid}-${Date.now()}`;
  return o;
}

// The consumers: `workers` BullMQ Workers of concurrency 1. Returns { ready, stop } where
// stop() closes them and resolves to { sent: number[], latency: number[] } (µs).
async function startConsumers({ redisHost, redisPort, queue, workers }) {
  const { Worker } = await import("bullmq");
  const sent = [];
  const latency = [];
  const processor = async (job) => {
    const at = nowUs();
    const s = job.data.sent_us;
    sent.push(s);
    latency.push(Math.max(1, at - s));
  };
  const ws = [];
  for (let w = 0; w < workers; w++) {
    // Connection options, not a shared instance: each Worker opens its own connections (one
    // for commands, one for its blocking wait), as separate worker processes would.
    const connection = { host: redisHost, port: redisPort, maxRetriesPerRequest: null };
    const worker = new Worker(queue, processor, { connection, concurrency: 1, name: `latency-${w}` });
    worker.on("failed", (_job, err) => console.error("job failed:", err));
    worker.on("error", (err) => console.error("worker error:", err));
    ws.push(worker);
  }
  await Promise.all(ws.map((w) => w.waitUntilReady()));
  return {
    stop: async () => {
      await Promise.all(ws.map((w) => w.close()));
      return { sent, latency };
    },
  };
}

if (!isMainThread) {
  // The consumers' thread: start, say ready, wait for "stop", send back the samples.
  const consumers = await startConsumers(workerData);
  parentPort.postMessage({ ready: true });
  await once(parentPort, "message");
  parentPort.postMessage(await consumers.stop());
  process.exit(0);
}

const opts = parseArgs(process.argv.slice(2));
const { Queue } = await import("bullmq");

let stopConsumers;
if (opts.consumersIn === "thread") {
  const thread = new Thread(new URL(import.meta.url), { workerData: opts });
  thread.on("error", (err) => {
    console.error("consumer thread:", err);
    process.exit(1);
  });
  await once(thread, "message");
  stopConsumers = async () => {
    thread.postMessage("stop");
    const [got] = await once(thread, "message");
    return got;
  };
} else {
  const consumers = await startConsumers(opts);
  stopConsumers = consumers.stop;
}

const queue = new Queue(opts.queue, { connection: { host: opts.redisHost, port: opts.redisPort, maxRetriesPerRequest: null } });
await queue.waitUntilReady();
// Let the Workers' first blocking waits start before the first send.
await sleep(200);

const gapUs = 1e6 / opts.rate;
const total = opts.rate * (opts.secs + 1);
let sentCount = 0;
let inFlight = 0;
let addErrors = 0;
const start = nowUs();
const measureFrom = start + 1_000_000;
while (sentCount < total) {
  const due = Math.min(total, Math.floor((nowUs() - start) / gapUs) + 1);
  while (sentCount < due && inFlight < MAX_IN_FLIGHT) {
    sentCount++;
    inFlight++;
    queue
      .add("latency", { sent_us: nowUs() })
      .catch(() => addErrors++)
      .finally(() => inFlight--);
  }
  if (sentCount < total) await sleep(Math.max(0, (start + sentCount * gapUs - nowUs()) / 1000));
}
const sentRate = total / ((nowUs() - start) / 1e6);
while (inFlight > 0) await sleep(1);
// The last tasks' starts, then stop.
await sleep(1_500);
const { sent, latency } = await stopConsumers();
await queue.close();

const measured = [];
for (let i = 0; i < sent.length; i++) if (sent[i] >= measureFrom) measured.push(latency[i]);
measured.sort((a, b) => a - b);
const q = (p) => (measured.length ? measured[Math.max(0, Math.ceil(p * measured.length) - 1)] / 1000 : NaN);
const result = {
  system: "bullmq",
  rate: Number(sentRate.toFixed(1)),
  sent: total,
  received: sent.length,
  count: measured.length,
  add_errors: addErrors,
  p50_ms: Number(q(0.5).toFixed(2)),
  p90_ms: Number(q(0.9).toFixed(2)),
  p99_ms: Number(q(0.99).toFixed(2)),
  max_ms: Number(q(1).toFixed(2)),
  consumers_in: opts.consumersIn,
};
if (opts.json) {
  console.log(JSON.stringify(result));
} else {
  console.log(`bullmq latency: ${result.rate} tasks/s sent (${total} tasks, ${result.received} started, ${addErrors} add errors)`);
  console.log(`  measured ${result.count} tasks: p50 ${result.p50_ms} ms, p90 ${result.p90_ms} ms, p99 ${result.p99_ms} ms, max ${result.max_ms} ms`);
}
process.exit(0);
