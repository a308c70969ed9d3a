//! The single writer: owns the write connection and commits many requests per transaction.
//!
//! Requests arrive as [`Op`]s on a channel. The writer sorts them into one lane per tenant
//! ([`lanes`]), takes a batch round-robin across the lanes up to a budget of rows, applies its
//! claims and heartbeats in one `BEGIN IMMEDIATE` transaction committed without an fsync
//! (`synchronous=NORMAL`) and answers them, then the rest in a second one that commits with an
//! fsync of the WAL (`synchronous=FULL`, which also makes the first durable), and only then
//! answers those. Under load one fsync carries hundreds of requests (group commit), and a
//! tenant flooding the server with large batches delays another tenant's request by about one
//! commit, not by its whole backlog.
//!
//! Architecture Invariant: no reply is sent before the transaction holding its writes has
//! committed, and none but a claim's or heartbeat's before an fsync (see ARCHITECTURE.md). An op whose statements fail is answered with its own error and left out; the
//! batch is rolled back and applied again without it, so one bad op (a poison row, say) never
//! fails the requests that happened to share its commit.

mod access;
mod changes;
mod ctx;
pub(crate) mod deps;
mod flow;
mod lanes;
mod maintenance;
mod schedules;
mod tasks;
mod webhooks;
pub(crate) mod workflows;

pub(crate) use access::delete_tenant_rows;
pub(crate) use deps::{OutboxRow, RegisterResult};
pub(crate) use workflows::{Part, PartTask, WorkflowRow};

use crate::catalog::CatalogDelta;
use crate::Shared;
use ctx::Ctx;
use lanes::Lanes;
use rota_core::events::Event;
use rota_core::flow::{GroupInfo, GroupSettings};
use rota_core::webhooks::{Attempt, Delivery, Webhook};
use rota_core::{NewTask, QueueKey, QueuePatch, Task, TaskId, TaskState, Timestamp};
use rota_store::{
    AuthChange, Change, ClaimRequest, Claimed, Completion, Enqueued, FailureReport, Firing,
    Heartbeat, MaintenanceReport, ScheduleRecord, StoreError, StoreResult,
};
use rusqlite::{Connection, TransactionBehavior};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Bounds one transaction's ops, so one commit's latency stays bounded under any load.
pub const MAX_OPS_PER_COMMIT: usize = 2_048;
/// Bounds one transaction's work in rows (a task enqueued, claimed, completed … is one): large
/// batches of one tenant take turns with other tenants' requests instead of filling a commit.
pub const MAX_ROWS_PER_COMMIT: usize = 1_024;
/// Ops the writer holds in its lanes; past this, senders wait on the channel.
const MAX_PENDING_OPS: usize = 16_384;

pub type Reply<T> = oneshot::Sender<T>;

/// Dependencies of an enqueue's tasks that are in other shards: those still live (their shards
/// are told once the enqueue commits) and those that already ended. Any other is in this
/// shard (or gone).
#[derive(Debug, Default)]
pub struct Remote {
    pub live: HashSet<TaskId>,
    pub ended: HashMap<TaskId, TaskState>,
}

