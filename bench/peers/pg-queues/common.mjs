// Shared by graphile.mjs and pgboss.mjs: arguments, timing, and the one JSON line each prints.
//
//   node graphile.mjs|pgboss.mjs CONNECTION_STRING [TASKS]
//
// Environment: BATCH (jobs per enqueue call, 1000) and PRODUCERS (enqueue calls in flight at
// once, 4): the shape of `rota bench --mode batch`'s defaults (--batch 1000, --producers 4).
export function args(peer) {
  const url = process.argv[2];
  const tasks = Number(process.argv[3] ?? process.env.TASKS ?? 100000);
  if (!url || !Number.isInteger(tasks) || tasks <= 0) {
    console.error(`usage: node ${peer}.mjs CONNECTION_STRING [TASKS]`);
    process.exit(2);
  }
  return {
    url,
    tasks,
    batch: Number(process.env.BATCH ?? 1000),
    producers: Number(process.env.PRODUCERS ?? 4),
  };
}

// Calls `insert(count)` for batches of `batch` jobs until `tasks` are in, `producers` at once.
export async function enqueueAll({ tasks, batch, producers }, insert) {
  let next = 0;
  const producer = async () => {
    while (next < tasks) {
      const count = Math.min(batch, tasks - next);
      next += count;
      await insert(count);
    }
  };
  await Promise.all(Array.from({ length: producers }, producer));
}

// Resolves once `counter.done` (bumped by the driver's handler) reaches `tasks`, then polls
// `remaining()` (a query: jobs not yet completed in the database) every 5 ms until it returns 0.
// Counting in the process first keeps the poll's query off the database during the drain.
export async function drained(counter, tasks, remaining) {
  await new Promise((resolve) => {
    if (counter.done >= tasks) return resolve();
    counter.onDone = resolve;
  });
  for (;;) {
    if ((await remaining()) === 0) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function makeCounter(tasks) {
  const counter = {
    done: 0,
    onDone: null,
    add(n) {
      counter.done += n;
      if (counter.done >= tasks && counter.onDone) counter.onDone();
    },
  };
  return counter;
}

export const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
export const now = () => process.hrtime.bigint();

export function report(peer, tasks, enqueueSecs, drainSecs, extra = {}) {
  console.log(JSON.stringify({
    peer,
    enqueue_per_s: Math.round(tasks / enqueueSecs),
    drain_per_s: Math.round(tasks / drainSecs),
    tasks,
    ...extra,
  }));
}
