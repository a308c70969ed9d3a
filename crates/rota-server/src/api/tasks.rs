//! Task routes: enqueue, claim (long-poll), heartbeat, complete, fail, get, list, cancel, retry.

use super::*;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{task_id, ApiPath, ApiQuery, JsonBody};
use crate::service::Claim;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rota_store::{Completion, FailureReport, Heartbeat, ListFilter};
use serde::Deserialize;

#[utoipa::path(post, path = "/v1/queues/{queue}/tasks", tag = "tasks",
    params(("queue" = schema::QueueName, Path)),
    request_body = schema::EnqueueBody,
    responses(
        (status = 201, description = "created; a batch answers {\"tasks\": [...]}", body = schema::EnqueueAnswer),
        (status = 200, description = "every task was a duplicate of a live task: kept, or replaced in place (`replaced: true`) with `on_duplicate: replace`", body = schema::EnqueueAnswer),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn enqueue(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
    JsonBody(body): JsonBody<TaskInput>,
) -> ApiResult<Response> {
    let now = st.clock.now();
    let (inputs, is_batch) = body.into_batch();
    let mut tasks = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let at = if is_batch {
            format!("tasks[{i}]")
        } else {
            "task".to_owned()
        };
        tasks.push(input.into_new_task(&at, now, &st.config.limits)?);
    }
    let out = st.service.enqueue(&caller, &queue, tasks, is_batch).await?;
    let status = if out.iter().any(|e| !e.duplicate) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut views = out.into_iter().map(|e| EnqueuedTask {
        task: e.task,
        duplicate: e.duplicate,
        replaced: e.replaced,
    });
    Ok(if is_batch {
        (
            status,
            axum::Json(EnqueuedBatch {
                tasks: views.collect(),
            }),
        )
            .into_response()
    } else {
        let one = views.next().expect("one task in, one out");
        (status, axum::Json(one)).into_response()
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Who claims: shown in the lease and in lease-expiry errors.
    #[schema(value_type = schema::Name)]
    pub worker: String,
    /// Only these kinds; absent or empty means any.
    #[serde(default)]
    #[schema(value_type = schema::ClaimKinds)]
    pub kinds: Vec<String>,
    /// Most tasks to return. Default 1.
    #[schema(value_type = Option<schema::ClaimMax>)]
    pub max: Option<usize>,
    /// Wait up to this long for a task when none is ready. Default 0.
    #[schema(value_type = Option<schema::WaitMs>)]
    pub wait_ms: Option<u64>,
    /// Lease length. Default: the queue's `lease_ms`.
    #[schema(value_type = Option<schema::LeaseMs>)]
    pub lease_ms: Option<u64>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Claimed {
    pub tasks: Vec<ClaimedTask>,
}

/// A claimed task; one that waited for others carries them (docs/workflows.md, "Results").
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClaimedTask {
    #[serde(flatten)]
    pub task: rota_core::Task,
    /// Its first 100 dependencies: how each ended, and its result while the results fit 64
    /// KiB in all (past that, or in a queue the claimer may not read, `result_omitted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<rota_core::workflow::DependencyResult>>,
    /// For a batch's callback: how its members ended (docs/workflows.md, "Batches").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<rota_core::workflow::BatchSummary>,
}

#[utoipa::path(post, path = "/v1/queues/{queue}/claim", tag = "tasks",
    params(("queue" = schema::QueueName, Path)), request_body = ClaimBody,
    responses((status = 200, body = Claimed), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn claim(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
    JsonBody(body): JsonBody<ClaimBody>,
) -> ApiResult<axum::Json<Claimed>> {
    let req = Claim {
        worker: body.worker,
        kinds: body.kinds,
        max: body.max.unwrap_or(1),
        wait_ms: body.wait_ms.unwrap_or(0),
        lease_ms: body.lease_ms,
    };
    let tasks = st.service.claim(&caller, &queue, req).await?;
    // The leases are taken: what the tasks carry is read on a best-effort basis, so a read
    // that fails leaves it out rather than losing the claim.
    let deps = st
        .service
        .dependencies_of(&caller, &tasks)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e.message, "claimed tasks go without their dependencies' results");
            vec![None; tasks.len()]
        });
    let batches = st
        .service
        .batch_summaries(&caller, &tasks)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e.message, "claimed batch callbacks go without their batch's outcome");
            vec![None; tasks.len()]
        });
    let tasks = tasks
        .into_iter()
        .zip(deps)
        .zip(batches)
        .map(|((task, dependencies), batch)| ClaimedTask {
            task,
            dependencies,
            batch,
        })
        .collect();
    Ok(axum::Json(Claimed { tasks }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    /// The lease token from the claim.
    pub lease: String,
    /// New lease length from now. Default: the queue's `lease_ms`.
    #[schema(value_type = Option<schema::LeaseMs>)]
    pub lease_ms: Option<u64>,
    /// Any JSON describing progress; kept on the task.
    #[schema(value_type = Option<serde_json::Value>)]
    pub progress: Option<Json>,
}

#[utoipa::path(post, path = "/v1/tasks/{id}/heartbeat", tag = "tasks",
    params(("id" = schema::TaskIdText, Path)), request_body = HeartbeatBody,
    responses((status = 200, body = rota_core::Task), (status = 404, body = ErrorBody),
        (status = 409, description = "`task_cancelled`: the task was cancelled, stop working on it; \
            `lease_lost`: the token no longer holds the task (expired, claimed again, or final)",
            body = ErrorBody)))]
