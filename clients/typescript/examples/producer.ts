// A producer: enqueues a welcome email per new user, one batch in one transaction, each with a
// unique key, so a user who signs up again while their email is still queued or being sent
// gets no second one; then waits for one of them to finish.
//
//   ROTA_URL=http://127.0.0.1:7070 ROTA_TOKEN=$(cat rota-data/admin-token) node build/examples/producer.js
import { RotaClient, RotaError } from "@rota/client";

const rota = new RotaClient(); // ROTA_URL and ROTA_TOKEN

const users = [
  { id: 1, email: "ada@example.com" },
  { id: 2, email: "grace@example.com" },
  { id: 3, email: "edsger@example.com" },
];

try {
  const tasks = await rota.tasks.enqueueBatch(
    "emails",
    users.map((user) => ({
      kind: "email.welcome",
      payload: { to: user.email, user_id: user.id },
      unique_key: `welcome-${user.id}`,
      max_attempts: 5,
      tags: ["signup"],
    })),
  );
  for (const task of tasks) {
    console.log(`${task.duplicate ? "already queued" : "enqueued"} ${task.id} for ${JSON.stringify(task.payload)}`);
  }

  // Wait (up to 30 s) for the first to finish: start `worker.js` beside this.
  const done = await rota.tasks.get(tasks[0].id, { waitMs: 30_000 });
  console.log(`task ${done.id} is ${done.state}`, done.result ?? "");

  const stats = await rota.queues.stats("emails");
  console.log("queue emails:", stats.counts);
} catch (err) {
  if (err instanceof RotaError) {
    console.error(`rota answered ${err.status} ${err.code}: ${err.message}`);
    process.exitCode = 1;
  } else {
    throw err;
  }
}
