//! An operator's changes to one task: cancel, retry, run now, kill, delete. Each locks the
//! task, checks rota-core's transition, stores the outcome and commits.

use crate::rows::{errors_to_sql, purge_at, task_from_row, TASK_COLUMNS};
use crate::{db, PostgresStore};
use rota_core::lifecycle;
use rota_core::{Task, TaskId, TaskState};
use rota_store::{Change, StoreError, StoreResult};
use tokio_postgres::error::SqlState;

impl PostgresStore {
    pub(crate) async fn change_task(
        &self,
        tenant: &str,
        id: TaskId,
        change: Change,
    ) -> StoreResult<Task> {
        let audit = rota_store::audit::take();
        let now = self.now();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {TASK_COLUMNS}, q.retention_ms FROM rota_tasks t \
                     JOIN rota_queues q ON q.id = t.queue_id \
                     WHERE t.id = $1 AND q.tenant = $2 FOR UPDATE OF t"
                ),
                &[&id.as_i64(), &tenant],
            )
            .await
            .map_err(db)?
            .ok_or(StoreError::TaskNotFound(id))?;
        let before = task_from_row(&row)?.1;
        let was_running = before.state == TaskState::Running;
        let retention = row.get::<_, i64>(row.len() - 1).max(0) as u64;
        lifecycle::transition(before.state, change.event())
            .map_err(|source| StoreError::InvalidState { id, source })?;
        let returning = |set: &str| {
            format!(
                "UPDATE rota_tasks t SET {set} FROM rota_queues q \
                 WHERE t.id = $1 AND q.id = t.queue_id RETURNING {TASK_COLUMNS}"
            )
        };
        // The waiters of a deleted task hear of it in the same transaction (a release after
        // the commit could be lost, and no row would be left for maintenance to find): a final
        // task's pending release is done before its row goes, a live one counts as cancelled.
        let mut release: crate::deps::Released = Default::default();
        let updated = match &change {
            Change::Delete => {
                if before.state.is_final() {
                    release = self.release_in(&tx, vec![id.as_i64()], vec![], now).await?;
                }
                tx.execute("DELETE FROM rota_tasks WHERE id = $1", &[&id.as_i64()])
                    .await
                    .map_err(db)?;
                if !before.state.is_final() {
                    release = self.release_in(&tx, vec![], vec![id.as_i64()], now).await?;
                }
                None
            }
            Change::Cancel => {
                let sql = returning(
                    "state = 5, finished_at = $2, updated_at = $2, lease_worker = NULL, \
                     lease_token = NULL, lease_expires_at = NULL, purge_at = $3",
                );
                let purge = purge_at(now, retention);
                Some(tx.query_one(&sql, &[&id.as_i64(), &now.0, &purge]).await)
            }
            Change::Retry => {
                let sql = returning(
                    "state = 1, attempt = 0, run_at = $2, finished_at = NULL, \
                     purge_at = NULL, updated_at = $2",
                );
                Some(tx.query_one(&sql, &[&id.as_i64(), &now.0]).await)
            }
            Change::RunNow => {
                let sql = returning("state = 1, run_at = $2, updated_at = $2");
                Some(tx.query_one(&sql, &[&id.as_i64(), &now.0]).await)
            }
            Change::Kill { reason } => {
                let t = lifecycle::kill(&before, reason.clone(), now);
                let sql = returning(
                    "state = 4, finished_at = $2, updated_at = $2, errors = $3, purge_at = $4",
                );
                let errors = errors_to_sql(&t.errors);
                let purge = purge_at(now, retention);
                Some(
                    tx.query_one(&sql, &[&id.as_i64(), &now.0, &errors, &purge])
                        .await,
                )
            }
        };
        // The task as it is after the change; a deleted one as it was.
        let t = match updated {
            None => before,
            Some(Ok(row)) => task_from_row(&row)?.1,
            Some(Err(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                drop(tx);
                return Err(self.unique_conflict(tenant, id).await);
            }
            Some(Err(e)) => return Err(db(e)),
        };
        self.log_change(&tx, tenant, &change, &t, now).await?;
        crate::events::append(&tx, &release.0, 1).await?;
        crate::audit::write(&tx, audit.as_ref()).await?;
        tx.commit().await.map_err(db)?;
        self.after_release(&release.0, &release.1);
        self.announce_events([tenant]);
        if change != Change::Delete {
            self.announce(&[(tenant.to_owned(), t.clone())]);
        }
        if was_running {
            // Cancelled, killed or deleted while running: room for the next.
            self.freed(tenant, &t.queue);
        }
        if change != Change::Delete && t.state.is_final() {
            self.release(vec![id.as_i64()], Vec::new()).await;
        }
        Ok(t)
    }

    /// Logs the change's event, if it makes one, in the change's transaction.
    async fn log_change(
        &self,
        tx: &impl deadpool_postgres::GenericClient,
        tenant: &str,
        change: &Change,
        t: &Task,
        now: rota_core::Timestamp,
    ) -> StoreResult<()> {
        match rota_core::events::changed(change.event(), t, now) {
            Some(e) => crate::events::append(tx, &[(tenant.to_owned(), e)], 0).await,
            None => Ok(()),
        }
    }

    /// The error for a retry whose unique key another live task holds.
    async fn unique_conflict(&self, tenant: &str, id: TaskId) -> StoreError {
        let holder = async {
            let client = self.conn().await?;
            client
                .query_opt(
                    "SELECT o.id, o.unique_key FROM rota_tasks t JOIN rota_tasks o \
                     ON o.queue_id = t.queue_id AND o.unique_key = t.unique_key \
                     AND o.state IN (0, 1, 2, 6) AND o.id <> t.id \
                     JOIN rota_queues q ON q.id = t.queue_id WHERE t.id = $1 AND q.tenant = $2",
                    &[&id.as_i64(), &tenant],
                )
                .await
                .map_err(db)
        };
        match holder.await {
            Ok(Some(r)) => StoreError::Conflict(format!(
                "task {} holds unique_key `{}` and is not final; retrying {id} would duplicate it",
                TaskId::from_i64(r.get(0)),
                r.get::<_, String>(1)
            )),
            Ok(None) => StoreError::Conflict(format!(
                "another live task holds task {id}'s unique_key; retrying it would duplicate it"
            )),
            Err(e) => e,
        }
    }
}
