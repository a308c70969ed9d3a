//! A workflow's tasks as one shard writes them (docs/workflows.md). A workflow whose queues are
//! all in one shard is one part, written with its record in one transaction. One spread over
//! several shards is written as a held part in each (every task waits on the hold), then its
//! record in the shard its id names (the commit point), then each part's holds are released;
//! a part whose record never came is deleted when the store next looks (`sharded/deps.rs`).

use super::ctx::{Ctx, Res};
use super::deps::HOLD;
use super::tasks::INSERT_TASK;
use super::Batch;
use crate::rows::{dep_policy_to_sql, ids_to_sql, state_from_sql, tags_to_sql};
use rota_core::{
    events, lifecycle, NewTask, QueueKey, StateCounts, Task, TaskId, TaskState, Timestamp,
};
use rusqlite::{params, OptionalExtension};

/// A workflow's record: what commits it, and the names its tasks were submitted under.
#[derive(Debug, Clone)]
pub struct WorkflowRow {
    pub id: TaskId,
    pub tenant: String,
    pub created_at: Timestamp,
    pub names: Vec<(String, TaskId)>,
    /// A batch's callback task; `None` for a workflow.
    pub callback: Option<TaskId>,
}

impl WorkflowRow {
    pub fn kind(&self) -> rota_core::workflow::WorkflowKind {
        match self.callback {
            Some(_) => rota_core::workflow::WorkflowKind::Batch,
            None => rota_core::workflow::WorkflowKind::Workflow,
        }
    }
}

/// A workflow found ended: its record marked ended where it is here, and its `workflow.*`
/// event logged where its queue is here (both in one shard, or each in its own).
#[derive(Debug, Clone)]
pub struct WorkflowEnd {
    pub workflow: TaskId,
    pub record_here: bool,
    pub event: Option<(QueueKey, rota_core::events::Event)>,
}

/// One task of a part: its id (taken from this shard's ids), queue, and the task with its
/// dependencies as ids.
#[derive(Debug, Clone)]
pub struct PartTask {
    pub id: TaskId,
    pub queue: String,
    pub task: NewTask,
}

/// The tasks of one workflow that live in one shard.
#[derive(Debug, Clone)]
pub struct Part {
    pub tenant: String,
    /// The workflow its tasks belong to (none for tasks spawned by a task outside one).
    pub workflow: Option<TaskId>,
    /// Every task waits on the hold until the workflow is committed.
    pub held: bool,
    /// Written with the part when the part is the whole workflow.
    pub record: Option<WorkflowRow>,
    pub tasks: Vec<PartTask>,
    /// (dependency in this shard, dependent anywhere) pairs.
    pub dependents: Vec<(TaskId, TaskId)>,
    /// The task (its callback) that waits on the batch itself while the batch is open.
    pub anchor: Option<TaskId>,
}

