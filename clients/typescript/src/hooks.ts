import type { CallOptions, Transport } from "./http.js";
import { path } from "./path.js";
import type { Hook, HookInput, HookPatch, HookRequest, HookRotation } from "./hook-types.js";

/**
 * Inbound webhooks: a provider's requests to a hook's `url` become tasks. The provider sends
 * those (`POST /hooks/{id}`, proven by its signature, not by an API token), so this client does
 * not; it creates, reads, changes, rotates and deletes hooks, and reads their recent requests.
 */
export class Hooks {
  constructor(private readonly http: Transport) {}

  /** Creates a hook; the answer's `secret` is shown this once. */
  create(hook: HookInput, call?: CallOptions): Promise<Hook> {
    return this.http.json({ method: "POST", path: "/v1/hooks", body: hook }, call);
  }

  async list(call?: CallOptions): Promise<Hook[]> {
    const answer = await this.http.json<{ hooks: Hook[] }>({ method: "GET", path: "/v1/hooks" }, call);
    return answer.hooks;
  }

  get(id: string, call?: CallOptions): Promise<Hook> {
    return this.http.json({ method: "GET", path: path`/v1/hooks/${id}` }, call);
  }

  /** Changes the fields given; `enabled: false` refuses its requests until it is enabled again. */
  update(id: string, patch: HookPatch, call?: CallOptions): Promise<Hook> {
    return this.http.json({ method: "PATCH", path: path`/v1/hooks/${id}`, body: patch }, call);
  }

  async delete(id: string, call?: CallOptions): Promise<void> {
    await this.http.json({ method: "DELETE", path: path`/v1/hooks/${id}` }, call);
  }

  /**
   * A new secret (`rotation.secret`, else one is made), in the answer's `secret` this once. The
   * old one is still accepted for `rotation.grace_ms` (0 refuses it at once; the server's
   * default: a day), until `previous_secret_until`.
   */
  rotateSecret(id: string, rotation: HookRotation = {}, call?: CallOptions): Promise<Hook> {
    return this.http.json({ method: "POST", path: path`/v1/hooks/${id}/rotate-secret`, body: rotation }, call);
  }

  /**
   * The last requests this server answered for the hook (at most 50), newest first; every
   * server's are in the event log as `hook.received` and `hook.rejected`.
   */
  async requests(id: string, call?: CallOptions): Promise<HookRequest[]> {
    const answer = await this.http.json<{ requests: HookRequest[] }>({ method: "GET", path: path`/v1/hooks/${id}/requests` }, call);
    return answer.requests;
  }
}
