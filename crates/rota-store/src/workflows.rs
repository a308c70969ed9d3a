//! Workflows as the store keeps them: a graph of tasks submitted at once, all stored or none,
//! each task waiting for its dependencies (docs/workflows.md). Dependencies themselves (a task's
//! `depends_on`) are part of [`crate::Store::enqueue`]; the rules are `rota_core::workflow`'s.

use crate::StoreResult;
use async_trait::async_trait;
use rota_core::workflow::{Workflow, WorkflowKind};
use rota_core::{NewTask, OnDependencyFailure, Task, TaskId};
use std::collections::HashMap;

/// One task of a workflow to submit: its local name, queue, the task, and the tasks of the
/// same submission it depends on (indexes; checked by `rota_core::workflow::check_graph`).
#[derive(Debug, Clone)]
pub struct WorkflowSpecTask {
    pub name: String,
    pub queue: String,
    pub task: NewTask,
    pub after: Vec<usize>,
}

/// What a submission is: a workflow, or a batch (its callback, the last task, waits for every
/// member and, while the batch is `open`, for the batch itself: an open batch takes more
/// members until it is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submission {
    Workflow,
    Batch { open: bool },
}

impl Submission {
    pub fn kind(self) -> WorkflowKind {
        match self {
            Submission::Workflow => WorkflowKind::Workflow,
            Submission::Batch { .. } => WorkflowKind::Batch,
        }
    }

    /// Whether the batch's callback also waits for the batch to be closed.
    pub fn open(self) -> bool {
        matches!(self, Submission::Batch { open: true })
    }
}

/// The refusal of an add to a batch that was closed.
pub fn batch_closed(batch: TaskId) -> crate::StoreError {
    crate::StoreError::Conflict(format!(
        "batch {batch} is closed: tasks can be added only while it is open"
    ))
}

/// The refusal of an add to a workflow that is not a batch.
pub fn not_a_batch(workflow: TaskId) -> crate::StoreError {
    crate::StoreError::Invalid(format!(
        "workflow {workflow} is not a batch: tasks are added only to an open batch"
    ))
}

/// A running task's request to add tasks and wait for them (`rota_core::spawn`).
#[derive(Debug, Clone)]
pub struct Spawn {
    pub task: TaskId,
    /// The lease token the task runs under.
    pub lease: String,
    /// (queue, task) of each task to add; they have no dependencies of their own.
    pub tasks: Vec<(String, NewTask)>,
    /// What a spawned task that ends dead or cancelled does to the spawner.
    pub on_failure: OnDependencyFailure,
}

/// What a spawn did: the spawner as it stands now (waiting, or already released or cancelled
/// if the tasks ended at once) and the tasks it added, in the order asked.
#[derive(Debug, Clone)]
pub struct Spawned {
    pub task: Task,
    pub tasks: Vec<Task>,
}

#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Stores every task of the workflow, or none; tasks with dependencies wait for them.
    /// Answers the workflow with its tasks in submission order. A batch's callback is its last
    /// task (named `rota_core::workflow::BATCH_CALLBACK`).
    async fn submit_workflow(
        &self,
        tenant: &str,
        tasks: Vec<WorkflowSpecTask>,
        kind: Submission,
    ) -> StoreResult<Workflow>;

    /// Adds members to an open batch: stored in their queues, and the callback waits for them
    /// too. `Conflict` when the batch is closed.
    async fn add_to_batch(
        &self,
        tenant: &str,
        batch: TaskId,
        tasks: Vec<(String, NewTask)>,
    ) -> StoreResult<Vec<Task>>;

    /// Closes an open batch: its callback runs once the members it waits for are final (at
    /// once if they are). Closing a closed batch changes nothing.
    async fn close_batch(&self, tenant: &str, batch: TaskId) -> StoreResult<()>;

    /// A running task adds tasks and waits for them (`rota_core::spawn`): `LeaseLost` when
    /// the lease is not the task's, and then nothing is stored.
    async fn spawn(&self, tenant: &str, spawn: Spawn) -> StoreResult<Spawned>;

    /// Of the tenant's workflows `ids`, the batches, each with its callback task.
    async fn batch_callbacks(
        &self,
        tenant: &str,
        ids: &[TaskId],
    ) -> StoreResult<HashMap<TaskId, TaskId>>;

    /// The workflow with its tasks (those retention has not removed).
    async fn workflow(&self, tenant: &str, id: TaskId) -> StoreResult<Workflow>;

    /// Those of `ids` that are tasks of the tenant, in no particular order (a claimed task's
    /// dependencies, read in one go).
    async fn tasks_by_id(&self, tenant: &str, ids: &[TaskId]) -> StoreResult<Vec<Task>>;

    /// The tenant's workflows, newest first, older than `before`, at most `limit`, without
    /// their tasks.
    async fn workflows(
        &self,
        tenant: &str,
        before: Option<TaskId>,
        limit: usize,
    ) -> StoreResult<Vec<Workflow>>;
}
