// Push rate and fetch+ack rate of the unmodified `faktory-worker` package against a running
// Rota server (FAKTORY_URL; ROTA_URL and ROTA_TOKEN to check the result).
// Usage: node bench.js [jobs=20000] [concurrency=20]
"use strict";

const faktory = require("faktory-worker");

const JOBS = Number(process.argv[2] || 20000);
const CONCURRENCY = Number(process.argv[3] || 20);
const QUEUE = `bench-${Date.now()}`;

async function main() {
  const client = await faktory.connect({ poolSize: CONCURRENCY });
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < JOBS) {
        next += 1;
        await client.push({ jobtype: "noop", args: [next], queue: QUEUE });
      }
    }),
  );
  const pushS = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`push: ${JOBS} jobs in ${pushS.toFixed(2)} s = ${Math.round(JOBS / pushS)} jobs/s (${CONCURRENCY} in flight)`);

  let done = 0;
  let finished;
  const all = new Promise((r) => (finished = r));
  faktory.register("noop", async () => {
    done += 1;
    if (done === JOBS) finished();
  });
  const t1 = process.hrtime.bigint();
  const worker = await faktory.work({ queues: [QUEUE], concurrency: CONCURRENCY });
  await all;
  // The last ACKs are sent after the handler returns: wait until the queue has none running.
  const res = await fetch(`${process.env.ROTA_URL}/v1/queues/${QUEUE}`, {
    headers: { authorization: `Bearer ${process.env.ROTA_TOKEN}` },
  });
  let counts = (await res.json()).counts;
  while (counts.succeeded < JOBS) {
    await new Promise((r) => setTimeout(r, 5));
    counts = (await (await fetch(`${process.env.ROTA_URL}/v1/queues/${QUEUE}`, {
      headers: { authorization: `Bearer ${process.env.ROTA_TOKEN}` },
    })).json()).counts;
  }
  const workS = Number(process.hrtime.bigint() - t1) / 1e9;
  console.log(`fetch+ack: ${JOBS} jobs in ${workS.toFixed(2)} s = ${Math.round(JOBS / workS)} jobs/s (concurrency ${CONCURRENCY})`);
  await worker.stop();
  await client.close();
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
