import type {
  AttemptError,
  Backoff,
  BatchSummary,
  CallbacksInfo,
  ClaimOptions,
  ClaimedTask,
  ClientLimits,
  CompleteItem,
  CreatedKey,
  DependencyResult,
  Delivery,
  DeliveryList,
  DoctorReport,
  EnqueuedTask,
  ErrorDetail,
  EventList,
  FailItem,
  Finding,
  FlowStats,
  GroupInfo,
  GroupPage,
  GroupSettings,
  Held,
  ItemOutcome,
  Key,
  KeyInput,
  Lease,
  Maintenance,
  MaintenanceInput,
  QueueInfo,
  QueuePatch,
  QueueSettings,
  QueueStats,
  Rate,
  Readiness,
  Role,
  RotaEvent,
  Rule,
  Schedule,
  ScheduleInput,
  ScheduleRun,
  StateCounts,
  Task,
  TaskInput,
  TaskList,
  Tenant,
  TenantInput,
  TenantPatch,
  Ticket,
  Webhook,
  WebhookInput,
  WebhookPatch,
  WhoAmI,
  WorkerProcess,
} from "./types.js";
import type { BatchInput, Spawned, Workflow, WorkflowList, WorkflowTask, WorkflowTaskInput } from "./workflow-types.js";
import type { Hook, HookInput, HookPatch, HookRequest, HookRotation } from "./hook-types.js";
import type { AccessToken } from "./oauth.js";
import type { AuditEntry, AuditList } from "./audit-types.js";

/**
 * What this library knows of the server's API, kept by hand as data: every operation it
 * implements (method and path, as in the OpenAPI document; those it deliberately leaves to
 * others, a provider's `POST /hooks/{id}` and the token signing keys, are listed with the reason
 * beside them) and, for every
 * component schema with properties, the fields its TypeScript model has. The coverage test
 * compares these with a live server's `/openapi.json`, so a new operation or field fails it
 * until it is added here and to the model named beside it.
 */
export const KNOWN_OPERATIONS: readonly string[] = [
  "GET /healthz",
  "POST /oauth/token",
  // Not wrapped: the public keys access tokens are signed with, for a service that checks the
  // tokens itself; this client only sends its tokens to the server, which checks them.
  "GET /.well-known/jwks.json",
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
  "GET /v1/audit",
  "POST /v1/batches",
  "GET /v1/batches/{id}",
  "POST /v1/batches/{id}/close",
  "POST /v1/batches/{id}/tasks",
  "GET /v1/callbacks",
  "POST /v1/callbacks/rotate-secret",
  "GET /v1/doctor",
  "GET /v1/events",
  "GET /v1/events/stream",
  "GET /v1/events/ws",
  "POST /v1/events/tickets",
  "GET /v1/hooks",
  "POST /v1/hooks",
  "GET /v1/hooks/{id}",
  "PATCH /v1/hooks/{id}",
  "DELETE /v1/hooks/{id}",
  "GET /v1/hooks/{id}/requests",
  "POST /v1/hooks/{id}/rotate-secret",
  // Not wrapped: a provider's request to an inbound webhook (its body JSON or text), proven by
  // its signature rather than an API token, so not the API client's to send (see `Hooks`).
  "POST /hooks/{id}",
  "GET /v1/keys",
  "POST /v1/keys",
  "GET /v1/keys/{id}",
  "DELETE /v1/keys/{id}",
  "POST /v1/keys/{id}/rotate",
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
  "POST /v1/tasks/{id}/spawn",
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
  "GET /v1/workflows",
  "POST /v1/workflows",
  "GET /v1/workflows/{id}",
  "POST /v1/workflows/{id}/cancel",
];

/**
 * The fields of model `T`, checked by the compiler both ways: each listed name is a field of `T`,
 * and `T` has no field left unlisted. So this table cannot claim a field the model lacks.
 */
function fieldsOf<T>() {
  return <const K extends readonly (keyof T & string)[]>(
    fields: K & (Exclude<keyof T & string, K[number]> extends never ? unknown : { unlisted: Exclude<keyof T & string, K[number]> }),
  ): readonly string[] => fields;
}

