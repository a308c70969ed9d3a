//! A task that comes to wait for tasks added after it (docs/workflows.md): a running task that
//! spawns tasks (`rota_core::spawn`), or an open batch's callback when members are added. The
//! added tasks are stored first, each with a dependent row naming the waiter (`put_part`);
//! then this op, in the waiter's shard, checks the waiter may still wait (its lease, or the
//! batch still open) and adds its waits. A local added task that already ended is applied
//! here; one in another shard is registered with its shard after this commits, which answers
//! the endings it missed.

use super::ctx::{Ctx, Res};
use super::Batch;
use crate::rows::{dep_policy_to_sql, ids_to_sql};
use rota_core::{events, spawn, OnDependencyFailure, Task, TaskId, TaskState};
use rota_store::StoreError;
use rusqlite::params;

/// What entitles the caller to make a task wait for more tasks.
#[derive(Debug, Clone)]
pub enum Waiter {
    /// The task runs under this lease and spawns the tasks.
    Lease(String),
    /// The task is the callback of this batch, which is still open.
    Batch(TaskId),
}

/// Task `task` comes to wait for `added` (stored already, each naming it as a dependent).
#[derive(Debug, Clone)]
pub struct Adopt {
    pub tenant: String,
    pub task: TaskId,
    pub by: Waiter,
    pub added: Vec<TaskId>,
    /// A spawner's rule for added tasks that fail (a callback keeps its own).
    pub policy: OnDependencyFailure,
}

impl Ctx<'_> {
    pub fn adopt(&mut self, b: &mut Batch, a: &Adopt) -> Res<Task> {
        let task = a.task;
        match &a.by {
            Waiter::Lease(token) => {
                let row = match self.leased(b, &a.tenant, task, token)? {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                let qid = row.queue_id;
                let before = self.named(b, row);
                if let Err(e) = spawn::check_room(&before, a.added.len()) {
                    return Ok(Err(StoreError::Invalid(e)));
                }
                let worker = before.lease.as_ref().map(|l| l.worker.clone());
                let t = spawn::spawned(&before, &a.added, a.policy, b.now);
                self.tx()
                    .prepare_cached(
                        "UPDATE tasks SET state = 'waiting', attempt = ?1, lease_worker = NULL, \
                         lease_token = NULL, lease_expires_at = NULL, depends_on = ?2, \
                         dep_policy = ?3, updated_at = ?4 WHERE id = ?5",
                    )?
                    .execute(params![
                        t.attempt,
                        ids_to_sql(&t.depends_on),
                        dep_policy_to_sql(t.on_dependency_failure),
                        b.now.0,
                        task.as_i64()
                    ])?;
                b.delta
                    .moved(qid, Some(TaskState::Running), Some(TaskState::Waiting));
                let e = events::spawned(&t, worker.as_deref().unwrap_or_default(), b.now);
                b.log(qid, e, &t);
            }
            Waiter::Batch(batch) => {
                let Some(row) = self.tenant_row(b, &a.tenant, task)? else {
                    return Ok(Err(StoreError::WorkflowNotFound(*batch)));
                };
                if row.task.state != TaskState::Waiting || !self.waits_on(task, *batch)? {
                    return Ok(Err(rota_store::batch_closed(*batch)));
                }
                let mut t = self.named(b, row);
                if let Err(e) = spawn::check_room(&t, a.added.len()) {
                    return Ok(Err(StoreError::Invalid(e)));
                }
                t.depends_on.extend_from_slice(&a.added);
                self.tx()
                    .prepare_cached(
                        "UPDATE tasks SET depends_on = ?1, updated_at = ?2 WHERE id = ?3",
                    )?
                    .execute(params![ids_to_sql(&t.depends_on), b.now.0, task.as_i64()])?;
            }
        }
        let here = {
            let s = &self.shared;
            move |id: TaskId| crate::sharded::shard_of(id, s.legacy_below, s.shard_count) == s.shard
        };
        let local: Vec<TaskId> = a.added.iter().copied().filter(|&c| here(c)).collect();
        for &c in &a.added {
            self.add_wait(task, c)?;
        }
        for c in local {
            match self.local_state(c)? {
                Some(s) if s.is_final() => self.dependency_ended(b, task, c, s)?,
                Some(_) => self.add_dependent(c, task)?,
                None => self.dependency_ended(b, task, c, TaskState::Cancelled)?,
            }
        }
        Ok(Ok(self.task_by_id(b, task.as_i64())?))
    }

    /// Whether `task` still waits on `dep` (for a batch's callback: whether the batch is open).
    pub fn waits_on(&self, task: TaskId, dep: TaskId) -> rusqlite::Result<bool> {
        waits_on(self.tx(), task, dep)
    }
}

/// Whether `task` waits on `dep`, read outside the writer.
pub fn waits_on(conn: &rusqlite::Connection, task: TaskId, dep: TaskId) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM task_waits WHERE task_id = ?1 AND dep_id = ?2)",
    )?
    .query_row(params![task.as_i64(), dep.as_i64()], |r| r.get(0))
}
