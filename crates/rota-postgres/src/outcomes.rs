//! Outcomes of running tasks: failures (from workers or expired leases) lock their rows and
//! store what rota-core's `fail_attempt` returns.

use crate::rows::{
    errors_to_sql, purge_at, state_to_sql, task_from_row, TASK_COLUMNS, TASK_COLUMN_COUNT,
};
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rand::Rng;
use rota_core::{events, lifecycle};
use rota_core::{Backoff, QueueKey, Task, TaskId, TaskState, Timestamp};
use rota_store::{FailureReport, StoreError, StoreResult};
use std::collections::{HashMap, HashSet};

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
        let logged: Vec<_> = stored
            .iter()
            .map(|(tenant, t)| (tenant.clone(), events::failed(t, now)))
            .collect();
        crate::events::append(&tx, &logged, 0).await?;
        tx.commit().await.map_err(db)?;
        self.announce_ended(&stored);
        self.announce_events(logged.iter().map(|(t, _)| t.as_str()));
        self.release(dead_ids(&stored), Vec::new()).await;
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
                    tenant: r.get(TASK_COLUMN_COUNT),
                    backoff: Backoff {
                        base_ms: u(r.get(TASK_COLUMN_COUNT + 1)),
                        max_ms: u(r.get(TASK_COLUMN_COUNT + 2)),
                    },
                    retention_ms: u(r.get(TASK_COLUMN_COUNT + 3)),
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

    /// After a commit that logged events of `tenants`: wakes this server's readers of those
    /// tenants, and the other servers'.
    pub(crate) fn announce_events<'a>(&self, tenants: impl IntoIterator<Item = &'a str>) {
        let tenants: std::collections::BTreeSet<&str> = tenants.into_iter().collect();
        self.shared.events.notify(tenants.iter().copied());
        self.shared.notifier.events(tenants);
    }

    /// After the commit of a change that ended a running task of `queue`: its claims waiting
    /// on a concurrency limit may now take one (here and on the other servers).
    pub(crate) fn freed(&self, tenant: &str, queue: &str) {
        self.shared.signals.notify(&QueueKey::new(tenant, queue));
        self.shared.notifier.ready(tenant, queue);
    }

    /// [`Self::announce`] for tasks that were running (failed, or their lease expired): also
    /// wakes the claims of their queues waiting for room.
    pub(crate) fn announce_ended(&self, tasks: &[(String, Task)]) {
        self.announce(tasks);
        let queues: std::collections::BTreeSet<(&str, &str)> = tasks
            .iter()
            .map(|(tenant, t)| (tenant.as_str(), t.queue.as_str()))
            .collect();
        for (tenant, queue) in queues {
            self.freed(tenant, queue);
        }
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
}

/// The tasks of `stored` that ended dead (their waiters must hear of it).
pub(crate) fn dead_ids(stored: &[(String, Task)]) -> Vec<i64> {
    stored
        .iter()
        .filter(|(_, t)| t.state == TaskState::Dead)
        .map(|(_, t)| t.id.as_i64())
        .collect()
}
