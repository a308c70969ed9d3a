import type { CallOptions, Transport } from "./http.js";
import { path } from "./path.js";
import type { CallbacksInfo, Delivery, DeliveryList, DeliveryState, Webhook, WebhookInput, WebhookPatch } from "./types.js";

export interface DeliveryQuery {
  state?: DeliveryState;
  limit?: number;
  /** The previous page's `next_cursor`. */
  before?: number;
}

/** Webhooks, their deliveries and secrets, and the tenant's task-result callback secret. */
export class Webhooks {
  constructor(private readonly http: Transport) {}

  /** Creates a webhook; the answer's `secret` is shown this once. */
  create(webhook: WebhookInput, call?: CallOptions): Promise<Webhook> {
    return this.http.json({ method: "POST", path: "/v1/webhooks", body: webhook }, call);
  }

  async list(call?: CallOptions): Promise<Webhook[]> {
    const answer = await this.http.json<{ webhooks: Webhook[] }>({ method: "GET", path: "/v1/webhooks" }, call);
    return answer.webhooks;
  }

  get(id: string, call?: CallOptions): Promise<Webhook> {
    return this.http.json({ method: "GET", path: path`/v1/webhooks/${id}` }, call);
  }

  update(id: string, patch: WebhookPatch, call?: CallOptions): Promise<Webhook> {
    return this.http.json({ method: "PATCH", path: path`/v1/webhooks/${id}`, body: patch }, call);
  }

  /** Deletes the webhook and its deliveries. */
  async delete(id: string, call?: CallOptions): Promise<void> {
    await this.http.json({ method: "DELETE", path: path`/v1/webhooks/${id}` }, call);
  }

  /** A new secret; the old one keeps signing for `graceMs` (the server's default: a day). */
  rotateSecret(id: string, graceMs?: number, call?: CallOptions): Promise<Webhook> {
    return this.http.json({ method: "POST", path: path`/v1/webhooks/${id}/rotate-secret`, body: { grace_ms: graceMs } }, call);
  }

  /** The webhook's deliveries, newest first (`callbacks` for task results). */
  deliveries(id: string, query: DeliveryQuery = {}, call?: CallOptions): Promise<DeliveryList> {
    return this.http.json({ method: "GET", path: path`/v1/webhooks/${id}/deliveries`, query: { ...query } }, call);
  }

  /** Sends a delivery again now, whatever its state. */
  retryDelivery(id: string, delivery: number, call?: CallOptions): Promise<Delivery> {
    return this.http.json({ method: "POST", path: path`/v1/webhooks/${id}/deliveries/${delivery}/retry` }, call);
  }

  /** Whether the tenant has a callback secret (for tasks' `callback_url`). */
  callbacks(call?: CallOptions): Promise<CallbacksInfo> {
    return this.http.json({ method: "GET", path: "/v1/callbacks" }, call);
  }

  /** Makes or rotates the tenant's callback secret; the answer's `secret` is shown this once. */
  rotateCallbackSecret(graceMs?: number, call?: CallOptions): Promise<CallbacksInfo> {
    return this.http.json({ method: "POST", path: "/v1/callbacks/rotate-secret", body: { grace_ms: graceMs } }, call);
  }
}
