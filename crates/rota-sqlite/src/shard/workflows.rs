//! One shard's side of dependencies and workflows: reads of its records and waits, and the
//! [`WorkflowStore`] of a shard on its own (every task in it).

use super::*;
use crate::writer::{
    workflows as wf, Adopt, OutboxRow, Part, PartTask, Remote, WorkflowEnd, WorkflowRow,
};
use rota_core::workflow::{Workflow, WorkflowKind};
use rota_store::Submission;
use std::collections::HashMap;

impl Shard {
    /// A new task id of this shard (its stripe), for a workflow's tasks before they are
    /// written.
    pub fn next_id(&self) -> TaskId {
        let now = self.shared.clock.now();
        self.shared
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next(now)
    }

    /// `n` new task ids of this shard, taken in one go.
    pub fn next_ids(&self, n: usize) -> Vec<TaskId> {
        let now = self.shared.clock.now();
        let mut ids = self.shared.ids.lock().unwrap_or_else(|e| e.into_inner());
        (0..n).map(|_| ids.next(now)).collect()
    }

    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// The states of those of `ids` that are tasks of `tenant` in this shard.
    pub async fn states(
        &self,
        tenant: &str,
        ids: Vec<TaskId>,
    ) -> StoreResult<HashMap<TaskId, TaskState>> {
        let tenant = tenant.to_owned();
        self.read(move |conn, shared| {
            let mut stmt = conn
                .prepare_cached("SELECT queue_id, state FROM tasks WHERE id = ?1")
                .map_err(db_err)?;
            let cat = shared.catalog.read().unwrap_or_else(|e| e.into_inner());
            let mut out = HashMap::with_capacity(ids.len());
            for id in ids {
                let row: Option<(i64, String)> = stmt
                    .query_row([id.as_i64()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(db_err)?;
                if let Some((qid, state)) = row {
                    if cat.by_id(qid).is_some_and(|q| q.key.tenant == tenant) {
                        out.insert(id, rows::state_from_sql(&state).map_err(db_err)?);
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn enqueue_waiting(
        &self,
        queue: &QueueKey,
        tasks: Vec<NewTask>,
        remote: Remote,
    ) -> StoreResult<Vec<Enqueued>> {
        let q = queue.clone();
        self.send(|r| Op::EnqueueWaiting(q, tasks, Box::new(remote), r))
            .await?
    }

    /// Registers dependents in other shards with their dependencies here.
    pub async fn register(
        &self,
        pairs: Vec<(TaskId, TaskId)>,
    ) -> StoreResult<Vec<Option<TaskState>>> {
        self.send(|r| Op::Register(pairs, r)).await?
    }

    pub async fn endings(&self, endings: Vec<(TaskId, TaskId, TaskState)>) -> StoreResult<()> {
        self.send(|r| Op::Endings(endings, r)).await?
    }

    pub async fn outbox(&self, limit: usize) -> StoreResult<Vec<OutboxRow>> {
        self.send(|r| Op::Outbox(limit, r)).await?
    }

    pub async fn drop_outbox(&self, ids: Vec<i64>) -> StoreResult<()> {
        self.send(|r| Op::DropOutbox(ids, r)).await?
    }

    pub async fn put_part(&self, part: Part) -> StoreResult<Vec<Task>> {
        self.send(|r| Op::WorkflowPart(Box::new(part), r)).await?
    }

    /// A task comes to wait for tasks added after it (`writer/spawn.rs`).
    pub async fn adopt(&self, adopt: Adopt) -> StoreResult<Task> {
        self.send(|r| Op::Adopt(Box::new(adopt), r)).await?
    }

    /// Whether `task` waits on `dep` (a batch's callback on its batch: the batch is open).
    pub async fn anchored(&self, task: TaskId, dep: TaskId) -> StoreResult<bool> {
        self.read(move |conn, _| crate::writer::spawn::waits_on(conn, task, dep).map_err(db_err))
            .await
    }

    pub async fn commit_workflow(&self, row: WorkflowRow) -> StoreResult<()> {
        self.send(|r| Op::CommitWorkflow(row, r)).await?
    }

    pub async fn release_holds(&self, workflow: TaskId) -> StoreResult<()> {
        self.send(|r| Op::ReleaseHolds(workflow, r)).await?
    }

    pub async fn drop_part(&self, workflow: TaskId) -> StoreResult<u64> {
        self.send(|r| Op::DropPart(workflow, r)).await?
    }

    /// Marks a workflow ended and logs its event (`writer/workflows.rs`).
    pub async fn end_workflow(&self, end: WorkflowEnd) -> StoreResult<()> {
        self.send(|r| Op::EndWorkflow(Box::new(end), r)).await?
    }

    /// Whether a task of the workflow here has not ended.
    pub async fn workflow_live(&self, id: TaskId) -> StoreResult<bool> {
        self.read(move |conn, _| wf::live(conn, id).map_err(db_err))
            .await
    }

    /// The ids of workflows here not yet found ended, after `after`.
    pub async fn running_workflows(&self, after: TaskId, limit: usize) -> StoreResult<Vec<TaskId>> {
        self.read(move |conn, _| wf::running(conn, after, limit).map_err(db_err))
            .await
    }

    /// Workflow records here older than `before`.
    pub async fn stale_records(
        &self,
        before: Timestamp,
        after: TaskId,
        limit: usize,
    ) -> StoreResult<Vec<TaskId>> {
        self.read(move |conn, _| wf::stale(conn, before, after, limit).map_err(db_err))
            .await
    }

    /// Which of the workflows `ids` still have a task here.
    pub async fn workflows_kept(&self, ids: Vec<TaskId>) -> StoreResult<Vec<TaskId>> {
        self.read(move |conn, _| wf::kept(conn, &ids).map_err(db_err))
            .await
    }

    pub async fn drop_records(&self, ids: Vec<TaskId>) -> StoreResult<u64> {
        self.send(|r| Op::DropRecords(ids, r)).await?
    }

    /// Workflows with tasks on hold here, with their oldest such task's creation time.
    pub async fn held(&self) -> StoreResult<Vec<(TaskId, Timestamp)>> {
        self.read(|conn, _| wf::held(conn).map_err(db_err)).await
    }

    /// Every (dependent, dependency) wait here.
    pub async fn waits(&self) -> StoreResult<Vec<(TaskId, TaskId)>> {
        self.read(|conn, _| wf::waits(conn).map_err(db_err)).await
    }

    /// A workflow's record, if it is here and `tenant`'s (any tenant's when `None`).
    pub async fn workflow_record(
        &self,
        tenant: Option<&str>,
        id: TaskId,
    ) -> StoreResult<Option<WorkflowRow>> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |conn, _| {
            let r = wf::record(conn, id).map_err(db_err)?;
            Ok(r.filter(|r| tenant.as_ref().is_none_or(|t| *t == r.tenant)))
        })
        .await
    }

    pub async fn workflow_records(
        &self,
        tenant: &str,
        before: Option<TaskId>,
        limit: usize,
    ) -> StoreResult<Vec<WorkflowRow>> {
        let tenant = tenant.to_owned();
        self.read(move |conn, _| wf::records(conn, &tenant, before, limit).map_err(db_err))
            .await
    }

    /// Of the workflows `ids` whose records are here, `tenant`'s batches and their callbacks.
    pub async fn callbacks_here(
        &self,
        tenant: &str,
        ids: Vec<TaskId>,
    ) -> StoreResult<Vec<(TaskId, TaskId)>> {
        let tenant = tenant.to_owned();
        self.read(move |conn, _| wf::callbacks(conn, &tenant, &ids).map_err(db_err))
            .await
    }

    /// The workflow's tasks here, counted by state.
    pub async fn workflow_counts(&self, id: TaskId) -> StoreResult<StateCounts> {
        self.read(move |conn, _| wf::counts(conn, id).map_err(db_err))
            .await
    }

    /// The workflow's tasks here that belong to `tenant`.
    pub async fn workflow_tasks(&self, tenant: &str, id: TaskId) -> StoreResult<Vec<Task>> {
        let tenant = tenant.to_owned();
        self.read(move |conn, shared| {
            let rows = wf::tasks(conn, id).map_err(db_err)?;
            let cat = shared.catalog.read().unwrap_or_else(|e| e.into_inner());
            Ok(rows
                .into_iter()
                .filter_map(|r| r.into_task_for(&cat, &tenant))
                .collect())
        })
        .await
    }
}

/// A workflow from its record and its tasks (from any shards), in submission order.
pub(crate) fn assemble(record: &WorkflowRow, tasks: Vec<Task>) -> Workflow {
    Workflow::assemble(
        record.id,
        record.kind(),
        record.created_at,
        &record.names,
        tasks,
    )
}

/// A workflow as a list shows it.
pub(crate) fn listed(record: &WorkflowRow, counts: StateCounts) -> Workflow {
    Workflow::listed(record.id, record.kind(), record.created_at, counts)
}

/// Splits a workflow into the part of each shard (`places[i]`: task `i`'s shard; `ids[i]`
/// its id). Answers the parts by shard and the workflow's record.
#[allow(clippy::too_many_arguments)]
pub(crate) fn parts(
    tenant: &str,
    workflow: TaskId,
    kind: Submission,
    created_at: Timestamp,
    spec: Vec<WorkflowSpecTask>,
    places: &[usize],
    ids: &[TaskId],
) -> (Vec<(usize, Part)>, WorkflowRow) {
    let record = WorkflowRow {
        id: workflow,
        tenant: tenant.to_owned(),
        created_at,
        callback: (kind.kind() == WorkflowKind::Batch)
            .then(|| ids.last().copied())
            .flatten(),
        names: spec
            .iter()
            .zip(ids)
            .map(|(t, id)| (t.name.clone(), *id))
            .collect(),
    };
    let mut shards: Vec<usize> = places.to_vec();
    shards.sort_unstable();
    shards.dedup();
    let held = shards.len() > 1;
    let mut parts: Vec<(usize, Part)> = shards
        .iter()
        .map(|&s| {
            (
                s,
                Part {
                    tenant: tenant.to_owned(),
                    workflow: Some(workflow),
                    held,
                    record: None,
                    tasks: Vec::new(),
                    dependents: Vec::new(),
                    anchor: None,
                },
            )
        })
        .collect();
    let part_of = |s: usize| shards.binary_search(&s).expect("a used shard");
    for (i, t) in spec.into_iter().enumerate() {
        for &j in &t.after {
            parts[part_of(places[j])]
                .1
                .dependents
                .push((ids[j], ids[i]));
        }
        let mut task = t.task;
        task.depends_on = t.after.iter().map(|&j| ids[j]).collect();
        task.workflow = Some(workflow.to_string());
        parts[part_of(places[i])].1.tasks.push(PartTask {
            id: ids[i],
            queue: t.queue,
            task,
        });
    }
    if let (true, Some(cb)) = (kind.open(), record.callback) {
        let last = places[places.len() - 1];
        parts[part_of(last)].1.anchor = Some(cb);
    }
    if !held {
        parts[0].1.record = Some(record.clone());
    }
    (parts, record)
}

impl Shard {
    /// Those of `ids` that are tasks of `tenant` in this shard.
    pub async fn tasks_here(&self, tenant: &str, ids: Vec<TaskId>) -> StoreResult<Vec<Task>> {
        let tenant = tenant.to_owned();
        self.read(move |conn, shared| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))
                .map_err(db_err)?;
            let cat = shared.catalog.read().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let row = stmt
                    .query_row([id.as_i64()], task_from_row)
                    .optional()
                    .map_err(db_err)?;
                if let Some(t) = row.and_then(|r| r.into_task_for(&cat, &tenant)) {
                    out.push(t);
                }
            }
            Ok(out)
        })
        .await
    }
}
