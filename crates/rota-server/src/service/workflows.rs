//! Dependencies and workflows (docs/workflows.md): who may name which tasks as dependencies,
//! and a workflow's submission, reading and cancelling.

use super::*;
use crate::metrics as m;
use rota_core::workflow::{
    check_graph, inline_results, BatchSummary, DependencyResult, Workflow, BATCH_CALLBACK,
    MAX_INLINE_DEPENDENCIES, MAX_WORKFLOW_TASKS,
};
use rota_core::{NewTask, OnDependencyFailure};
use rota_store::{Change, StoreError, Submission, WorkflowSpecTask};
use std::collections::BTreeSet;

/// Cancels of one workflow's tasks in flight at once.
const CANCELS_AT_ONCE: usize = 64;

/// Workflows remembered as batches or not; past this the memory starts over.
const CALLBACKS_KEPT: usize = 10_000;

/// Which workflows are batches and their callbacks, as claims ask for every claimed task in a
/// workflow. A workflow's record never changes once its tasks can be claimed, so what was read
/// stays true (a record retention deleted has no tasks left to claim).
#[derive(Default)]
pub(super) struct CallbackCache {
    known: std::sync::Mutex<std::collections::HashMap<(String, TaskId), Option<TaskId>>>,
}

impl CallbackCache {
    /// Of the tenant's workflows `ids`, the batches with their callbacks; reads only those not
    /// seen before.
    async fn get(
        &self,
        tenant: &str,
        ids: &[TaskId],
        store: &rota_store::DynStore,
    ) -> rota_store::StoreResult<std::collections::HashMap<TaskId, TaskId>> {
        let mut out = std::collections::HashMap::new();
        let mut unknown = Vec::new();
        {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                match known.get(&(tenant.to_owned(), *id)) {
                    Some(Some(cb)) => {
                        out.insert(*id, *cb);
                    }
                    Some(None) => {}
                    None => unknown.push(*id),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(out);
        }
        let found = store.batch_callbacks(tenant, &unknown).await?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() + unknown.len() > CALLBACKS_KEPT {
            known.clear();
        }
        for id in unknown {
            let cb = found.get(&id).copied();
            known.insert((tenant.to_owned(), id), cb);
            if let Some(cb) = cb {
                out.insert(id, cb);
            }
        }
        Ok(out)
    }
}

/// One task of a workflow as submitted: its local name, queue, the names it depends on, and
/// the task (whose own `depends_on` is empty).
#[derive(Debug, Clone)]
pub struct WorkflowTaskSpec {
    pub name: String,
    pub queue: String,
    pub after: Vec<String>,
    pub task: NewTask,
}

impl Service {
    /// Every task named in `depends_on` must be one the caller may read (a dependency's state
    /// and result reach its dependents); one that does not exist is the request's error.
    pub(super) async fn authorize_dependencies(
        &self,
        caller: &Caller,
        tasks: &[NewTask],
        batch: bool,
    ) -> ApiResult<()> {
        if caller.on_every_queue(actions::TASKS_READ) {
            return Ok(());
        }
        let mut seen = BTreeSet::new();
        for (i, t) in tasks.iter().enumerate() {
            for (j, dep) in t.depends_on.iter().enumerate() {
                if !seen.insert(*dep) {
                    continue;
                }
                let at = if batch {
                    format!("tasks[{i}].depends_on[{j}]")
                } else {
                    format!("task.depends_on[{j}]")
                };
                match self.store.get(&caller.tenant, *dep).await {
                    Ok(d) => caller.require(actions::TASKS_READ, &queue_resource(&d.queue))?,
                    Err(StoreError::TaskNotFound(_)) => {
                        return Err(ApiError::invalid(format!(
                            "{at}: task {dep} does not exist"
                        )))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// What each claimed task carries of its dependencies (the first
    /// [`MAX_INLINE_DEPENDENCIES`], their results within the claim's bound; docs/workflows.md,
    /// "Results"), read in one go; `None` for a task that waited for none.
    pub async fn dependencies_of(
        &self,
        caller: &Caller,
        tasks: &[Task],
    ) -> ApiResult<Vec<Option<Vec<DependencyResult>>>> {
        let wanted: Vec<TaskId> = tasks
            .iter()
            .flat_map(|t| t.depends_on.iter().take(MAX_INLINE_DEPENDENCIES).copied())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if wanted.is_empty() {
            return Ok(vec![None; tasks.len()]);
        }
        let found: std::collections::HashMap<TaskId, Task> = self
            .store
            .tasks_by_id(&caller.tenant, &wanted)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let readable = |d: &Task| caller.can(actions::TASKS_READ, &queue_resource(&d.queue));
        Ok(tasks
            .iter()
            .map(|t| {
                if t.depends_on.is_empty() {
                    return None;
                }
                // A dependency removed by retention since is left out.
                let deps = t
                    .depends_on
                    .iter()
                    .take(MAX_INLINE_DEPENDENCIES)
                    .filter_map(|d| found.get(d).cloned());
                Some(inline_results(deps, readable))
            })
            .collect())
    }

    /// For each claimed task that is a batch's callback, how the batch's members ended.
    pub async fn batch_summaries(
        &self,
        caller: &Caller,
        tasks: &[Task],
    ) -> ApiResult<Vec<Option<BatchSummary>>> {
        let workflows: Vec<TaskId> = tasks
            .iter()
            .filter(|t| !t.depends_on.is_empty())
            .filter_map(|t| t.workflow.as_deref()?.parse().ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if workflows.is_empty() {
            return Ok(vec![None; tasks.len()]);
        }
        let callbacks = self
            .batch_callbacks
            .get(&caller.tenant, &workflows, &self.store)
            .await?;
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            let batch = t.workflow.as_deref().and_then(|w| w.parse::<TaskId>().ok());
            match batch {
                Some(b) if callbacks.get(&b) == Some(&t.id) => {
                    let mut wf = self.store.workflow(&caller.tenant, b).await?;
                    // Members in queues the claimer may not read are left out.
                    wf.tasks.retain(|m| {
                        caller.can(actions::TASKS_READ, &queue_resource(&m.task.queue))
                    });
                    out.push(Some(BatchSummary::of(&wf)));
                }
                _ => out.push(None),
            }
        }
        Ok(out)
    }

    /// Submits a workflow: its graph checked (names, cycles, bounds), every task checked as an
    /// enqueue checks it, then all stored or none.
    pub async fn submit_workflow(
        &self,
        caller: &Caller,
        tasks: Vec<WorkflowTaskSpec>,
    ) -> ApiResult<Workflow> {
        let limits = self.limits();
        check_batch_size("tasks", "task", tasks.len(), limits)?;
        let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
        let deps: Vec<Vec<&str>> = tasks
            .iter()
            .map(|t| t.after.iter().map(String::as_str).collect())
            .collect();
        check_graph(&names, &deps).map_err(ApiError::invalid)?;
        let index: std::collections::HashMap<&str, usize> =
            names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let afters: Vec<Vec<usize>> = deps
            .iter()
            .map(|ds| {
                let mut v: Vec<usize> = ds.iter().map(|d| index[d]).collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let now = self.clock.now();
        let mut spec = Vec::with_capacity(tasks.len());
        for (i, (t, after)) in tasks.into_iter().zip(afters).enumerate() {
            let mut one =
                self.checked_spec(caller, &format!("tasks[{i}]"), t.queue, t.task, now)?;
            one.name = t.name;
            one.after = after;
            spec.push(one);
        }
        self.store_workflow(caller, spec, Submission::Workflow)
            .await
    }

    /// Submits a batch: its members, and a callback that waits for every one of them (and runs
    /// whatever they end as, or only if all succeeded).
    pub async fn submit_batch(
        &self,
        caller: &Caller,
        members: Vec<(String, NewTask)>,
        callback: (String, NewTask),
        only_on_success: bool,
        kind: Submission,
    ) -> ApiResult<Workflow> {
        let limits = self.limits();
        // An open batch may start with no members (they are added later).
        if !(kind.open() && members.is_empty()) {
            check_batch_size("tasks", "task", members.len(), limits)?;
        }
        check_batch_size("tasks", "task", members.len() + 1, limits)?;
        if members.len() >= MAX_WORKFLOW_TASKS {
            return Err(ApiError::too_large(format!(
                "{} members; a batch holds at most {} (and its callback)",
                members.len(),
                MAX_WORKFLOW_TASKS - 1
            )));
        }
        let now = self.clock.now();
        let n = members.len();
        let mut spec = Vec::with_capacity(n + 1);
        for (i, (queue, task)) in members.into_iter().enumerate() {
            spec.push(self.checked_spec(caller, &format!("tasks[{i}]"), queue, task, now)?);
            spec.last_mut().expect("just pushed").name = format!("m{i}");
        }
        let (queue, mut task) = callback;
        task.on_dependency_failure = if only_on_success {
            OnDependencyFailure::Cancel
        } else {
            OnDependencyFailure::Run
        };
        let mut cb = self.checked_spec(caller, "callback", queue, task, now)?;
        cb.name = BATCH_CALLBACK.to_owned();
        cb.after = (0..n).collect();
        spec.push(cb);
        self.store_workflow(caller, spec, kind).await
    }

    /// One task of a workflow or batch checked as an enqueue checks it.
    pub(super) fn checked_spec(
        &self,
        caller: &Caller,
        at: &str,
        queue: String,
        mut task: NewTask,
        now: rota_core::Timestamp,
    ) -> ApiResult<WorkflowSpecTask> {
        caller.queue(&queue, actions::TASKS_ENQUEUE)?;
        check_task(at, &task, now, self.limits())?;
        if task.unique_key.is_some() {
            return Err(ApiError::invalid(format!(
                "{at}.unique_key: a workflow's tasks have no unique keys (the workflow is \
                 stored whole or not at all)"
            )));
        }
        if let Some(url) = &mut task.callback_url {
            *url = crate::webhooks::target::check_form(url, &self.config.webhooks)
                .map_err(|e| ApiError::invalid(format!("{at}.callback_url {e}")))?;
        }
        Ok(WorkflowSpecTask {
            name: String::new(),
            queue,
            task,
            after: Vec::new(),
        })
    }

    /// Stores a checked workflow or batch and counts its tasks as enqueued.
    async fn store_workflow(
        &self,
        caller: &Caller,
        mut spec: Vec<WorkflowSpecTask>,
        kind: Submission,
    ) -> ApiResult<Workflow> {
        if spec.iter().any(|t| t.task.callback_url.is_some()) {
            self.require_callback_signer(caller).await?;
        }
        caller.require_kinds(spec.iter().map(|t| t.task.kind.as_str()))?;
        let spans = self
            .telemetry
            .enqueueing(spec.iter_mut().map(|t| &mut t.task));
        let wf = self
            .store
            .submit_workflow(&caller.tenant, spec, kind)
            .await?;
        spans.stored(&caller.tenant, wf.tasks.iter().map(|t| &t.task));
        let tasks: Vec<Task> = wf.tasks.iter().map(|t| t.task.clone()).collect();
        super::spawn::count_enqueued(&caller.tenant, &tasks);
        Ok(wf)
    }

    /// A workflow with its tasks; the caller must be allowed to read every one of them.
    pub async fn workflow(&self, caller: &Caller, id: TaskId) -> ApiResult<Workflow> {
        caller.require_on_some_queue(actions::TASKS_READ)?;
        let mut wf = self.store.workflow(&caller.tenant, id).await?;
        for t in &mut wf.tasks {
            caller.require(actions::TASKS_READ, &queue_resource(&t.task.queue))?;
            hide_token_unless_allowed(caller, &mut t.task);
        }
        Ok(wf)
    }

    /// The tenant's workflows, newest first, with their tasks counted.
    pub async fn workflows(
        &self,
        caller: &Caller,
        before: Option<TaskId>,
        limit: usize,
    ) -> ApiResult<Vec<Workflow>> {
        caller.require_on_some_queue(actions::TASKS_READ)?;
        let max = self.limits().max_list;
        if limit == 0 || limit > max {
            return Err(ApiError::invalid(format!(
                "limit is {limit}; use 1 to {max} (limits.max_list)"
            )));
        }
        let all = self.store.workflows(&caller.tenant, before, limit).await?;
        if caller.on_every_queue(actions::TASKS_READ) {
            return Ok(all);
        }
        // A caller limited to some queues sees the workflows it may read whole (each read to
        // know its queues).
        let mut out = Vec::with_capacity(all.len());
        for w in all {
            let Ok(id) = w.id.parse::<TaskId>() else {
                continue;
            };
            let whole = self.store.workflow(&caller.tenant, id).await?;
            if whole
                .tasks
                .iter()
                .all(|t| caller.can(actions::TASKS_READ, &queue_resource(&t.task.queue)))
            {
                out.push(w);
            }
        }
        Ok(out)
    }

    /// Cancels every task of the workflow that is not final (a waiting task's own dependents
    /// follow it). The caller must be allowed to cancel each. Answers the workflow after.
    pub async fn cancel_workflow(&self, caller: &Caller, id: TaskId) -> ApiResult<Workflow> {
        let wf = self.workflow(caller, id).await?;
        let live: Vec<&Task> = wf
            .tasks
            .iter()
            .map(|t| &t.task)
            .filter(|t| !t.state.is_final())
            .collect();
        for t in &live {
            caller.require(actions::TASKS_CANCEL, &queue_resource(&t.queue))?;
            caller.require_kinds([t.kind.as_str()])?;
        }
        // Several at once (each is its own write; the writer commits them together). A task
        // that a cancel already ended through its dependency is skipped.
        use futures_util::stream::{self, StreamExt};
        let ids: Vec<TaskId> = live.iter().map(|t| t.id).collect();
        let outcomes: Vec<_> = stream::iter(ids)
            .map(|task| {
                let (store, tenant) = (self.store.clone(), caller.tenant.clone());
                let entry = audit::with(
                    caller.audit("task.cancel", format!("tasks/{task}")),
                    None,
                    Some(serde_json::json!({ "workflow": id.to_string() })),
                );
                audit::audited(entry, async move {
                    store.change(&tenant, task, Change::Cancel).await
                })
            })
            .buffer_unordered(CANCELS_AT_ONCE)
            .collect()
            .await;
        for outcome in outcomes {
            match outcome {
                Ok(done) => m::task_outcome(&caller.tenant, &done),
                Err(StoreError::InvalidState { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut after = self.store.workflow(&caller.tenant, id).await?;
        for t in &mut after.tasks {
            hide_token_unless_allowed(caller, &mut t.task);
        }
        Ok(after)
    }
}