impl Ctx<'_> {
    pub fn put_part(&mut self, b: &mut Batch, part: &Part) -> Res<Vec<Task>> {
        // Every queue first: a refusal (tenant gone, too many queues) must come before any row.
        let mut queues = Vec::with_capacity(part.tasks.len());
        for pt in &part.tasks {
            let key = QueueKey::new(&part.tenant, &pt.queue);
            match self.lookup_or_create(b, &key)? {
                Ok(found) => queues.push(found),
                Err(e) => return Ok(Err(e)),
            }
        }
        let now = b.now;
        let wf = part.workflow.map(TaskId::as_i64);
        let mut out = Vec::with_capacity(part.tasks.len());
        for (pt, (qid, settings)) in part.tasks.iter().zip(queues) {
            let t = &pt.task;
            let run_at = t.run_at.unwrap_or(now);
            let state = if part.held || !t.depends_on.is_empty() || part.anchor == Some(pt.id) {
                TaskState::Waiting
            } else {
                lifecycle::waiting_state(run_at, now)
            };
            let max_attempts = t.max_attempts.unwrap_or(settings.max_attempts);
            self.tx().prepare_cached(INSERT_TASK)?.execute(params![
                pt.id.as_i64(),
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
                t.callback_url,
                t.group,
                ids_to_sql(&t.depends_on),
                dep_policy_to_sql(t.on_dependency_failure),
                wf,
                t.traceparent,
                t.tracestate,
            ])?;
            for &dep in &t.depends_on {
                self.add_wait(pt.id, dep)?;
            }
            if part.held {
                self.add_wait(pt.id, HOLD)?;
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
            let mut task = lifecycle::enqueued(pt.id, &pt.queue, t, max_attempts, now);
            task.state = state;
            b.log(qid, events::enqueued(&task), &task);
            out.push(task);
        }
        for &(dep, task) in &part.dependents {
            self.add_dependent(dep, task)?;
        }
        if let (Some(cb), Some(wf)) = (part.anchor, part.workflow) {
            self.add_wait(cb, wf)?;
        }
        if let Some(record) = &part.record {
            if let Err(e) = self.commit_workflow(record)? {
                return Ok(Err(e));
            }
        }
        Ok(Ok(out))
    }

    pub fn commit_workflow(&self, w: &WorkflowRow) -> Res<()> {
        let names: Vec<(&str, TaskId)> = w.names.iter().map(|(n, id)| (n.as_str(), *id)).collect();
        self.tx()
            .prepare_cached(
                "INSERT INTO workflows (id, tenant, created_at, names, callback) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                w.id.as_i64(),
                w.tenant,
                w.created_at.0,
                serde_json::to_string(&names).expect("names serialize"),
                w.callback.map(TaskId::as_i64)
            ])?;
        Ok(Ok(()))
    }

    /// The workflow is committed: its tasks here stop waiting on the hold.
    pub fn release_holds(&mut self, b: &mut Batch, wf: TaskId) -> Res<()> {
        let held: Vec<i64> = {
            let mut stmt = self.tx().prepare_cached(
                "SELECT w.task_id FROM task_waits w JOIN tasks t ON t.id = w.task_id \
                 WHERE w.dep_id = 0 AND t.workflow = ?1",
            )?;
            let rows = stmt.query_map([wf.as_i64()], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for id in held {
            self.dependency_ended(b, TaskId::from_i64(id), HOLD, TaskState::Succeeded)?;
        }
        Ok(Ok(()))
    }

    /// Deletes this shard's tasks of a workflow that was never committed (nothing of it ran:
    /// every task waited on the hold).
    pub fn drop_part(&mut self, b: &mut Batch, wf: TaskId) -> Res<u64> {
        let gone: Vec<(i64, i64, String)> = {
            let mut stmt = self.tx().prepare_cached(
                "DELETE FROM tasks WHERE workflow = ?1 RETURNING id, queue_id, state",
            )?;
            let rows = stmt.query_map([wf.as_i64()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, qid, state) in &gone {
            self.tx()
                .prepare_cached("DELETE FROM task_waits WHERE task_id = ?1")?
                .execute([id])?;
            self.tx()
                .prepare_cached("DELETE FROM task_dependents WHERE dep_id = ?1")?
                .execute([id])?;
            b.delta.moved(*qid, Some(state_from_sql(state)?), None);
        }
        Ok(Ok(gone.len() as u64))
    }
}

/// The workflows with tasks still on hold in this shard, and the oldest such task's age.
pub fn held(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<(TaskId, Timestamp)>> {
    let mut stmt = conn.prepare(
        "SELECT t.workflow, min(t.created_at) FROM task_waits w JOIN tasks t ON t.id = w.task_id \
         WHERE w.dep_id = 0 AND t.workflow IS NOT NULL GROUP BY t.workflow",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((TaskId::from_i64(r.get(0)?), Timestamp(r.get(1)?)))
    })?;
    rows.collect()
}

/// Every wait on a dependency in this shard: (dependent, dependency); not a hold, nor an open
/// batch's callback waiting on the batch.
pub fn waits(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<(TaskId, TaskId)>> {
    let mut stmt = conn.prepare(
        "SELECT w.task_id, w.dep_id FROM task_waits w JOIN tasks t ON t.id = w.task_id \
         WHERE w.dep_id <> 0 AND w.dep_id IS NOT t.workflow",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((TaskId::from_i64(r.get(0)?), TaskId::from_i64(r.get(1)?)))
    })?;
    rows.collect()
}

/// A workflow's record, if this shard has it.
pub fn record(conn: &rusqlite::Connection, id: TaskId) -> rusqlite::Result<Option<WorkflowRow>> {
    let row: Option<(String, i64, String, Option<i64>)> = conn
        .prepare_cached("SELECT tenant, created_at, names, callback FROM workflows WHERE id = ?1")?
        .query_row([id.as_i64()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    row.map(|(tenant, created_at, names, callback)| {
        let names: Vec<(String, TaskId)> = serde_json::from_str(&names).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?;
        Ok(WorkflowRow {
            id,
            tenant,
            created_at: Timestamp(created_at),
            names,
            callback: callback.map(TaskId::from_i64),
        })
    })
    .transpose()
}

/// A tenant's workflow records, newest first, before `before`.
pub fn records(
    conn: &rusqlite::Connection,
    tenant: &str,
    before: Option<TaskId>,
    limit: usize,
) -> rusqlite::Result<Vec<WorkflowRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM workflows WHERE tenant = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let ids: Vec<i64> = stmt
        .query_map(
            params![
                tenant,
                before.map_or(i64::MAX, TaskId::as_i64),
                limit as i64
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = record(conn, TaskId::from_i64(id))? {
            out.push(r);
        }
    }
    Ok(out)
}

/// The workflow's tasks in this shard.
pub fn tasks(
    conn: &rusqlite::Connection,
    wf: TaskId,
) -> rusqlite::Result<Vec<crate::rows::TaskRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM tasks WHERE workflow = ?1",
        crate::rows::TASK_COLUMNS
    ))?;
    let rows = stmt.query_map([wf.as_i64()], crate::rows::task_from_row)?;
    rows.collect()
}

/// Whether a task of the workflow in this shard has not ended: a walk of its tasks from the
/// newest that stops at the first live one. The newest (a join, the last steps) end last, so
/// the walk is short while the workflow runs.
pub fn live(conn: &rusqlite::Connection, wf: TaskId) -> rusqlite::Result<bool> {
    let found: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM tasks WHERE workflow = ?1 \
             AND state IN ('waiting', 'scheduled', 'ready', 'running') ORDER BY id DESC LIMIT 1",
        )?
        .query_row([wf.as_i64()], |r| r.get(0))
        .optional()?;
    Ok(found.is_some())
}

/// The workflow's tasks in this shard, counted by state.
pub fn counts(conn: &rusqlite::Connection, wf: TaskId) -> rusqlite::Result<StateCounts> {
    let mut stmt = conn
        .prepare_cached("SELECT state, count(*) FROM tasks WHERE workflow = ?1 GROUP BY state")?;
    let rows = stmt.query_map([wf.as_i64()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut c = StateCounts::default();
    for row in rows {
        let (state, n) = row?;
        *c.get_mut(state_from_sql(&state)?) += n as u64;
    }
    Ok(c)
}

/// Of the workflows `ids` in this shard, the batches of `tenant` and their callbacks.
pub fn callbacks(
    conn: &rusqlite::Connection,
    tenant: &str,
    ids: &[TaskId],
) -> rusqlite::Result<Vec<(TaskId, TaskId)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT callback FROM workflows WHERE id = ?1 AND tenant = ?2 AND callback IS NOT NULL",
    )?;
    let mut out = Vec::new();
    for id in ids {
        let cb: Option<i64> = stmt
            .query_row(params![id.as_i64(), tenant], |r| r.get(0))
            .optional()?;
        if let Some(cb) = cb {
            out.push((*id, TaskId::from_i64(cb)));
        }
    }
    Ok(out)
}

/// Records older than `before` with ids after `after`, in id order (candidates for deletion
/// once their tasks are gone; the caller walks on from the last).
pub fn stale(
    conn: &rusqlite::Connection,
    before: Timestamp,
    after: TaskId,
    limit: usize,
) -> rusqlite::Result<Vec<TaskId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM workflows WHERE created_at < ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![before.0, after.as_i64(), limit as i64], |r| {
        Ok(TaskId::from_i64(r.get(0)?))
    })?;
    rows.collect()
}

