import type { AuditEntry, AuditList, ListAuditOptions } from "./audit-types.js";
import type { CallOptions, Transport } from "./http.js";

/**
 * The audit log: one entry per administrative change (queue settings, pause and purge, groups,
 * an operator's change to a task, keys, roles, tenants, hooks, webhooks, schedules, maintenance
 * mode), newest first. Reading it needs `audit:read` (the `admin` and `tenant-admin` roles).
 */
export class Audit {
  constructor(private readonly http: Transport) {}

  /** One page of the audit log, newest first; pass `next_cursor` back as `cursor` for the next. */
  list(options: ListAuditOptions = {}, call?: CallOptions): Promise<AuditList> {
    return this.http.json({ method: "GET", path: "/v1/audit", query: { ...options } }, call);
  }

  /** Every entry matching `options`, newest first, page after page. */
  async *iterate(options: Omit<ListAuditOptions, "cursor"> = {}, call?: CallOptions): AsyncGenerator<AuditEntry> {
    let cursor: string | undefined;
    do {
      const page = await this.list({ ...options, cursor }, call);
      yield* page.entries;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }
}
