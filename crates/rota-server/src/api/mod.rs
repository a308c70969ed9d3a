//! The HTTP API: request and response shapes, their validation, and the handlers.

pub mod admin;
pub mod audit;
pub mod batch;
pub mod changes;
pub mod doctor;
pub mod document;
pub mod events;
pub mod groups;
pub mod hooks;
pub mod maintenance;
pub mod oauth;
pub mod queues;
pub mod schedules;
pub mod schema;
pub mod spawn;
pub mod system;
pub mod tasks;
pub mod webhooks;
pub mod websocket;
pub mod workers;
pub mod workflows;

use crate::error::{ApiError, ErrorDetail};
use rota_core::{
    Json, Limits, NewTask, OnDependencyFailure, OnDuplicate, Task, TaskId, TaskState, Timestamp,
};
use serde::{Deserialize, Serialize};

/// A task to enqueue. The same object, with only `tasks` set, enqueues a batch.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    /// The command name workers filter on. Default `default`. 1 to limits.max_name_len
    /// (default 256) bytes.
    #[schema(value_type = Option<schema::Name>)]
    pub kind: Option<String>,
    /// Any JSON; stored and returned verbatim. Default `null`.
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<Json>,
    /// Higher runs first; FIFO within a priority. Default 0.
    pub priority: Option<i32>,
    /// Not before this time (RFC 3339). Exclusive with `delay_ms`.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub run_at: Option<Timestamp>,
    /// Not before this many milliseconds from now. Exclusive with `run_at`.
    #[schema(value_type = Option<schema::DelayMs>)]
    pub delay_ms: Option<u64>,
    /// Attempts before the task is dead. Default: the queue's `max_attempts`.
    #[schema(value_type = Option<schema::MaxAttempts>)]
    pub max_attempts: Option<u32>,
    /// While a task with this key is not final (waiting, scheduled, ready or running),
    /// enqueueing the key again in this queue answers that task (`duplicate: true`) as `on_duplicate` says.
    #[schema(value_type = Option<schema::Name>)]
    pub unique_key: Option<String>,
    /// What an enqueue whose `unique_key` is held by a live task does. `keep` (default): the
    /// live task is answered as it is. `replace` (debounce): a holder still waiting to run
    /// (scheduled or ready) takes this task's fields in place (same id; `run_at` or
    /// `delay_ms` counted again from now; its group kept unless this task names one) and is
    /// answered with `replaced: true`; a running holder is kept and nothing is enqueued
    /// (`replaced: false`). Needs `unique_key`.
    pub on_duplicate: Option<OnDuplicate>,
    #[serde(default)]
    #[schema(value_type = schema::Tags)]
    pub tags: Vec<String>,
    /// Where the task's final outcome (succeeded with its result, dead with its errors, or
    /// cancelled) is POSTed, signed with the tenant's callback secret (`/v1/callbacks`).
    #[schema(value_type = Option<schema::TargetUrl>)]
    pub callback_url: Option<String>,
    /// The flow-control group (a customer, a token, an upstream) whose limits and turn the
    /// task takes (docs/flow-control.md).
    #[schema(value_type = Option<schema::Name>)]
    pub group: Option<String>,
    /// Ids of tasks (of this tenant, in any queue) that must succeed before this one may run;
    /// until then it is `waiting` (docs/workflows.md). One that already succeeded counts at
    /// once. At most 10,000.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub depends_on: Vec<String>,
    /// What a dependency that ends dead or cancelled does: `cancel` (default) cancels this
    /// task with a reason naming it; `run` counts it as done. Needs `depends_on`.
    pub on_dependency_failure: Option<OnDependencyFailure>,
    /// The W3C trace context the task continues (docs/telemetry.md). Default: the request's
    /// `traceparent` header, if any.
    #[schema(example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    pub traceparent: Option<String>,
    /// The vendors' part of the trace context (W3C `tracestate`, at most 512 bytes); needs
    /// `traceparent`.
    pub tracestate: Option<String>,
    /// A batch: `{"tasks": [task, ...]}`, with no other field set (documented as the other
    /// form of `schema::EnqueueBody`).
    #[schema(ignore)]
    #[serde(default, deserialize_with = "rota_core::objects::some_objects")]
    pub tasks: Option<Vec<TaskInput>>,
}

impl TaskInput {
    fn is_single_task(&self) -> bool {
        self.kind.is_some()
            || self.payload.is_some()
            || self.priority.is_some()
            || self.run_at.is_some()
            || self.delay_ms.is_some()
            || self.max_attempts.is_some()
            || self.unique_key.is_some()
            || self.on_duplicate.is_some()
            || !self.tags.is_empty()
            || self.callback_url.is_some()
            || self.group.is_some()
            || !self.depends_on.is_empty()
            || self.on_dependency_failure.is_some()
            || self.traceparent.is_some()
            || self.tracestate.is_some()
    }

