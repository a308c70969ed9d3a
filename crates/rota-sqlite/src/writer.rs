//! The single writer: owns the write connection and commits many requests per transaction.
//!
//! Requests arrive as [`Op`]s on a channel. The writer takes every op waiting (up to
//! [`MAX_OPS_PER_COMMIT`]), applies them in one `BEGIN IMMEDIATE` transaction, commits (an
//! fsync of the WAL, `synchronous=FULL`), and only then answers each op. Under load one fsync
//! thus carries hundreds of requests: this is the group commit that lifts throughput past the
//! disk's fsync rate.
//!
//! Architecture Invariant: no reply is sent before the transaction holding its writes has
//! committed; if any statement of a batch fails, the whole batch rolls back and every op in it
//! is answered `Unavailable`.

use crate::catalog::{CatalogDelta, QueueEntry};
use crate::rows::{
    errors_to_sql, tags_to_sql, task_from_row, token_to_string, TaskRow, TASK_COLUMNS,
};
use crate::Shared;
use rand::Rng;
use rota_core::lifecycle::{
    self, after_failure, attempts_after_failure, Event, Failure, FailureOutcome,
};
use rota_core::{
    AttemptError, IdGenerator, Lease, NewTask, QueueKey, QueuePatch, QueueSettings, Task, TaskId,
    TaskState, Timestamp,
};
use rota_store::{
    AuthChange, ClaimRequest, Completion, Enqueued, FailureReport, Heartbeat, MaintenanceReport,
    StoreError, StoreResult,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Bounds one transaction, so one commit's latency stays bounded under any load.
pub const MAX_OPS_PER_COMMIT: usize = 2_048;
/// Rows one maintenance step touches per pass; more are left to the next pass.
const MAINTENANCE_CHUNK: usize = 5_000;

pub type Reply<T> = oneshot::Sender<T>;

pub enum Op {
    Enqueue(QueueKey, Vec<NewTask>, Reply<StoreResult<Vec<Enqueued>>>),
    Claim(QueueKey, ClaimRequest, Reply<StoreResult<Vec<Task>>>),
    Heartbeat(String, Heartbeat, Reply<StoreResult<Task>>),
    Complete(String, Vec<Completion>, Reply<Vec<StoreResult<Task>>>),
    Fail(String, Vec<FailureReport>, Reply<Vec<StoreResult<Task>>>),
    Cancel(String, TaskId, Reply<StoreResult<Task>>),
    Retry(String, TaskId, Reply<StoreResult<Task>>),
    UpdateQueue(QueueKey, QueuePatch, Reply<StoreResult<()>>),
    Purge(QueueKey, TaskState, Reply<StoreResult<u64>>),
    Maintenance(Reply<StoreResult<MaintenanceReport>>),
    Auth(AuthChange, Reply<StoreResult<()>>),
}

/// Sends an op's answer once the batch's fate is known: its value if the batch committed, or
/// the batch's error.
type Finish = Box<dyn FnOnce(Option<StoreError>) + Send>;

fn finish<T: Send + 'static>(
    reply: Reply<T>,
    outcome: Option<rusqlite::Result<T>>,
    abort: impl FnOnce(StoreError) -> T + Send + 'static,
    failed: &mut Option<String>,
) -> Finish {
    match outcome {
        Some(Ok(value)) => Box::new(move |err| {
            let _ = reply.send(match err {
                None => value,
                Some(e) => abort(e),
            });
        }),
        other => {
            if let Some(Err(e)) = other {
                *failed = Some(e.to_string());
            }
            Box::new(move |err| {
                let e = err.unwrap_or_else(|| StoreError::Unavailable("batch aborted".into()));
                let _ = reply.send(abort(e));
            })
        }
    }
}

/// What one batch changed, beyond its rows.
struct Batch {
    now: Timestamp,
    delta: CatalogDelta,
    ready: HashSet<i64>,
    earliest_due: Option<Timestamp>,
    maintenance_next_due: Option<Option<Timestamp>>,
}

impl Batch {
    fn due(&mut self, t: Timestamp) {
        self.earliest_due = Some(self.earliest_due.map_or(t, |d| d.min(t)));
    }
}

pub struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    ids: IdGenerator,
    /// The next due time maintenance knows of; an earlier one wakes it.
    known_next_due: Option<Timestamp>,
}

impl Writer {
    pub fn new(conn: Connection, shared: Arc<Shared>, last_id: Option<TaskId>) -> Self {
        Writer {
            conn,
            shared,
            ids: IdGenerator::starting_after(last_id),
            known_next_due: None,
        }
    }

