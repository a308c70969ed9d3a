// A worker: sends the emails the producer enqueued, 16 at a time, until Ctrl-C or SIGTERM,
// then lets the emails being sent finish (up to 10 s) and claims nothing new.
//
//   ROTA_URL=http://127.0.0.1:7070 ROTA_TOKEN=$(cat rota-data/admin-token) node build/examples/worker.js
import { setTimeout as sleep } from "node:timers/promises";
import { HandlerError, RotaClient, Worker, type Task } from "@rota/client";

interface Welcome {
  to: string;
  user_id: number;
}

async function sendWelcome(task: Task, signal: AbortSignal): Promise<{ message_id: string }> {
  const { to } = task.payload as unknown as Welcome;
  if (!to.includes("@")) throw HandlerError.dead(`not an address: ${to}`); // retrying will not help
  await sleep(50, undefined, { signal }); // the SMTP call; stops if the task is cancelled
  return { message_id: `<${task.id}@example.com>` };
}

const shutdown = new AbortController();
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => shutdown.abort());

const worker = new Worker(new RotaClient(), "emails", sendWelcome, {
  kinds: ["email.welcome"],
  concurrency: 16,
  timeoutMs: 30_000,
  graceMs: 10_000,
});
console.log("sending emails; Ctrl-C to stop");
const stats = await worker.run(shutdown.signal);
console.log("stopped:", stats);
