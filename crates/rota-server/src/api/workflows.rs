//! Workflow routes: submit a graph of tasks at once, read one or the list, cancel one
//! (docs/workflows.md).

use super::*;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{task_id, ApiPath, ApiQuery, JsonBody};
use crate::service::WorkflowTaskSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rota_core::workflow::{Workflow, WorkflowKind};
use rota_core::NewTask;
use serde::Deserialize;

/// One task of a workflow or a batch: a task as an enqueue takes it (without `unique_key`),
/// with its queue; in a workflow also a name and the names of the tasks it waits for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowTaskInput {
    /// In a workflow (required there), unique in it: what `depends_on` refers to. 1 to 128
    /// bytes. Not in a batch.
    pub name: Option<String>,
    #[schema(value_type = schema::QueueName)]
    pub queue: String,
    /// Names of tasks of this workflow that must succeed first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// What a dependency that ends dead or cancelled does: `cancel` (default) or `run`.
    pub on_dependency_failure: Option<OnDependencyFailure>,
    #[schema(value_type = Option<schema::Name>)]
    pub kind: Option<String>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<Json>,
    pub priority: Option<i32>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub run_at: Option<Timestamp>,
    #[schema(value_type = Option<schema::DelayMs>)]
    pub delay_ms: Option<u64>,
    #[schema(value_type = Option<schema::MaxAttempts>)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    #[schema(value_type = schema::Tags)]
    pub tags: Vec<String>,
    #[schema(value_type = Option<schema::TargetUrl>)]
    pub callback_url: Option<String>,
    #[schema(value_type = Option<schema::Name>)]
    pub group: Option<String>,
    /// As on an enqueue (docs/telemetry.md); default: the request's `traceparent` header.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowInput {
    /// At most 10,000 tasks (and limits.max_batch).
    #[serde(deserialize_with = "rota_core::objects::objects")]
    pub tasks: Vec<WorkflowTaskInput>,
}

impl WorkflowTaskInput {
    fn into_spec(self, i: usize, now: Timestamp, limits: &Limits) -> ApiResult<WorkflowTaskSpec> {
        let at = format!("tasks[{i}]");
        if self.name.is_none() {
            return Err(ApiError::invalid(format!(
                "{at}.name is required: the other tasks' depends_on refer to it"
            )));
        }
        self.into_task(&at, now, limits)
    }

    /// The task as a batch takes it: a member, or the callback. The batch decides what it
    /// waits for.
    pub(super) fn into_member(
        self,
        at: &str,
        now: Timestamp,
        limits: &Limits,
    ) -> ApiResult<(String, NewTask)> {
        if self.name.is_some()
            || !self.depends_on.is_empty()
            || self.on_dependency_failure.is_some()
        {
            return Err(ApiError::invalid(format!(
                "{at}: a batch's tasks have no name, depends_on or on_dependency_failure (the \
                 callback waits for every member; only_on_success says how)"
            )));
        }
        let spec = self.into_task(at, now, limits)?;
        Ok((spec.queue, spec.task))
    }

    fn into_task(self, at: &str, now: Timestamp, limits: &Limits) -> ApiResult<WorkflowTaskSpec> {
        check_dependency_policy(at, !self.depends_on.is_empty(), self.on_dependency_failure)?;
        let input = TaskInput {
            kind: self.kind,
            payload: self.payload,
            priority: self.priority,
            run_at: self.run_at,
            delay_ms: self.delay_ms,
            max_attempts: self.max_attempts,
            unique_key: None,
            on_duplicate: None,
            tags: self.tags,
            callback_url: self.callback_url,
            group: self.group,
            depends_on: Vec::new(),
            on_dependency_failure: None,
            traceparent: self.traceparent,
            tracestate: self.tracestate,
            tasks: None,
        };
        let mut task = input.into_new_task(at, now, limits)?;
        task.on_dependency_failure = self.on_dependency_failure.unwrap_or_default();
        Ok(WorkflowTaskSpec {
            name: self.name.unwrap_or_default(),
            queue: self.queue,
            after: self.depends_on,
            task,
        })
    }
}

#[utoipa::path(post, path = "/v1/workflows", tag = "workflows",
    request_body = WorkflowInput,
    responses(
        (status = 201, description = "every task stored; those with dependencies wait for them", body = Workflow),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, description = "an unknown or repeated name, a cycle (named), a bad task: nothing is stored", body = ErrorBody)))]
pub async fn submit(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<WorkflowInput>,
) -> ApiResult<Response> {
    let now = st.clock.now();
    let tasks = body
        .tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.into_spec(i, now, &st.config.limits))
        .collect::<ApiResult<Vec<_>>>()?;
    let wf = st.service.submit_workflow(&caller, tasks).await?;
    Ok((StatusCode::CREATED, axum::Json(wf)).into_response())
}

#[utoipa::path(get, path = "/v1/workflows/{id}", tag = "workflows",
    params(("id" = schema::TaskIdText, Path, description = "the workflow's id")),
    responses((status = 200, body = Workflow), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<Workflow>> {
    let id = task_id(&id)?;
    Ok(axum::Json(st.service.workflow(&caller, id).await?))
}

#[utoipa::path(post, path = "/v1/workflows/{id}/cancel", tag = "workflows",
    params(("id" = schema::TaskIdText, Path, description = "the workflow's id")),
    responses((status = 200, description = "every task that was not final is cancelled", body = Workflow),
        (status = 404, body = ErrorBody)))]
