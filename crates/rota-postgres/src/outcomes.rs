//! Outcomes of running tasks and operator actions: failures (from workers or expired
//! leases) lock their rows and store what rota-core's `fail_attempt` returns; cancel and
//! retry lock the task and check rota-core's transition first.

use crate::rows::{errors_to_sql, purge_at, state_to_sql, task_from_row, TASK_COLUMNS};
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rand::Rng;
use rota_core::lifecycle::{self, Event};
use rota_core::{Backoff, QueueKey, Task, TaskId, TaskState, Timestamp};
use rota_store::{FailureReport, StoreError, StoreResult};
use std::collections::{HashMap, HashSet};
use tokio_postgres::error::SqlState;

/// A failed attempt to record: the task as locked, its queue's backoff and retention, the
/// message and the worker's `(retry_in_ms, dead, temporary)`.
pub(crate) struct FailedAttempt {
    pub task: Task,
    pub tenant: String,
    pub backoff: Backoff,
    pub retention_ms: u64,
    pub message: String,
    pub how: (Option<u64>, bool, bool),
}

impl PostgresStore {
    pub(crate) async fn fail_tasks(
        &self,
        tenant: &str,
        items: Vec<FailureReport>,
    ) -> StoreResult<Vec<StoreResult<Task>>> {
        let now = self.now();
        let mut client = self.task_conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let ids: Vec<i64> = items.iter().map(|i| i.id.as_i64()).collect();
        let locked = self.lock_for_failure(&tx, &ids).await?;
        let mut out: Vec<Option<StoreResult<Task>>> = vec![None; items.len()];
        let mut attempts = Vec::new();
        let mut seen = HashSet::new();
        for (n, item) in items.iter().enumerate() {
            let Some(f) = locked.get(&item.id).filter(|f| f.tenant == tenant) else {
                out[n] = Some(Err(StoreError::TaskNotFound(item.id)));
                continue;
            };
            let t = &f.task;
            let check = if seen.insert(item.id) {
                lifecycle::check_lease(t.state, t.lease.as_ref(), &item.lease, now)
            } else {
                Err(rota_core::lifecycle::LeaseLoss::Replaced)
            };
            if let Err(loss) = check {
                out[n] = Some(Err(StoreError::LeaseLost(item.id, loss)));
                continue;
            }
            attempts.push((
                n,
                FailedAttempt {
                    task: t.clone(),
                    tenant: f.tenant.clone(),
                    backoff: f.backoff,
                    retention_ms: f.retention_ms,
                    message: item.error.clone(),
                    how: (item.retry_in_ms, item.dead, item.temporary),
                },
            ));
        }
        let (slots, attempts): (Vec<usize>, Vec<FailedAttempt>) = attempts.into_iter().unzip();
        let stored = self.store_failures(&tx, attempts, now).await?;
        tx.commit().await.map_err(db)?;
        self.announce(&stored);
        for (n, (_, t)) in slots.into_iter().zip(stored) {
            out[n] = Some(Ok(t));
        }
        Ok(out.into_iter().map(|o| o.expect("decided")).collect())
    }

    /// The tasks with these ids, locked, with what failing them needs.
    pub(crate) async fn lock_for_failure(
        &self,
        tx: &impl GenericClient,
        ids: &[i64],
    ) -> StoreResult<HashMap<TaskId, FailedAttempt>> {
        let rows = tx
            .query(
                &format!(
                    "SELECT {TASK_COLUMNS}, q.tenant, q.backoff_base_ms, q.backoff_max_ms, \
                     q.retention_ms FROM rota_tasks t JOIN rota_queues q ON q.id = t.queue_id \
                     WHERE t.id = ANY($1) FOR UPDATE OF t"
                ),
                &[&ids],
            )
            .await
            .map_err(db)?;
        let mut found = HashMap::with_capacity(rows.len());
        for r in &rows {
            let (_, task) = task_from_row(r)?;
            let u = |v: i64| v.max(0) as u64;
            found.insert(
                task.id,
                FailedAttempt {
                    tenant: r.get(21),
                    backoff: Backoff {
                        base_ms: u(r.get(22)),
                        max_ms: u(r.get(23)),
                    },
                    retention_ms: u(r.get(24)),
                    task,
                    message: String::new(),
                    how: (None, false, false),
                },
            );
        }
        Ok(found)
    }

