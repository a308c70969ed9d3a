//! Task writes: enqueue, claim, heartbeat, complete, fail. The rules (which
//! transition is allowed, where a failure leads, whether a lease holds) are rota-core's; this
//! file stores their outcome.

use super::ctx::{Ctx, Res};
use super::Batch;
use super::Remote;
use crate::rows::{
    dep_policy_to_sql, errors_to_sql, ids_to_sql, tags_to_sql, task_from_row, token_to_string,
    TaskRow, TASK_COLUMNS,
};
use rand::Rng;
use rota_core::{events, lifecycle};
use rota_core::{Lease, NewTask, OnDuplicate, QueueKey, Task, TaskId, TaskState, Timestamp};
use rota_store::{
    ClaimRequest, Claimed, Completion, Enqueued, FailureReport, Heartbeat, StoreError, StoreResult,
};
use rusqlite::{params, OptionalExtension};
use std::collections::{HashMap, HashSet};

/// Inserts a new task row (the parameters in this order).
pub const INSERT_TASK: &str = "INSERT INTO tasks (id, queue_id, kind, payload, priority, state, \
     run_at, attempt, max_attempts, created_at, updated_at, unique_key, tags, callback_url, grp, \
     depends_on, dep_policy, workflow, traceparent, tracestate) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

/// When a task that finished at `at` in a queue with `retention_ms` is deleted.
pub fn purge_at(at: Timestamp, retention_ms: u64) -> i64 {
    at.plus_ms(retention_ms.min(i64::MAX as u64) as i64).0
}