pub async fn heartbeat(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<HeartbeatBody>,
) -> ApiResult<axum::Json<rota_core::Task>> {
    let hb = Heartbeat {
        id: task_id(&id)?,
        lease: body.lease,
        lease_ms: body.lease_ms,
        progress: body.progress,
    };
    Ok(axum::Json(st.service.heartbeat(&caller, hb).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    pub lease: String,
    /// Any JSON; kept on the task.
    #[schema(value_type = Option<serde_json::Value>)]
    pub result: Option<Json>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    pub lease: String,
    /// What went wrong; kept in the task's `errors`.
    pub error: String,
    /// Retry after this delay instead of the queue's backoff.
    #[schema(value_type = Option<schema::DelayMs>)]
    pub retry_in_ms: Option<u64>,
    /// Do not retry: the task goes dead now.
    #[serde(default)]
    pub dead: bool,
    /// A temporary failure (a dependency was down): recorded, but the attempt does not count
    /// toward `max_attempts`.
    #[serde(default)]
    pub temporary: bool,
}

impl FailBody {
    pub(super) fn into_report(self, id: rota_core::TaskId) -> FailureReport {
        FailureReport {
            id,
            lease: self.lease,
            error: self.error,
            retry_in_ms: self.retry_in_ms,
            dead: self.dead,
            temporary: self.temporary,
        }
    }
}

/// The one outcome of a request about one task.
fn only(out: Vec<ApiResult<rota_core::Task>>) -> ApiResult<axum::Json<rota_core::Task>> {
    let one = out.into_iter().next().expect("one outcome per item");
    Ok(axum::Json(one?))
}

#[utoipa::path(post, path = "/v1/tasks/{id}/complete", tag = "tasks",
    params(("id" = schema::TaskIdText, Path)), request_body = CompleteBody,
    responses((status = 200, body = rota_core::Task), (status = 404, body = ErrorBody),
        (status = 409, description = "`task_cancelled` or `lease_lost`", body = ErrorBody)))]
pub async fn complete(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<CompleteBody>,
) -> ApiResult<axum::Json<rota_core::Task>> {
    let item = Completion {
        id: task_id(&id)?,
        lease: body.lease,
        result: body.result,
    };
    only(st.service.complete(&caller, vec![item], false).await?)
}

#[utoipa::path(post, path = "/v1/tasks/{id}/fail", tag = "tasks",
    params(("id" = schema::TaskIdText, Path)), request_body = FailBody,
    responses((status = 200, body = rota_core::Task), (status = 404, body = ErrorBody),
        (status = 409, description = "`task_cancelled` or `lease_lost`", body = ErrorBody)))]
pub async fn fail(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<FailBody>,
) -> ApiResult<axum::Json<rota_core::Task>> {
    let item = body.into_report(task_id(&id)?);
    only(st.service.fail(&caller, vec![item], false).await?)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Wait up to this long (0 to limits.max_wait_ms) for the task to be final (succeeded,
    /// dead or cancelled); the answer comes when it is, or with the task as it is at the end.
    #[param(value_type = schema::WaitMs, required = false)]
    pub wait_ms: Option<u64>,
}

#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = schema::TaskIdText, Path), GetParams),
    responses((status = 200, body = rota_core::Task), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<GetParams>,
) -> ApiResult<axum::Json<rota_core::Task>> {
    let id = task_id(&id)?;
    let task = match p.wait_ms {
        Some(ms) if ms > 0 => st.service.wait_final(&caller, id, ms).await?,
        _ => st.service.get(&caller, id).await?,
    };
    Ok(axum::Json(task))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only tasks in this state.
    #[param(value_type = TaskState, required = false)]
    pub state: Option<String>,
    /// Only tasks of this kind.
    pub kind: Option<String>,
    /// Page size. Default 100.
    #[param(value_type = schema::ListLimit, required = false)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(value_type = schema::TaskIdText, required = false)]
    pub cursor: Option<String>,
    /// Only the live task (scheduled, ready or running) holding this unique key.
    pub unique_key: Option<String>,
}

#[utoipa::path(get, path = "/v1/queues/{queue}/tasks", tag = "tasks",
    params(("queue" = schema::QueueName, Path), ListParams),
    responses((status = 200, body = TaskList), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<axum::Json<TaskList>> {
    let state = p
        .state
        .map(|s| s.parse::<TaskState>())
        .transpose()
        .map_err(ApiError::bad_request)?;
    let before = p
        .cursor
        .map(|c| task_id(&c))
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("cursor: {}", e.message)))?;
    let filter = ListFilter {
        state,
        kind: p.kind,
        limit: p.limit.unwrap_or(100),
        before,
        unique_key: p.unique_key,
    };
    let page = st.service.list(&caller, &queue, filter).await?;
    Ok(axum::Json(TaskList {
        tasks: page.tasks,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}