pub enum Op {
    Enqueue(QueueKey, Vec<NewTask>, Reply<StoreResult<Vec<Enqueued>>>),
    /// An enqueue of tasks with dependencies.
    EnqueueWaiting(
        QueueKey,
        Vec<NewTask>,
        Box<Remote>,
        Reply<StoreResult<Vec<Enqueued>>>,
    ),
    /// (dependency, dependent in another shard) pairs.
    Register(Vec<(TaskId, TaskId)>, Reply<RegisterResult>),
    /// (dependent, dependency, how it ended) for dependents in this shard.
    Endings(Vec<(TaskId, TaskId, TaskState)>, Reply<StoreResult<()>>),
    Outbox(usize, Reply<StoreResult<Vec<OutboxRow>>>),
    DropOutbox(Vec<i64>, Reply<StoreResult<()>>),
    WorkflowPart(Box<Part>, Reply<StoreResult<Vec<Task>>>),
    CommitWorkflow(WorkflowRow, Reply<StoreResult<()>>),
    /// Releases the holds of a committed workflow's tasks in this shard.
    ReleaseHolds(TaskId, Reply<StoreResult<()>>),
    /// Deletes this shard's part of a workflow that was never committed.
    DropPart(TaskId, Reply<StoreResult<u64>>),
    /// Deletes workflow records none of whose tasks is kept (checked in every shard first).
    DropRecords(Vec<TaskId>, Reply<StoreResult<u64>>),
    Claim(QueueKey, ClaimRequest, Reply<StoreResult<Claimed>>),
    Heartbeat(String, Heartbeat, Reply<StoreResult<Task>>),
    Complete(String, Vec<Completion>, Reply<Vec<StoreResult<Task>>>),
    Fail(String, Vec<FailureReport>, Reply<Vec<StoreResult<Task>>>),
    Change(String, TaskId, Change, Reply<StoreResult<Task>>),
    UpdateQueue(QueueKey, QueuePatch, Reply<StoreResult<()>>),
    PutGroup(
        QueueKey,
        String,
        GroupSettings,
        Reply<StoreResult<GroupInfo>>,
    ),
    Purge(QueueKey, TaskState, Reply<StoreResult<u64>>),
    Maintenance(Reply<StoreResult<MaintenanceReport>>),
    Auth(AuthChange, Reply<StoreResult<()>>),
    PutSchedule(ScheduleRecord, Reply<StoreResult<(ScheduleRecord, bool)>>),
    DeleteSchedule(String, String, Reply<StoreResult<()>>),
    Fire(Firing, Reply<StoreResult<Option<ScheduleRecord>>>),
    PutWebhook(Webhook, Reply<StoreResult<()>>),
    DeleteWebhook(String, String, Reply<StoreResult<()>>),
    /// Ids, now, the attempt's deadline.
    TakeDeliveries(
        Vec<i64>,
        Timestamp,
        Timestamp,
        Reply<StoreResult<Vec<(Delivery, Webhook)>>>,
    ),
    /// Answers each webhook the attempts changed, and whether they disabled it.
    RecordAttempts(
        Vec<(i64, Attempt)>,
        Timestamp,
        Reply<StoreResult<Vec<(Webhook, bool)>>>,
    ),
    RetryDelivery(String, String, i64, Reply<StoreResult<Delivery>>),
    /// Another shard's attempts changed this webhook's health: its copy here follows.
    NoteWebhookHealth(Webhook, Reply<StoreResult<()>>),
    /// A write that changes nothing visible: tells readiness whether commits succeed.
    Probe(Reply<StoreResult<()>>),
}

/// What an applied op will answer once its batch commits.
enum Answer {
    Enqueued(StoreResult<Vec<Enqueued>>),
    Claimed(StoreResult<Claimed>),
    Task(Box<StoreResult<Task>>),
    Each(Vec<StoreResult<Task>>),
    Unit(StoreResult<()>),
    Count(StoreResult<u64>),
    Report(StoreResult<MaintenanceReport>),
    Schedule(StoreResult<(ScheduleRecord, bool)>),
    Fired(StoreResult<Option<ScheduleRecord>>),
    Taken(StoreResult<Vec<(Delivery, Webhook)>>),
    Webhooks(StoreResult<Vec<(Webhook, bool)>>),
    Delivery(Box<StoreResult<Delivery>>),
    Group(Box<StoreResult<GroupInfo>>),
    Registered(RegisterResult),
    Outbox(StoreResult<Vec<OutboxRow>>),
    Tasks(StoreResult<Vec<Task>>),
}

impl Op {
    /// The lane the op waits in: its tenant's, or the server's own for maintenance and probes.
    fn lane(&self) -> Option<&str> {
        match self {
            Op::Enqueue(q, ..)
            | Op::EnqueueWaiting(q, ..)
            | Op::Claim(q, ..)
            | Op::UpdateQueue(q, ..)
            | Op::PutGroup(q, ..)
            | Op::Purge(q, ..) => Some(&q.tenant),
            Op::Heartbeat(t, ..) | Op::Complete(t, ..) | Op::Fail(t, ..) | Op::Change(t, ..) => {
                Some(t)
            }
            Op::PutSchedule(s, _) => Some(&s.tenant),
            Op::DeleteSchedule(t, ..) => Some(t),
            Op::Fire(f, _) => Some(&f.tenant),
            Op::PutWebhook(w, _) | Op::NoteWebhookHealth(w, _) => Some(&w.tenant),
            Op::DeleteWebhook(t, ..) | Op::RetryDelivery(t, ..) => Some(t),
            Op::WorkflowPart(p, _) => Some(&p.tenant),
            Op::CommitWorkflow(w, _) => Some(&w.tenant),
            Op::TakeDeliveries(..) | Op::RecordAttempts(..) => None,
            Op::Register(..)
            | Op::Endings(..)
            | Op::Outbox(..)
            | Op::DropOutbox(..)
            | Op::ReleaseHolds(..)
            | Op::DropPart(..)
            | Op::DropRecords(..) => None,
            Op::Auth(..) | Op::Maintenance(_) | Op::Probe(_) => None,
        }
    }

