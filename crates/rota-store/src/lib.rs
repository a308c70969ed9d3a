//! The storage trait: queue operations at the level the server needs them (enqueue a batch,
//! claim a batch, heartbeat, complete/fail a batch, maintenance, queries). Engines implement it;
//! [`conformance`] holds the test bodies every engine must pass.
//!
//! Architecture Invariant: nothing outside an engine crate knows SQL or file formats; the server
//! talks only to `dyn Store`.

pub mod audit;
pub mod conformance;
mod diagnosis;
mod event_log;
mod groups;
mod parked;
mod retention;
mod schedules;
mod signals;
mod webhooks;
mod workflows;

pub use diagnosis::{
    add_minutes, top_errors, Diagnosis, QueueActivity, DIAGNOSE_SCAN, READY_KINDS, TOP_ERRORS,
};
pub use event_log::{
    EventKeep, EventLog, EventPage, DEFAULT_EVENT_RETENTION_MS, EVENT_SCAN, MAX_LOGGED_EVENTS,
};
pub use groups::{GroupPage, GroupStore, MAX_GROUP_VISITS};
pub use parked::{ParkedClaim, ParkedClaims};
pub use retention::{EventRetention, TrimMarks, TrimRow, TrimStep, Trimmed, RESCAN_MS};
use rota_core::webhooks::{Attempt, Delivery, Webhook};
pub use schedules::{DueSchedules, Firing, ScheduleRecord, Tick};
pub use signals::{EventSignals, KeyedSignals, ReadySignals};
pub use webhooks::{DeliveryFilter, DueDelivery, DueSkip};
pub use workflows::{
    batch_closed, not_a_batch, Spawn, Spawned, Submission, WorkflowSpecTask, WorkflowStore,
};

use async_trait::async_trait;
pub use rota_core::auth::{KeyRecord, RoleRecord, TenantRecord};
use rota_core::events::Event;
use rota_core::hooks::HookRecord;
use rota_core::lifecycle::{InvalidTransition, LeaseLoss};
use rota_core::maintenance::Maintenance;
use rota_core::{Json, QueueInfo, QueueKey, QueuePatch, Task, TaskId, TaskState, Timestamp};
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("task {0} does not exist")]
    TaskNotFound(TaskId),
    #[error("queue `{0}` does not exist")]
    QueueNotFound(String),
    #[error("schedule `{0}` does not exist")]
    ScheduleNotFound(String),
    #[error("webhook `{0}` does not exist")]
    WebhookNotFound(String),
    #[error("workflow {0} does not exist")]
    WorkflowNotFound(TaskId),
    #[error("delivery {0} does not exist")]
    DeliveryNotFound(i64),
    /// The tenant does not exist (or was deleted while the request was on its way).
    #[error("tenant `{0}` does not exist")]
    TenantNotFound(String),
    /// A bound of the store would be passed (e.g. queues per tenant); the message names it.
    #[error("{0}")]
    LimitReached(String),
    /// The lease token is not (or no longer) the task's live lease; the reason says why.
    #[error("task {0}: {1}")]
    LeaseLost(TaskId, LeaseLoss),
    #[error("task {id}: {source}")]
    InvalidState {
        id: TaskId,
        source: InvalidTransition,
    },
    /// The change would break a rule that involves another task (e.g. a unique key).
    #[error("{0}")]
    Conflict(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The store cannot serve requests now (disk full, I/O error, shutting down).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One enqueued task; `duplicate` when its `unique_key` matched a live task, which is returned
/// instead, and `replaced` too when that task was waiting and took the new task's fields
/// (`OnDuplicate::Replace`, [`rota_core::lifecycle::replaced`]). A duplicate that is not
/// replaced with `Replace` asked was running: it is kept and nothing is enqueued.
///
/// Within one batch the entries take effect in order, as if enqueued one after another: an
/// entry repeating an earlier entry's key is that task's duplicate, kept or replaced by its own
/// `on_duplicate`.
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub task: Task,
    pub duplicate: bool,
    pub replaced: bool,
}

impl Enqueued {
    /// A task the enqueue created.
    pub fn created(task: Task) -> Self {
        Enqueued {
            task,
            duplicate: false,
            replaced: false,
        }
    }

    /// The live holder of the key, answered as it is.
    pub fn kept(task: Task) -> Self {
        Enqueued {
            task,
            duplicate: true,
            replaced: false,
        }
    }

