//! Workflows as the store keeps them: a graph of tasks submitted at once, all stored or none,
//! each task waiting for its dependencies (docs/workflows.md). Dependencies themselves (a task's
//! `depends_on`) are part of [`crate::Store::enqueue`]; the rules are `rota_core::workflow`'s.

use crate::StoreResult;
use async_trait::async_trait;
use rota_core::workflow::{Workflow, WorkflowKind};
use rota_core::{NewTask, Task, TaskId};
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

#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Stores every task of the workflow, or none; tasks with dependencies wait for them.
    /// Answers the workflow with its tasks in submission order. A batch's callback is its last
    /// task (named `rota_core::workflow::BATCH_CALLBACK`).
    async fn submit_workflow(
        &self,
        tenant: &str,
        tasks: Vec<WorkflowSpecTask>,
        kind: WorkflowKind,
    ) -> StoreResult<Workflow>;

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
