/**
 * What this library knows of the server's API, kept by hand as data: every operation it
 * implements (method and path, as in the OpenAPI document) and, for every component schema with
 * properties, the fields its TypeScript model has. The coverage test compares these with a live
 * server's `/openapi.json`, so a new operation or field fails it until it is added here and to
 * the model named beside it.
 */
export const KNOWN_OPERATIONS: readonly string[] = [
  "GET /healthz",
  "GET /metrics",
  "GET /openapi.json",
  "GET /readyz",
  "GET /v1/admin/maintenance",
  "PUT /v1/admin/maintenance",
  "DELETE /v1/admin/maintenance",
  "GET /v1/admin/tenants",
  "POST /v1/admin/tenants",
  "GET /v1/admin/tenants/{tenant}",
  "DELETE /v1/admin/tenants/{tenant}",
  "PATCH /v1/admin/tenants/{tenant}",
  "GET /v1/callbacks",
  "POST /v1/callbacks/rotate-secret",
  "GET /v1/doctor",
  "GET /v1/events",
  "GET /v1/events/stream",
  "POST /v1/events/tickets",
  "GET /v1/keys",
  "POST /v1/keys",
  "GET /v1/keys/{id}",
  "DELETE /v1/keys/{id}",
  "POST /v1/keys/{id}/sessions/revoke",
  "GET /v1/queues",
  "GET /v1/queues/{queue}",
  "PATCH /v1/queues/{queue}",
  "POST /v1/queues/{queue}/claim",
  "GET /v1/queues/{queue}/groups",
  "PUT /v1/queues/{queue}/groups/{group}",
  "POST /v1/queues/{queue}/pause",
  "POST /v1/queues/{queue}/resume",
  "GET /v1/queues/{queue}/tasks",
  "POST /v1/queues/{queue}/tasks",
  "DELETE /v1/queues/{queue}/tasks",
  "GET /v1/roles",
  "GET /v1/roles/{name}",
  "PUT /v1/roles/{name}",
  "DELETE /v1/roles/{name}",
  "GET /v1/schedules",
  "GET /v1/schedules/{name}",
  "PUT /v1/schedules/{name}",
  "DELETE /v1/schedules/{name}",
  "POST /v1/schedules/{name}/pause",
  "POST /v1/schedules/{name}/resume",
  "POST /v1/schedules/{name}/trigger",
  "POST /v1/tasks/complete",
  "POST /v1/tasks/fail",
  "GET /v1/tasks/{id}",
  "DELETE /v1/tasks/{id}",
  "POST /v1/tasks/{id}/cancel",
  "POST /v1/tasks/{id}/complete",
  "POST /v1/tasks/{id}/fail",
  "POST /v1/tasks/{id}/heartbeat",
  "POST /v1/tasks/{id}/kill",
  "POST /v1/tasks/{id}/retry",
  "POST /v1/tasks/{id}/run-now",
  "GET /v1/webhooks",
  "POST /v1/webhooks",
  "GET /v1/webhooks/{id}",
  "DELETE /v1/webhooks/{id}",
  "PATCH /v1/webhooks/{id}",
  "GET /v1/webhooks/{id}/deliveries",
  "POST /v1/webhooks/{id}/deliveries/{delivery}/retry",
  "POST /v1/webhooks/{id}/rotate-secret",
  "GET /v1/whoami",
  "GET /v1/workers",
  "POST /v1/workers/{wid}/quiet",
  "POST /v1/workers/{wid}/terminate",
];

/**
 * Operations known and deliberately left out, with the reason: the coverage test counts them as
 * known.
 */
export const KNOWN_UNIMPLEMENTED: Readonly<Record<string, string>> = {
  "GET /v1/events/ws":
    "the same stream as GET /v1/events/stream; Node 20 has no WebSocket client without a dependency, so events.follow() uses SSE",
};

