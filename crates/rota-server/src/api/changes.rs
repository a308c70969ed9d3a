//! An operator's changes to one task by its id: cancel, retry, run now, kill, delete.

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{task_id, ApiPath, JsonBody};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use rota_core::Task;
use rota_store::Change;
use serde::Deserialize;

/// The reason a killed task records when the request gives none.
const KILLED: &str = "killed by an operator";

async fn change(st: &AppState, caller: &Caller, id: &str, change: Change) -> ApiResult<Json<Task>> {
    Ok(Json(st.service.change(caller, task_id(id)?, change).await?))
}

#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = crate::api::schema::TaskIdText, Path)),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody),
        (status = 409, description = "already final", body = ErrorBody)))]
pub async fn cancel(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Task>> {
    change(&st, &caller, &id, Change::Cancel).await
}

#[utoipa::path(post, path = "/v1/tasks/{id}/retry", tag = "tasks", params(("id" = crate::api::schema::TaskIdText, Path)),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody),
        (status = 409, description = "not dead or cancelled, or its unique key is taken",
            body = ErrorBody)))]
pub async fn retry(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Task>> {
    change(&st, &caller, &id, Change::Retry).await
}

/// Runs a scheduled task, or a retry waiting for its backoff, now; its attempts are kept.
#[utoipa::path(post, path = "/v1/tasks/{id}/run-now", tag = "tasks", params(("id" = crate::api::schema::TaskIdText, Path)),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody),
        (status = 409, description = "not scheduled", body = ErrorBody)))]
pub async fn run_now(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Task>> {
    change(&st, &caller, &id, Change::RunNow).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KillBody {
    /// Recorded as the task's last error (default "killed by an operator").
    pub reason: Option<String>,
}

/// Sends a scheduled or ready task to the dead letters without running it.
#[utoipa::path(post, path = "/v1/tasks/{id}/kill", tag = "tasks", params(("id" = crate::api::schema::TaskIdText, Path)),
    request_body = KillBody,
    responses((status = 200, body = Task), (status = 404, body = ErrorBody),
        (status = 409, description = "running or final", body = ErrorBody)))]
pub async fn kill(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<KillBody>,
) -> ApiResult<Json<Task>> {
    let reason = body.reason.unwrap_or_else(|| KILLED.to_owned());
    change(&st, &caller, &id, Change::Kill { reason }).await
}

/// Deletes a task that is not running (a running one is cancelled first); answers the task as
/// it was.
#[utoipa::path(delete, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = crate::api::schema::TaskIdText, Path)),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody),
        (status = 409, description = "running", body = ErrorBody)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Task>> {
    change(&st, &caller, &id, Change::Delete).await
}
