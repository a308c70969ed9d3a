//! Tasks added after a submission on PostgreSQL (docs/workflows.md): spawned by a running
//! task, which waits for them, or added to an open batch, whose callback waits for them; and
//! a batch's close. Each is one transaction that locks the waiter's row first, so a spawn
//! races neither the task's completion nor its lease's expiry, and an add never passes a
//! close (both lock the callback).

use crate::enqueue::{EnqueueColumns, INSERT};
use crate::rows::{dep_policy_to_sql, ids_to_sql, task_from_row, TASK_COLUMNS};
use crate::tasks::lock_tenant;
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rota_core::{events, lifecycle, spawn, NewTask, QueueKey, Task, TaskId, TaskState, Timestamp};
use rota_store::{Spawn, Spawned, StoreError, StoreResult};
use std::collections::BTreeMap;

/// One task to insert: its id, queue, the task, the state it starts in, and whether a task
/// waits for it.
pub(crate) struct Insert {
    pub id: TaskId,
    pub queue: String,
    pub task: NewTask,
    pub state: TaskState,
    pub has_dependents: bool,
}

/// What [`insert`] stored: the tasks in the order given, and each queue's new tasks (for the
/// wake-ups after commit).
pub(crate) type Inserted = (Vec<Task>, Vec<(QueueKey, Vec<NewTask>)>);

/// Inserts tasks of several queues (one statement per queue, logging their `task.enqueued` or
/// `task.waiting`), whole or not at all: a unique key another live task holds is a conflict.
pub(crate) async fn insert(
    store: &PostgresStore,
    tx: &impl GenericClient,
    tenant: &str,
    items: Vec<Insert>,
    now: Timestamp,
) -> StoreResult<Inserted> {
    let mut by_queue: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        by_queue.entry(it.queue.clone()).or_default().push(i);
    }
    let mut stored: Vec<Option<Task>> = vec![None; items.len()];
    let mut tasks_of = Vec::with_capacity(by_queue.len());
    let mut logged = 0i64;
    for (queue, members) in by_queue {
        let key = QueueKey::new(tenant, &queue);
        store.queue_for_write(tx, &key, now).await?;
        let mut cols = EnqueueColumns::default();
        for &i in &members {
            let it = &items[i];
            cols.push_as(it.id, &it.task, now, it.state, it.has_dependents);
        }
        let row = tx
            .query_one(INSERT.as_str(), &cols.params(&key, &now.0, &logged))
            .await
            .map_err(db)?;
        let inserted: Vec<i64> = row.get(2);
        if inserted.len() != members.len() {
            return Err(StoreError::Conflict(format!(
                "a task of queue `{queue}` has a unique key another live task holds; \
                 the tasks are stored together or not at all"
            )));
        }
        logged += members.len() as i64;
        let default_max_attempts = row.get::<_, i32>(1).max(0) as u32;
        let mut plain = Vec::with_capacity(members.len());
        for i in members {
            let it = &items[i];
            let max = it.task.max_attempts.unwrap_or(default_max_attempts);
            let mut t = lifecycle::enqueued(it.id, &queue, &it.task, max, now);
            t.state = it.state;
            stored[i] = Some(t);
            plain.push(it.task.clone());
        }
        tasks_of.push((key, plain));
    }
    Ok((
        stored
            .into_iter()
            .map(|t| t.expect("each stored"))
            .collect(),
        tasks_of,
    ))
}

/// The tasks a waiter comes to wait for, as [`insert`] takes them (new, so none has ended).
fn added(
    tasks: Vec<(String, NewTask)>,
    ids: &[TaskId],
    workflow: Option<TaskId>,
    now: Timestamp,
) -> Vec<Insert> {
    tasks
        .into_iter()
        .zip(ids)
        .map(|((queue, mut task), &id)| {
            task.workflow = workflow.map(|w| w.to_string());
            let state = lifecycle::waiting_state(task.run_at.unwrap_or(now), now);
            Insert {
                id,
                queue,
                task,
                state,
                has_dependents: true,
            }
        })
        .collect()
}

