/** Any JSON value: payloads, results and progress are stored and returned as they are. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** `waiting`: for its dependencies (`depends_on`) to succeed; it becomes `ready` when they have. */
export type TaskState = "waiting" | "scheduled" | "ready" | "running" | "succeeded" | "dead" | "cancelled";
export type FinalState = "succeeded" | "dead" | "cancelled";
export type OnDuplicate = "keep" | "replace";
/**
 * What a task does when a dependency ends dead or cancelled: `cancel` (the default) cancels it,
 * the reason its last error; `run` counts the dependency as done.
 */
export type OnDependencyFailure = "cancel" | "run";

export interface Lease {
  worker: string;
  /** Shown only to a caller that may complete the task. */
  token?: string;
  expires_at: string;
}

export interface AttemptError {
  attempt: number;
  at: string;
  message: string;
}

export interface Task {
  id: string;
  queue: string;
  kind: string;
  payload: Json;
  priority: number;
  state: TaskState;
  attempt: number;
  max_attempts: number;
  run_at: string;
  created_at: string;
  updated_at: string;
  finished_at?: string | null;
  /** When the latest attempt was claimed; absent before the first claim. */
  started_at?: string | null;
  lease?: Lease | null;
  progress?: Json;
  result?: Json;
  errors: AttemptError[];
  unique_key?: string | null;
  group?: string | null;
  tags: string[];
  callback_url?: string | null;
  /** The ids of the tasks this one waits for; absent when it waits for none. */
  depends_on?: string[];
  /** Absent unless `run`. */
  on_dependency_failure?: OnDependencyFailure;
  /** The workflow the task was submitted in, if any. */
  workflow?: string | null;
  /** The W3C trace context the task continues (the enqueue's, or its request's header); absent when none. */
  traceparent?: string | null;
  /** The vendors' part of the trace context, beside `traceparent`. */
  tracestate?: string | null;
}

/**
 * How a dependency of a claimed task ended, and its result: a join gets its inputs in the
 * claim's round trip.
 */
export interface DependencyResult {
  id: string;
  queue: string;
  kind: string;
  /** `succeeded`, or `dead`/`cancelled` for a task that runs anyway (`on_dependency_failure: "run"`). */
  state: TaskState;
  /** Its result, when inline. */
  result?: Json;
  /**
   * True when the result is not inline: it would pass the claim's bound (64 KiB of results in
   * all), or the claimer may not read the dependency's queue. `rota.tasks.get(id)` has it.
   */
  result_omitted?: boolean;
}

/** A task as claim answers it. */
export interface ClaimedTask extends Task {
  /**
   * Only for a task that waited for others (`depends_on`): its first 100 dependencies, in
   * `depends_on` order, each with how it ended and its result. A dependency removed by retention
   * since is left out.
   */
  dependencies?: DependencyResult[];
  /** Only for a batch's callback: how the batch's members ended. */
  batch?: BatchSummary;
}

/** How a batch's members ended, as its callback's claim carries it (ids of each outcome). */
export interface BatchSummary {
  /** The batch (a workflow id). */
  id: string;
  succeeded: string[];
  dead: string[];
  cancelled: string[];
}

/** A task as enqueue answers it. */
export interface EnqueuedTask extends Task {
  /** True when `unique_key` matched a live task, which is returned instead. */
  duplicate: boolean;
  /** True when that live task was waiting and took this request's fields (`on_duplicate: replace`). */
  replaced: boolean;
}

/** A task to enqueue; every field is optional. */
export interface TaskInput {
  kind?: string;
  payload?: Json;
  priority?: number;
  run_at?: string;
  delay_ms?: number;
  max_attempts?: number;
  unique_key?: string;
  on_duplicate?: OnDuplicate;
  group?: string;
  tags?: string[];
  callback_url?: string;
  /**
   * Ids of tasks (of this tenant, in any queue) that must succeed first; until then the task is
   * `waiting`. One that already succeeded counts at once.
   */
  depends_on?: string[];
  /** Only with `depends_on`. */
  on_dependency_failure?: OnDependencyFailure;
  /**
   * A W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, lower case) the task continues;
   * default: the request's `traceparent` header, if any.
   */
  traceparent?: string;
  /** The W3C `tracestate` beside it (at most 512 bytes); needs `traceparent`. */
  tracestate?: string;
}

export interface TaskList {
  tasks: Task[];
  /** Fetches the next (older) page; null on the last. */
  next_cursor?: string | null;
}

export interface ListTasksOptions {
  state?: TaskState;
  kind?: string;
  /** 1 to 1,000 (default 100). */
  limit?: number;
  cursor?: string;
  unique_key?: string;
}

export interface ClaimOptions {
  worker: string;
  kinds?: string[];
  /** Default 1, at most 1,000. */
  max?: number;
  /** Long-poll this long (at most 60,000) when nothing is ready. */
  wait_ms?: number;
  lease_ms?: number;
}