    /// Whether the op's answer must wait for an fsync. A claim or heartbeat lost in a crash only
    /// leaves the task as it was before (ready again, or its lease as long as before), which
    /// at-least-once delivery allows; and the next durable commit makes it durable too, since
    /// the WAL is one file synced whole. Everything else (enqueue, complete, fail, operator
    /// changes, access control, schedules, webhooks, maintenance, the probe) waits.
    fn must_be_durable(&self) -> bool {
        !matches!(self, Op::Claim(..) | Op::Heartbeat(..))
    }

    /// Rows the op may touch, for the per-commit budget.
    fn rows(&self) -> usize {
        match self {
            Op::Enqueue(_, tasks, _) | Op::EnqueueWaiting(_, tasks, ..) => tasks.len(),
            Op::WorkflowPart(p, _) => p.tasks.len(),
            Op::Register(pairs, _) => pairs.len(),
            Op::Endings(e, _) => e.len(),
            Op::Claim(_, req, _) => req.max,
            Op::Complete(_, items, _) => items.len(),
            Op::Fail(_, items, _) => items.len(),
            Op::Maintenance(_) => maintenance::CHUNK,
            _ => 1,
        }
        .max(1)
    }

    /// Applies the op inside the batch's transaction. `Err` means its statements failed: the
    /// caller rolls back and applies the batch again without it.
    fn apply(&self, ctx: &mut Ctx<'_>, b: &mut Batch) -> rusqlite::Result<Answer> {
        Ok(match self {
            Op::Enqueue(q, tasks, _) => {
                Answer::Enqueued(ctx.enqueue(b, q, tasks, &Remote::default())?)
            }
            Op::EnqueueWaiting(q, tasks, remote, _) => {
                Answer::Enqueued(ctx.enqueue(b, q, tasks, remote)?)
            }
            Op::Register(pairs, _) => Answer::Registered(ctx.register(pairs)?),
            Op::Endings(e, _) => Answer::Unit(ctx.apply_endings(b, e)?),
            Op::Outbox(n, _) => Answer::Outbox(ctx.outbox(*n)?),
            Op::DropOutbox(ids, _) => Answer::Unit(ctx.drop_outbox(ids)?),
            Op::WorkflowPart(p, _) => Answer::Tasks(ctx.put_part(b, p)?),
            Op::CommitWorkflow(w, _) => Answer::Unit(ctx.commit_workflow(w)?),
            Op::ReleaseHolds(wf, _) => Answer::Unit(ctx.release_holds(b, *wf)?),
            Op::DropPart(wf, _) => Answer::Count(ctx.drop_part(b, *wf)?),
            Op::DropRecords(ids, _) => Answer::Count(ctx.drop_records(ids)?),
            Op::Claim(q, req, _) => Answer::Claimed(ctx.claim(b, q, req)?),
            Op::Heartbeat(tenant, hb, _) => Answer::Task(Box::new(ctx.heartbeat(b, tenant, hb)?)),
            Op::Complete(tenant, items, _) => Answer::Each(ctx.complete(b, tenant, items)?),
            Op::Fail(tenant, items, _) => Answer::Each(ctx.fail(b, tenant, items)?),
            Op::Change(tenant, id, change, _) => {
                Answer::Task(Box::new(ctx.change(b, tenant, *id, change)?))
            }
            Op::UpdateQueue(q, patch, _) => Answer::Unit(ctx.update_queue(b, q, patch)?),
            Op::PutGroup(q, name, settings, _) => {
                Answer::Group(Box::new(ctx.put_group(b, q, name, settings)?))
            }
            Op::Purge(q, state, _) => Answer::Count(ctx.purge(b, q, *state)?),
            Op::Maintenance(_) => Answer::Report(ctx.maintenance(b)?),
            Op::Auth(change, _) => Answer::Unit(ctx.change_auth(b, change)?),
            Op::Probe(_) => Answer::Unit(ctx.probe(b)?),
            Op::PutSchedule(s, _) => Answer::Schedule(ctx.put_schedule(s)?),
            Op::DeleteSchedule(t, name, _) => Answer::Unit(ctx.delete_schedule(t, name)?),
            Op::Fire(f, _) => Answer::Fired(ctx.fire_schedule(b, f)?),
            Op::PutWebhook(w, _) => Answer::Unit(ctx.put_webhook(b, w)?),
            Op::NoteWebhookHealth(w, _) => Answer::Unit(ctx.note_webhook_health(b, w)?),
            Op::DeleteWebhook(t, id, _) => Answer::Unit(ctx.delete_webhook(b, t, id)?),
            Op::TakeDeliveries(ids, now, until, _) => {
                Answer::Taken(ctx.take_deliveries(ids, *now, *until)?)
            }
            Op::RecordAttempts(results, now, _) => {
                Answer::Webhooks(ctx.record_attempts(b, results, *now)?)
            }
            Op::RetryDelivery(t, w, id, _) => {
                Answer::Delivery(Box::new(ctx.retry_delivery(t, w, *id, b.now)?))
            }
        })
    }

