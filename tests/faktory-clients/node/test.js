// Drives the unmodified `faktory-worker` package (pinned in package.json) against a running
// Rota server: push and process, fail into retries and dead letters, a scheduled job, a bulk
// push, and a graceful stop when an operator asks. Checks the results through Rota's HTTP API.
//
// Environment: FAKTORY_URL (tcp://:<key>@host:port), ROTA_URL, ROTA_TOKEN (for the HTTP checks).
"use strict";

const assert = require("node:assert/strict");
const faktory = require("faktory-worker");

const ROTA_URL = process.env.ROTA_URL;
const ROTA_TOKEN = process.env.ROTA_TOKEN;

async function rota(method, path) {
  const res = await fetch(`${ROTA_URL}${path}`, {
    method,
    headers: { authorization: `Bearer ${ROTA_TOKEN}` },
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

const counts = async (queue) => (await rota("GET", `/v1/queues/${queue}`)).counts;

async function until(what, check, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function step(name, f) {
  const t = Date.now();
  await f();
  console.log(`ok - ${name} (${Date.now() - t} ms)`);
}

async function main() {
  const client = await faktory.connect();
  const seen = [];
  faktory.register("add", async (a, b) => {
    seen.push(a + b);
  });
  faktory.register("boom", async () => {
    throw new Error("kaboom");
  });
  faktory.register("bulk", async (i) => {
    seen.push(`bulk-${i}`);
  });
  const worker = await faktory.work({
    queues: ["default", "node-basic", "node-fail", "node-later", "node-bulk"],
    concurrency: 2,
    beatInterval: 1,
  });

  await step("a pushed job is processed and its task succeeds", async () => {
    await client.job("add", 1, 2).push();
    await client.push({ jobtype: "add", args: [3, 4], queue: "node-basic" });
    await until("two succeeded tasks", async () => (await counts("node-basic")).succeeded === 1 &&
      (await counts("default")).succeeded === 1, 10);
    assert.ok(seen.includes(3) && seen.includes(7), `seen ${seen}`);
  });

  await step("a failing job is retried with backoff, then dead", async () => {
    const jid = await client.push({ jobtype: "boom", args: [], queue: "node-fail", retry: 1 });
    const first = await until("a retry scheduled", async () => {
      const c = await counts("node-fail");
      return c.scheduled === 1 ? c : null;
    }, 10);
    assert.equal(first.dead, 0);
    // Faktory's backoff: 15 to 44 seconds before the retry.
    await until("the retry to run and the job to die", async () => (await counts("node-fail")).dead === 1, 75);
    const dead = await rota("GET", "/v1/queues/node-fail/tasks?state=dead");
    const task = dead.tasks[0];
    assert.equal(task.payload.jid, jid);
    assert.equal(task.errors.length, 2);
    assert.match(task.errors[0].message, /kaboom/);
  });

  await step("a job scheduled with `at` waits for its time", async () => {
    const at = new Date(Date.now() + 2000);
    const job = client.job("add", 10, 20);
    job.queue = "node-later";
    job.at = at;
    await job.push();
    assert.equal((await counts("node-later")).scheduled, 1);
    await until("the scheduled job to run", async () => (await counts("node-later")).succeeded === 1, 15);
    assert.ok(Date.now() >= at.getTime());
  });

  await step("a bulk push enqueues every job; a live jid again is refused", async () => {
    const jobs = [0, 1, 2, 3, 4].map((i) => ({ jid: `node-bulk-${i}-${Date.now()}`, jobtype: "bulk", args: [i], queue: "node-bulk" }));
    const rejected = await client.pushBulk(jobs);
    assert.deepEqual(rejected, {});
    await until("five bulk jobs processed", async () => (await counts("node-bulk")).succeeded === 5, 10);
    // Not processed yet (no worker on this queue): a second push of its jid is refused.
    const held = { jid: `held-${Date.now()}`, jobtype: "add", args: [0, 0], queue: "node-held" };
    assert.deepEqual(await client.pushBulk([held]), {});
    const again = await client.pushBulk([held]);
    assert.match(again[held.jid].reason, /already/);
  });

  await step("the worker stops gracefully when an operator asks it to", async () => {
    const listed = await rota("GET", "/v1/workers");
    assert.ok(listed.workers.some((w) => w.wid === worker.wid), JSON.stringify(listed));
    await rota("POST", `/v1/workers/${worker.wid}/quiet`);
    await until("the worker to quiet down", async () => worker.quieted, 10);
    await rota("POST", `/v1/workers/${worker.wid}/terminate`);
    await until("the worker to disconnect", async () => {
      const now = await rota("GET", "/v1/workers");
      return !now.workers.some((w) => w.wid === worker.wid);
    }, 15);
  });

  await client.close();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`not ok - ${e.stack || e}`);
    process.exit(1);
  },
);