export interface CompleteItem {
  id: string;
  lease: string;
  result?: Json;
}

export interface FailOptions {
  retry_in_ms?: number;
  /** Do not retry: the task goes to the dead letters. */
  dead?: boolean;
  /** The attempt does not count toward `max_attempts`. */
  temporary?: boolean;
}

export interface FailItem extends FailOptions {
  id: string;
  lease: string;
  error: string;
}

export interface ErrorDetail {
  code: string;
  message: string;
}

export interface ItemOutcome {
  id: string;
  ok: boolean;
  state?: TaskState | null;
  error?: ErrorDetail | null;
}

export interface Backoff {
  base_ms: number;
  max_ms: number;
}

export interface Rate {
  limit: number;
  period_ms: number;
  burst?: number;
}

export interface QueueSettings {
  max_attempts: number;
  backoff: Backoff;
  lease_ms: number;
  retention_ms: number;
  paused: boolean;
  concurrency?: number | null;
  rate?: Rate | null;
  group_concurrency?: number | null;
  group_rate?: Rate | null;
  callback_url?: string | null;
}

/** A queue's settings to change; `null` lifts a limit. */
export interface QueuePatch {
  max_attempts?: number | null;
  backoff?: Backoff | null;
  lease_ms?: number | null;
  retention_ms?: number | null;
  paused?: boolean | null;
  concurrency?: number | null;
  rate?: Rate | null;
  group_concurrency?: number | null;
  group_rate?: Rate | null;
  callback_url?: string | null;
}

export interface StateCounts {
  waiting: number;
  scheduled: number;
  ready: number;
  running: number;
  succeeded: number;
  dead: number;
  cancelled: number;
}

export interface QueueInfo {
  name: string;
  settings: QueueSettings;
  counts: StateCounts;
  created_at: string;
  last_claim_at?: string | null;
  next_start_at?: string | null;
  oldest_ready_age_ms?: number | null;
  shard?: number | null;
}

export type Hold = "paused" | "concurrency" | "rate";

export interface GroupSettings {
  concurrency?: number | null;
  rate?: Rate | null;
  paused?: boolean;
  weight?: number;
}

export interface GroupInfo {
  group: string;
  ready: number;
  running: number;
  settings: GroupSettings;
  concurrency?: number | null;
  rate?: Rate | null;
  held_by?: Hold | null;
  next_start_at?: string | null;
  oldest_ready_age_ms?: number | null;
}

export interface GroupPage {
  groups: GroupInfo[];
  next?: string | null;
}

export interface Held {
  queue_paused: number;
  queue_concurrency: number;
  queue_rate: number;
  group_paused: number;
  group_concurrency: number;
  group_rate: number;
}

export interface FlowStats {
  running: number;
  concurrency?: number | null;
  rate?: Rate | null;
  next_start_at?: string | null;
  held: Held;
  busiest_groups: GroupInfo[];
  groups_seen: number;
  groups_complete: boolean;
  longest_waiting_group?: GroupInfo | null;
  median_group_wait_ms?: number | null;
}

/** One queue as `GET /v1/queues/{queue}` shows it. */
export interface QueueStats extends QueueInfo {
  flow: FlowStats;
}

export type EventType =
  | "task.enqueued"
  | "task.replaced"
  | "task.claimed"
  | "task.succeeded"
  | "task.failed"
  | "task.dead"
  | "task.cancelled"
  | "task.retried"
  | "task.lease_expired"
  | "task.deleted"
  | "task.waiting"
  | "task.released"
  | "workflow.succeeded"
  | "workflow.failed"
  | "workflow.cancelled"
  | "schedule.fired"
  | "schedule.skipped"
  | "delivery.dead"
  | "webhook.disabled"
  | "hook.received"
  | "hook.rejected";

/**
 * One event of the log. A `workflow.*` event (a workflow or batch whose tasks all ended) names
 * the workflow's last task (a batch's callback) and carries `workflow` (its id) and `state` in
 * `data`. A `hook.received` or `hook.rejected` event (an inbound webhook's request) names the
 * hook's queue and kind and carries `hook_id`, the provider's `delivery` when it sent one and,
 * rejected, the `reason`.
 */
export interface RotaEvent {
  cursor: number;
  type: EventType;
  at: string;
  queue: string;
  kind: string;
  task_id?: string | null;
  attempt: number;
  data: { [key: string]: Json };
}

export interface EventList {
  events: RotaEvent[];
  next_cursor: number;
}

export interface Ticket {
  ticket: string;
  expires_at: string;
}

export type CatchUp = "none" | "latest" | "all";
export type Overlap = "allow" | "skip";

