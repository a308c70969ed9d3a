// Inbound webhooks (hooks): requests a provider (GitHub, GitLab, Stripe, a Rota webhook) sends
// to a hook's `url`, which become tasks.

/**
 * How a hook checks that a request comes from whoever holds its secret: GitHub's
 * `X-Hub-Signature-256`, GitLab's `X-Gitlab-Token`, Rota's own `Rota-Signature` (`v1`, over the
 * timestamp and the body) or Stripe's `Stripe-Signature`.
 */
export type HookVerify = "github" | "gitlab" | "hmac-sha256" | "stripe";

/** `POST /v1/hooks`: a hook to create. */
export interface HookInput {
  /** Unique in the tenant. */
  name: string;
  /** The queue its tasks go to (the writer must hold `tasks:enqueue` on it). */
  queue: string;
  /** Their kind. */
  kind: string;
  verify: HookVerify;
  /**
   * The shared secret as the provider knows it (GitHub's "Secret", GitLab's "Secret token",
   * Stripe's signing secret): 16 to 256 printable ASCII characters. Left out, one is made.
   */
  secret?: string | null;
  description?: string | null;
}

/** `PATCH /v1/hooks/{id}`: the fields given change; the caller becomes the hook's `owner`. */
export interface HookPatch {
  queue?: string | null;
  kind?: string | null;
  description?: string | null;
  /** `false` refuses its requests (403 `hook_disabled`) until it is `true` again. */
  enabled?: boolean | null;
}

/** `POST /v1/hooks/{id}/rotate-secret`. */
export interface HookRotation {
  /**
   * How long the old secret is still accepted beside the new one: 0 (refused at once) to
   * 259,200,000 (72 hours). Left out: the server's default, a day.
   */
  grace_ms?: number | null;
  /** The new secret; left out, one is made. */
  secret?: string | null;
}

/**
 * An inbound webhook. A verified request to `url` (no bearer token) becomes a task of `queue`
 * and `kind` with the payload `{ body, headers }`: the body as JSON (else as text) and the
 * provider's event and delivery headers. A redelivery finds the task the first one made.
 */
export interface Hook {
  id: string;
  name: string;
  /** Where the provider sends: `POST` here, no bearer token. */
  url: string;
  queue: string;
  kind: string;
  verify: HookVerify;
  enabled: boolean;
  description?: string | null;
  /** The credential its requests enqueue as (its last writer). */
  owner?: string | null;
  /** Until when the secret before the last rotation is still accepted. */
  previous_secret_until?: string | null;
  created_at: string;
  updated_at: string;
  /** Shown once, when created or rotated. */
  secret?: string | null;
}

/** What became of a request to a hook: the API's `Outcome` enum. */
export type HookOutcome = "received" | "duplicate" | "rejected";

/** One request a hook answered (`hooks.requests`, newest first). */
export interface HookRequest {
  at: string;
  /** `received`: a task was enqueued; `duplicate`: a redelivery found its task; or `rejected`. */
  outcome: HookOutcome;
  /** The HTTP status it was answered with. */
  status: number;
  /** Why it was rejected (`<code>: <message>`). */
  reason?: string | null;
  /** The provider's delivery id. */
  delivery?: string | null;
  task_id?: string | null;
  /** The address it came from. */
  address: string;
}