    /// The waiting holder of the key, as the replacement left it.
    pub fn replaced(task: Task) -> Self {
        Enqueued {
            task,
            duplicate: true,
            replaced: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub worker: String,
    /// Only tasks of these kinds; empty means any kind.
    pub kinds: Vec<String>,
    pub max: usize,
    /// Lease length; `None` takes the queue's `lease_ms`.
    pub lease_ms: Option<u64>,
}

/// What a claim got, and when a rate will let it get more.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    pub tasks: Vec<Task>,
    /// Set when a rate (the queue's or a group's) held ready tasks back: the earliest moment
    /// one of them may start. A waiting claim looks again then; room made by a task ending
    /// wakes it through the ready signal instead.
    pub next_start_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub id: TaskId,
    pub lease: String,
    pub lease_ms: Option<u64>,
    pub progress: Option<Json>,
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub id: TaskId,
    pub lease: String,
    pub result: Option<Json>,
}

#[derive(Debug, Clone)]
pub struct FailureReport {
    pub id: TaskId,
    pub lease: String,
    pub error: String,
    pub retry_in_ms: Option<u64>,
    pub dead: bool,
    /// The attempt does not count toward `max_attempts` (see `rota_core::lifecycle::Failure`).
    pub temporary: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<TaskState>,
    pub kind: Option<String>,
    pub limit: usize,
    /// Only tasks older than this one (the previous page's cursor).
    pub before: Option<TaskId>,
    /// Only the live task (scheduled, ready or running) holding this unique key, found by the
    /// index that enforces unique keys; finished tasks that once held it are not listed.
    pub unique_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub tasks: Vec<Task>,
    pub next_cursor: Option<TaskId>,
}

/// What one maintenance pass did, and when the next one is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub promoted: u64,
    pub expired: u64,
    pub deleted: u64,
    /// The earliest `run_at` of a scheduled task or lease expiry still ahead.
    pub next_due: Option<Timestamp>,
}

/// The deepest queues one by one, the rest summed (see [`Store::queue_overview`]).
#[derive(Debug, Clone, Default)]
pub struct QueueOverview {
    /// `(tenant, queue)` of the deepest queues.
    pub top: Vec<(String, QueueInfo)>,
    /// The other queues' tasks by state, summed.
    pub rest: rota_core::StateCounts,
    /// How many queues `rest` sums.
    pub rest_queues: usize,
}

/// Health of the store's parts, each named.
#[derive(Debug, Clone)]
pub struct Health {
    pub checks: Vec<(String, Result<(), String>)>,
}

/// A database connection pool's state, for engines that have one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections the pool may open.
    pub max: usize,
    /// Connections handed out now.
    pub busy: usize,
    /// Requests waiting for a connection now.
    pub waiting: usize,
    /// Requests refused since start because no connection came free in time.
    pub timeouts: u64,
}

/// What an engine's writer threads have done since start, summed, for engines that have them
/// (the embedded store's, one per shard). Counters only: a reader takes differences over its
/// own interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriterStatus {
    /// Seconds the writers spent applying and committing batches (not waiting for work).
    pub busy_seconds: f64,
    /// The same, by writer (shard order).
    pub busy_by_writer: Vec<f64>,
    /// Transactions committed.
    pub commits: u64,
    /// Of those, the ones that waited for an fsync.
    pub synced_commits: u64,
    /// WAL checkpoints run beside the writers (by each shard's checkpoint thread).
    pub checkpoints: u64,
    /// WAL checkpoints a writer ran itself, between two batches, because the WAL had grown
    /// past its hard size while the background ones ran.
    pub writer_checkpoints: u64,
}

/// Everything access control keeps: tenants, API keys (hashes only) and custom roles; and the
/// maintenance state, which decides what may be written at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthData {
    pub tenants: Vec<TenantRecord>,
    pub keys: Vec<KeyRecord>,
    pub roles: Vec<RoleRecord>,
    /// Inbound webhooks: each is a credential that enqueues into one queue.
    pub hooks: Vec<HookRecord>,
    pub maintenance: Option<Maintenance>,
}

