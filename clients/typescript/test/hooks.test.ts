import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { RotaError, type RotaClient } from "../src/index.js";
import { TestServer } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

const GITLAB_SECRET = "s20-gitlab-secret-token-1";
// docs.github.com, "Validating webhook deliveries": this secret and body give this signature.
const GITHUB_SECRET = "It's a Secret to Everybody";
const GITHUB_BODY = "Hello, World!";
const GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

interface Answer {
  status: number;
  body: { task_id?: string; duplicate?: boolean; error?: { code: string; message: string } };
}

/** A provider's POST to a hook, with plain fetch: its own headers, no Authorization. */
async function send(url: string, body: string, headers: Record<string, string>): Promise<Answer> {
  const resp = await fetch(url, { method: "POST", body, headers });
  return { status: resp.status, body: (await resp.json()) as Answer["body"] };
}

/** A GitLab push event, its secret token sent as it is. */
const gitlab = (url: string, token: string, key?: string) =>
  send(url, '{"ref":"refs/heads/main"}', {
    "content-type": "application/json",
    "x-gitlab-token": token,
    "x-gitlab-event": "Push Hook",
    ...(key ? { "idempotency-key": key } : {}),
  });

const isNotFound = (e: unknown) => e instanceof RotaError && e.status === 404;

test("test_s20_a_gitlab_hook_turns_a_request_into_a_task", async () => {
  const queue = unique("s20-gitlab");
  const made = await rota.hooks.create({
    name: unique("s20-gitlab"),
    queue,
    kind: "gitlab.push",
    verify: "gitlab",
    secret: GITLAB_SECRET,
    description: "s20",
  });
  assert.ok(made.id.startsWith("hk_"), made.id);
  assert.equal(made.queue, queue);
  assert.equal(made.kind, "gitlab.push");
  assert.equal(made.verify, "gitlab");
  assert.equal(made.enabled, true);
  assert.equal(made.description, "s20");
  assert.ok(made.owner, "the creator is its owner");
  assert.equal(made.secret, GITLAB_SECRET);
  assert.equal(made.previous_secret_until, null);
  assert.ok(made.url.endsWith(`/hooks/${made.id}`), made.url);

  // GitLab sends its secret token as it is; the request becomes a task of the hook's queue.
  const key = randomUUID();
  const sent = await gitlab(made.url, GITLAB_SECRET, key);
  assert.equal(sent.status, 202, JSON.stringify(sent.body));
  assert.equal(sent.body.duplicate, false);
  const task = await rota.tasks.get(sent.body.task_id!);
  assert.equal(task.queue, queue);
  assert.equal(task.kind, "gitlab.push");
  assert.deepEqual(task.payload, {
    body: { ref: "refs/heads/main" },
    headers: { "x-gitlab-event": "Push Hook", "idempotency-key": key },
  });

  // A wrong token and no token: 401, and no task.
  const wrong = await gitlab(made.url, "not-the-secret-token");
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.error?.code, "bad_signature");
  const missing = await send(made.url, "{}", { "content-type": "application/json" });
  assert.equal(missing.status, 401);
  assert.equal(missing.body.error?.code, "missing_signature");
  assert.deepEqual((await rota.tasks.list(queue)).tasks.map((t) => t.id), [task.id]);

  // Read back through the client: the secret is not shown again.
  const listed = await rota.hooks.list();
  assert.ok(listed.some((h) => h.id === made.id));
  assert.ok(listed.every((h) => h.secret == null));
  const shown = await rota.hooks.get(made.id);
  assert.equal(shown.secret, undefined);
  assert.equal(shown.url, made.url);
  const requests = await rota.hooks.requests(made.id);
  assert.deepEqual(
    requests.map((r) => [r.outcome, r.status]),
    [["rejected", 401], ["rejected", 401], ["received", 202]],
  );
  assert.match(requests[0]!.reason ?? "", /^missing_signature/);
  assert.match(requests[1]!.reason ?? "", /^bad_signature/);
  assert.equal(requests[2]!.task_id, task.id);
  assert.equal(requests[2]!.delivery, key);
  assert.ok(requests[2]!.address);

  // The event log has both outcomes.
  const events = (await rota.events.page({ types: ["hook.*"], queue })).events;
  const received = events.filter((e) => e.type === "hook.received");
  const rejected = events.filter((e) => e.type === "hook.rejected");
  assert.deepEqual(received.map((e) => e.task_id), [task.id]);
  assert.equal(received[0]!.data.hook_id, made.id);
  assert.equal(rejected.length, 2);
  assert.ok(rejected.every((e) => e.data.hook_id === made.id));
  assert.match(String(rejected[0]!.data.reason), /^bad_signature/);

  // Disabled, it refuses even a good token (403 hook_disabled) and enqueues nothing.
  const off = await rota.hooks.update(made.id, { enabled: false, description: "off" });
  assert.equal(off.enabled, false);
  assert.equal(off.description, "off");
  const refused = await gitlab(made.url, GITLAB_SECRET);
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error?.code, "hook_disabled");
  assert.equal((await rota.tasks.list(queue)).tasks.length, 1);
  assert.equal((await rota.hooks.update(made.id, { enabled: true })).enabled, true);

  // A rotation with no grace: the new secret works at once and the old one no longer does.
  const first = await rota.hooks.rotateSecret(made.id, { grace_ms: 0, secret: "s20-gitlab-secret-token-2" });
  assert.equal(first.secret, "s20-gitlab-secret-token-2");
  assert.equal(first.previous_secret_until, null);
  assert.equal((await gitlab(made.url, GITLAB_SECRET)).status, 401);
  assert.equal((await gitlab(made.url, "s20-gitlab-secret-token-2")).status, 202);
  // With an hour's grace and a secret made by the server: both work until then.
  const second = await rota.hooks.rotateSecret(made.id, { grace_ms: 3_600_000 });
  assert.ok(second.secret && second.secret !== first.secret, "a new secret");
  assert.ok(second.previous_secret_until, "previous_secret_until is set");
  assert.equal((await gitlab(made.url, second.secret)).status, 202);
  assert.equal((await gitlab(made.url, "s20-gitlab-secret-token-2")).status, 202);
  assert.equal((await rota.hooks.get(made.id)).previous_secret_until, second.previous_secret_until);
  assert.equal((await rota.tasks.list(queue)).tasks.length, 4);

  await rota.hooks.delete(made.id);
  await assert.rejects(rota.hooks.get(made.id), isNotFound);
  assert.ok(!(await rota.hooks.list()).some((h) => h.id === made.id));
  const gone = await gitlab(made.url, second.secret);
  assert.equal(gone.status, 404);
  assert.equal(gone.body.error?.code, "not_found");
});

