//! An operator's changes to one task: cancel, retry, run now, kill, delete. Which change a
//! state allows is rota-core's lifecycle; this file stores the outcome.

use super::ctx::{Ctx, Res};
use super::tasks::purge_at;
use super::Batch;
use crate::rows::{errors_to_sql, task_from_row, TASK_COLUMNS};
use rota_core::{events, lifecycle};
use rota_core::{Task, TaskId, TaskState};
use rota_store::{Change, StoreError};
use rusqlite::{params, OptionalExtension};

impl Ctx<'_> {
    pub fn change(
        &mut self,
        b: &mut Batch,
        tenant: &str,
        id: TaskId,
        change: &Change,
    ) -> Res<Task> {
        let Some((qid, state, unique_key)) = self.find(b, tenant, id)? else {
            return Ok(Err(StoreError::TaskNotFound(id)));
        };
        if let Err(source) = lifecycle::transition(state, change.event()) {
            return Ok(Err(StoreError::InvalidState { id, source }));
        }
        let t = match change {
            Change::Cancel => {
                let purge = purge_at(b.now, self.settings_of(b, qid).retention_ms);
                let sql = format!(
                    "UPDATE tasks SET state = 'cancelled', finished_at = ?1, updated_at = ?1, \
                     lease_worker = NULL, lease_token = NULL, lease_expires_at = NULL, \
                     purge_at = ?3 WHERE id = ?2 RETURNING {TASK_COLUMNS}"
                );
                self.update_returning(b, &sql, params![b.now.0, id.as_i64(), purge])?
            }
            Change::Retry => {
                if let Some(k) = unique_key {
                    if let Some(conflict) = self.unique_holder(qid, &k, id)? {
                        return Ok(Err(conflict));
                    }
                }
                let sql = format!(
                    "UPDATE tasks SET state = 'ready', attempt = 0, run_at = ?1, \
                     finished_at = NULL, purge_at = NULL, updated_at = ?1 WHERE id = ?2 \
                     RETURNING {TASK_COLUMNS}"
                );
                self.update_returning(b, &sql, params![b.now.0, id.as_i64()])?
            }
            Change::RunNow => {
                let sql = format!(
                    "UPDATE tasks SET state = 'ready', run_at = ?1, updated_at = ?1 \
                     WHERE id = ?2 RETURNING {TASK_COLUMNS}"
                );
                self.update_returning(b, &sql, params![b.now.0, id.as_i64()])?
            }
            Change::Kill { reason } => {
                let before = self.read_task(b, id)?;
                let t = lifecycle::kill(&before, reason.clone(), b.now);
                let purge = purge_at(b.now, self.settings_of(b, qid).retention_ms);
                self.tx()
                    .prepare_cached(
                        "UPDATE tasks SET state = 'dead', finished_at = ?1, updated_at = ?1, \
                         errors = ?2, purge_at = ?3 WHERE id = ?4",
                    )?
                    .execute(params![
                        b.now.0,
                        errors_to_sql(&t.errors),
                        purge,
                        id.as_i64()
                    ])?;
                t
            }
            Change::Delete => {
                let sql = format!("DELETE FROM tasks WHERE id = ?1 RETURNING {TASK_COLUMNS}");
                self.update_returning(b, &sql, params![id.as_i64()])?
            }
        };
        if let Some(e) = events::changed(change.event(), &t, b.now) {
            b.log(qid, e, &t);
        }
        // A deleted task leaves its state's count; it is answered as it was.
        let to = (*change != Change::Delete).then_some(t.state);
        b.delta.moved(qid, Some(state), to);
        if t.state == TaskState::Ready {
            b.ready.insert(qid);
        }
        Ok(Ok(t))
    }

    /// The task's queue, state and unique key, if it exists in `tenant`.
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
        if self.queue_key(b, qid).is_none_or(|k| k.tenant != tenant) {
            return Ok(None);
        }
        Ok(Some((qid, crate::rows::state_from_sql(&state)?, key)))
    }

    fn read_task(&self, b: &Batch, id: TaskId) -> rusqlite::Result<Task> {
        let row = self
            .tx()
            .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
            .query_row([id.as_i64()], task_from_row)?;
        Ok(self.named(b, row))
    }

    /// The conflict a retry of `id` would cause: another live task of the queue holds `key`.
    fn unique_holder(
        &self,
        qid: i64,
        key: &str,
        id: TaskId,
    ) -> rusqlite::Result<Option<StoreError>> {
        let holder: Option<i64> = self
            .tx()
            .prepare_cached(
                "SELECT id FROM tasks WHERE queue_id = ?1 AND unique_key = ?2 \
                 AND state IN ('scheduled', 'ready', 'running', 'waiting')",
            )?
            .query_row(params![qid, key], |r| r.get(0))
            .optional()?;
        Ok(holder.map(|other| {
            StoreError::Conflict(format!(
                "task {} holds unique_key `{key}` and is not final; retrying {id} would duplicate it",
                TaskId::from_i64(other)
            ))
        }))
    }
}