/// Which of `ids` still have a task in this shard.
pub fn kept(conn: &rusqlite::Connection, ids: &[TaskId]) -> rusqlite::Result<Vec<TaskId>> {
    let mut stmt =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM tasks WHERE workflow = ?1)")?;
    let mut out = Vec::new();
    for id in ids {
        if stmt.query_row([id.as_i64()], |r| r.get::<_, bool>(0))? {
            out.push(*id);
        }
    }
    Ok(out)
}

/// The ids of workflows here not yet found ended, after `after` in id order.
pub fn running(
    conn: &rusqlite::Connection,
    after: TaskId,
    limit: usize,
) -> rusqlite::Result<Vec<TaskId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM workflows WHERE ended_at IS NULL AND id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after.as_i64(), limit as i64], |r| {
        Ok(TaskId::from_i64(r.get(0)?))
    })?;
    rows.collect()
}

impl Ctx<'_> {
    /// Marks a workflow ended and logs its event (nothing when the record here was already
    /// marked: the event was logged then).
    pub fn end_workflow(&mut self, b: &mut Batch, w: &WorkflowEnd) -> Res<()> {
        if w.record_here {
            let marked = self
                .tx()
                .prepare_cached(
                    "UPDATE workflows SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL",
                )?
                .execute(params![w.workflow.as_i64(), b.now.0])?;
            if marked == 0 {
                return Ok(Ok(()));
            }
        }
        if let Some((key, event)) = &w.event {
            // A queue deleted since has no log to write to.
            if let Some((qid, _)) = self.lookup(b, key) {
                b.log_other(qid, event.clone());
            }
        }
        Ok(Ok(()))
    }

    /// Deletes the records of workflows none of whose tasks is kept any more.
    pub fn drop_records(&self, ids: &[TaskId]) -> Res<u64> {
        let mut stmt = self.tx().prepare_cached(
            "DELETE FROM workflows WHERE id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM tasks WHERE workflow = ?1)",
        )?;
        let mut n = 0;
        for id in ids {
            n += stmt.execute([id.as_i64()])? as u64;
        }
        Ok(Ok(n))
    }
}
