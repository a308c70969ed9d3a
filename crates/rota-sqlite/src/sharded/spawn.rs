//! Tasks added after a submission (docs/workflows.md): spawned by a running task, which waits
//! for them, or added to an open batch, whose callback waits for them. The added tasks are
//! stored first, each naming its waiter as a dependent; then the waiter's shard checks the
//! waiter may still wait (its lease; the batch still open) and adds its waits
//! (`writer/spawn.rs`); then the added tasks in other shards are registered with theirs, which
//! answers those that ended meanwhile. A crash between the steps leaves the added tasks stored
//! with no one waiting for them (the spawner runs again when its lease ends; a batch add that
//! got no answer may be repeated), never a waiter waiting for a task that does not exist.

use super::SqliteStore;
use crate::writer::{Adopt, Part, PartTask, Waiter};
use futures_util::future::join_all;
use rota_core::{lifecycle, spawn, NewTask, QueueKey, Task, TaskId, TaskState};
use rota_store::{Spawn, Spawned, StoreError, StoreResult};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

/// Adds and closes of batches are serialized per batch (by its id, over this many locks), so
/// a close never passes an add between its tasks and its waits.
pub(super) const BATCH_LOCKS: usize = 64;

impl SqliteStore {
    /// New ids for tasks in shards `places`, each shard's taken in one go (its generator is
    /// the writer's, taken under a lock).
    pub(super) fn ids_for(&self, places: &[usize]) -> Vec<TaskId> {
        let mut counts = BTreeMap::<usize, usize>::new();
        for &s in places {
            *counts.entry(s).or_default() += 1;
        }
        let mut taken: BTreeMap<usize, std::vec::IntoIter<TaskId>> = counts
            .into_iter()
            .map(|(s, n)| (s, self.shards[s].next_ids(n).into_iter()))
            .collect();
        places
            .iter()
            .map(|s| {
                taken
                    .get_mut(s)
                    .and_then(|it| it.next())
                    .expect("an id per task")
            })
            .collect()
    }

    /// The parts that store `tasks` in their queues' shards, each naming `waiter` as its
    /// dependent, and their ids in the order given.
    fn added_parts(
        &self,
        tenant: &str,
        workflow: Option<TaskId>,
        waiter: TaskId,
        tasks: Vec<(String, NewTask)>,
    ) -> (Vec<TaskId>, Vec<(usize, Part)>) {
        let places: Vec<usize> = tasks
            .iter()
            .map(|(q, _)| self.place(&QueueKey::new(tenant, q)))
            .collect();
        let ids = self.ids_for(&places);
        let mut parts: BTreeMap<usize, Part> = BTreeMap::new();
        for ((&s, &id), (queue, mut task)) in places.iter().zip(&ids).zip(tasks) {
            let part = parts.entry(s).or_insert_with(|| Part {
                tenant: tenant.to_owned(),
                workflow,
                held: false,
                record: None,
                tasks: Vec::new(),
                dependents: Vec::new(),
                anchor: None,
            });
            task.workflow = workflow.map(|w| w.to_string());
            part.tasks.push(PartTask { id, queue, task });
            part.dependents.push((id, waiter));
        }
        (ids, parts.into_iter().collect())
    }

    pub(super) async fn spawn_here(&self, tenant: &str, spawn: Spawn) -> StoreResult<Spawned> {
        if spawn.tasks.is_empty() {
            return Err(StoreError::Invalid("tasks: spawn at least one task".into()));
        }
        // Checked before anything is stored (and again where the waits are added).
        let here = self.of_id(spawn.task);
        let task = self.shards[here].get(tenant, spawn.task).await?;
        let now = self.shards[here].now();
        lifecycle::check_lease(task.state, task.lease.as_ref(), &spawn.lease, now)
            .map_err(|loss| StoreError::LeaseLost(task.id, loss))?;
        spawn::check_room(&task, spawn.tasks.len()).map_err(StoreError::Invalid)?;
        let workflow = task.workflow.as_deref().and_then(|w| w.parse().ok());
        let (ids, parts) = self.added_parts(tenant, workflow, task.id, spawn.tasks);
        let adopt = Adopt {
            tenant: tenant.to_owned(),
            task: task.id,
            by: Waiter::Lease(spawn.lease),
            added: ids.clone(),
            policy: spawn.on_failure,
        };
        let (task, tasks) = self.add_and_wait(tenant, here, parts, adopt, ids).await?;
        Ok(Spawned { task, tasks })
    }