    /// Sends the op's answer, or the batch's error (for every item of a batch op).
    fn answer(self, outcome: Result<Answer, StoreError>) {
        macro_rules! reply {
            ($r:expr, $pat:pat => $v:expr, $err:expr) => {{
                let _ = $r.send(match outcome {
                    Ok($pat) => $v,
                    Ok(_) => unreachable!("an op's answer matches its kind"),
                    Err(e) => $err(e),
                });
            }};
        }
        let items = match &self {
            Op::Complete(_, items, _) => items.len(),
            Op::Fail(_, items, _) => items.len(),
            _ => 0,
        };
        match self {
            Op::Enqueue(.., r) | Op::EnqueueWaiting(.., r) => {
                reply!(r, Answer::Enqueued(v) => v, Err)
            }
            Op::Register(_, r) => reply!(r, Answer::Registered(v) => v, Err),
            Op::Outbox(_, r) => reply!(r, Answer::Outbox(v) => v, Err),
            Op::WorkflowPart(_, r) => reply!(r, Answer::Tasks(v) => v, Err),
            Op::DropPart(_, r) | Op::DropRecords(_, r) => reply!(r, Answer::Count(v) => v, Err),
            Op::Claim(.., r) => reply!(r, Answer::Claimed(v) => v, Err),
            Op::Heartbeat(.., r) | Op::Change(.., r) => {
                reply!(r, Answer::Task(v) => *v, Err)
            }
            Op::Complete(.., r) | Op::Fail(.., r) => {
                reply!(r, Answer::Each(v) => v, |e| vec![Err(e); items])
            }
            Op::PutSchedule(_, r) => reply!(r, Answer::Schedule(v) => v, Err),
            Op::Fire(_, r) => reply!(r, Answer::Fired(v) => v, Err),
            Op::TakeDeliveries(.., r) => reply!(r, Answer::Taken(v) => v, Err),
            Op::RecordAttempts(.., r) => reply!(r, Answer::Webhooks(v) => v, Err),
            Op::RetryDelivery(.., r) => reply!(r, Answer::Delivery(v) => *v, Err),
            Op::PutGroup(.., r) => reply!(r, Answer::Group(v) => *v, Err),
            Op::UpdateQueue(.., r)
            | Op::Auth(_, r)
            | Op::Probe(r)
            | Op::DeleteSchedule(.., r)
            | Op::PutWebhook(_, r)
            | Op::NoteWebhookHealth(_, r)
            | Op::DeleteWebhook(.., r)
            | Op::Endings(_, r)
            | Op::DropOutbox(_, r)
            | Op::CommitWorkflow(_, r)
            | Op::ReleaseHolds(_, r) => {
                reply!(r, Answer::Unit(v) => v, Err)
            }
            Op::Purge(.., r) => reply!(r, Answer::Count(v) => v, Err),
            Op::Maintenance(r) => reply!(r, Answer::Report(v) => v, Err),
        }
    }
}

