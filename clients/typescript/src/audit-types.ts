// The audit log: one entry per administrative change (`GET /v1/audit`).

import type { Json } from "./types.js";

/** One administrative change: who made it, where, what it was done to, before and after. */
export interface AuditEntry {
  /** Unique, and with `at` the entry's place in the log (newest first); 16 hex digits. */
  id: string;
  at: string;
  /**
   * The tenant the change was made in (for a server-wide change such as maintenance mode, the
   * tenant of whoever made it).
   */
  tenant: string;
  /** Who: `key:<key id>`, `jwt:<subject>`, `session:<key id>` (the dashboard), or `system:<what>`. */
  actor: string;
  /** What, as `<object>.<verb>`: `key.create`, `queue.update`, `task.cancel`, … */
  action: string;
  /** What it was done to: `keys/<id>`, `queues/<name>`, `tasks/<id>`, `webhooks/<id>`, … */
  target: string;
  /** The changed fields as they were, where it matters (settings, roles, limits). */
  before?: { [key: string]: Json } | null;
  /** What was asked: the new settings, the role's rules, the change to a task. */
  after?: { [key: string]: Json } | null;
  /** The request's `X-Request-Id`. */
  request_id?: string | null;
  /** The address the request came from. */
  source?: string | null;
}

/** A page of the audit log, newest first. */
export interface AuditList {
  entries: AuditEntry[];
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  next_cursor?: string | null;
}

/** `audit.list`: which entries, and which page. Every filter is optional. */
export interface ListAuditOptions {
  /**
   * Only this tenant's entries. An admin reads every tenant's without it; anyone else only their
   * own tenant's (another tenant's: 403).
   */
  tenant?: string;
  /** Only changes by this actor (`key:<id>`, `jwt:<subject>`). */
  actor?: string;
  /** Only this action (`key.create`), or every action of an object when it ends with a dot (`key.`). */
  action?: string;
  /** Only changes to this target (`queues/emails`, `keys/<id>`). */
  target?: string;
  /** Only entries at or after this time (RFC 3339, e.g. `new Date(...).toISOString()`). */
  since?: string;
  /** Only entries before this time (RFC 3339). */
  until?: string;
  /** The previous page's `next_cursor`. */
  cursor?: string;
  /** Page size: 1 to 500 (default 100). */
  limit?: number;
}