impl Ctx<'_> {
    /// Enqueues `tasks`; those with dependencies wait for them (`remote` says which are in
    /// other shards, and how those that already ended ended).
    pub fn enqueue(
        &mut self,
        b: &mut Batch,
        key: &QueueKey,
        tasks: &[NewTask],
        remote: &Remote,
    ) -> Res<Vec<Enqueued>> {
        let (qid, settings) = match self.lookup_or_create(b, key)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        let mut out: Vec<Enqueued> = Vec::with_capacity(tasks.len());
        // A key's live holder, once this request has met it: the answer that holds its latest
        // state, so a later entry of the key needs no query.
        let mut keys_in_request: HashMap<&str, usize> = HashMap::new();
        let now = b.now;
        let tx = self.tx;
        let mut insert = tx.prepare_cached(INSERT_TASK)?;
        for t in tasks {
            if let Some(k) = &t.unique_key {
                let holder = match keys_in_request.get(k.as_str()) {
                    Some(&i) => Some(out[i].task.clone()),
                    None => self.live_holder(b, qid, k)?,
                };
                if let Some(holder) = holder {
                    keys_in_request.insert(k, out.len());
                    let answer = match t.on_duplicate {
                        OnDuplicate::Replace if rota_core::replaceable(holder.state) => {
                            let max_attempts = t.max_attempts.unwrap_or(settings.max_attempts);
                            let task = lifecycle::replaced(&holder, t, max_attempts, now);
                            self.replace_row(b, qid, &holder, &task)?;
                            Enqueued::replaced(task)
                        }
                        _ => Enqueued::kept(holder),
                    };
                    out.push(answer);
                    continue;
                }
                keys_in_request.insert(k, out.len());
            }
            let id = self.ids.next(now);
            let run_at = t.run_at.unwrap_or(now);
            let mut state = lifecycle::waiting_state(run_at, now);
            let mut ended = None;
            if !t.depends_on.is_empty() {
                let (waits, cancel) = self.wait_for(id, t, remote)?;
                if waits {
                    state = TaskState::Waiting;
                }
                ended = cancel;
            }
            let max_attempts = t.max_attempts.unwrap_or(settings.max_attempts);
            insert.execute(params![
                id.as_i64(),
                qid,
                t.kind,
                t.payload.get(),
                t.priority,
                if ended.is_some() {
                    "waiting"
                } else {
                    state.as_str()
                },
                run_at.0,
                max_attempts,
                now.0,
                t.unique_key,
                tags_to_sql(&t.tags),
                t.callback_url,
                t.group,
                ids_to_sql(&t.depends_on),
                dep_policy_to_sql(t.on_dependency_failure),
                t.workflow
                    .as_ref()
                    .and_then(|w| w.parse::<TaskId>().ok())
                    .map(TaskId::as_i64),
                t.traceparent,
                t.tracestate,
            ])?;
            if let Some((dep, dep_state)) = ended {
                // A dependency had already ended as this task may not run after: it is
                // enqueued, and cancelled at once with the reason.
                b.delta.moved(qid, None, Some(TaskState::Waiting));
                let mut task = lifecycle::enqueued(id, &key.name, t, max_attempts, now);
                task.state = TaskState::Waiting;
                b.log(qid, events::enqueued(&task), &task);
                self.cancel_waiting(b, qid, id, dep, dep_state)?;
                out.push(Enqueued::created(self.task_by_id(b, id.as_i64())?));
                continue;
            }
            if t.group.is_some() {
                self.flow.mark_grouped(qid);
            }
            b.delta.moved(qid, None, Some(state));
            match state {
                TaskState::Ready => {
                    b.ready.insert(qid);
                }
                TaskState::Scheduled => b.due(run_at),
                _ => {}
            }
            let mut task = lifecycle::enqueued(id, &key.name, t, max_attempts, now);
            task.state = state;
            b.log(qid, events::enqueued(&task), &task);
            out.push(Enqueued::created(task));
        }
        Ok(Ok(out))
    }

    /// The live task holding unique key `k` in queue `qid`, if any.
    fn live_holder(&self, b: &Batch, qid: i64, k: &str) -> rusqlite::Result<Option<Task>> {
        let id: Option<i64> = self
            .tx()
            .prepare_cached(
                "SELECT id FROM tasks WHERE queue_id = ?1 AND unique_key = ?2 \
                 AND state IN ('scheduled', 'ready', 'running', 'waiting')",
            )?
            .query_row(params![qid, k], |r| r.get(0))
            .optional()?;
        id.map(|id| self.task_by_id(b, id)).transpose()
    }

    /// Stores `task`, the waiting `holder` as a debounce left it (`lifecycle::replaced`), and
    /// logs `task.replaced`.
    fn replace_row(
        &mut self,
        b: &mut Batch,
        qid: i64,
        holder: &Task,
        task: &Task,
    ) -> rusqlite::Result<()> {
        self.tx()
            .prepare_cached(
                "UPDATE tasks SET kind = ?1, payload = ?2, priority = ?3, state = ?4, run_at = ?5, \
                 max_attempts = ?6, updated_at = ?7, tags = ?8, callback_url = ?9, grp = ?10, \
                 traceparent = ?12, tracestate = ?13 WHERE id = ?11",
            )?
            .execute(params![
                task.kind,
                task.payload.get(),
                task.priority,
                task.state.as_str(),
                task.run_at.0,
                task.max_attempts,
                task.updated_at.0,
                tags_to_sql(&task.tags),
                task.callback_url,
                task.group,
                task.id.as_i64(),
                task.traceparent,
                task.tracestate,
            ])?;
        if task.group.is_some() {
            self.flow.mark_grouped(qid);
        }
        if holder.state != task.state {
            b.delta.moved(qid, Some(holder.state), Some(task.state));
        }
        if task.state == TaskState::Ready {
            b.ready.insert(qid);
        } else {
            b.due(task.run_at);
        }
        b.log(qid, events::replaced(task), task);
        Ok(())
    }

    pub fn claim(&mut self, b: &mut Batch, key: &QueueKey, req: &ClaimRequest) -> Res<Claimed> {
        let Some((qid, settings)) = self.lookup(b, key) else {
            return Ok(Ok(Claimed::default()));
        };
        b.delta.last_claim_at.insert(qid, b.now);
        if settings.paused || req.max == 0 {
            return Ok(Ok(Claimed::default()));
        }
        if settings.limited() || self.flow.grouped(qid) {
            return Ok(Ok(self.claim_flow(b, key, qid, &settings, req)?));
        }
        let tx = self.tx();
        let mut rows: Vec<TaskRow> = Vec::with_capacity(req.max);
        // No `LIMIT ?`: the rows come in index order and are read lazily, so taking `max` of
        // them is the limit. A bound LIMIT would make SQLite (built with STAT4) re-plan the
        // cached statement on every use (seen in perf as sqlite3Reprepare, ~7% of the writer).
        // A queue that never had a grouped task has all its ready tasks in `tasks_ready`'s
        // `grp IS NULL` prefix.
        if req.kinds.is_empty() {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE queue_id = ?1 AND state = 'ready' \
                 AND grp IS NULL ORDER BY priority DESC, id"
            ))?;
            let found = stmt.query_map(params![qid], task_from_row)?;
            for r in found.take(req.max) {
                rows.push(r?);
            }
        } else {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE queue_id = ?1 AND kind = ?2 \
                 AND state = 'ready' AND grp IS NULL ORDER BY priority DESC, id"
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
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.lease_row(b, key, qid, row, &req.worker, expires)?);
        }
        if !out.is_empty() {
            b.due(expires);
        }
        Ok(Ok(Claimed {
            tasks: out,
            next_start_at: None,
        }))
    }

    /// Leases a ready task's row to `worker` until `expires`. No RETURNING (SQLite buffers it
    /// in an ephemeral table): the row read before is changed here exactly as the UPDATE
    /// changes it; the conformance suite checks they agree.
    pub(super) fn lease_row(
        &self,
        b: &mut Batch,
        key: &QueueKey,
        qid: i64,
        row: TaskRow,
        worker: &str,
        expires: Timestamp,
    ) -> rusqlite::Result<Task> {
        let token: i64 = rand::rng().random();
        let mut t = row.task;
        self.tx()
            .prepare_cached(
                "UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_worker = ?1, \
                 lease_token = ?2, lease_expires_at = ?3, updated_at = ?4, started_at = ?4 \
                 WHERE id = ?5",
            )?
            .execute(params![worker, token, expires.0, b.now.0, t.id.as_i64()])?;
        t.queue = key.name.clone();
        t.state = TaskState::Running;
        t.attempt += 1;
        t.updated_at = b.now;
        t.started_at = Some(b.now);
        t.lease = Some(Lease {
            worker: worker.to_owned(),
            token: token_to_string(token),
            expires_at: expires,
        });
        b.log(qid, events::claimed(&t, b.now), &t);
        b.delta
            .moved(qid, Some(TaskState::Ready), Some(TaskState::Running));
        Ok(t)
    }

    /// The task, if it is in `tenant` and `token` holds its lease now (rota-core's rule).
    /// Task `id`'s row, if it is a task of `tenant`.
    pub(super) fn tenant_row(
        &self,
        b: &Batch,
        tenant: &str,
        id: TaskId,
    ) -> rusqlite::Result<Option<TaskRow>> {
        let row = self
            .tx()
            .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
            .query_row([id.as_i64()], task_from_row)
            .optional()?;
        Ok(row.filter(|r| {
            self.queue_key(b, r.queue_id)
                .is_some_and(|k| k.tenant == tenant)
        }))
    }

    pub(super) fn leased(&self, b: &Batch, tenant: &str, id: TaskId, token: &str) -> Res<TaskRow> {
        let Some(row) = self.tenant_row(b, tenant, id)? else {
            return Ok(Err(StoreError::TaskNotFound(id)));
        };
        let t = &row.task;
        if let Err(loss) = lifecycle::check_lease(t.state, t.lease.as_ref(), token, b.now) {
            return Ok(Err(StoreError::LeaseLost(id, loss)));
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

    pub fn heartbeat(&mut self, b: &mut Batch, tenant: &str, hb: &Heartbeat) -> Res<Task> {
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
            t.progress = hb.progress.clone();
        }
        t.updated_at = b.now;
        b.due(expires);
        Ok(Ok(t))
    }

    pub fn complete(
        &mut self,
        b: &mut Batch,
        tenant: &str,
        items: &[Completion],
    ) -> rusqlite::Result<Vec<StoreResult<Task>>> {
        let mut update = self.tx().prepare_cached(
            "UPDATE tasks SET state = 'succeeded', result = ?1, finished_at = ?2, updated_at = ?2, \
             lease_worker = NULL, lease_token = NULL, lease_expires_at = NULL, purge_at = ?4 \
             WHERE id = ?3",
        )?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(row) = self.leased_or_refuse(b, tenant, item.id, &item.lease, &mut out)?
            else {
                continue;
            };
            let retention = self.settings_of(b, row.queue_id).retention_ms;
            let result = item.result.as_ref().map(|r| r.get());
            update.execute(params![
                result,
                b.now.0,
                item.id.as_i64(),
                purge_at(b.now, retention)
            ])?;
            b.delta.moved(
                row.queue_id,
                Some(TaskState::Running),
                Some(TaskState::Succeeded),
            );
            let qid = row.queue_id;
            let mut t = self.named(b, row);
            t.state = TaskState::Succeeded;
            t.result = item.result.clone();
            t.finished_at = Some(b.now);
            t.updated_at = b.now;
            t.lease = None;
            b.log(qid, events::succeeded(&t, b.now), &t);
            out.push(Ok(t));
        }
        Ok(out)
    }

    pub fn fail(
        &mut self,
        b: &mut Batch,
        tenant: &str,
        items: &[FailureReport],
    ) -> rusqlite::Result<Vec<StoreResult<Task>>> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(row) = self.leased_or_refuse(b, tenant, item.id, &item.lease, &mut out)?
            else {
                continue;
            };
            let how = (item.retry_in_ms, item.dead, item.temporary);
            let qid = row.queue_id;
            let t = self.record_failure(b, row, item.error.clone(), how)?;
            b.log(qid, events::failed(&t, b.now), &t);
            out.push(Ok(t));
        }
        Ok(out)
    }

    /// Ends a running attempt as failed: back to waiting with backoff, or dead. `how` carries
    /// the worker's `retry_in_ms`, `dead` and `temporary`; the rules are rota-core's.
    pub fn record_failure(
        &mut self,
        b: &mut Batch,
        row: TaskRow,
        message: String,
        how: (Option<u64>, bool, bool),
    ) -> rusqlite::Result<Task> {
        let queue_id = row.queue_id;
        let settings = self.settings_of(b, queue_id);
        let t = self.named(b, row);
        let jitter = rand::rng().random::<f64>();
        let t = lifecycle::fail_attempt(&t, message, how, &settings.backoff, b.now, jitter);
        let purge = t.finished_at.map(|f| purge_at(f, settings.retention_ms));
        self.tx()
            .prepare_cached(
                "UPDATE tasks SET state = ?1, run_at = ?2, finished_at = ?3, errors = ?4, \
                 updated_at = ?5, attempt = ?7, lease_worker = NULL, lease_token = NULL, \
                 lease_expires_at = NULL, purge_at = ?8 WHERE id = ?6",
            )?
            .execute(params![
                t.state.as_str(),
                t.run_at.0,
                t.finished_at.map(|f| f.0),
                errors_to_sql(&t.errors),
                b.now.0,
                t.id.as_i64(),
                t.attempt,
                purge
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
}