test("test_s20_a_github_hook_verifies_its_signature_and_finds_a_redelivery", async () => {
  const queue = unique("s20-github");
  const made = await rota.hooks.create({ name: unique("s20-github"), queue, kind: "github.push", verify: "github", secret: GITHUB_SECRET });
  const delivery = randomUUID();
  const headers = {
    "content-type": "text/plain",
    "x-hub-signature-256": GITHUB_SIGNATURE,
    "x-github-delivery": delivery,
    "x-github-event": "push",
  };

  const first = await send(made.url, GITHUB_BODY, headers);
  assert.equal(first.status, 202, JSON.stringify(first.body));
  assert.equal(first.body.duplicate, false);
  const taskId = first.body.task_id!;
  // Not JSON: the body is kept as text.
  assert.deepEqual((await rota.tasks.get(taskId)).payload, {
    body: "Hello, World!",
    headers: { "x-github-delivery": delivery, "x-github-event": "push" },
  });

  // GitHub redelivers with the same delivery id: the task it made is found, no new one.
  const again = await send(made.url, GITHUB_BODY, headers);
  assert.equal(again.status, 200);
  assert.deepEqual(again.body, { task_id: taskId, duplicate: true });
  assert.deepEqual((await rota.tasks.list(queue)).tasks.map((t) => t.id), [taskId]);

  // The body changed after signing: refused.
  const forged = await send(made.url, "Hello, World?", headers);
  assert.equal(forged.status, 401);
  assert.equal(forged.body.error?.code, "bad_signature");

  const requests = await rota.hooks.requests(made.id);
  assert.deepEqual(
    requests.map((r) => [r.outcome, r.status]),
    [["rejected", 401], ["duplicate", 200], ["received", 202]],
  );
  assert.deepEqual(requests.slice(1).map((r) => r.delivery), [delivery, delivery]);
  assert.deepEqual(requests.map((r) => r.task_id ?? null), [null, taskId, taskId]);
  await rota.hooks.delete(made.id);
});
