//! The single writer: owns the write connection and commits many requests per transaction.
//!
//! Requests arrive as [`Op`]s on a channel. The writer sorts them into one lane per tenant
//! ([`lanes`]), takes a batch round-robin across the lanes up to a budget of rows, applies its
//! claims and heartbeats in one `BEGIN IMMEDIATE` transaction committed without an fsync
//! (`synchronous=NORMAL`) and answers them, then the rest in a second one, also committed
//! without SQLite's fsync: it answers the claims parked with the shard that the batch served,
//! and hands the other ops to the shard's sync thread ([`sync`]), which fsyncs the WAL (what
//! `synchronous=FULL` would do; it also makes the first durable) and only then answers them,
//! while the writer goes on with its next batch. Under load one fsync carries hundreds of
//! requests (group commit), and a tenant flooding the server with large batches delays another
//! tenant's request by about one commit, not by its whole backlog.
//!
//! Architecture Invariant: no reply is sent before the transaction holding its writes has
//! committed, and none but a claim's or heartbeat's before an fsync (see ARCHITECTURE.md). An op whose statements fail is answered with its own error and left out; the
//! batch is rolled back and applied again without it, so one bad op (a poison row, say) never
//! fails the requests that happened to share its commit.

mod access;
mod changes;
mod checkpoint;
mod ctx;
pub(crate) mod deps;
mod flow;
mod lanes;
mod maintenance;
mod ops;
mod parked;
mod schedules;
pub(crate) mod spawn;
mod sync;
mod tasks;
mod webhooks;
pub(crate) mod workflows;

pub(crate) use access::delete_tenant_rows;
pub(crate) use deps::{OutboxRow, RegisterResult};
use ops::Answer;
pub use ops::{Op, Remote};
pub(crate) use spawn::{Adopt, Waiter};
pub(crate) use workflows::{Part, PartTask, WorkflowEnd, WorkflowRow};

use crate::catalog::CatalogDelta;
use crate::Shared;
use ctx::Ctx;
use lanes::Lanes;
use rota_core::events::Event;
use rota_core::webhooks::Webhook;
use rota_core::{QueueKey, Task, TaskId, TaskState, Timestamp};
use rota_store::{ParkedClaim, StoreError};
use rusqlite::{Connection, TransactionBehavior};
use std::collections::HashSet;
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