pub async fn cancel(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<Workflow>> {
    let id = task_id(&id)?;
    Ok(axum::Json(st.service.cancel_workflow(&caller, id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WorkflowParams {
    /// `next_before` of the previous page: workflows older than this one.
    #[param(value_type = schema::TaskIdText, required = false)]
    pub before: Option<String>,
    /// Page size. Default 100.
    #[param(value_type = schema::ListLimit, required = false)]
    pub limit: Option<usize>,
}

/// A page of workflows, newest first, their tasks counted, not listed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WorkflowList {
    pub workflows: Vec<Workflow>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<String>,
}

#[utoipa::path(get, path = "/v1/workflows", tag = "workflows",
    params(WorkflowParams),
    responses((status = 200, body = WorkflowList), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<WorkflowParams>,
) -> ApiResult<axum::Json<WorkflowList>> {
    let before = p.before.as_deref().map(task_id).transpose()?;
    let limit = p.limit.unwrap_or(100);
    let workflows = st.service.workflows(&caller, before, limit).await?;
    let next_before = (workflows.len() == limit)
        .then(|| workflows.last().map(|w| w.id.clone()))
        .flatten();
    Ok(axum::Json(WorkflowList {
        workflows,
        next_before,
    }))
}

/// A batch: members and a callback task that runs once every member is final.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    /// The members (without names or dependencies), at most 9,999 (and limits.max_batch).
    #[serde(deserialize_with = "rota_core::objects::objects")]
    pub tasks: Vec<WorkflowTaskInput>,
    /// The task that runs once every member is final; its claim carries the batch's outcome
    /// (`batch`: the ids that succeeded, died or were cancelled).
    pub callback: WorkflowTaskInput,
    /// Run the callback only if every member succeeded; otherwise it is cancelled (Sidekiq's
    /// "success" callback). Default false: it runs whatever the members' outcomes ("complete").
    #[serde(default)]
    pub only_on_success: bool,
    /// Keep the batch open: members may be added (`POST /v1/batches/{id}/tasks`) until
    /// `POST /v1/batches/{id}/close`, and the callback waits for the close too. `tasks` may
    /// then be empty. Default false.
    #[serde(default)]
    pub open: bool,
}

#[utoipa::path(post, path = "/v1/batches", tag = "workflows",
    request_body = BatchInput,
    responses(
        (status = 201, description = "the members and the callback stored; the callback waits for every member", body = Workflow),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, description = "a bad member or callback: nothing is stored", body = ErrorBody)))]
pub async fn submit_batch(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<BatchInput>,
) -> ApiResult<Response> {
    let now = st.clock.now();
    let limits = &st.config.limits;
    let members = body
        .tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.into_member(&format!("tasks[{i}]"), now, limits))
        .collect::<ApiResult<Vec<_>>>()?;
    let callback = body.callback.into_member("callback", now, limits)?;
    let batch = st
        .service
        .submit_batch(
            &caller,
            members,
            callback,
            body.only_on_success,
            rota_store::Submission::Batch { open: body.open },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(batch)).into_response())
}

#[utoipa::path(get, path = "/v1/batches/{id}", tag = "workflows",
    params(("id" = schema::TaskIdText, Path, description = "the batch's id")),
    responses((status = 200, description = "the batch: its members and its callback (named `callback`)", body = Workflow),
        (status = 404, body = ErrorBody)))]
pub async fn get_batch(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<Workflow>> {
    let id = task_id(&id)?;
    let wf = st.service.workflow(&caller, id).await?;
    if wf.kind != WorkflowKind::Batch {
        return Err(ApiError::new(
            crate::error::ErrorKind::NotFound,
            "batch_not_found",
            format!("batch {id} does not exist (it is a workflow: GET /v1/workflows/{id})"),
        ));
    }
    Ok(axum::Json(wf))
}

/// Tasks to add: members of an open batch, or the tasks a running task spawns.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddedTasks {
    /// Tasks as a batch's members are given (a queue, no name or dependencies), at least one,
    /// at most 10,000 (and limits.max_batch).
    #[serde(deserialize_with = "rota_core::objects::objects")]
    pub tasks: Vec<WorkflowTaskInput>,
}

impl AddedTasks {
    pub(super) fn members(
        self,
        now: Timestamp,
        limits: &Limits,
    ) -> ApiResult<Vec<(String, NewTask)>> {
        self.tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| t.into_member(&format!("tasks[{i}]"), now, limits))
            .collect()
    }
}

/// The tasks an add stored, in the order given.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AddedList {
    pub tasks: Vec<rota_core::Task>,
}

#[utoipa::path(post, path = "/v1/batches/{id}/tasks", tag = "workflows",
    params(("id" = schema::TaskIdText, Path, description = "the batch's id")),
    request_body = AddedTasks,
    responses(
        (status = 201, description = "the members stored; the callback waits for them too", body = AddedList),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`conflict`: the batch is closed; nothing is stored", body = ErrorBody),
        (status = 422, description = "a bad member, or a workflow that is not a batch: nothing is stored", body = ErrorBody)))]
pub async fn add_to_batch(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<AddedTasks>,
) -> ApiResult<Response> {
    let id = task_id(&id)?;
    let members = body.members(st.clock.now(), &st.config.limits)?;
    let tasks = st.service.add_to_batch(&caller, id, members).await?;
    Ok((StatusCode::CREATED, axum::Json(AddedList { tasks })).into_response())
}

#[utoipa::path(post, path = "/v1/batches/{id}/close", tag = "workflows",
    params(("id" = schema::TaskIdText, Path, description = "the batch's id")),
    responses(
        (status = 200, description = "the batch, closed: its callback runs once every member is final (closing a closed batch changes nothing)", body = Workflow),
        (status = 404, body = ErrorBody),
        (status = 422, description = "a workflow, not a batch", body = ErrorBody)))]
pub async fn close_batch(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<Workflow>> {
    let id = task_id(&id)?;
    Ok(axum::Json(st.service.close_batch(&caller, id).await?))
}