    pub fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.blocking_recv() {
            let mut ops = vec![first];
            while ops.len() < MAX_OPS_PER_COMMIT {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.commit_batch(ops);
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::error!(error = %e, "closing the write connection failed");
        }
    }

    fn commit_batch(&mut self, ops: Vec<Op>) {
        let now = self.shared.clock.now();
        let mut b = Batch {
            now,
            delta: CatalogDelta::default(),
            ready: HashSet::new(),
            earliest_due: None,
            maintenance_next_due: None,
        };
        let mut failed: Option<String> = None;
        let mut finishes: Vec<Finish> = Vec::with_capacity(ops.len());
        let shared = self.shared.clone();
        let tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "cannot begin a write transaction");
                failed = Some(e.to_string());
                for op in ops {
                    finishes.push(apply(None, &mut b, op, &mut failed));
                }
                let err = StoreError::Unavailable(format!("write failed: {e}"));
                finishes.into_iter().for_each(|f| f(Some(err.clone())));
                return;
            }
        };
        {
            let mut ctx = Ctx {
                tx: &tx,
                shared: &shared,
                ids: &mut self.ids,
            };
            for op in ops {
                finishes.push(apply(Some(&mut ctx), &mut b, op, &mut failed));
            }
            if failed.is_none() {
                if let Err(e) = ctx.persist_last_claims(&b) {
                    failed = Some(e.to_string());
                }
            }
        }
        let outcome = match failed {
            Some(msg) => {
                drop(tx);
                Err(msg)
            }
            None => tx.commit().map_err(|e| e.to_string()),
        };
        match outcome {
            Err(msg) => {
                tracing::error!(error = %msg, "write batch rolled back");
                let err =
                    StoreError::Unavailable(format!("write failed and was rolled back: {msg}"));
                finishes.into_iter().for_each(|f| f(Some(err.clone())));
            }
            Ok(()) => {
                {
                    let mut cat = shared.catalog.write().unwrap_or_else(|e| e.into_inner());
                    std::mem::take(&mut b.delta).apply_to(&mut cat);
                    // After the batch's queues joined the catalog, every id resolves there.
                    let ready_keys: Vec<QueueKey> = b
                        .ready
                        .iter()
                        .filter_map(|id| cat.by_id(*id).map(|q| q.key.clone()))
                        .collect();
                    drop(cat);
                    finishes.into_iter().for_each(|f| f(None));
                    for key in &ready_keys {
                        shared.signals.notify(key);
                    }
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
    }
}

/// Runs one op inside the batch, or, with no context or after a failure, only prepares its
/// abort answer.
fn apply(ctx: Option<&mut Ctx<'_>>, b: &mut Batch, op: Op, failed: &mut Option<String>) -> Finish {
    let mut ctx = ctx.filter(|_| failed.is_none());
    macro_rules! run {
        ($reply:expr, $call:expr) => {{
            let outcome = ctx.as_mut().map(|ctx| {
                let ctx: &mut Ctx<'_> = ctx;
                $call(ctx)
            });
            finish($reply, outcome, |e| Err(e), failed)
        }};
        ($reply:expr, $n:expr, $call:expr) => {{
            let n = $n;
            let outcome = ctx.as_mut().map(|ctx| {
                let ctx: &mut Ctx<'_> = ctx;
                $call(ctx)
            });
            finish($reply, outcome, move |e| vec![Err(e); n], failed)
        }};
    }
    match op {
        Op::Enqueue(q, tasks, reply) => run!(reply, |ctx: &mut Ctx<'_>| ctx.enqueue(b, &q, tasks)),
        Op::Claim(q, req, reply) => run!(reply, |ctx: &mut Ctx<'_>| ctx.claim(b, &q, req)),
        Op::Heartbeat(tenant, hb, reply) => {
            run!(reply, |ctx: &mut Ctx<'_>| ctx.heartbeat(b, &tenant, hb))
        }
        Op::Complete(tenant, items, reply) => {
            run!(reply, items.len(), |ctx: &mut Ctx<'_>| ctx
                .complete(b, &tenant, items))
        }
        Op::Fail(tenant, items, reply) => run!(reply, items.len(), |ctx: &mut Ctx<'_>| ctx
            .fail(b, &tenant, items)),
        Op::Cancel(tenant, id, reply) => {
            run!(reply, |ctx: &mut Ctx<'_>| ctx.cancel(b, &tenant, id))
        }
        Op::Retry(tenant, id, reply) => run!(reply, |ctx: &mut Ctx<'_>| ctx.retry(b, &tenant, id)),
        Op::UpdateQueue(q, patch, reply) => {
            run!(reply, |ctx: &mut Ctx<'_>| ctx.update_queue(b, &q, patch))
        }
        Op::Purge(q, state, reply) => run!(reply, |ctx: &mut Ctx<'_>| ctx.purge(b, &q, state)),
        Op::Maintenance(reply) => run!(reply, |ctx: &mut Ctx<'_>| ctx.maintenance(b)),
        Op::Auth(change, reply) => run!(reply, |ctx: &mut Ctx<'_>| ctx.change_auth(b, change)),
    }
}

/// The state one batch's ops work with.
struct Ctx<'a> {
    tx: &'a Transaction<'a>,
    shared: &'a Shared,
    ids: &'a mut IdGenerator,
}

type Res<T> = rusqlite::Result<StoreResult<T>>;

/// A queue named by id or by key.
#[derive(Clone, Copy)]
enum Which<'a> {
    Id(i64),
    Key(&'a QueueKey),
}

impl Ctx<'_> {
    fn tx(&self) -> &Transaction<'_> {
        self.tx
    }

    /// Reads a queue as this batch sees it: one created in this batch, else the catalog's.
    fn queue_entry<T>(
        &self,
        b: &Batch,
        which: Which<'_>,
        read: impl FnOnce(&QueueEntry) -> T,
    ) -> Option<T> {
        if let Which::Id(id) = which {
            if b.delta.removed_queues.contains(&id) {
                return None;
            }
        }
        let fresh = b.delta.new_queues.iter().find(|e| match which {
            Which::Id(id) => e.id == id,
            Which::Key(key) => &e.key == key,
        });
        if let Some(e) = fresh {
            return Some(read(e));
        }
        let cat = self
            .shared
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner());
        match which {
            Which::Id(id) => cat.by_id(id),
            Which::Key(key) => cat.by_key(key),
        }
        .filter(|e| !b.delta.removed_queues.contains(&e.id))
        .map(read)
    }

    /// The queue's id and settings as this batch sees them.
    fn lookup(&self, b: &Batch, key: &QueueKey) -> Option<(i64, QueueSettings)> {
        let id = self.queue_entry(b, Which::Key(key), |q| q.id)?;
        Some((id, self.settings_of(b, id)))
    }

    fn tenant_of(&self, b: &Batch, queue_id: i64) -> Option<QueueKey> {
        self.queue_entry(b, Which::Id(queue_id), |q| q.key.clone())
    }

    fn settings_of(&self, b: &Batch, queue_id: i64) -> QueueSettings {
        match b.delta.settings.get(&queue_id) {
            Some(changed) => changed.clone(),
            None => self
                .queue_entry(b, Which::Id(queue_id), |q| q.settings.clone())
                .unwrap_or_default(),
        }
    }

    fn lookup_or_create(
        &mut self,
        b: &mut Batch,
        key: &QueueKey,
    ) -> rusqlite::Result<(i64, QueueSettings)> {
        if let Some(found) = self.lookup(b, key) {
            return Ok(found);
        }
        let settings = QueueSettings::default();
        let json = serde_json::to_string(&settings).expect("settings serialize");
        let id: i64 = self.tx().query_row(
            "INSERT INTO queues (tenant, name, settings, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            params![key.tenant, key.name, json, b.now.0],
            |r| r.get(0),
        )?;
        b.delta.new_queues.push(QueueEntry {
            id,
            key: key.clone(),
            settings: settings.clone(),
            created_at: b.now,
            last_claim_at: None,
            counts: Default::default(),
        });
        Ok((id, settings))
    }

    /// Resolves a row to a task of `tenant`, with its queue name.
    fn named(&self, b: &Batch, row: TaskRow) -> Task {
        let mut t = row.task;
        if let Some(k) = self.tenant_of(b, row.queue_id) {
            t.queue = k.name;
        }
        t
    }

    fn task_by_id(&self, b: &Batch, id: i64) -> rusqlite::Result<Task> {
        let row = self.tx().query_row(
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"),
            [id],
            task_from_row,
        )?;
        Ok(self.named(b, row))
    }

    fn update_returning(
        &self,
        b: &Batch,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> rusqlite::Result<Task> {
        let mut stmt = self.tx().prepare_cached(sql)?;
        let row = stmt.query_row(params, task_from_row)?;
        Ok(self.named(b, row))
    }

    fn enqueue(
        &mut self,
        b: &mut Batch,
        key: &QueueKey,
        tasks: Vec<NewTask>,
    ) -> Res<Vec<Enqueued>> {
        let (qid, settings) = self.lookup_or_create(b, key)?;
        let mut out: Vec<Enqueued> = Vec::with_capacity(tasks.len());
        let mut keys_in_request: HashMap<String, usize> = HashMap::new();
        let now = b.now;
        let tx = self.tx;
        let mut insert = tx.prepare_cached(
            "INSERT INTO tasks (id, queue_id, kind, payload, priority, state, run_at, attempt, \
             max_attempts, created_at, updated_at, unique_key, tags) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?9, ?10, ?11)",
        )?;
        let mut find_unique = tx.prepare_cached(
            "SELECT id FROM tasks WHERE queue_id = ?1 AND unique_key = ?2 \
             AND state IN ('scheduled', 'ready', 'running')",
        )?;
        for t in tasks {
            if let Some(k) = &t.unique_key {
                if let Some(&i) = keys_in_request.get(k) {
                    let task = out[i].task.clone();
                    out.push(Enqueued {
                        task,
                        duplicate: true,
                    });
                    continue;
                }
                let existing: Option<i64> = find_unique
                    .query_row(params![qid, k], |r| r.get(0))
                    .optional()?;
                if let Some(id) = existing {
                    keys_in_request.insert(k.clone(), out.len());
                    out.push(Enqueued {
                        task: self.task_by_id(b, id)?,
                        duplicate: true,
                    });
                    continue;
                }
                keys_in_request.insert(k.clone(), out.len());
            }
            let id = self.ids.next(now);
            let run_at = t.run_at.unwrap_or(now);
            let state = lifecycle::waiting_state(run_at, now);
            let max_attempts = t.max_attempts.unwrap_or(settings.max_attempts);
            insert.execute(params![
                id.as_i64(),
                qid,
                t.kind,
                t.payload.get(),
                t.priority,
                state.as_str(),
                run_at.0,
                max_attempts,
                now.0,
                t.unique_key,
                tags_to_sql(&t.tags),
            ])?;
            b.delta.moved(qid, None, Some(state));
            if state == TaskState::Ready {
                b.ready.insert(qid);
            } else {
                b.due(run_at);
            }
            out.push(Enqueued {
                task: Task {
                    id,
                    queue: key.name.clone(),
                    kind: t.kind,
                    payload: t.payload,
                    priority: t.priority,
                    state,
                    attempt: 0,
                    max_attempts,
                    run_at,
                    created_at: now,
                    updated_at: now,
                    finished_at: None,
                    lease: None,
                    progress: None,
                    result: None,
                    errors: Vec::new(),
                    unique_key: t.unique_key,
                    tags: t.tags,
                },
                duplicate: false,
            });
        }
        Ok(Ok(out))
    }

    fn claim(&mut self, b: &mut Batch, key: &QueueKey, req: ClaimRequest) -> Res<Vec<Task>> {
        let Some((qid, settings)) = self.lookup(b, key) else {
            return Ok(Ok(Vec::new()));
        };
        b.delta.last_claim_at.insert(qid, b.now);
        if settings.paused || req.max == 0 {
            return Ok(Ok(Vec::new()));
        }
        let tx = self.tx();
        let mut rows: Vec<TaskRow> = Vec::with_capacity(req.max);
        // No `LIMIT ?`: the rows come in index order and are read lazily, so taking `max` of
        // them is the limit. A bound LIMIT would make SQLite (built with STAT4) re-plan the
        // cached statement on every use (seen in perf as sqlite3Reprepare, ~7% of the writer).
        if req.kinds.is_empty() {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE queue_id = ?1 AND state = 'ready' \
                 ORDER BY priority DESC, id"
            ))?;
            let found = stmt.query_map(params![qid], task_from_row)?;
            for r in found.take(req.max) {
                rows.push(r?);
            }
        } else {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE queue_id = ?1 AND kind = ?2 \
                 AND state = 'ready' ORDER BY priority DESC, id"
            ))?;
            let kinds: HashSet<&String> = req.kinds.iter().collect();
            for kind in kinds {
                let found = stmt.query_map(params![qid, kind], task_from_row)?;
                for r in found.take(req.max) {
                    rows.push(r?);
                }
            }
            rows.sort_by_key(|r| (std::cmp::Reverse(r.task.priority), r.task.id));
            rows.truncate(req.max);
        }
        let lease_ms = req.lease_ms.unwrap_or(settings.lease_ms);
        let expires = b.now.plus_ms(lease_ms as i64);
        // No RETURNING (SQLite buffers it in an ephemeral table): the row read above is changed
        // here exactly as the UPDATE changes it; the conformance suite checks they agree.
        let mut update = tx.prepare_cached(
            "UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_worker = ?1, \
             lease_token = ?2, lease_expires_at = ?3, updated_at = ?4 WHERE id = ?5",
        )?;
        let mut rng = rand::rng();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let token: i64 = rng.random();
            let mut t = row.task;
            update.execute(params![
                req.worker,
                token,
                expires.0,
                b.now.0,
                t.id.as_i64()
            ])?;
            t.queue = key.name.clone();
            t.state = TaskState::Running;
            t.attempt += 1;
            t.updated_at = b.now;
            t.lease = Some(Lease {
                worker: req.worker.clone(),
                token: token_to_string(token),
                expires_at: expires,
            });
            out.push(t);
            b.delta
                .moved(qid, Some(TaskState::Ready), Some(TaskState::Running));
        }
        if !out.is_empty() {
            b.due(expires);
        }
        Ok(Ok(out))
    }

    /// The task, if `token` is its current lease and it is in `tenant`.
    fn leased(&self, b: &Batch, tenant: &str, id: TaskId, token: &str) -> Res<TaskRow> {
        let row = self
            .tx()
            .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
            .query_row([id.as_i64()], task_from_row)
            .optional()?;
        let Some(row) = row else {
            return Ok(Err(StoreError::TaskNotFound(id)));
        };
        if self
            .tenant_of(b, row.queue_id)
            .is_none_or(|k| k.tenant != tenant)
        {
            return Ok(Err(StoreError::TaskNotFound(id)));
        }
        let holds = row.task.state == TaskState::Running
            && row.task.lease.as_ref().is_some_and(|l| l.token == token);
        if !holds {
            return Ok(Err(StoreError::LeaseLost(id)));
        }
        Ok(Ok(row))
    }

    /// The leased row, or `None` once the refusal is pushed to a batch's outcomes.
    fn leased_or_refuse(
        &self,
        b: &Batch,
        tenant: &str,
        id: TaskId,
        token: &str,
        out: &mut Vec<StoreResult<Task>>,
    ) -> rusqlite::Result<Option<TaskRow>> {
        Ok(match self.leased(b, tenant, id, token)? {
            Ok(row) => Some(row),
            Err(e) => {
                out.push(Err(e));
                None
            }
        })
    }

    fn heartbeat(&mut self, b: &mut Batch, tenant: &str, hb: Heartbeat) -> Res<Task> {
        let row = match self.leased(b, tenant, hb.id, &hb.lease)? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let lease_ms = hb
            .lease_ms
            .unwrap_or_else(|| self.settings_of(b, row.queue_id).lease_ms);
        let expires = b.now.plus_ms(lease_ms as i64);
        let progress = hb.progress.as_ref().map(|p| p.get());
        self.tx()
            .prepare_cached(
                "UPDATE tasks SET lease_expires_at = ?1, progress = COALESCE(?2, progress), \
                 updated_at = ?3 WHERE id = ?4",
            )?
            .execute(params![expires.0, progress, b.now.0, hb.id.as_i64()])?;
        let mut t = self.named(b, row);
        if let Some(lease) = t.lease.as_mut() {
            lease.expires_at = expires;
        }
        if hb.progress.is_some() {
            t.progress = hb.progress;
        }
        t.updated_at = b.now;
        b.due(expires);
        Ok(Ok(t))
    }

    fn complete(
        &mut self,
        b: &mut Batch,
        tenant: &str,
        items: Vec<Completion>,
    ) -> rusqlite::Result<Vec<StoreResult<Task>>> {
        let mut update = self.tx().prepare_cached(
            "UPDATE tasks SET state = 'succeeded', result = ?1, finished_at = ?2, updated_at = ?2, \
             lease_worker = NULL, lease_token = NULL, lease_expires_at = NULL WHERE id = ?3",
        )?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(row) = self.leased_or_refuse(b, tenant, item.id, &item.lease, &mut out)?
            else {
                continue;
            };
            let result = item.result.as_ref().map(|r| r.get());
            update.execute(params![result, b.now.0, item.id.as_i64()])?;
            b.delta.moved(
                row.queue_id,
                Some(TaskState::Running),
                Some(TaskState::Succeeded),
            );
            let mut t = self.named(b, row);
            t.state = TaskState::Succeeded;
            t.result = item.result;
            t.finished_at = Some(b.now);
            t.updated_at = b.now;
            t.lease = None;
            out.push(Ok(t));
        }
        Ok(out)
    }

    fn fail(
        &mut self,
        b: &mut Batch,
        tenant: &str,
        items: Vec<FailureReport>,
    ) -> rusqlite::Result<Vec<StoreResult<Task>>> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(row) = self.leased_or_refuse(b, tenant, item.id, &item.lease, &mut out)?
            else {
                continue;
            };
            let how = (item.retry_in_ms, item.dead, item.temporary);
            let t = self.record_failure(b, row, item.error, how)?;
            out.push(Ok(t));
        }
        Ok(out)
    }

    /// Ends a running attempt as failed: back to waiting with backoff, or dead. `how` carries
    /// the worker's `retry_in_ms`, `dead` and `temporary`; the rules are rota-core's.
    fn record_failure(
        &mut self,
        b: &mut Batch,
        row: TaskRow,
        message: String,
        how: (Option<u64>, bool, bool),
    ) -> rusqlite::Result<Task> {
        let (retry_in_ms, dead, temporary) = how;
        let queue_id = row.queue_id;
        let settings = self.settings_of(b, queue_id);
        let mut t = self.named(b, row);
        let failure = Failure {
            attempt: t.attempt,
            max_attempts: t.max_attempts,
            retry_in_ms,
            dead,
            temporary,
        };
        let jitter = rand::rng().random::<f64>();
        let outcome = after_failure(failure, &settings.backoff, b.now, jitter);
        t.errors.push(AttemptError {
            attempt: t.attempt,
            message,
            at: b.now,
        });
        t.attempt = attempts_after_failure(&failure);
        match outcome {
            FailureOutcome::Dead => {
                t.state = TaskState::Dead;
                t.finished_at = Some(b.now);
            }
            FailureOutcome::Retry { run_at, state } => {
                t.state = state;
                t.run_at = run_at;
            }
        }
        t.updated_at = b.now;
        t.lease = None;
        self.tx()
            .prepare_cached(
                "UPDATE tasks SET state = ?1, run_at = ?2, finished_at = ?3, errors = ?4, \
                 updated_at = ?5, attempt = ?7, lease_worker = NULL, lease_token = NULL, \
                 lease_expires_at = NULL WHERE id = ?6",
            )?
            .execute(params![
                t.state.as_str(),
                t.run_at.0,
                t.finished_at.map(|f| f.0),
                errors_to_sql(&t.errors),
                b.now.0,
                t.id.as_i64(),
                t.attempt
            ])?;
        b.delta
            .moved(queue_id, Some(TaskState::Running), Some(t.state));
        match t.state {
            TaskState::Ready => {
                b.ready.insert(queue_id);
            }
            TaskState::Scheduled => b.due(t.run_at),
            _ => {}
        }
        Ok(t)
    }

    /// The task's queue and state, if it exists in `tenant`.
    fn find(
        &self,
        b: &Batch,
        tenant: &str,
        id: TaskId,
    ) -> rusqlite::Result<Option<(i64, TaskState, Option<String>)>> {
        let row = self
            .tx()
            .prepare_cached("SELECT queue_id, state, unique_key FROM tasks WHERE id = ?1")?
            .query_row([id.as_i64()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?;
        let Some((qid, state, key)) = row else {
            return Ok(None);
        };
        if self.tenant_of(b, qid).is_none_or(|k| k.tenant != tenant) {
            return Ok(None);
        }
        Ok(Some((qid, crate::rows::state_from_sql(&state)?, key)))
    }

    fn cancel(&mut self, b: &mut Batch, tenant: &str, id: TaskId) -> Res<Task> {
        let Some((qid, state, _)) = self.find(b, tenant, id)? else {
            return Ok(Err(StoreError::TaskNotFound(id)));
        };
        if let Err(source) = lifecycle::transition(state, Event::Cancel) {
            return Ok(Err(StoreError::InvalidState { id, source }));
        }
        let sql = format!(
            "UPDATE tasks SET state = 'cancelled', finished_at = ?1, updated_at = ?1, \
             lease_worker = NULL, lease_token = NULL, lease_expires_at = NULL \
             WHERE id = ?2 RETURNING {TASK_COLUMNS}"
        );
        let t = self.update_returning(b, &sql, params![b.now.0, id.as_i64()])?;
        b.delta.moved(qid, Some(state), Some(TaskState::Cancelled));
        Ok(Ok(t))
    }

    fn retry(&mut self, b: &mut Batch, tenant: &str, id: TaskId) -> Res<Task> {
        let Some((qid, state, unique_key)) = self.find(b, tenant, id)? else {
            return Ok(Err(StoreError::TaskNotFound(id)));
        };
        if let Err(source) = lifecycle::transition(state, Event::Retry) {
            return Ok(Err(StoreError::InvalidState { id, source }));
        }
        if let Some(k) = unique_key {
            let holder: Option<i64> = self
                .tx()
                .prepare_cached(
                    "SELECT id FROM tasks WHERE queue_id = ?1 AND unique_key = ?2 \
                     AND state IN ('scheduled', 'ready', 'running')",
                )?
                .query_row(params![qid, k], |r| r.get(0))
                .optional()?;
            if let Some(other) = holder {
                return Ok(Err(StoreError::Conflict(format!(
                    "task {} holds unique_key `{k}` and is not final; retrying {id} would duplicate it",
                    TaskId::from_i64(other)
                ))));
            }
        }
        let sql = format!(
            "UPDATE tasks SET state = 'ready', attempt = 0, run_at = ?1, finished_at = NULL, \
             updated_at = ?1 WHERE id = ?2 RETURNING {TASK_COLUMNS}"
        );
        let t = self.update_returning(b, &sql, params![b.now.0, id.as_i64()])?;
        b.delta.moved(qid, Some(state), Some(TaskState::Ready));
        b.ready.insert(qid);
        Ok(Ok(t))
    }

    fn update_queue(&mut self, b: &mut Batch, key: &QueueKey, patch: QueuePatch) -> Res<()> {
        let (qid, mut settings) = self.lookup_or_create(b, key)?;
        let was_paused = settings.paused;
        patch.apply(&mut settings);
        let json = serde_json::to_string(&settings).expect("settings serialize");
        self.tx().execute(
            "UPDATE queues SET settings = ?1 WHERE id = ?2",
            params![json, qid],
        )?;
        if let Some(q) = b.delta.new_queues.iter_mut().find(|q| q.id == qid) {
            q.settings = settings.clone();
        }
        b.delta.settings.insert(qid, settings.clone());
        if was_paused && !settings.paused {
            b.ready.insert(qid);
        }
        Ok(Ok(()))
    }

    fn purge(&mut self, b: &mut Batch, key: &QueueKey, state: TaskState) -> Res<u64> {
        let Some((qid, _)) = self.lookup(b, key) else {
            return Ok(Err(StoreError::QueueNotFound(key.name.clone())));
        };
        if !state.is_final() {
            return Ok(Err(StoreError::Invalid(format!(
                "only final states can be purged (succeeded, dead, cancelled), not `{state}`"
            ))));
        }
        let n = self.tx().execute(
            "DELETE FROM tasks WHERE queue_id = ?1 AND state = ?2",
            params![qid, state.as_str()],
        )?;
        b.delta.counts.entry(qid).or_default()[state.index()] -= n as i64;
        Ok(Ok(n as u64))
    }

    fn change_auth(&mut self, b: &mut Batch, change: AuthChange) -> Res<()> {
        fn doc<T: serde::Serialize>(v: &T) -> String {
            serde_json::to_string(v).expect("auth records serialize")
        }
        let tx = self.tx();
        match change {
            AuthChange::PutTenant(t) => {
                tx.prepare_cached("INSERT OR REPLACE INTO tenants (name, doc) VALUES (?1, ?2)")?
                    .execute(params![t.name, doc(&t)])?;
            }
            AuthChange::DeleteTenant(name) => {
                let queues: Vec<i64> = {
                    let mut stmt = tx.prepare_cached("SELECT id FROM queues WHERE tenant = ?1")?;
                    let rows = stmt.query_map(params![name], |r| r.get(0))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                for qid in &queues {
                    tx.prepare_cached("DELETE FROM tasks WHERE queue_id = ?1")?
                        .execute(params![qid])?;
                    b.delta.counts.remove(qid);
                    b.ready.remove(qid);
                }
                b.delta.new_queues.retain(|q| q.key.tenant != name);
                b.delta.removed_queues.extend(queues);
                tx.execute("DELETE FROM queues WHERE tenant = ?1", params![name])?;
                tx.execute("DELETE FROM api_keys WHERE tenant = ?1", params![name])?;
                tx.execute("DELETE FROM roles WHERE tenant = ?1", params![name])?;
                tx.execute("DELETE FROM tenants WHERE name = ?1", params![name])?;
            }
            AuthChange::PutKey(k) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO api_keys (id, tenant, doc) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![k.id, k.tenant, doc(&k)])?;
            }
            AuthChange::TouchKeys(touched) => {
                let mut stmt = tx.prepare_cached(
                    "UPDATE api_keys SET doc = json_set(doc, '$.last_used_at', ?2) WHERE id = ?1",
                )?;
                for (id, at) in touched {
                    stmt.execute(params![id, at.to_string()])?;
                }
            }
            AuthChange::PutRole(r) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO roles (tenant, name, doc) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![r.tenant, r.name, doc(&r)])?;
            }
            AuthChange::DeleteRole { tenant, name } => {
                tx.execute(
                    "DELETE FROM roles WHERE tenant = ?1 AND name = ?2",
                    params![tenant, name],
                )?;
            }
        }
        Ok(Ok(()))
    }

    fn maintenance(&mut self, b: &mut Batch) -> Res<MaintenanceReport> {
        let now = b.now;
        let mut report = MaintenanceReport::default();
        let mut more = false;
        // Promote due scheduled tasks.
        let promoted: Vec<i64> = {
            let mut stmt = self.tx().prepare_cached(&format!(
                "UPDATE tasks SET state = 'ready', updated_at = ?1 WHERE id IN \
                 (SELECT id FROM tasks WHERE state = 'scheduled' AND run_at <= ?1 \
                 LIMIT {MAINTENANCE_CHUNK}) RETURNING queue_id"
            ))?;
            let rows = stmt.query_map(params![now.0], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        more |= promoted.len() == MAINTENANCE_CHUNK;
        for qid in &promoted {
            b.delta
                .moved(*qid, Some(TaskState::Scheduled), Some(TaskState::Ready));
            b.ready.insert(*qid);
        }
        report.promoted = promoted.len() as u64;
        // Return expired leases: each is a failed attempt.
        let expired: Vec<TaskRow> = {
            let mut stmt = self.tx().prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks \
                 WHERE state = 'running' AND lease_expires_at <= ?1 LIMIT {MAINTENANCE_CHUNK}"
            ))?;
            let rows = stmt.query_map(params![now.0], task_from_row)?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        more |= expired.len() == MAINTENANCE_CHUNK;
        report.expired = expired.len() as u64;
        for row in expired {
            let worker = row.task.lease.as_ref().map(|l| l.worker.clone());
            let msg = format!(
                "lease expired: worker `{}` stopped heartbeating before the lease ended",
                worker.unwrap_or_default()
            );
            self.record_failure(b, row, msg, (None, false, false))?;
        }
        // Delete final tasks past their queue's retention.
        let queues: Vec<(i64, u64)> = {
            let cat = self
                .shared
                .catalog
                .read()
                .unwrap_or_else(|e| e.into_inner());
            cat.all().map(|q| (q.id, q.settings.retention_ms)).collect()
        };
        for (qid, default_retention) in queues {
            let retention = b
                .delta
                .settings
                .get(&qid)
                .map_or(default_retention, |s| s.retention_ms);
            let cutoff = now.0.saturating_sub(retention.min(i64::MAX as u64) as i64);
            let deleted: Vec<String> = {
                let mut stmt = self.tx().prepare_cached(&format!(
                    "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE queue_id = ?1 \
                     AND finished_at IS NOT NULL AND finished_at <= ?2 LIMIT {MAINTENANCE_CHUNK}) \
                     RETURNING state"
                ))?;
                let rows = stmt.query_map(params![qid, cutoff], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            more |= deleted.len() == MAINTENANCE_CHUNK;
            for s in &deleted {
                b.delta
                    .moved(qid, Some(crate::rows::state_from_sql(s)?), None);
            }
            report.deleted += deleted.len() as u64;
        }
        report.next_due = if more {
            Some(now)
        } else {
            let tx = self.tx();
            let scheduled: Option<i64> = tx
                .prepare_cached("SELECT MIN(run_at) FROM tasks WHERE state = 'scheduled'")?
                .query_row([], |r| r.get(0))?;
            let lease: Option<i64> = tx
                .prepare_cached("SELECT MIN(lease_expires_at) FROM tasks WHERE state = 'running'")?
                .query_row([], |r| r.get(0))?;
            [scheduled, lease]
                .into_iter()
                .flatten()
                .min()
                .map(Timestamp)
        };
        b.maintenance_next_due = Some(report.next_due);
        Ok(Ok(report))
    }

    fn persist_last_claims(&self, b: &Batch) -> rusqlite::Result<()> {
        if b.delta.last_claim_at.is_empty() {
            return Ok(());
        }
        let mut stmt = self
            .tx()
            .prepare_cached("UPDATE queues SET last_claim_at = ?1 WHERE id = ?2")?;
        for (qid, t) in &b.delta.last_claim_at {
            stmt.execute(params![t.0, qid])?;
        }
        Ok(())
    }
}