/** Component schema name → its properties (the TypeScript model in the comment). */
export const KNOWN_FIELDS: Readonly<Record<string, readonly string[]>> = {
  // AttemptError
  AttemptError: ["at", "attempt", "message"],
  // Backoff
  Backoff: ["base_ms", "max_ms"],
  // ItemOutcome[] (completeBatch, failBatch)
  BatchOutcome: ["items"],
  // CallbacksInfo
  CallbacksOut: ["configured", "previous_secret_until", "secret"],
  // ClaimOptions
  ClaimBody: ["kinds", "lease_ms", "max", "wait_ms", "worker"],
  // Task[] (claim)
  Claimed: ["tasks"],
  // ClientLimits
  ClientLimits: ["max_in_flight", "requests_per_minute"],
  // CompleteItem[] (completeBatch)
  CompleteBatch: ["items"],
  // complete(id, lease, result)
  CompleteBody: ["lease", "result"],
  // CompleteItem
  CompleteItem: ["id", "lease", "result"],
  // CreatedKey
  CreatedKey: ["token"],
  // void (delete calls)
  Deleted: ["deleted"],
  // DeliveryList
  DeliveryList: ["deliveries", "next_cursor"],
  // Delivery
  DeliveryOut: ["attempts", "created_at", "delivered_at", "event", "id", "last_error", "last_status", "latency_ms", "next_attempt_at", "state", "webhook_id"],
  // EnqueuedTask[] (enqueueBatch)
  EnqueuedBatch: ["tasks"],
  // EnqueuedTask
  EnqueuedTask: ["duplicate", "replaced"],
  // RotaError
  ErrorBody: ["error"],
  // ErrorDetail
  ErrorDetail: ["code", "message"],
  // RotaEvent
  EventBody: ["at", "attempt", "cursor", "data", "kind", "queue", "task_id", "type"],
  // EventList
  EventList: ["events", "next_cursor"],
  // FailItem[] (failBatch)
  FailBatch: ["items"],
  // fail(id, lease, error, FailOptions)
  FailBody: ["dead", "error", "lease", "retry_in_ms", "temporary"],
  // FailItem
  FailItem: ["dead", "error", "id", "lease", "retry_in_ms", "temporary"],
  // Finding
  Finding: ["cause", "check", "fix", "seen", "severity", "subject"],
  // FlowStats
  FlowStats: ["busiest_groups", "concurrency", "groups_complete", "groups_seen", "held", "longest_waiting_group", "median_group_wait_ms", "next_start_at", "rate", "running"],
  // GroupInfo
  GroupInfo: ["concurrency", "group", "held_by", "next_start_at", "oldest_ready_age_ms", "rate", "ready", "running", "settings"],
  // GroupPage
  GroupPage: ["groups", "next"],
  // GroupSettings
  GroupSettings: ["concurrency", "paused", "rate", "weight"],
  // heartbeat(id, lease, {lease_ms, progress})
  HeartbeatBody: ["lease", "lease_ms", "progress"],
  // Held
  Held: ["group_concurrency", "group_paused", "group_rate", "queue_concurrency", "queue_paused", "queue_rate"],
  // ItemOutcome
  ItemOutcome: ["error", "id", "ok", "state"],
  // Key
  KeyInfo: ["created_at", "expires_at", "id", "last_used_at", "limits", "name", "queues", "revoked_at", "roles", "tenant"],
  // Key[] (keys.list)
  KeyList: ["keys"],
  // kill(id, reason)
  KillBody: ["reason"],
  // Lease
  Lease: ["expires_at", "token", "worker"],
  // Maintenance
  Maintenance: ["by", "message", "refusing", "since", "until"],
  // MaintenanceInput
  MaintenanceRequest: ["message", "mode", "until"],
  // Maintenance | null
  MaintenanceState: ["maintenance"],
  // KeyInput
  NewKey: ["expires_at", "expires_in_s", "limits", "name", "queues", "roles"],
  // TenantInput
  NewTenant: ["event_retention_ms", "limits", "name"],
  // number (purge)
  Purged: ["deleted"],
  // QueueInfo
  QueueInfo: ["counts", "created_at", "last_claim_at", "name", "next_start_at", "oldest_ready_age_ms", "settings", "shard"],
  // QueueInfo[] (queues.list)
  QueueList: ["queues"],
  // QueuePatch
  QueuePatchBody: ["backoff", "callback_url", "concurrency", "group_concurrency", "group_rate", "lease_ms", "max_attempts", "paused", "rate", "retention_ms"],
  // QueueSettings
  QueueSettings: ["backoff", "callback_url", "concurrency", "group_concurrency", "group_rate", "lease_ms", "max_attempts", "paused", "rate", "retention_ms"],
  // QueueStats
  QueueStats: ["flow"],
  // Rate
  Rate: ["burst", "limit", "period_ms"],
  // DoctorReport
  Report: ["checked_at", "findings", "notes", "ok"],
  // roles.put(name, rules)
  RoleBody: ["rules"],
  // Role
  RoleInfo: ["builtin", "name", "rules", "updated_at"],
  // Role[] (roles.list)
  RoleList: ["roles"],
  // rotateSecret(id, graceMs)
  RotateBody: ["grace_ms"],
  // Rule
  Rule: ["action", "effect", "resource"],
  // ScheduleRun
  RunOut: ["fired_at", "outcome", "skipped", "task_id", "tick", "trigger"],
  // ScheduleInput
  ScheduleBody: ["catch_up", "cron", "every_ms", "group", "jitter_ms", "kind", "max_attempts", "overlap", "paused", "payload", "priority", "queue", "timezone"],
  // Schedule[] (schedules.list)
  ScheduleList: ["schedules"],
  // Schedule
  ScheduleOut: ["catch_up", "created_at", "cron", "every_ms", "jitter_ms", "kind", "max_attempts", "name", "next_run_at", "overlap", "paused", "payload", "priority", "queue", "runs", "timezone", "updated_at"],
  // StateCounts
  StateCounts: ["cancelled", "dead", "ready", "running", "scheduled", "succeeded"],
  // Readiness
  Status: ["checks", "maintenance", "status"],
  // Task
  Task: ["attempt", "callback_url", "created_at", "errors", "finished_at", "group", "id", "kind", "lease", "max_attempts", "payload", "priority", "progress", "queue", "result", "run_at", "state", "tags", "unique_key", "updated_at"],
  // TaskInput
  TaskInput: ["callback_url", "delay_ms", "group", "kind", "max_attempts", "on_duplicate", "payload", "priority", "run_at", "tags", "unique_key"],
  // TaskList
  TaskList: ["next_cursor", "tasks"],
  // Tenant[] (tenants.list)
  TenantList: ["tenants"],
  // TenantPatch
  TenantPatch: ["event_retention_ms", "limits"],
  // Tenant
  TenantRecord: ["created_at", "event_retention_ms", "limits", "name"],
  // Ticket
  Ticket: ["expires_at", "ticket"],
  // WebhookInput
  WebhookBody: ["description", "events", "queues", "url"],
  // Webhook[] (webhooks.list)
  WebhookList: ["webhooks"],
  // Webhook
  WebhookOut: ["created_at", "description", "disabled_reason", "enabled", "events", "failing_since", "id", "previous_secret_until", "queues", "secret", "updated_at", "url"],
  // WebhookPatch
  WebhookPatchBody: ["description", "enabled", "events", "queues", "url"],
  // WhoAmI
  WhoAmI: ["acting_tenant", "kinds", "maintenance", "principal", "queues", "roles", "tenant"],
  // WorkerProcess
  Worker: ["connected_at", "connections", "hostname", "labels", "last_beat", "pid", "signal", "wid"],
  // WorkerProcess[] (processes.list)
  WorkerList: ["workers"],
};
