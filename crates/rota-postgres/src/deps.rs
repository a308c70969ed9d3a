//! Dependencies on PostgreSQL (docs/workflows.md). A waiting task has a `rota_task_waits` row
//! per dependency that has not ended. The enqueue that adds a waiter locks the dependency's row
//! and sets its `has_dependents`, so an ending that locks the row after it sees the flag (a
//! statement that waited for the lock re-reads the row); the ending's server then releases the
//! waiters in a transaction of its own ([`PostgresStore::release`]), and maintenance finds the
//! endings whose release a crash cut off (`has_dependents` still set on a final task). Two
//! endings of one waiter's last dependencies, on two servers, serialize on the waiter's row
//! lock: the second counts the waits left after the first committed, so the waiter is released
//! once.

use crate::enqueue::{EnqueueColumns, INSERT};
use crate::rows::{errors_to_sql, purge_at, state_to_sql, task_from_row, TASK_COLUMNS};
use crate::tasks::lock_tenant;
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rota_core::workflow::{after_dependency, DependencyOutcome};
use rota_core::{events, lifecycle};
use rota_core::{NewTask, QueueKey, Task, TaskId, TaskState, Timestamp};
use rota_store::{Enqueued, StoreError, StoreResult};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What an enqueued task waits for: its live dependencies, or the ended one that cancels it.
type Plan = (Vec<TaskId>, Option<(TaskId, TaskState)>);

/// What a release did: the events to log and the tasks it released, with their tenants.
pub(crate) type Released = (Vec<(String, rota_core::events::Event)>, Vec<(String, Task)>);