    pub(super) async fn add_to_batch_here(
        &self,
        tenant: &str,
        batch: TaskId,
        tasks: Vec<(String, NewTask)>,
    ) -> StoreResult<Vec<Task>> {
        if tasks.is_empty() {
            return Err(StoreError::Invalid("tasks: add at least one task".into()));
        }
        let _serial = self.batch_lock(batch).lock().await;
        let cb = self.open_callback(tenant, batch).await?;
        let here = self.of_id(cb);
        let (ids, parts) = self.added_parts(tenant, Some(batch), cb, tasks);
        let adopt = Adopt {
            tenant: tenant.to_owned(),
            task: cb,
            by: Waiter::Batch(batch),
            added: ids.clone(),
            policy: rota_core::OnDependencyFailure::default(),
        };
        let (_, tasks) = self.add_and_wait(tenant, here, parts, adopt, ids).await?;
        Ok(tasks)
    }

    pub(super) async fn close_batch_here(&self, tenant: &str, batch: TaskId) -> StoreResult<()> {
        let _serial = self.batch_lock(batch).lock().await;
        let cb = self.callback_of(tenant, batch).await?;
        // Applied as the ending of a dependency that succeeded: the callback is released when
        // it was its last wait. A closed batch has no such wait, and nothing happens.
        self.shards[self.of_id(cb)]
            .endings(vec![(cb, batch, TaskState::Succeeded)])
            .await
    }

    fn batch_lock(&self, batch: TaskId) -> &tokio::sync::Mutex<()> {
        &self.batch_locks[(batch.0 % BATCH_LOCKS as u64) as usize]
    }

    /// The callback of the tenant's batch `batch`.
    async fn callback_of(&self, tenant: &str, batch: TaskId) -> StoreResult<TaskId> {
        let record = self.shards[self.of_id(batch)]
            .workflow_record(Some(tenant), batch)
            .await?
            .ok_or(StoreError::WorkflowNotFound(batch))?;
        record
            .callback
            .ok_or_else(|| rota_store::not_a_batch(batch))
    }

    /// The callback of the tenant's batch `batch`, if the batch is open.
    async fn open_callback(&self, tenant: &str, batch: TaskId) -> StoreResult<TaskId> {
        let cb = self.callback_of(tenant, batch).await?;
        if !self.shards[self.of_id(cb)].anchored(cb, batch).await? {
            return Err(rota_store::batch_closed(batch));
        }
        Ok(cb)
    }

    /// Stores the parts, then makes the waiter (in shard `here`) wait for them, then registers
    /// those in other shards. Answers the waiter as it stands and the tasks in `ids` order.
    async fn add_and_wait(
        &self,
        tenant: &str,
        here: usize,
        parts: Vec<(usize, Part)>,
        adopt: Adopt,
        ids: Vec<TaskId>,
    ) -> StoreResult<(Task, Vec<Task>)> {
        // Its own task: a request dropped now (its client gone) must not stop between the
        // steps.
        let (map, relay) = (self.map(), self.relay.clone());
        let (waiter, tasks, registered) = tokio::spawn(async move {
            let written = join_all(parts.into_iter().map(|(s, p)| {
                let shard = &map.shards[s];
                async move { shard.put_part(p).await }
            }))
            .await;
            let mut by_id = HashMap::with_capacity(ids.len());
            for r in written {
                by_id.extend(r?.into_iter().map(|t| (t.id, t)));
            }
            let waiter_id = adopt.task;
            let waiter = map.shards[here].adopt(adopt).await?;
            let remote: Vec<(TaskId, TaskId)> = ids
                .iter()
                .filter(|&&c| map.of(c) != here)
                .map(|&c| (waiter_id, c))
                .collect();
            let registered = map.register(here, remote).await;
            let tasks: Vec<Task> = ids.iter().filter_map(|id| by_id.remove(id)).collect();
            Ok::<_, StoreError>((waiter, tasks, registered))
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("stopped: {e}"))))?;
        match registered {
            Ok(0) => Ok((waiter, tasks)),
            Ok(_) => {
                // Some ended before the waiter waited: answer the waiter as it stands now (a
                // read that fails leaves it as the wait left it).
                let now = self.shards[here].tasks_here(tenant, vec![waiter.id]).await;
                let waiter = now
                    .ok()
                    .and_then(|t| t.into_iter().next())
                    .unwrap_or(waiter);
                Ok((waiter, tasks))
            }
            Err(e) => {
                // The waits are stored; the relay's next pass registers them again.
                tracing::error!(error = %e, "cannot register added tasks with their shards yet");
                relay.recheck.store(true, Ordering::Release);
                relay.wake.notify_one();
                Ok((waiter, tasks))
            }
        }
    }
}
