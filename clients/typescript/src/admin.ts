import type { CallOptions, Transport } from "./http.js";
import { path } from "./path.js";
import type {
  CreatedKey,
  Key,
  KeyInput,
  Maintenance,
  MaintenanceInput,
  Role,
  Rule,
  Tenant,
  TenantInput,
  TenantPatch,
  WhoAmI,
} from "./types.js";

/** Tenants (admin only). */
export class Tenants {
  constructor(private readonly http: Transport) {}

  create(tenant: TenantInput, call?: CallOptions): Promise<Tenant> {
    return this.http.json({ method: "POST", path: "/v1/admin/tenants", body: tenant }, call);
  }

  async list(call?: CallOptions): Promise<Tenant[]> {
    const answer = await this.http.json<{ tenants: Tenant[] }>({ method: "GET", path: "/v1/admin/tenants" }, call);
    return answer.tenants;
  }

  get(name: string, call?: CallOptions): Promise<Tenant> {
    return this.http.json({ method: "GET", path: path`/v1/admin/tenants/${name}` }, call);
  }

  update(name: string, patch: TenantPatch, call?: CallOptions): Promise<Tenant> {
    return this.http.json({ method: "PATCH", path: path`/v1/admin/tenants/${name}`, body: patch }, call);
  }

  /** Removes the tenant's queues, tasks, keys and roles in one transaction. */
  async delete(name: string, call?: CallOptions): Promise<void> {
    await this.http.json({ method: "DELETE", path: path`/v1/admin/tenants/${name}` }, call);
  }
}

/** API keys of the caller's tenant. */
export class Keys {
  constructor(private readonly http: Transport) {}

  /** Creates a key; the answer's `token` is shown this once. */
  create(key: KeyInput, call?: CallOptions): Promise<CreatedKey> {
    return this.http.json({ method: "POST", path: "/v1/keys", body: key }, call);
  }

  async list(call?: CallOptions): Promise<Key[]> {
    const answer = await this.http.json<{ keys: Key[] }>({ method: "GET", path: "/v1/keys" }, call);
    return answer.keys;
  }

  get(id: string, call?: CallOptions): Promise<Key> {
    return this.http.json({ method: "GET", path: path`/v1/keys/${id}` }, call);
  }

  /**
   * A new secret for the key, which keeps its id, roles and limits; the answer's `token` is shown
   * this once. The old secret is still accepted for `graceMs` (0 to 259,200,000; the server's
   * default: a day), until `previous_secret_until`. A revoked or expired key is a 409.
   */
  rotate(id: string, graceMs?: number, call?: CallOptions): Promise<CreatedKey> {
    return this.http.json({ method: "POST", path: path`/v1/keys/${id}/rotate`, body: { grace_ms: graceMs } }, call);
  }

  /** Revokes the key; it stays listed with `revoked_at`. */
  revoke(id: string, call?: CallOptions): Promise<Key> {
    return this.http.json({ method: "DELETE", path: path`/v1/keys/${id}` }, call);
  }

  /** Ends every dashboard session of the key signed in until now; the key keeps working. */
  revokeSessions(id: string, call?: CallOptions): Promise<Key> {
    return this.http.json({ method: "POST", path: path`/v1/keys/${id}/sessions/revoke` }, call);
  }
}

/** Roles: the built-in ones and the tenant's own. */
export class Roles {
  constructor(private readonly http: Transport) {}

  async list(call?: CallOptions): Promise<Role[]> {
    const answer = await this.http.json<{ roles: Role[] }>({ method: "GET", path: "/v1/roles" }, call);
    return answer.roles;
  }

  get(name: string, call?: CallOptions): Promise<Role> {
    return this.http.json({ method: "GET", path: path`/v1/roles/${name}` }, call);
  }

  /** Creates or replaces a custom role. */
  put(name: string, rules: Rule[], call?: CallOptions): Promise<Role> {
    return this.http.json({ method: "PUT", path: path`/v1/roles/${name}`, body: { rules } }, call);
  }

  /** Deletes a custom role (409 while a live key holds it). */
  async delete(name: string, call?: CallOptions): Promise<void> {
    await this.http.json({ method: "DELETE", path: path`/v1/roles/${name}` }, call);
  }
}

/** Maintenance mode (admin only). */
export class MaintenanceMode {
  constructor(private readonly http: Transport) {}

  /** The maintenance in force or announced, or null. */
  async get(call?: CallOptions): Promise<Maintenance | null> {
    const answer = await this.http.json<{ maintenance?: Maintenance | null }>({ method: "GET", path: "/v1/admin/maintenance" }, call);
    return answer.maintenance ?? null;
  }

  async set(maintenance: MaintenanceInput, call?: CallOptions): Promise<Maintenance | null> {
    const answer = await this.http.json<{ maintenance?: Maintenance | null }>(
      { method: "PUT", path: "/v1/admin/maintenance", body: maintenance },
      call,
    );
    return answer.maintenance ?? null;
  }

  async end(call?: CallOptions): Promise<void> {
    await this.http.json({ method: "DELETE", path: "/v1/admin/maintenance" }, call);
  }
}

export function whoami(http: Transport, call?: CallOptions): Promise<WhoAmI> {
  return http.json({ method: "GET", path: "/v1/whoami" }, call);
}