    /// Splits the body into the tasks it asks for: one, or the `tasks` batch (whose size the
    /// service checks).
    pub fn into_batch(self) -> (Vec<TaskInput>, bool) {
        match self.tasks {
            Some(tasks) if !self.is_single_task() => (tasks, true),
            // Task fields beside `tasks`: `into_new_task` refuses it.
            _ => (vec![self], false),
        }
    }

    /// The task this input describes, `at` naming it in messages (`tasks[3]` or `task`); only
    /// the shape is checked here, the rules of a task in [`crate::service::check_task`].
    pub fn into_new_task(
        self,
        at: &str,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<NewTask, ApiError> {
        if self.tasks.is_some() {
            return Err(ApiError::invalid(if at == "task" {
                "send either one task or {\"tasks\": [...]}, not task fields beside `tasks`"
                    .to_owned()
            } else {
                format!("{at}.tasks: batches do not nest")
            }));
        }
        let run_at = match (self.run_at, self.delay_ms) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(format!(
                    "{at}: set run_at or delay_ms, not both"
                )))
            }
            (Some(t), None) => Some(t),
            (None, Some(d)) => {
                limits
                    .check_delay(&format!("{at}.delay_ms"), d)
                    .map_err(ApiError::invalid)?;
                Some(now.plus_ms(d as i64))
            }
            (None, None) => None,
        };
        let depends_on = parse_depends_on(at, &self.depends_on)?;
        check_dependency_policy(at, !depends_on.is_empty(), self.on_dependency_failure)?;
        Ok(NewTask {
            kind: self.kind.unwrap_or_else(|| "default".to_owned()),
            payload: self.payload.unwrap_or_else(rota_core::json_null),
            priority: self.priority.unwrap_or(0),
            run_at,
            max_attempts: self.max_attempts,
            unique_key: self.unique_key,
            on_duplicate: self.on_duplicate.unwrap_or_default(),
            tags: self.tags,
            callback_url: self.callback_url,
            group: self.group,
            depends_on,
            on_dependency_failure: self.on_dependency_failure.unwrap_or_default(),
            workflow: None,
            traceparent: self.traceparent,
            tracestate: self.tracestate,
        })
    }
}

/// `on_dependency_failure` says what a failed dependency does, so it needs dependencies (ids
/// on an enqueue, names in a workflow).
fn check_dependency_policy(
    at: &str,
    has_dependencies: bool,
    policy: Option<OnDependencyFailure>,
) -> Result<(), ApiError> {
    if policy.is_some() && !has_dependencies {
        return Err(ApiError::invalid(format!(
            "{at}.on_dependency_failure needs depends_on: it says what a failed dependency \
             does to the task"
        )));
    }
    Ok(())
}

/// A task's `depends_on` as ids: each a task id, none twice, at most
/// [`rota_core::workflow::MAX_WORKFLOW_TASKS`].
fn parse_depends_on(at: &str, ids: &[String]) -> Result<Vec<TaskId>, ApiError> {
    let max = rota_core::workflow::MAX_WORKFLOW_TASKS;
    if ids.len() > max {
        return Err(ApiError::invalid(format!(
            "{at}.depends_on has {} ids; a task may wait for at most {max}",
            ids.len()
        )));
    }
    let mut out = Vec::with_capacity(ids.len());
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    for (i, s) in ids.iter().enumerate() {
        let id: TaskId = s
            .parse()
            .map_err(|e| ApiError::invalid(format!("{at}.depends_on[{i}]: {e}")))?;
        if !seen.insert(id) {
            return Err(ApiError::invalid(format!(
                "{at}.depends_on[{i}]: {id} is named twice"
            )));
        }
        out.push(id);
    }
    Ok(out)
}

/// A task as enqueue answers it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnqueuedTask {
    #[serde(flatten)]
    pub task: Task,
    /// True when `unique_key` matched a live task, which is returned instead.
    pub duplicate: bool,
    /// True when that live task was waiting and took this task's fields
    /// (`on_duplicate: replace`); false for a new task and for a kept duplicate (with
    /// `replace`, one that was already running).
    pub replaced: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EnqueuedBatch {
    pub tasks: Vec<EnqueuedTask>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One outcome per item of a batch complete or fail.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ItemOutcome {
    pub id: String,
    pub ok: bool,
    /// The task's state after the call, when `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchOutcome {
    pub items: Vec<ItemOutcome>,
}
