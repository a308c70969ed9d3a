//! Tasks added after a submission (docs/workflows.md): a running task that spawns tasks and
//! waits for them, and members added to an open batch until it is closed.

use super::*;
use crate::metrics as m;
use rota_core::workflow::{Workflow, WorkflowKind, MAX_WORKFLOW_TASKS};
use rota_core::{NewTask, OnDependencyFailure};
use rota_store::{Spawn, Spawned};

impl Service {
    /// Each added task checked as a batch member is: the caller may enqueue it, and it is a
    /// valid task.
    async fn checked_added(
        &self,
        caller: &Caller,
        tasks: Vec<(String, NewTask)>,
    ) -> ApiResult<Vec<(String, NewTask)>> {
        let limits = self.limits();
        check_batch_size("tasks", "task", tasks.len(), limits)?;
        if tasks.len() > MAX_WORKFLOW_TASKS {
            return Err(ApiError::too_large(format!(
                "{} tasks; one request adds at most {MAX_WORKFLOW_TASKS}",
                tasks.len()
            )));
        }
        let now = self.clock.now();
        let mut out = Vec::with_capacity(tasks.len());
        for (i, (queue, task)) in tasks.into_iter().enumerate() {
            let spec = self.checked_spec(caller, &format!("tasks[{i}]"), queue, task, now)?;
            out.push((spec.queue, spec.task));
        }
        if out.iter().any(|(_, t)| t.callback_url.is_some()) {
            self.require_callback_signer(caller).await?;
        }
        caller.require_kinds(out.iter().map(|(_, t)| t.kind.as_str()))?;
        Ok(out)
    }

    /// A running task (the caller holds its lease) adds tasks and waits for them; it runs
    /// again once they end (`rota_core::spawn`).
    pub async fn spawn(
        &self,
        caller: &Caller,
        id: TaskId,
        lease: String,
        tasks: Vec<(String, NewTask)>,
        on_failure: OnDependencyFailure,
    ) -> ApiResult<Spawned> {
        self.authorize_task(caller, actions::TASKS_COMPLETE, id)
            .await?;
        let mut tasks = self.checked_added(caller, tasks).await?;
        let spans = self.telemetry.enqueueing(tasks.iter_mut().map(|(_, t)| t));
        let spawn = Spawn {
            task: id,
            lease,
            tasks,
            on_failure,
        };
        let mut out = self
            .store
            .spawn(&caller.tenant, spawn)
            .await
            .map_err(semantic)?;
        spans.stored(&caller.tenant, &out.tasks);
        count_enqueued(&caller.tenant, &out.tasks);
        hide_token_unless_allowed(caller, &mut out.task);
        Ok(out)
    }

    /// Adds members to the tenant's open batch `batch`.
    pub async fn add_to_batch(
        &self,
        caller: &Caller,
        batch: TaskId,
        tasks: Vec<(String, NewTask)>,
    ) -> ApiResult<Vec<Task>> {
        let mut tasks = self.checked_added(caller, tasks).await?;
        let spans = self.telemetry.enqueueing(tasks.iter_mut().map(|(_, t)| t));
        let added = self
            .store
            .add_to_batch(&caller.tenant, batch, tasks)
            .await
            .map_err(semantic)?;
        spans.stored(&caller.tenant, &added);
        count_enqueued(&caller.tenant, &added);
        Ok(added)
    }

    /// Closes the tenant's batch `batch` (the caller may enqueue to its callback's queue) and
    /// answers it as it stands.
    pub async fn close_batch(&self, caller: &Caller, batch: TaskId) -> ApiResult<Workflow> {
        let wf = self.workflow(caller, batch).await?;
        if wf.kind != WorkflowKind::Batch {
            return Err(ApiError::invalid(format!(
                "workflow {batch} is not a batch: only a batch is closed"
            )));
        }
        if let Some(cb) = wf
            .tasks
            .iter()
            .find(|t| t.name == rota_core::workflow::BATCH_CALLBACK)
        {
            caller.queue(&cb.task.queue, actions::TASKS_ENQUEUE)?;
        }
        self.store.close_batch(&caller.tenant, batch).await?;
        self.workflow(caller, batch).await
    }
}

/// A store's refusal of a request it understood (not a batch; too many dependencies) is the
/// request's 422.
fn semantic(e: rota_store::StoreError) -> ApiError {
    match e {
        rota_store::StoreError::Invalid(m) => ApiError::invalid(m),
        e => e.into(),
    }
}

/// Counts added tasks as enqueued, by queue.
pub(super) fn count_enqueued(tenant: &str, tasks: &[Task]) {
    let mut by_queue: std::collections::BTreeMap<&str, usize> = Default::default();
    for t in tasks {
        *by_queue.entry(t.queue.as_str()).or_default() += 1;
    }
    for (queue, n) in by_queue {
        m::tasks_enqueued(tenant, queue, n);
    }
}
