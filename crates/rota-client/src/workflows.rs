//! Workflows: a graph of named tasks submitted at once, read back, listed and cancelled (see
//! `docs/workflows.md`). The shapes the server answers are rota-core's
//! (`rota_core::workflow`); a task's own `depends_on` (by id) is on [`crate::NewTask`].

use crate::{processes, AddedTask, Client, Job, NewTask, Result, Spawned};
use reqwest::Method;
use rota_core::workflow::Workflow;
use rota_core::{OnDependencyFailure, Task};
use serde::{Deserialize, Serialize};

/// One task of a workflow to submit: a name the others refer to, its queue, the names it
/// waits for, and the task (whose own `depends_on` stays empty).
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowTaskDef {
    pub name: String,
    pub queue: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(flatten)]
    pub task: NewTask,
}

impl WorkflowTaskDef {
    pub fn new(name: impl Into<String>, queue: impl Into<String>, task: NewTask) -> Self {
        WorkflowTaskDef {
            name: name.into(),
            queue: queue.into(),
            depends_on: Vec::new(),
            task,
        }
    }

    /// Waits for the task of this workflow named `name`.
    pub fn after(mut self, name: impl Into<String>) -> Self {
        self.depends_on.push(name.into());
        self
    }
}

/// A page of workflows, newest first, their tasks counted, not listed.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WorkflowPage {
    pub workflows: Vec<Workflow>,
    /// Pass as `before` for the next (older) page; `None` on the last.
    pub next_before: Option<String>,
}

impl Client {
    /// Submits a workflow: every task is stored or none (an unknown name or a cycle is a 422
    /// naming it). Answers the workflow with its tasks.
    pub async fn submit_workflow(&self, tasks: &[WorkflowTaskDef]) -> Result<Workflow> {
        self.submit_workflow_body(&serde_json::json!({ "tasks": tasks }))
            .await
    }

    /// [`Client::submit_workflow`] with the body as the API takes it (`{"tasks": [...]}`),
    /// e.g. read from a file.
    pub async fn submit_workflow_body(&self, body: &serde_json::Value) -> Result<Workflow> {
        self.call(Method::POST, "/v1/workflows", Some(body), Self::TIMEOUT)
            .await
    }

    /// One workflow with its tasks and their states.
    pub async fn workflow(&self, id: &str) -> Result<Workflow> {
        let path = format!("/v1/workflows/{}", processes::escape(id));
        self.call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await
    }

    /// The tenant's workflows older than `before` (the previous page's `next_before`), at
    /// most `limit` (the server's default, 100, when `None`).
    pub async fn workflows(
        &self,
        before: Option<&str>,
        limit: Option<usize>,
    ) -> Result<WorkflowPage> {
        let mut q = vec![];
        if let Some(b) = before {
            q.push(format!("before={}", processes::escape(b)));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let path = format!("/v1/workflows?{}", q.join("&"));
        self.call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await
    }

    /// Submits a batch (`{"tasks": [...], "callback": {...}, "only_on_success"?}`): its
    /// members, and a callback that runs once every member is final (see `docs/workflows.md`,
    /// "Batches"). Answers the batch as a workflow of kind `batch`.
    pub async fn submit_batch_body(&self, body: &serde_json::Value) -> Result<Workflow> {
        self.call(Method::POST, "/v1/batches", Some(body), Self::TIMEOUT)
            .await
    }

    /// Submits a batch of `members` and its `callback` (see [`Client::submit_batch_body`]);
    /// an `open` batch takes more members ([`Client::add_to_batch`]) until
    /// [`Client::close_batch`], and `members` may then be empty.
    pub async fn submit_batch(
        &self,
        members: &[AddedTask],
        callback: &AddedTask,
        only_on_success: bool,
        open: bool,
    ) -> Result<Workflow> {
        let body = serde_json::json!({
            "tasks": members,
            "callback": callback,
            "only_on_success": only_on_success,
            "open": open,
        });
        self.submit_batch_body(&body).await
    }

    /// Adds members to an open batch; answers them as stored. A closed batch is a conflict
    /// (409) that stores nothing.
    pub async fn add_to_batch(&self, batch: &str, tasks: &[AddedTask]) -> Result<Vec<Task>> {
        self.add_batch_body(batch, &serde_json::json!({ "tasks": tasks }))
            .await
    }

    /// [`Client::add_to_batch`] with the body as the API takes it (`{"tasks": [...]}`).
    pub async fn add_batch_body(&self, batch: &str, body: &serde_json::Value) -> Result<Vec<Task>> {
        #[derive(Deserialize)]
        struct Added {
            tasks: Vec<Task>,
        }
        let path = format!("/v1/batches/{}/tasks", processes::escape(batch));
        let added: Added = self
            .call(Method::POST, &path, Some(body), Self::TIMEOUT)
            .await?;
        Ok(added.tasks)
    }

    /// Closes an open batch: its callback runs once every member is final. Answers the batch.
    pub async fn close_batch(&self, batch: &str) -> Result<Workflow> {
        let path = format!("/v1/batches/{}/close", processes::escape(batch));
        self.call(
            Method::POST,
            &path,
            Some(&serde_json::json!({})),
            Self::TIMEOUT,
        )
        .await
    }

    /// The claimed `job` adds `tasks` and waits for them: it gives up its lease and runs again
    /// once they end (the same attempt), its claim carrying their results. A spawned task that
    /// ends dead or cancelled cancels it unless `on_failure` is `run`. Inside the worker
    /// runtime, the run that spawned reports nothing.
    pub async fn spawn(
        &self,
        job: &Job,
        tasks: &[AddedTask],
        on_failure: Option<OnDependencyFailure>,
    ) -> Result<Spawned> {
        let lease = job
            .task
            .lease
            .as_ref()
            .map(|l| l.token.clone())
            .unwrap_or_default();
        let mut body = serde_json::json!({ "lease": lease, "tasks": tasks });
        if let Some(p) = on_failure {
            body["on_dependency_failure"] = serde_json::to_value(p).expect("a policy serializes");
        }
        let path = format!("/v1/tasks/{}/spawn", job.task.id);
        let out: Spawned = self
            .call(Method::POST, &path, Some(&body), Self::TIMEOUT)
            .await?;
        job.handed_off
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(out)
    }

    /// One batch: its members and its callback (named `callback`).
    pub async fn batch(&self, id: &str) -> Result<Workflow> {
        let path = format!("/v1/batches/{}", processes::escape(id));
        self.call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await
    }

    /// Cancels every task of the workflow that is not final; answers the workflow after.
    pub async fn cancel_workflow(&self, id: &str) -> Result<Workflow> {
        let path = format!("/v1/workflows/{}/cancel", processes::escape(id));
        self.call(
            Method::POST,
            &path,
            Some(&serde_json::json!({})),
            Self::TIMEOUT,
        )
        .await
    }
}