impl PostgresStore {
    /// The task `id` of `tenant`, its row locked.
    async fn lock_task(
        &self,
        tx: &impl GenericClient,
        tenant: &str,
        id: TaskId,
    ) -> StoreResult<Option<Task>> {
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM rota_tasks t JOIN rota_queues q \
                     ON q.id = t.queue_id WHERE t.id = $1 AND q.tenant = $2 FOR UPDATE OF t"
                ),
                &[&id.as_i64(), &tenant],
            )
            .await
            .map_err(db)?;
        row.map(|r| task_from_row(&r).map(|(_, t)| t)).transpose()
    }

    pub(crate) async fn spawn_tasks(&self, tenant: &str, s: Spawn) -> StoreResult<Spawned> {
        if s.tasks.is_empty() {
            return Err(StoreError::Invalid("tasks: spawn at least one task".into()));
        }
        let now = self.now();
        let ids = self.new_ids(s.tasks.len(), now).await?;
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_tenant(&tx, tenant, false).await?;
        let task = self
            .lock_task(&tx, tenant, s.task)
            .await?
            .ok_or(StoreError::TaskNotFound(s.task))?;
        lifecycle::check_lease(task.state, task.lease.as_ref(), &s.lease, now)
            .map_err(|loss| StoreError::LeaseLost(task.id, loss))?;
        spawn::check_room(&task, ids.len()).map_err(StoreError::Invalid)?;
        let workflow = task.workflow.as_deref().and_then(|w| w.parse().ok());
        let items = added(s.tasks, &ids, workflow, now);
        let (tasks, tasks_of) = insert(self, &tx, tenant, items, now).await?;
        waits_for(&tx, task.id, &ids).await?;
        let worker = task
            .lease
            .as_ref()
            .map(|l| l.worker.clone())
            .unwrap_or_default();
        let t = spawn::spawned(&task, &ids, s.on_failure, now);
        tx.execute(
            "UPDATE rota_tasks SET state = 6, attempt = $1, lease_worker = NULL, \
             lease_token = NULL, lease_expires_at = NULL, depends_on = $2, dep_policy = $3, \
             updated_at = $4 WHERE id = $5",
            &[
                &(t.attempt as i32),
                &ids_to_sql(&t.depends_on),
                &dep_policy_to_sql(t.on_dependency_failure),
                &now.0,
                &t.id.as_i64(),
            ],
        )
        .await
        .map_err(db)?;
        let logged = vec![(tenant.to_owned(), events::spawned(&t, &worker, now))];
        crate::events::append(&tx, &logged, tasks.len()).await?;
        tx.commit().await.map_err(db)?;
        for (key, news) in &tasks_of {
            self.after_enqueue(key, news, now);
        }
        self.freed(tenant, &t.queue);
        Ok(Spawned { task: t, tasks })
    }

    /// The callback of the tenant's batch `batch`, its row locked.
    async fn lock_callback(
        &self,
        tx: &impl GenericClient,
        tenant: &str,
        batch: TaskId,
    ) -> StoreResult<Task> {
        let row = tx
            .query_opt(
                "SELECT callback FROM rota_workflows WHERE id = $1 AND tenant = $2",
                &[&batch.as_i64(), &tenant],
            )
            .await
            .map_err(db)?
            .ok_or(StoreError::WorkflowNotFound(batch))?;
        let cb: Option<i64> = row.get(0);
        let cb = cb
            .map(TaskId::from_i64)
            .ok_or_else(|| rota_store::not_a_batch(batch))?;
        // A callback retention removed belongs to a batch long closed.
        self.lock_task(tx, tenant, cb)
            .await?
            .ok_or_else(|| rota_store::batch_closed(batch))
    }

    pub(crate) async fn add_batch_tasks(
        &self,
        tenant: &str,
        batch: TaskId,
        tasks: Vec<(String, NewTask)>,
    ) -> StoreResult<Vec<Task>> {
        if tasks.is_empty() {
            return Err(StoreError::Invalid("tasks: add at least one task".into()));
        }
        let now = self.now();
        let ids = self.new_ids(tasks.len(), now).await?;
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_tenant(&tx, tenant, false).await?;
        let cb = self.lock_callback(&tx, tenant, batch).await?;
        if cb.state != TaskState::Waiting || !anchored(&tx, cb.id, batch).await? {
            return Err(rota_store::batch_closed(batch));
        }
        spawn::check_room(&cb, ids.len()).map_err(StoreError::Invalid)?;
        let items = added(tasks, &ids, Some(batch), now);
        let (tasks, tasks_of) = insert(self, &tx, tenant, items, now).await?;
        waits_for(&tx, cb.id, &ids).await?;
        let mut deps = cb.depends_on.clone();
        deps.extend_from_slice(&ids);
        tx.execute(
            "UPDATE rota_tasks SET depends_on = $1, updated_at = $2 WHERE id = $3",
            &[&ids_to_sql(&deps), &now.0, &cb.id.as_i64()],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        for (key, news) in &tasks_of {
            self.after_enqueue(key, news, now);
        }
        Ok(tasks)
    }

    pub(crate) async fn close_open_batch(&self, tenant: &str, batch: TaskId) -> StoreResult<()> {
        let now = self.now();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let cb = match self.lock_callback(&tx, tenant, batch).await {
            Ok(cb) => cb,
            // Its callback is gone: closed long ago.
            Err(StoreError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let gone = tx
            .execute(
                "DELETE FROM rota_task_waits WHERE task_id = $1 AND dep_id = $2",
                &[&cb.id.as_i64(), &batch.as_i64()],
            )
            .await
            .map_err(db)?;
        let left: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM rota_task_waits WHERE task_id = $1)",
                &[&cb.id.as_i64()],
            )
            .await
            .map_err(db)?
            .get(0);
        if gone == 0 || left || cb.state != TaskState::Waiting {
            return tx.commit().await.map_err(db);
        }
        let t = rota_core::workflow::released(&cb, now);
        tx.execute(
            "UPDATE rota_tasks SET state = $1, updated_at = $2, run_at = $4 WHERE id = $3",
            &[
                &crate::rows::state_to_sql(t.state),
                &now.0,
                &t.id.as_i64(),
                &t.run_at.0,
            ],
        )
        .await
        .map_err(db)?;
        let logged = vec![(tenant.to_owned(), events::released(&t))];
        crate::events::append(&tx, &logged, 0).await?;
        tx.commit().await.map_err(db)?;
        self.after_release(&logged, &[(tenant.to_owned(), t)]);
        Ok(())
    }
}

/// `waiter` waits for the new tasks `ids`.
async fn waits_for(tx: &impl GenericClient, waiter: TaskId, ids: &[TaskId]) -> StoreResult<()> {
    let deps: Vec<i64> = ids.iter().map(|i| i.as_i64()).collect();
    crate::deps::insert_waits(tx, &vec![waiter.as_i64(); deps.len()], &deps).await
}

/// Whether `task` waits on `dep` (a batch's callback on its batch: the batch is open).
pub(crate) async fn anchored(
    client: &impl GenericClient,
    task: TaskId,
    dep: TaskId,
) -> StoreResult<bool> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM rota_task_waits WHERE task_id = $1 AND dep_id = $2)",
            &[&task.as_i64(), &dep.as_i64()],
        )
        .await
        .map_err(db)?
        .get(0))
}