export interface ScheduleInput {
  queue: string;
  cron?: string | null;
  every_ms?: number | null;
  timezone?: string | null;
  kind?: string | null;
  payload?: Json;
  priority?: number | null;
  max_attempts?: number | null;
  group?: string | null;
  jitter_ms?: number | null;
  catch_up?: CatchUp | null;
  overlap?: Overlap | null;
  paused?: boolean | null;
}

export interface ScheduleRun {
  tick: string;
  fired_at: string;
  task_id?: string | null;
  outcome?: TaskState | null;
  skipped?: string | null;
  trigger?: string | null;
}

export interface Schedule {
  name: string;
  queue: string;
  cron?: string | null;
  every_ms?: number | null;
  timezone: string;
  kind: string;
  payload?: Json;
  priority: number;
  max_attempts?: number | null;
  jitter_ms: number;
  catch_up: CatchUp;
  overlap: Overlap;
  paused: boolean;
  /** The flow-control group of every task it enqueues. */
  group?: string;
  next_run_at?: string | null;
  runs: ScheduleRun[];
  created_at: string;
  updated_at: string;
}

export interface WebhookInput {
  url: string;
  /** Event types or patterns, e.g. `task.dead`, `task.*`. */
  events: string[];
  queues?: string[];
  description?: string | null;
}

export interface WebhookPatch {
  url?: string | null;
  events?: string[] | null;
  queues?: string[] | null;
  description?: string | null;
  enabled?: boolean | null;
}

export interface Webhook {
  id: string;
  url: string;
  events: string[];
  queues: string[];
  description?: string | null;
  enabled: boolean;
  disabled_reason?: string | null;
  failing_since?: string | null;
  /** Shown once, when created or rotated. */
  secret?: string | null;
  previous_secret_until?: string | null;
  created_at: string;
  updated_at: string;
}

export type DeliveryState = "pending" | "failed" | "dead" | "delivered";

export interface Delivery {
  id: number;
  webhook_id: string;
  state: DeliveryState;
  attempts: number;
  created_at: string;
  delivered_at?: string | null;
  next_attempt_at?: string | null;
  last_status?: number | null;
  last_error?: string | null;
  latency_ms?: number | null;
  event: RotaEvent;
}

export interface DeliveryList {
  deliveries: Delivery[];
  next_cursor?: number | null;
}

export interface CallbacksInfo {
  configured: boolean;
  /** Shown once, when rotated. */
  secret?: string | null;
  previous_secret_until?: string | null;
}

export interface ClientLimits {
  requests_per_minute?: number | null;
  max_in_flight?: number | null;
}

export interface TenantInput {
  name: string;
  limits?: ClientLimits;
  event_retention_ms?: number | null;
}

export interface TenantPatch {
  limits?: ClientLimits | null;
  event_retention_ms?: number | null;
}

export interface Tenant {
  name: string;
  limits?: ClientLimits;
  event_retention_ms?: number | null;
  created_at: string;
}

export interface KeyInput {
  roles: string[];
  name?: string | null;
  queues?: string[];
  expires_at?: string | null;
  expires_in_s?: number | null;
  limits?: ClientLimits;
}

export interface Key {
  id: string;
  tenant: string;
  name?: string | null;
  roles: string[];
  queues: string[];
  limits: ClientLimits;
  created_at: string;
  expires_at?: string | null;
  last_used_at?: string | null;
  revoked_at?: string | null;
  /** When its secret was last rotated (`keys.rotate`). */
  rotated_at?: string | null;
  /** Until when the secret before the last rotation is still accepted; null when none is. */
  previous_secret_until?: string | null;
}

/** A new key and, this once, its token. */
export interface CreatedKey extends Key {
  token: string;
}

export type Effect = "allow" | "deny";

export interface Rule {
  resource: string;
  action: string;
  effect: Effect;
}

export interface Role {
  name: string;
  builtin: boolean;
  rules: Rule[];
  updated_at?: string | null;
}

export interface Maintenance {
  message: string;
  refusing: boolean;
  by: string;
  since: string;
  until?: string | null;
}

export interface MaintenanceInput {
  mode: "on" | "announce";
  message: string;
  until?: string | null;
}

export interface WhoAmI {
  principal: string;
  tenant: string;
  acting_tenant: string;
  roles: string[];
  queues: string[];
  kinds?: string[] | null;
  maintenance?: Maintenance | null;
}

/** A worker process connected through the Faktory door. */
export interface WorkerProcess {
  wid: string;
  hostname: string;
  pid: number;
  labels: string[];
  connections: number;
  connected_at: string;
  last_beat?: string | null;
  signal?: "quiet" | "terminate" | null;
}

export interface Finding {
  check: string;
  severity: "error" | "warning";
  subject: string;
  seen: string;
  cause: string;
  fix: string;
}

export interface DoctorReport {
  ok: boolean;
  checked_at: string;
  findings: Finding[];
  notes?: string[];
}

export interface Readiness {
  status: string;
  checks?: { [part: string]: string };
  maintenance?: Maintenance | null;
}