/// One change to access-control data. Each is a plain write (insert or replace, delete); the
/// server checks existence and permissions before asking, because it serializes these changes
/// and holds the data in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthChange {
    PutTenant(TenantRecord),
    /// Deletes the tenant with its queues, tasks, keys and roles, in one transaction.
    DeleteTenant(String),
    PutKey(Box<KeyRecord>),
    /// Ends key `key`'s dashboard sessions issued at or before `at`: its
    /// `sessions_valid_from` moves forward to `at`, never back (two servers signing out at
    /// once keep the later time). Nothing happens when the key does not exist.
    EndSessions {
        key: String,
        at: Timestamp,
    },
    /// Records when keys were last used (written in batches, not per request).
    TouchKeys(Vec<(String, Timestamp)>),
    PutRole(RoleRecord),
    DeleteRole {
        tenant: String,
        name: String,
    },
    /// Sets or (`None`) ends maintenance mode.
    SetMaintenance(Option<Maintenance>),
    /// Creates or replaces an inbound webhook.
    PutHook(Box<HookRecord>),
    DeleteHook {
        tenant: String,
        id: String,
    },
    /// Writes key `key` and logs `event` (a `key.*` event of the key's tenant, in no queue)
    /// in one transaction. With `expect_notice`, only when the stored key's `expiry_notice`
    /// is that (else nothing is written): whichever server logs an expiry notice, it is
    /// logged once.
    KeyEvent {
        key: Box<KeyRecord>,
        event: Box<Event>,
        expect_notice: Option<Option<String>>,
    },
}

/// What an operator does to one task by its id, through [`Store::change`]. The transitions
/// are [`rota_core::lifecycle`]'s; a task that may not take one answers `InvalidState`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Any task not final → cancelled (a running one loses its lease).
    Cancel,
    /// Dead or cancelled → ready, its attempts reset; refused while another live task holds
    /// its unique key.
    Retry,
    /// Scheduled (or waiting for a retry) → ready now, its attempts kept.
    RunNow,
    /// Scheduled or ready → dead without running, `reason` recorded as its last error.
    Kill { reason: String },
    /// Any task not running → removed, with its unique key.
    Delete,
}

impl Change {
    pub fn event(&self) -> rota_core::lifecycle::Event {
        use rota_core::lifecycle::Event;
        match self {
            Change::Cancel => Event::Cancel,
            Change::Retry => Event::Retry,
            Change::RunNow => Event::RunNow,
            Change::Kill { .. } => Event::Kill,
            Change::Delete => Event::Delete,
        }
    }
}