    /// Applies rota-core's failure rule to each attempt and stores the results in one
    /// statement, announcing tasks that became ready or scheduled. Returns each task's tenant
    /// and the task as stored.
    pub(crate) async fn store_failures(
        &self,
        tx: &impl GenericClient,
        attempts: Vec<FailedAttempt>,
        now: Timestamp,
    ) -> StoreResult<Vec<(String, Task)>> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let jitter: Vec<f64> = {
            let mut rng = rand::rng();
            attempts.iter().map(|_| rng.random()).collect()
        };
        let mut out = Vec::with_capacity(attempts.len());
        let (mut id, mut state, mut run_at, mut finished, mut errors, mut attempt, mut purge) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for (a, jitter) in attempts.into_iter().zip(jitter) {
            let t = lifecycle::fail_attempt(&a.task, a.message, a.how, &a.backoff, now, jitter);
            id.push(t.id.as_i64());
            state.push(state_to_sql(t.state));
            run_at.push(t.run_at.0);
            finished.push(t.finished_at.map(|f| f.0));
            errors.push(errors_to_sql(&t.errors));
            attempt.push(t.attempt as i32);
            purge.push(t.finished_at.map(|f| purge_at(f, a.retention_ms)));
            out.push((a.tenant, t));
        }
        let stmt = tx
            .prepare_cached(
                "UPDATE rota_tasks t SET state = u.state, run_at = u.run_at, \
                 finished_at = u.finished_at, errors = u.errors, updated_at = $1, \
                 attempt = u.attempt, lease_worker = NULL, lease_token = NULL, \
                 lease_expires_at = NULL, purge_at = u.purge_at \
                 FROM unnest($2::bigint[], $3::smallint[], $4::bigint[], $5::bigint[], \
                   $6::text[], $7::int[], $8::bigint[]) \
                   AS u(id, state, run_at, finished_at, errors, attempt, purge_at) \
                 WHERE t.id = u.id",
            )
            .await
            .map_err(db)?;
        tx.execute(
            &stmt,
            &[
                &now.0, &id, &state, &run_at, &finished, &errors, &attempt, &purge,
            ],
        )
        .await
        .map_err(db)?;
        Ok(out)
    }

    /// After the commit: wakes this server's waiters, and the other servers, for tasks that
    /// became ready or scheduled.
    pub(crate) fn announce(&self, tasks: &[(String, Task)]) {
        for (tenant, t) in tasks {
            match t.state {
                TaskState::Ready => {
                    self.shared
                        .signals
                        .notify(&QueueKey::new(tenant.as_str(), t.queue.as_str()));
                    self.shared.notifier.ready(tenant, &t.queue);
                }
                TaskState::Scheduled => {
                    self.due_at(t.run_at);
                    self.shared.notifier.due();
                }
                _ => {}
            }
        }
    }

    /// Locks the task (in `tenant`) and checks that `event` may happen to it.
    async fn lock_for(
        &self,
        tx: &impl GenericClient,
        tenant: &str,
        id: TaskId,
        event: Event,
    ) -> StoreResult<(TaskState, u64)> {
        let row = tx
            .query_opt(
                "SELECT t.state, q.retention_ms FROM rota_tasks t \
                 JOIN rota_queues q ON q.id = t.queue_id \
                 WHERE t.id = $1 AND q.tenant = $2 FOR UPDATE OF t",
                &[&id.as_i64(), &tenant],
            )
            .await
            .map_err(db)?
            .ok_or(StoreError::TaskNotFound(id))?;
        let state = crate::rows::state_from_sql(row.get(0))?;
        lifecycle::transition(state, event)
            .map_err(|source| StoreError::InvalidState { id, source })?;
        Ok((state, row.get::<_, i64>(1).max(0) as u64))
    }

    pub(crate) async fn cancel_task(&self, tenant: &str, id: TaskId) -> StoreResult<Task> {
        let now = self.now();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let (_, retention) = self.lock_for(&tx, tenant, id, Event::Cancel).await?;
        let row = tx
            .query_one(
                &format!(
                    "UPDATE rota_tasks t SET state = 5, finished_at = $1, updated_at = $1, \
                     lease_worker = NULL, lease_token = NULL, lease_expires_at = NULL, \
                     purge_at = $3 FROM rota_queues q WHERE t.id = $2 AND q.id = t.queue_id \
                     RETURNING {TASK_COLUMNS}"
                ),
                &[&now.0, &id.as_i64(), &purge_at(now, retention)],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(task_from_row(&row)?.1)
    }

    pub(crate) async fn retry_task(&self, tenant: &str, id: TaskId) -> StoreResult<Task> {
        let now = self.now();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        self.lock_for(&tx, tenant, id, Event::Retry).await?;
        let updated = tx
            .query_one(
                &format!(
                    "UPDATE rota_tasks t SET state = 1, attempt = 0, run_at = $1, \
                     finished_at = NULL, purge_at = NULL, updated_at = $1 \
                     FROM rota_queues q WHERE t.id = $2 AND q.id = t.queue_id \
                     RETURNING {TASK_COLUMNS}"
                ),
                &[&now.0, &id.as_i64()],
            )
            .await;
        let row = match updated {
            Ok(row) => row,
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                drop(tx);
                return Err(self.unique_conflict(tenant, id).await);
            }
            Err(e) => return Err(db(e)),
        };
        let t = task_from_row(&row)?.1;
        tx.commit().await.map_err(db)?;
        self.shared
            .signals
            .notify(&QueueKey::new(tenant, t.queue.as_str()));
        self.shared.notifier.ready(tenant, &t.queue);
        Ok(t)
    }

    /// The error for a retry whose unique key another live task holds.
    async fn unique_conflict(&self, tenant: &str, id: TaskId) -> StoreError {
        let holder = async {
            let client = self.conn().await?;
            client
                .query_opt(
                    "SELECT o.id, o.unique_key FROM rota_tasks t JOIN rota_tasks o \
                     ON o.queue_id = t.queue_id AND o.unique_key = t.unique_key \
                     AND o.state IN (0, 1, 2) AND o.id <> t.id \
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