/// An event a batch logs, with its queue's id (what the row stores; the tenant is the queue's)
/// and, for a final outcome, the task's callback URL.
pub(crate) struct Logged {
    pub queue_id: i64,
    pub event: Event,
    pub callback: Option<String>,
}

/// What one batch changed, beyond its rows.
pub(crate) struct Batch {
    pub now: Timestamp,
    pub delta: CatalogDelta,
    pub ready: HashSet<i64>,
    pub earliest_due: Option<Timestamp>,
    pub maintenance_next_due: Option<Option<Timestamp>>,
    /// The events the batch logs, in order.
    pub events: Vec<Logged>,
    /// Changes to the writer's webhook cache, applied after commit.
    pub webhooks: Vec<webhooks::CacheChange>,
    /// Tasks that ended in the batch (and how), whose dependents must hear of it.
    pub ended: Vec<(TaskId, TaskState)>,
    /// Whether the batch wrote endings for the relay to carry to other shards.
    pub outbox: bool,
}

impl Batch {
    fn new(now: Timestamp) -> Self {
        Batch {
            now,
            delta: CatalogDelta::default(),
            ready: HashSet::new(),
            earliest_due: None,
            maintenance_next_due: None,
            events: Vec::new(),
            webhooks: Vec::new(),
            ended: Vec::new(),
            outbox: false,
        }
    }

    /// Logs `event` of `task` (in queue `queue_id`).
    pub fn log(&mut self, queue_id: i64, event: Event, task: &Task) {
        if let Some(how) = deps::ending(event.event_type, task.state) {
            self.ended.push((task.id, how));
        }
        let callback = if rota_core::webhooks::is_outcome(event.event_type) {
            task.callback_url.clone()
        } else {
            None
        };
        self.events.push(Logged {
            queue_id,
            event,
            callback,
        });
    }

    /// Logs an event that is not a task's transition (a schedule's tick, a delivery's end).
    pub fn log_other(&mut self, queue_id: i64, event: Event) {
        self.events.push(Logged {
            queue_id,
            event,
            callback: None,
        });
    }

    pub fn due(&mut self, t: Timestamp) {
        self.earliest_due = Some(self.earliest_due.map_or(t, |d| d.min(t)));
    }
}

pub struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    /// Which queues have groups, and their turns (flow.rs).
    flow: flow::FlowBook,
    /// Whether any task of the shard has dependents (deps.rs).
    deps: deps::DepBook,
    /// The next due time maintenance knows of; an earlier one wakes it.
    known_next_due: Option<Timestamp>,
    /// Every webhook, for turning events into deliveries.
    hooks: webhooks::WebhookCache,
    /// Whether commits fsync now (`synchronous=FULL`, as the store opens).
    durable: bool,
}

/// A batch's fate: committed with each op's answer, or failed as a whole.
type Applied = Result<Vec<Answer>, StoreError>;