#[async_trait]
pub trait Store:
    EventLog + GroupStore + WorkflowStore + audit::AuditLog + Send + Sync + 'static
{
    /// Enqueues all tasks in one atomic write, creating the queue on first use.
    async fn enqueue(
        &self,
        queue: &QueueKey,
        tasks: Vec<rota_core::NewTask>,
    ) -> StoreResult<Vec<Enqueued>>;
    /// Leases up to `max` ready tasks, highest priority first and FIFO within a priority; in a
    /// queue with groups, the groups take turns (see `docs/flow-control.md`); never past a
    /// limit of the queue or a group. Never waits: long-polling is built on
    /// [`Store::ready_signal`] and on the answer's `next_start_at`.
    async fn claim_batch(&self, queue: &QueueKey, req: ClaimRequest) -> StoreResult<Claimed>;
    /// [`Store::claim_batch`]'s tasks alone.
    async fn claim(&self, queue: &QueueKey, req: ClaimRequest) -> StoreResult<Vec<Task>> {
        Ok(self.claim_batch(queue, req).await?.tasks)
    }
    async fn heartbeat(&self, tenant: &str, hb: Heartbeat) -> StoreResult<Task>;
    /// One outcome per item, in order; the items that succeed are committed together.
    async fn complete(&self, tenant: &str, items: Vec<Completion>) -> Vec<StoreResult<Task>>;
    async fn fail(&self, tenant: &str, items: Vec<FailureReport>) -> Vec<StoreResult<Task>>;
    /// An operator's change to one task (see [`Change`]): the task as it is after, or as it was
    /// for a delete.
    async fn change(&self, tenant: &str, id: TaskId, change: Change) -> StoreResult<Task>;
    async fn get(&self, tenant: &str, id: TaskId) -> StoreResult<Task>;
    /// The live tasks (scheduled, ready or running) holding `unique_key` in any of the tenant's
    /// queues (at most one per queue), found by the index that enforces unique keys.
    async fn unique_holders(&self, tenant: &str, unique_key: &str) -> StoreResult<Vec<Task>>;
    async fn list(&self, queue: &QueueKey, filter: ListFilter) -> StoreResult<Page>;
    async fn queues(&self, tenant: &str) -> StoreResult<Vec<QueueInfo>>;
    async fn queue(&self, queue: &QueueKey) -> StoreResult<QueueInfo>;
    /// Every queue of every tenant, with its tenant: for operators, never for a tenant's own
    /// requests.
    async fn all_queues(&self) -> StoreResult<Vec<(String, QueueInfo)>>;
    /// The `max` queues (of any tenant) with the most live tasks, in full, and the counts of
    /// all others summed: what `/metrics` shows, at a cost bounded by `max`.
    async fn queue_overview(&self, max: usize) -> StoreResult<QueueOverview>;
    /// What `rota doctor` needs of `tenant`: events since `since` summed per queue (the
    /// newest [`DIAGNOSE_SCAN`] at most) with their most common errors, ready kinds, and tasks
    /// scheduled after `far`.
    async fn diagnose(
        &self,
        tenant: &str,
        since: Timestamp,
        far: Timestamp,
    ) -> StoreResult<Diagnosis>;
    /// Changes settings, creating the queue if it does not exist yet.
    async fn update_queue(&self, queue: &QueueKey, patch: QueuePatch) -> StoreResult<QueueInfo>;
    /// Deletes the queue's tasks in `state`, live ones too (a worker holding a deleted task's
    /// lease then finds it gone). Returns how many. Which states a caller may purge is the
    /// service's rule, not the store's.
    async fn purge(&self, queue: &QueueKey, state: TaskState) -> StoreResult<u64>;
    /// Promotes due scheduled tasks, returns expired leases to the queue (or the DLQ), and
    /// deletes final tasks past their queue's retention.
    async fn run_maintenance(&self) -> StoreResult<MaintenanceReport>;
    /// Notified whenever tasks of `queue` may have become ready.
    fn ready_signal(&self, queue: &QueueKey) -> Arc<Notify>;
    /// Leaves a waiting claim with the engine (see [`ParkedClaim`]): the write that makes
    /// `queue`'s tasks ready claims them for it in the same transaction. `false` when the
    /// engine does not park claims; the caller then relies on [`Store::ready_signal`] alone,
    /// which every engine notifies either way.
    fn park_claim(&self, queue: &QueueKey, claim: &Arc<ParkedClaim>) -> bool {
        let _ = (queue, claim);
        false
    }
    /// Notified when a write creates a due time (run_at, lease expiry) that maintenance may not
    /// know of yet.
    fn maintenance_signal(&self) -> Arc<Notify>;
    /// Notified when tenants, keys or roles may have changed through another server, so the
    /// caller reloads them. An engine with one server never notifies it.
    fn auth_signal(&self) -> Arc<Notify> {
        Arc::new(Notify::new())
    }
    /// Takes or renews leadership of `service` for `holder` (a server's id) for `ttl`; `true`
    /// while `holder` leads. Background services run only while they lead, so with several
    /// servers on one database each runs on exactly one of them. An engine with one server
    /// always leads.
    async fn lead(
        &self,
        service: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<bool> {
        let _ = (service, holder, ttl);
        Ok(true)
    }
    /// Gives up leadership of `service` at once (at shutdown), so another server takes over
    /// without waiting for the lease to run out.
    async fn resign(&self, service: &str, holder: &str) {
        let _ = (service, holder);
    }
    /// Records that `server` is alive and returns how many servers are (itself included):
    /// limits shared across servers divide by it. Called about once a second.
    async fn servers_alive(&self, server: &str) -> StoreResult<usize> {
        let _ = server;
        Ok(1)
    }
    /// Records `server`'s demand on each limited client in its last second (`(client,
    /// requests)`) and returns the other live servers' demand by client, so limits can be
    /// shared by demand. Called about once a second; a single-server engine has no others.
    async fn exchange_demand(
        &self,
        server: &str,
        mine: Vec<(String, u64)>,
    ) -> StoreResult<std::collections::HashMap<String, u64>> {
        let _ = (server, mine);
        Ok(Default::default())
    }
    /// The connection pool, for engines that have one (shown in `/metrics`).
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }
    /// The writer threads' work so far, for engines with writer threads (shown in `/metrics`
    /// and read by `rota doctor`).
    fn writer_status(&self) -> Option<WriterStatus> {
        None
    }
    /// Each part's health. Includes whether a write commits now (a probe through the write
    /// path), so a full disk makes the store unready.
    async fn health(&self) -> Health;
    /// Every tenant, key and role.
    async fn load_auth(&self) -> StoreResult<AuthData>;
    /// Applies one change durably (answers after it is committed).
    async fn change_auth(&self, change: AuthChange) -> StoreResult<()>;
    /// One API key by id, read from the store (not from any server's memory): how a server
    /// learns of a key another server created moments ago.
    async fn find_key(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        Ok(self
            .load_auth()
            .await?
            .keys
            .into_iter()
            .find(|k| k.id == id))
    }
    /// Stores `key` only if no key exists yet, atomically across servers: of several servers
    /// starting on one empty database, exactly one creates the first admin key. `true` when
    /// this call stored it.
    async fn put_first_key(&self, key: KeyRecord) -> StoreResult<bool> {
        if !self.load_auth().await?.keys.is_empty() {
            return Ok(false);
        }
        self.change_auth(AuthChange::PutKey(Box::new(key))).await?;
        Ok(true)
    }
    /// Creates or replaces a schedule's definition and `next_run_at` (a replaced one keeps its
    /// runs and `created_at`). `true` when it was created.
    async fn put_schedule(&self, rec: ScheduleRecord) -> StoreResult<(ScheduleRecord, bool)>;
    /// The tenant's schedules by name, or only `name` (`ScheduleNotFound` when it does not
    /// exist).
    async fn schedules(&self, tenant: &str, name: Option<&str>)
        -> StoreResult<Vec<ScheduleRecord>>;
    async fn delete_schedule(&self, tenant: &str, name: &str) -> StoreResult<()>;
    /// Schedules of every tenant whose `next_run_at` is at or before `now`, at most `limit`.
    async fn due_schedules(&self, now: Timestamp, limit: usize) -> StoreResult<DueSchedules>;
    /// Fires ticks (see [`Firing`]): the schedule as it is after, with the tasks' ids in its
    /// runs, or `None` when `expect` no longer matched (another firing came first).
    async fn fire_schedule(&self, firing: Firing) -> StoreResult<Option<ScheduleRecord>>;
    /// Creates or replaces a webhook (the tenant must exist). Events logged after it commits
    /// become deliveries when it wants them.
    async fn put_webhook(&self, w: Webhook) -> StoreResult<()>;
    /// The tenant's webhooks by id, or only `id` (`WebhookNotFound` when it does not exist).
    async fn webhooks(&self, tenant: &str, id: Option<&str>) -> StoreResult<Vec<Webhook>>;
    /// Deletes a webhook with its deliveries.
    async fn delete_webhook(&self, tenant: &str, id: &str) -> StoreResult<()>;
    /// One webhook's deliveries, newest first.
    async fn deliveries(&self, tenant: &str, f: DeliveryFilter) -> StoreResult<Vec<Delivery>>;
    /// Deliveries of any tenant that are due (pending or failed, `next_at` at or before
    /// `now`), oldest first, at most `limit`, leaving out those `skip` names.
    async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: usize,
        skip: DueSkip,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Starts an attempt on each of `ids` still due at `now`: its attempts counted, `next_at`
    /// moved to `until` (when the attempt is given up if no outcome is recorded, e.g. after a
    /// crash). Answers those taken, with their webhooks.
    async fn take_deliveries(
        &self,
        ids: Vec<i64>,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<(Delivery, Webhook)>>;
    /// Records attempts' outcomes ([`rota_core::webhooks::after_attempt`]) and each webhook's
    /// failing streak; a webhook failing for [`rota_core::webhooks::DISABLE_AFTER_MS`] is
    /// disabled. Answers the webhooks this disabled.
    async fn record_attempts(
        &self,
        results: Vec<(i64, Attempt)>,
        now: Timestamp,
    ) -> StoreResult<Vec<Webhook>>;
    /// Sends a delivery again (any state): pending, due now.
    async fn retry_delivery(
        &self,
        tenant: &str,
        webhook_id: &str,
        id: i64,
    ) -> StoreResult<Delivery>;
    /// Finishes pending writes and closes the store; later calls fail with `Unavailable`.
    async fn close(&self);
}

pub type DynStore = Arc<dyn Store>;