/// Wait rows: task `waiter[i]` waits for `dep[i]` (a row already there is kept).
pub(crate) async fn insert_waits(
    tx: &impl GenericClient,
    waiter: &[i64],
    dep: &[i64],
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO rota_task_waits (task_id, dep_id) \
         SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
        &[&waiter, &dep],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Final tasks whose waiters maintenance releases per pass (after a crash cut a release off).
pub(crate) const SWEEP: i64 = 500;

impl PostgresStore {
    /// An enqueue of tasks with dependencies, in one transaction: each dependency must be a
    /// task of the tenant; those still live are locked and marked, and the tasks wait for them.
    pub(crate) async fn enqueue_waiting(
        &self,
        key: &QueueKey,
        tasks: Vec<NewTask>,
    ) -> StoreResult<Vec<Enqueued>> {
        let now = self.now();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_tenant(&tx, &key.tenant, false).await?;
        let (_, settings) = self.queue_for_write(&tx, key, now).await?;
        let mut deps: Vec<i64> = tasks
            .iter()
            .flat_map(|t| t.depends_on.iter().map(|d| d.as_i64()))
            .collect();
        deps.sort_unstable();
        deps.dedup();
        let states: HashMap<TaskId, TaskState> = tx
            .query(
                "SELECT t.id, t.state FROM rota_tasks t JOIN rota_queues q ON q.id = t.queue_id \
                 WHERE t.id = ANY($1) AND q.tenant = $2 ORDER BY t.id FOR UPDATE OF t",
                &[&deps, &key.tenant],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                Ok((
                    TaskId::from_i64(r.get(0)),
                    crate::rows::state_from_sql(r.get(1))?,
                ))
            })
            .collect::<StoreResult<_>>()?;
        if let Some(missing) = deps
            .iter()
            .map(|d| TaskId::from_i64(*d))
            .find(|d| !states.contains_key(d))
        {
            return Err(StoreError::Invalid(format!(
                "depends_on: task {missing} does not exist"
            )));
        }
        let ids = self.new_ids(tasks.len(), now).await?;
        let mut cols = EnqueueColumns::default();
        // Per task: the live dependencies it waits for, or the ended one that cancels it.
        let mut plans: Vec<Plan> = Vec::new();
        let mut inserted_as = Vec::with_capacity(tasks.len());
        for (t, id) in tasks.iter().zip(&ids) {
            let mut live = Vec::new();
            let mut cancel = None;
            for d in &t.depends_on {
                let s = states[d];
                if !s.is_final() {
                    live.push(*d);
                } else if cancel.is_none()
                    && after_dependency(s, t.on_dependency_failure) == DependencyOutcome::Cancel
                {
                    cancel = Some((*d, s));
                }
            }
            let state = if cancel.is_some() || !live.is_empty() {
                TaskState::Waiting
            } else {
                lifecycle::waiting_state(t.run_at.unwrap_or(now), now)
            };
            cols.push_as(*id, t, now, state, false);
            inserted_as.push(state);
            plans.push((if cancel.is_some() { Vec::new() } else { live }, cancel));
        }
        let row = tx
            .query_one(INSERT.as_str(), &cols.params(key, &now.0, &0))
            .await
            .map_err(db)?;
        let inserted: HashSet<i64> = row.get::<_, Vec<i64>>(2).into_iter().collect();
        let default_max_attempts = row.get::<_, i32>(1).max(0) as u32;
        let (mut waiter, mut dep) = (Vec::new(), Vec::new());
        for (id, (live, _)) in ids.iter().zip(&plans) {
            if inserted.contains(&id.as_i64()) {
                for d in live {
                    waiter.push(id.as_i64());
                    dep.push(d.as_i64());
                }
            }
        }
        if !waiter.is_empty() {
            tx.execute(
                "UPDATE rota_tasks SET has_dependents = true \
                 WHERE id = ANY($1) AND NOT has_dependents",
                &[&dep],
            )
            .await
            .map_err(db)?;
            insert_waits(&tx, &waiter, &dep).await?;
        }
        let mut out = Vec::with_capacity(tasks.len());
        let mut logged = Vec::new();
        let mut cancelled = Vec::new();
        let mut holders_of = Vec::new();
        for (n, ((t, id), (_, cancel))) in tasks.iter().zip(&ids).zip(&plans).enumerate() {
            if !inserted.contains(&id.as_i64()) {
                holders_of.push(n);
                out.push(None);
                continue;
            }
            let mut task = lifecycle::enqueued(
                *id,
                &key.name,
                t,
                t.max_attempts.unwrap_or(default_max_attempts),
                now,
            );
            task.state = inserted_as[n];
            if let Some((d, s)) = cancel {
                task = rota_core::workflow::cancelled_by_dependency(&task, *d, *s, now);
                logged.push((key.tenant.clone(), events::dependency_cancelled(&task, now)));
                cancelled.push(task.clone());
            }
            out.push(Some(Enqueued::created(task)));
        }
        self.store_cancels(&tx, &cancelled, settings.retention_ms, now)
            .await?;
        if !holders_of.is_empty() {
            let keys: Vec<&str> = holders_of
                .iter()
                .filter_map(|n| tasks[*n].unique_key.as_deref())
                .collect();
            let rows = tx
                .query(
                    &format!(
                        "SELECT {TASK_COLUMNS} FROM rota_tasks t \
                         JOIN rota_queues q ON q.id = t.queue_id WHERE q.tenant = $1 \
                         AND q.name = $2 AND t.unique_key = ANY($3) AND t.state IN (0, 1, 2, 6)"
                    ),
                    &[&key.tenant, &key.name, &keys],
                )
                .await
                .map_err(db)?;
            let mut by_key = HashMap::new();
            for r in &rows {
                let (_, h) = task_from_row(r)?;
                by_key.insert(h.unique_key.clone().unwrap_or_default(), h);
            }
            for n in holders_of {
                let k = tasks[n].unique_key.clone().unwrap_or_default();
                let h = by_key.get(&k).cloned().ok_or_else(|| {
                    StoreError::Unavailable(
                        "a unique key's holder changed under this enqueue; try again".into(),
                    )
                })?;
                out[n] = Some(Enqueued::kept(h));
            }
        }
        crate::events::append(&tx, &logged, tasks.len()).await?;
        tx.commit().await.map_err(db)?;
        self.after_enqueue(key, &tasks, now);
        Ok(out.into_iter().map(|e| e.expect("decided")).collect())
    }

    /// Stores tasks (waiting) as cancelled by a dependency, in the caller's transaction.
    async fn store_cancels(
        &self,
        tx: &impl GenericClient,
        cancelled: &[Task],
        retention_ms: u64,
        now: Timestamp,
    ) -> StoreResult<()> {
        if cancelled.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = cancelled.iter().map(|t| t.id.as_i64()).collect();
        let errors: Vec<Option<String>> =
            cancelled.iter().map(|t| errors_to_sql(&t.errors)).collect();
        let purge = purge_at(now, retention_ms);
        tx.execute(
            "UPDATE rota_tasks t SET state = 5, finished_at = $1, updated_at = $1, \
             errors = u.errors, purge_at = $4 \
             FROM unnest($2::bigint[], $3::text[]) AS u(id, errors) WHERE t.id = u.id",
            &[&now.0, &ids, &errors, &purge],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "DELETE FROM rota_task_waits WHERE task_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Tells the waiters of tasks that ended (`ended`, still in the table) or were deleted
    /// before they ended (`gone`, taken as cancelled): each is released when its last wait
    /// goes, or cancelled by the rule; cancelled ones tell their own waiters in turn. Errors
    /// are logged, not returned: the ending is committed, and maintenance finishes the job.
    pub(crate) async fn release(&self, ended: Vec<i64>, gone: Vec<i64>) {
        if ended.is_empty() && gone.is_empty() {
            return;
        }
        if let Err(e) = self.release_now(ended, gone).await {
            tracing::warn!(error = %e, "cannot release the tasks waiting on those that ended yet; maintenance will");
        }
    }

    async fn release_now(&self, ended: Vec<i64>, gone: Vec<i64>) -> StoreResult<()> {
        let now = self.now();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let (logged, released) = self.release_in(&tx, ended, gone, now).await?;
        crate::events::append(&tx, &logged, 0).await?;
        tx.commit().await.map_err(db)?;
        self.after_release(&logged, &released);
        Ok(())
    }

    /// Wakes what a committed release concerns.
    pub(crate) fn after_release(
        &self,
        logged: &[(String, rota_core::events::Event)],
        released: &[(String, Task)],
    ) {
        if !logged.is_empty() {
            self.announce_events(logged.iter().map(|(t, _)| t.as_str()));
        }
        self.announce(released);
    }

    /// [`Self::release`] inside the caller's transaction: the events to log (the caller appends
    /// them after its own) and the tasks released (to announce after commit).
    pub(crate) async fn release_in(
        &self,
        tx: &impl GenericClient,
        mut ended: Vec<i64>,
        mut gone: Vec<i64>,
        now: Timestamp,
    ) -> StoreResult<Released> {
        let mut logged: Vec<(String, rota_core::events::Event)> = Vec::new();
        let mut released: Vec<(String, Task)> = Vec::new();
        while !ended.is_empty() || !gone.is_empty() {
            let rows = tx
                .query(
                    "WITH e AS (UPDATE rota_tasks SET has_dependents = false \
                       WHERE id = ANY($1) AND has_dependents AND state IN (3, 4, 5) \
                       RETURNING id, state), \
                     a AS (SELECT id, state FROM e \
                       UNION ALL SELECT g, 5::smallint FROM unnest($2::bigint[]) AS g) \
                     DELETE FROM rota_task_waits w USING a WHERE w.dep_id = a.id \
                     RETURNING w.task_id, w.dep_id, a.state",
                    &[&ended, &gone],
                )
                .await
                .map_err(db)?;
            gone.clear();
            ended.clear();
            if rows.is_empty() {
                break;
            }
            let mut endings: BTreeMap<i64, Vec<(TaskId, TaskState)>> = BTreeMap::new();
            for r in &rows {
                endings.entry(r.get(0)).or_default().push((
                    TaskId::from_i64(r.get(1)),
                    crate::rows::state_from_sql(r.get(2))?,
                ));
            }
            let waiters: Vec<i64> = endings.keys().copied().collect();
            let locked = tx
                .query(
                    &format!(
                        "SELECT {TASK_COLUMNS}, q.tenant, q.retention_ms FROM rota_tasks t \
                         JOIN rota_queues q ON q.id = t.queue_id WHERE t.id = ANY($1) \
                         ORDER BY t.id FOR UPDATE OF t"
                    ),
                    &[&waiters],
                )
                .await
                .map_err(db)?;
            let left: HashSet<i64> = tx
                .query(
                    "SELECT DISTINCT task_id FROM rota_task_waits WHERE task_id = ANY($1)",
                    &[&waiters],
                )
                .await
                .map_err(db)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let (mut up_id, mut up_state) = (Vec::new(), Vec::new());
            let mut stale = Vec::new();
            let mut by_retention: BTreeMap<u64, Vec<Task>> = BTreeMap::new();
            for r in &locked {
                let (_, t) = task_from_row(r)?;
                let tenant: String = r.get(crate::rows::TASK_COLUMN_COUNT);
                let retention = r.get::<_, i64>(crate::rows::TASK_COLUMN_COUNT + 1).max(0) as u64;
                if t.state != TaskState::Waiting {
                    stale.push(t.id.as_i64());
                    continue;
                }
                let mine = &endings[&t.id.as_i64()];
                let cancel = mine.iter().find(|(_, s)| {
                    after_dependency(*s, t.on_dependency_failure) == DependencyOutcome::Cancel
                });
                if let Some(&(d, s)) = cancel {
                    let c = rota_core::workflow::cancelled_by_dependency(&t, d, s, now);
                    logged.push((tenant, events::dependency_cancelled(&c, now)));
                    ended.push(c.id.as_i64());
                    by_retention.entry(retention).or_default().push(c);
                } else if !left.contains(&t.id.as_i64()) {
                    let rel = rota_core::workflow::released(&t, now);
                    up_id.push(rel.id.as_i64());
                    up_state.push(state_to_sql(rel.state));
                    logged.push((tenant.clone(), events::released(&rel)));
                    released.push((tenant, rel));
                }
            }
            if !up_id.is_empty() {
                tx.execute(
                    "UPDATE rota_tasks t SET state = u.state, updated_at = $1, \
                     run_at = greatest(t.run_at, $1) \
                     FROM unnest($2::bigint[], $3::smallint[]) AS u(id, state) \
                     WHERE t.id = u.id",
                    &[&now.0, &up_id, &up_state],
                )
                .await
                .map_err(db)?;
            }
            for (retention, cancelled) in by_retention {
                self.store_cancels(tx, &cancelled, retention, now).await?;
            }
            if !stale.is_empty() {
                tx.execute(
                    "DELETE FROM rota_task_waits WHERE task_id = ANY($1)",
                    &[&stale],
                )
                .await
                .map_err(db)?;
            }
        }
        Ok((logged, released))
    }

    /// Maintenance's part: waiters of tasks that ended while their release was cut off.
    pub(crate) async fn release_missed(&self) -> StoreResult<u64> {
        let client = self.conn().await?;
        let ids: Vec<i64> = client
            .query(
                "SELECT id FROM rota_tasks WHERE has_dependents AND state IN (3, 4, 5) LIMIT $1",
                &[&SWEEP],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let n = ids.len() as u64;
        drop(client);
        if n > 0 {
            self.release_now(ids, Vec::new()).await?;
        }
        Ok(n)
    }
}
