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

// Polls `remaining()` every `everyMs` until it returns 0.
export async function waitUntilZero(remaining, everyMs = 20) {
  for (;;) {
    if ((await remaining()) === 0) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
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