/// An event a batch logs, with its queue's id (what the row stores; the tenant is the queue's)
/// and, for a final outcome, the task's callback URL.
pub(crate) struct Logged {
    /// 0 for an event of the tenant in no queue (`key.*`), whose tenant is `tenant`.
    pub queue_id: i64,
    pub event: Event,
    pub callback: Option<String>,
    pub tenant: Option<String>,
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
    /// Parked claims the batch claimed for, with the queue and what each got.
    pub served: Vec<(Arc<ParkedClaim>, QueueKey, Vec<Task>)>,
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
            served: Vec::new(),
        }
    }

    /// The batch did not commit: its parked claims wait again, with nothing.
    fn give_back(&mut self) {
        for (claim, queue, _) in self.served.drain(..) {
            claim.fill(&queue, Vec::new());
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
            tenant: None,
        });
    }

    /// Logs an event that is not a task's transition (a schedule's tick, a delivery's end).
    pub fn log_other(&mut self, queue_id: i64, event: Event) {
        self.events.push(Logged {
            queue_id,
            event,
            callback: None,
            tenant: None,
        });
    }

    /// Logs an event of `tenant` in no queue (`key.*`).
    pub fn log_tenant(&mut self, tenant: &str, event: Event) {
        self.events.push(Logged {
            queue_id: 0,
            event,
            callback: None,
            tenant: Some(tenant.to_owned()),
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
    /// Whether SQLite fsyncs in the commit now (`synchronous=FULL`, as the store opens). Only
    /// where there is no sync thread; otherwise it is `NORMAL` and the sync thread fsyncs the
    /// WAL after a durable commit (see `commit_batch`).
    durable: bool,
    /// Fsyncs the WAL after durable commits and answers their ops (sync.rs); `None` where the
    /// WAL file could not be opened, and SQLite then fsyncs in the commit.
    syncer: Option<sync::Syncer>,
    /// When the WAL is checkpointed, mostly off this thread (checkpoint.rs).
    checkpoints: checkpoint::Checkpoints,
}

/// A batch's fate: committed with each op's answer, or failed as a whole.
type Applied = Result<Vec<Answer>, StoreError>;

/// In `try_batch`'s `Err((i, _))`: not an op but the parked claims' statements failed; the
/// batch is applied again without serving them (their callers claim for themselves).
const PARKED: usize = usize::MAX;

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
        let counted = shared.clone();
        let checkpoints = checkpoint::Checkpoints::start(&conn, move || {
            counted.checkpoints.fetch_add(1, Ordering::Relaxed);
        });
        let syncer = conn.path().filter(|p| !p.is_empty()).and_then(|p| {
            let started = std::fs::File::open(format!("{p}-wal"))
                .and_then(|wal| sync::Syncer::start(wal, shared.clone()));
            match started {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fsync the WAL beside the writer; SQLite fsyncs each durable commit itself");
                    None
                }
            }
        });
        Writer {
            conn,
            checkpoints,
            shared: shared.clone(),
            flow,
            deps,
            known_next_due: None,
            hooks: cache,
            durable: true,
            syncer,
        }
    }

    /// `synchronous=FULL` (the commit fsyncs the WAL) or `NORMAL` (it does not: the frames
    /// reach the file, so a killed process loses nothing, and the next fsync of the WAL, the
    /// writer's own or a FULL commit's, covers them), set only when it changes.
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
        if let Some(s) = self.syncer.as_mut() {
            s.stop();
        }
        self.checkpoints.stop();
        if let Err((_, e)) = self.conn.close() {
            tracing::error!(error = %e, "closing the write connection failed");
        }
    }

    /// Applies and commits `ops`, leaving out (and answering) each op whose statements fail.
    ///
    /// A durable batch commits with `synchronous=NORMAL`: its frames are in the WAL file (a
    /// killed process loses nothing) and readable, but not yet synced. The claims parked with
    /// the shard that it served are answered at once, as claims always are before an fsync
    /// (ops.rs, `must_be_durable`); its other ops go to the sync thread, which fsyncs the WAL
    /// (what `synchronous=FULL` would have done inside the commit) and only then answers them,
    /// while the writer goes on with the next batch. So a task enqueued for a waiting worker
    /// reaches it without waiting for any fsync.
    fn commit_batch(&mut self, mut ops: Vec<Op>) {
        let durable = ops.iter().any(Op::must_be_durable);
        let mut serve_parked = true;
        loop {
            let mut b = Batch::new(self.shared.clock.now());
            let tried = self.try_batch(&ops, durable, &mut b, serve_parked);
            if !matches!(tried, Ok(Ok(_))) {
                b.give_back();
            }
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
                    for (claim, queue, tasks) in b.served.drain(..) {
                        claim.fill(&queue, tasks);
                    }
                    self.shared.write_failing.store(false, Ordering::Relaxed);
                    self.shared.commits.fetch_add(1, Ordering::Relaxed);
                    self.publish(b);
                    let ops = std::mem::take(&mut ops);
                    match &self.syncer {
                        Some(syncer) if durable => syncer.after_sync(ops, answers),
                        _ => {
                            if self.durable {
                                self.shared.synced_commits.fetch_add(1, Ordering::Relaxed);
                            }
                            sync::answer_all(ops, Ok(answers));
                        }
                    }
                    // After the answers: a checkpoint the writer must run itself delays only
                    // the next batch.
                    if self.checkpoints.committed(&self.conn) {
                        self.shared
                            .writer_checkpoints
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    true
                }
                Ok(Err(e)) => {
                    self.shared.write_failing.store(true, Ordering::Relaxed);
                    tracing::error!(error = %e, ops = ops.len(), "write batch failed");
                    sync::answer_all(std::mem::take(&mut ops), Err(e));
                    true
                }
                Err((PARKED, e)) => {
                    tracing::error!(error = %e, "claiming for parked claims failed; the batch is applied again without them");
                    serve_parked = false;
                    false
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
        let mut tenants: Vec<String> = ids
            .into_iter()
            .filter_map(|id| {
                cat.by_id(id)
                    .or_else(|| b.delta.new_queues.iter().find(|q| q.id == id))
                    .map(|q| q.key.tenant.clone())
            })
            .chain(b.events.iter().filter_map(|l| l.tenant.clone()))
            .collect();
        tenants.sort_unstable();
        tenants.dedup();
        tenants
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

    /// One attempt at the batch (`durable`: whether any of its ops must be). `Err((i, e))`: op
    /// `i` failed and everything was rolled back; `Ok(Err(_))`: the transaction itself could
    /// not begin or commit.
    #[allow(clippy::type_complexity)]
    fn try_batch(
        &mut self,
        ops: &[Op],
        durable: bool,
        b: &mut Batch,
        serve_parked: bool,
    ) -> Result<Applied, (usize, rusqlite::Error)> {
        if let Err(e) = self.set_durability(durable && self.syncer.is_none()) {
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
            if serve_parked && self.shared.parked.any() {
                ctx.serve_parked(b).map_err(|e| (PARKED, e))?;
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

    /// After a commit, before its ops are answered: the catalog learns the batch's changes,
    /// and waiting claims and maintenance are woken.
    fn publish(&mut self, mut b: Batch) {
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