/**
 * Component schema name → its properties. A schema with a model names it in `fieldsOf<Model>`;
 * the others are the wire's wrappers (`{"tasks": [...]}`, `{"items": [...]}`, a body of one or
 * two fields) that the API groups build and unwrap themselves. `RotaEvent.data` and the JSON
 * `payload`, `result` and `progress` are passed through untyped (`Json`) on purpose.
 */
export const KNOWN_FIELDS: Readonly<Record<string, readonly string[]>> = {
  // wire wrapper: Task[] (batches.add)
  AddedList: ["tasks"],
  // wire wrapper: AddedTask[] (batches.add)
  AddedTasks: ["tasks"],
  AttemptError: fieldsOf<AttemptError>()(["at", "attempt", "message"]),
  AuditEntry: fieldsOf<AuditEntry>()(["action", "actor", "after", "at", "before", "id", "request_id", "source", "target", "tenant"]),
  AuditList: fieldsOf<AuditList>()(["entries", "next_cursor"]),
  Backoff: fieldsOf<Backoff>()(["base_ms", "max_ms"]),
  BatchInput: fieldsOf<BatchInput>()(["callback", "only_on_success", "open", "tasks"]),
  // wire wrapper: ItemOutcome[] (completeBatch, failBatch)
  BatchOutcome: ["items"],
  BatchSummary: fieldsOf<BatchSummary>()(["cancelled", "dead", "id", "succeeded"]),
  CallbacksOut: fieldsOf<CallbacksInfo>()(["configured", "previous_secret_until", "secret"]),
  ClaimBody: fieldsOf<ClaimOptions>()(["kinds", "lease_ms", "max", "wait_ms", "worker"]),
  // wire wrapper: ClaimedTask[] (claim)
  Claimed: ["tasks"],
  ClaimedTask: fieldsOf<Omit<ClaimedTask, keyof Task>>()(["batch", "dependencies"]),
  ClientLimits: fieldsOf<ClientLimits>()(["max_in_flight", "requests_per_minute"]),
  // wire wrapper: CompleteItem[] (completeBatch)
  CompleteBatch: ["items"],
  CompleteBody: fieldsOf<Omit<CompleteItem, "id">>()(["lease", "result"]),
  CompleteItem: fieldsOf<CompleteItem>()(["id", "lease", "result"]),
  CreatedKey: fieldsOf<Omit<CreatedKey, keyof Key>>()(["token"]),
  DependencyResult: fieldsOf<DependencyResult>()(["id", "kind", "queue", "result", "result_omitted", "state"]),
  // wire wrapper: void (delete calls)
  Deleted: ["deleted"],
  DeliveryList: fieldsOf<DeliveryList>()(["deliveries", "next_cursor"]),
  DeliveryOut: fieldsOf<Delivery>()(["attempts", "created_at", "delivered_at", "event", "id", "last_error", "last_status", "latency_ms", "next_attempt_at", "state", "webhook_id"]),
  // wire wrapper: EnqueuedTask[] (enqueueBatch)
  EnqueuedBatch: ["tasks"],
  EnqueuedTask: fieldsOf<Omit<EnqueuedTask, keyof Task>>()(["duplicate", "replaced"]),
  // wire wrapper: RotaError
  ErrorBody: ["error"],
  ErrorDetail: fieldsOf<ErrorDetail>()(["code", "message"]),
  EventBody: fieldsOf<RotaEvent>()(["at", "attempt", "cursor", "data", "kind", "queue", "task_id", "type"]),
  EventList: fieldsOf<EventList>()(["events", "next_cursor"]),
  // wire wrapper: FailItem[] (failBatch)
  FailBatch: ["items"],
  FailBody: fieldsOf<Omit<FailItem, "id">>()(["dead", "error", "lease", "retry_in_ms", "temporary"]),
  FailItem: fieldsOf<FailItem>()(["dead", "error", "id", "lease", "retry_in_ms", "temporary"]),
  Finding: fieldsOf<Finding>()(["cause", "check", "fix", "seen", "severity", "subject"]),
  FlowStats: fieldsOf<FlowStats>()(["busiest_groups", "concurrency", "groups_complete", "groups_seen", "held", "longest_waiting_group", "median_group_wait_ms", "next_start_at", "rate", "running"]),
  GroupInfo: fieldsOf<GroupInfo>()(["concurrency", "group", "held_by", "next_start_at", "oldest_ready_age_ms", "rate", "ready", "running", "settings"]),
  GroupPage: fieldsOf<GroupPage>()(["groups", "next"]),
  GroupSettings: fieldsOf<GroupSettings>()(["concurrency", "paused", "rate", "weight"]),
  // wire wrapper: heartbeat(id, lease, {lease_ms, progress})
  HeartbeatBody: ["lease", "lease_ms", "progress"],
  HookBody: fieldsOf<HookInput>()(["description", "kind", "name", "queue", "secret", "verify"]),
  // wire wrapper: Hook[] (hooks.list)
  HookList: ["hooks"],
  HookOut: fieldsOf<Hook>()(["created_at", "description", "enabled", "id", "kind", "name", "owner", "previous_secret_until", "queue", "secret", "updated_at", "url", "verify"]),
  HookPatchBody: fieldsOf<HookPatch>()(["description", "enabled", "kind", "queue"]),
  // not wrapped: the answer a provider gets from POST /hooks/{id}
  HookReceived: ["duplicate", "task_id"],
  HookRequest: fieldsOf<HookRequest>()(["address", "at", "delivery", "outcome", "reason", "status", "task_id"]),
  // wire wrapper: HookRequest[] (hooks.requests)
  HookRequestList: ["requests"],
  HookRotateBody: fieldsOf<HookRotation>()(["grace_ms", "secret"]),
  Held: fieldsOf<Held>()(["group_concurrency", "group_paused", "group_rate", "queue_concurrency", "queue_paused", "queue_rate"]),
  ItemOutcome: fieldsOf<ItemOutcome>()(["error", "id", "ok", "state"]),
  KeyInfo: fieldsOf<Key>()(["created_at", "expires_at", "id", "last_used_at", "limits", "name", "previous_secret_until", "queues", "revoked_at", "roles", "rotated_at", "tenant"]),
  // wire wrapper: Key[] (keys.list)
  KeyList: ["keys"],
  // wire wrapper: kill(id, reason)
  KillBody: ["reason"],
  Lease: fieldsOf<Lease>()(["expires_at", "token", "worker"]),
  Maintenance: fieldsOf<Maintenance>()(["by", "message", "refusing", "since", "until"]),
  MaintenanceRequest: fieldsOf<MaintenanceInput>()(["message", "mode", "until"]),
  // wire wrapper: Maintenance | null
  MaintenanceState: ["maintenance"],
  NewKey: fieldsOf<KeyInput>()(["expires_at", "expires_in_s", "limits", "name", "queues", "roles"]),
  NewTenant: fieldsOf<TenantInput>()(["event_retention_ms", "limits", "name"]),
  // the token endpoint's errors (RFC 6749), read into RotaError's code and message
  OAuthErrorBody: ["error", "error_description"],
  // wire wrapper: number (purge)
  Purged: ["deleted"],
  QueueInfo: fieldsOf<QueueInfo>()(["counts", "created_at", "last_claim_at", "name", "next_start_at", "oldest_ready_age_ms", "settings", "shard"]),
  // wire wrapper: QueueInfo[] (queues.list)
  QueueList: ["queues"],
  QueuePatchBody: fieldsOf<QueuePatch>()(["backoff", "callback_url", "concurrency", "group_concurrency", "group_rate", "lease_ms", "max_attempts", "paused", "rate", "retention_ms"]),
  QueueSettings: fieldsOf<QueueSettings>()(["backoff", "callback_url", "concurrency", "group_concurrency", "group_rate", "lease_ms", "max_attempts", "paused", "rate", "retention_ms"]),
  QueueStats: fieldsOf<Omit<QueueStats, keyof QueueInfo>>()(["flow"]),
  Rate: fieldsOf<Rate>()(["burst", "limit", "period_ms"]),
  Report: fieldsOf<DoctorReport>()(["checked_at", "findings", "notes", "ok"]),
  // wire wrapper: roles.put(name, rules)
  RoleBody: ["rules"],
  RoleInfo: fieldsOf<Role>()(["builtin", "name", "rules", "updated_at"]),
  // wire wrapper: Role[] (roles.list)
  RoleList: ["roles"],
  // wire wrapper: rotateSecret(id, graceMs)
  RotateBody: ["grace_ms"],
  // wire wrapper: keys.rotate(id, graceMs)
  RotateKey: ["grace_ms"],
  Rule: fieldsOf<Rule>()(["action", "effect", "resource"]),
  RunOut: fieldsOf<ScheduleRun>()(["fired_at", "outcome", "skipped", "task_id", "tick", "trigger"]),
  ScheduleBody: fieldsOf<ScheduleInput>()(["catch_up", "cron", "every_ms", "group", "jitter_ms", "kind", "max_attempts", "overlap", "paused", "payload", "priority", "queue", "timezone"]),
  // wire wrapper: Schedule[] (schedules.list)
  ScheduleList: ["schedules"],
  ScheduleOut: fieldsOf<Schedule>()(["catch_up", "created_at", "cron", "every_ms", "group", "jitter_ms", "kind", "max_attempts", "name", "next_run_at", "overlap", "paused", "payload", "priority", "queue", "runs", "timezone", "updated_at"]),
  StateCounts: fieldsOf<StateCounts>()(["cancelled", "dead", "ready", "running", "scheduled", "succeeded", "waiting"]),
  // wire wrapper: spawn(task, tasks, { on_dependency_failure })
  SpawnBody: ["lease", "on_dependency_failure", "tasks"],
  SpawnedTasks: fieldsOf<Spawned>()(["task", "tasks"]),
  Status: fieldsOf<Readiness>()(["checks", "maintenance", "status"]),
  Task: fieldsOf<Task>()(["attempt", "callback_url", "created_at", "depends_on", "errors", "finished_at", "group", "id", "kind", "lease", "max_attempts", "on_dependency_failure", "payload", "priority", "progress", "queue", "result", "run_at", "started_at", "state", "tags", "traceparent", "tracestate", "unique_key", "updated_at", "workflow"]),
  TaskInput: fieldsOf<TaskInput>()(["callback_url", "delay_ms", "depends_on", "group", "kind", "max_attempts", "on_dependency_failure", "on_duplicate", "payload", "priority", "run_at", "tags", "traceparent", "tracestate", "unique_key"]),
  TaskList: fieldsOf<TaskList>()(["next_cursor", "tasks"]),
  // wire wrapper: Tenant[] (tenants.list)
  TenantList: ["tenants"],
  TenantPatch: fieldsOf<TenantPatch>()(["event_retention_ms", "limits"]),
  TenantRecord: fieldsOf<Tenant>()(["created_at", "event_retention_ms", "limits", "name"]),
  Ticket: fieldsOf<Ticket>()(["expires_at", "ticket"]),
  // wire form: fetchToken(ClientCredentials), sent as application/x-www-form-urlencoded
  TokenRequest: ["client_id", "client_secret", "grant_type", "scope"],
  TokenResponse: fieldsOf<AccessToken>()(["access_token", "expires_in", "scope", "token_type"]),
  WebhookBody: fieldsOf<WebhookInput>()(["description", "events", "queues", "url"]),
  // wire wrapper: Webhook[] (webhooks.list)
  WebhookList: ["webhooks"],
  WebhookOut: fieldsOf<Webhook>()(["created_at", "description", "disabled_reason", "enabled", "events", "failing_since", "id", "previous_secret_until", "queues", "secret", "updated_at", "url"]),
  WebhookPatchBody: fieldsOf<WebhookPatch>()(["description", "enabled", "events", "queues", "url"]),
  WhoAmI: fieldsOf<WhoAmI>()(["acting_tenant", "kinds", "maintenance", "principal", "queues", "roles", "tenant"]),
  Worker: fieldsOf<WorkerProcess>()(["connected_at", "connections", "hostname", "labels", "last_beat", "pid", "signal", "wid"]),
  // wire wrapper: WorkerProcess[] (processes.list)
  WorkerList: ["workers"],
  Workflow: fieldsOf<Workflow>()(["counts", "created_at", "id", "kind", "open", "state", "tasks"]),
  // wire wrapper: WorkflowTaskInput[] (workflows.submit)
  WorkflowInput: ["tasks"],
  WorkflowList: fieldsOf<WorkflowList>()(["next_before", "workflows"]),
  WorkflowTask: fieldsOf<WorkflowTask>()(["name", "task"]),
  WorkflowTaskInput: fieldsOf<WorkflowTaskInput>()(["callback_url", "delay_ms", "depends_on", "group", "kind", "max_attempts", "name", "on_dependency_failure", "payload", "priority", "queue", "run_at", "tags", "traceparent", "tracestate"]),
};