impl Writer {
    pub fn new(conn: Connection, shared: Arc<Shared>, hooks: Vec<Webhook>) -> Self {
        let flow = flow::FlowBook::load(&conn).unwrap_or_else(|e| {
            // Every queue is then taken as grouped until restart: slower claims, same rules.
            tracing::error!(error = %e, "cannot read which queues have groups");
            flow::FlowBook::all_grouped()
        });
        let deps = deps::DepBook::load(&conn).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read whether tasks have dependents");
            deps::DepBook { known: true }
        });
        let mut cache = webhooks::WebhookCache::new();
        for w in hooks {
            webhooks::apply(&mut cache, webhooks::CacheChange::Put(Box::new(w)));
        }
        Writer {
            conn,
            shared: shared.clone(),
            flow,
            deps,
            known_next_due: None,
            hooks: cache,
            durable: true,
        }
    }

    /// `synchronous=FULL` (the commit fsyncs the WAL) or `NORMAL` (it does not: the frames
    /// reach the file, so a killed process loses nothing, and the next FULL commit's fsync
    /// covers them), set only when it changes.
    fn set_durability(&mut self, durable: bool) -> rusqlite::Result<()> {
        if self.durable != durable {
            let mode = if durable { "FULL" } else { "NORMAL" };
            self.conn.pragma_update(None, "synchronous", mode)?;
            self.durable = durable;
        }
        Ok(())
    }

    pub fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let mut lanes = Lanes::default();
        let mut open = true;
        while open || !lanes.is_empty() {
            if lanes.is_empty() {
                match rx.blocking_recv() {
                    Some(op) => lanes.push(op),
                    None => break,
                }
            }
            while lanes.len() < MAX_PENDING_OPS {
                match rx.try_recv() {
                    Ok(op) => lanes.push(op),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            let busy_since = std::time::Instant::now();
            let ops = lanes.take_batch(MAX_OPS_PER_COMMIT, MAX_ROWS_PER_COMMIT);
            // Claims and heartbeats first, in a commit that does not wait for an fsync, so
            // their answers go out at once; then the rest, whose fsync covers both.
            let (quick, durable): (Vec<Op>, Vec<Op>) =
                ops.into_iter().partition(|op| !op.must_be_durable());
            for part in [quick, durable] {
                if !part.is_empty() {
                    self.commit_batch(part);
                }
            }
            let busy = busy_since.elapsed().as_nanos().min(u64::MAX as u128) as u64;
            self.shared
                .writer_busy_ns
                .fetch_add(busy, Ordering::Relaxed);
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::error!(error = %e, "closing the write connection failed");
        }
    }

    /// Applies and commits `ops`, leaving out (and answering) each op whose statements fail.
    fn commit_batch(&mut self, mut ops: Vec<Op>) {
        loop {
            let mut b = Batch::new(self.shared.clock.now());
            let tried = self.try_batch(&ops, &mut b);
            // Committed or rolled back: its cursors no longer hold readers back, and the
            // readers of the tenants whose events that made readable (this batch's, or other
            // shards' that waited behind its cursors) are woken below, those alone.
            let logged = match (&tried, b.events.last()) {
                (Ok(Ok(_)), Some(last)) => Some((last.event.cursor, self.event_tenants(&b))),
                _ => None,
            };
            let readable = self.shared.cursors.settle(self.shared.shard, logged);
            let touched: HashSet<String> = b
                .delta
                .new_queues
                .iter()
                .map(|q| q.key.tenant.clone())
                .chain(b.delta.removed_tenants.iter().cloned())
                .collect();
            let done = match tried {
                Ok(Ok(answers)) => {
                    self.shared.write_failing.store(false, Ordering::Relaxed);
                    self.shared.commits.fetch_add(1, Ordering::Relaxed);
                    if self.durable {
                        self.shared.synced_commits.fetch_add(1, Ordering::Relaxed);
                    }
                    self.publish(b, std::mem::take(&mut ops), answers);
                    true
                }
                Ok(Err(e)) => {
                    self.shared.write_failing.store(true, Ordering::Relaxed);
                    tracing::error!(error = %e, ops = ops.len(), "write batch failed");
                    for op in ops.drain(..) {
                        op.answer(Err(e.clone()));
                    }
                    true
                }
                Err((i, e)) => {
                    tracing::error!(error = %e, "a write failed; it was rolled back and the other writes of its batch are applied without it");
                    let bad = ops.remove(i);
                    bad.answer(Err(StoreError::Unavailable(format!("write failed: {e}"))));
                    ops.is_empty()
                }
            };
            // The queues the batch created are in the catalog now, or were never made.
            self.settle_quota(touched);
            if !readable.is_empty() {
                self.shared
                    .events
                    .notify(readable.iter().map(String::as_str));
            }
            if done {
                return;
            }
        }
    }

    /// The tenants whose events `b` logs (its queues are in the catalog, or new in `b`).
    fn event_tenants(&self, b: &Batch) -> Vec<String> {
        let mut ids: Vec<i64> = b.events.iter().map(|l| l.queue_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let cat = self
            .shared
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner());
        ids.into_iter()
            .filter_map(|id| {
                cat.by_id(id)
                    .or_else(|| b.delta.new_queues.iter().find(|q| q.id == id))
                    .map(|q| q.key.tenant.clone())
            })
            .collect()
    }

    /// Sets this shard's count of each tenant's queues back to its catalog's.
    fn settle_quota(&self, tenants: HashSet<String>) {
        let cat = self
            .shared
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner());
        for t in tenants {
            let n = cat.tenant_queue_count(&t);
            self.shared.quota.settle(&t, self.shared.shard, n);
        }
    }

    /// One attempt at the batch. `Err((i, e))`: op `i` failed and everything was rolled back;
    /// `Ok(Err(_))`: the transaction itself could not begin or commit.
    #[allow(clippy::type_complexity)]
    fn try_batch(
        &mut self,
        ops: &[Op],
        b: &mut Batch,
    ) -> Result<Applied, (usize, rusqlite::Error)> {
        if let Err(e) = self.set_durability(ops.iter().any(Op::must_be_durable)) {
            return Ok(Err(StoreError::Unavailable(format!(
                "cannot set the commit's durability: {e}"
            ))));
        }
        let tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => {
                return Ok(Err(StoreError::Unavailable(format!(
                    "cannot begin a write: {e}"
                ))))
            }
        };
        let mut answers = Vec::with_capacity(ops.len());
        {
            let mut ids = self.shared.ids.lock().unwrap_or_else(|e| e.into_inner());
            let mut ctx = Ctx::new(&tx, &self.shared, &mut ids, &mut self.flow, &mut self.deps);
            for (i, op) in ops.iter().enumerate() {
                answers.push(op.apply(&mut ctx, b).map_err(|e| (i, e))?);
            }
            if let Err(e) = ctx.settle_endings(b) {
                return Ok(Err(StoreError::Unavailable(format!(
                    "cannot tell dependents of the tasks that ended: {e}"
                ))));
            }
            if let Err(e) = ctx.persist_last_claims(b) {
                return Ok(Err(StoreError::Unavailable(format!("write failed: {e}"))));
            }
            let first = match b.events.len() {
                0 => 0,
                n => self.shared.cursors.take(self.shared.shard, n),
            };
            let ids = &*self.shared.delivery_ids;
            let logged = crate::events::append(&tx, &mut b.events, first).and_then(|_| {
                webhooks::fan_out(&tx, &self.hooks, ids, &b.events, |qid| {
                    ctx.fan_out_target(b, qid)
                })
            });
            if let Err(e) = logged {
                return Ok(Err(StoreError::Unavailable(format!("write failed: {e}"))));
            }
        }
        Ok(match tx.commit() {
            Ok(()) => Ok(answers),
            Err(e) => Err(StoreError::Unavailable(format!(
                "commit failed and was rolled back: {e}"
            ))),
        })
    }

    /// After a commit: the catalog learns the batch's changes, every op gets its answer, and
    /// waiting claims and maintenance are woken.
    fn publish(&mut self, mut b: Batch, ops: Vec<Op>, answers: Vec<Answer>) {
        for change in std::mem::take(&mut b.webhooks) {
            webhooks::apply(&mut self.hooks, change);
        }
        let shared = self.shared.clone();
        let freed = std::mem::take(&mut b.delta.freed);
        let ready_keys: Vec<QueueKey> = {
            let mut cat = shared.catalog.write().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut b.delta).apply_to(&mut cat, &shared.tenants);
            // A task that stopped running in a queue with limits or groups made room: its
            // waiting claims look again.
            for qid in freed {
                let limited = cat.by_id(qid).is_some_and(|q| q.settings.limited());
                if limited || self.flow.grouped(qid) {
                    b.ready.insert(qid);
                }
            }
            // After the batch's queues joined the catalog, every id resolves there.
            b.ready
                .iter()
                .filter_map(|id| cat.by_id(*id).map(|q| q.key.clone()))
                .collect()
        };
        for (op, answer) in ops.into_iter().zip(answers) {
            op.answer(Ok(answer));
        }
        for key in &ready_keys {
            shared.signals.notify(key);
        }
        if b.outbox {
            shared.releases.notify_one();
        }
        if let Some(next) = b.maintenance_next_due {
            self.known_next_due = next;
        }
        if let Some(due) = b.earliest_due {
            if self.known_next_due.is_none_or(|k| due < k) {
                self.known_next_due = Some(due);
                shared.maintenance.notify_one();
            }
        }
    }
}
