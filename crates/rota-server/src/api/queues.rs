//! Queue routes: list with counts, one queue's stats and settings, settings changes, pause,
//! resume, purge.

use super::MAX_ATTEMPTS_CEILING;
use crate::api::tasks::check_lease_ms;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::AppState;
use axum::extract::State;
use rota_core::auth::{actions, queue_resource};
use rota_core::{Backoff, QueueInfo, QueuePatch, TaskState};
use serde::{Deserialize, Serialize};

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueInfo>,
}

#[utoipa::path(get, path = "/v1/queues", tag = "queues", responses((status = 200, body = QueueList)))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<axum::Json<QueueList>> {
    Ok(axum::Json(QueueList {
        queues: st
            .store
            .queues(&caller.tenant)
            .await?
            .into_iter()
            .filter(|q| caller.can(actions::QUEUES_READ, &queue_resource(&q.name)))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/queues/{queue}", tag = "queues", params(("queue" = String, Path)),
    responses((status = 200, body = QueueInfo), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
) -> ApiResult<axum::Json<QueueInfo>> {
    let key = caller.queue(&queue, actions::QUEUES_READ)?;
    Ok(axum::Json(st.store.queue(&key).await?))
}

/// Settings to change; absent fields keep their value.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueuePatchBody {
    pub max_attempts: Option<u32>,
    pub backoff: Option<Backoff>,
    pub lease_ms: Option<u64>,
    pub retention_ms: Option<u64>,
    pub paused: Option<bool>,
}

#[utoipa::path(patch, path = "/v1/queues/{queue}", tag = "queues", params(("queue" = String, Path)),
    request_body = QueuePatchBody,
    responses((status = 200, body = QueueInfo), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
    JsonBody(body): JsonBody<QueuePatchBody>,
) -> ApiResult<axum::Json<QueueInfo>> {
    let key = caller.queue(&queue, actions::QUEUES_UPDATE)?;
    if let Some(m) = body.max_attempts {
        if m == 0 || m > MAX_ATTEMPTS_CEILING {
            return Err(ApiError::invalid(format!(
                "max_attempts is {m}; use 1 to {MAX_ATTEMPTS_CEILING}"
            )));
        }
    }
    let limits = &st.config.limits;
    if let Some(b) = &body.backoff {
        b.validate().map_err(ApiError::invalid)?;
        limits
            .check_delay("backoff.max_ms", b.max_ms)
            .map_err(ApiError::invalid)?;
    }
    if let Some(ms) = body.retention_ms {
        limits
            .check_delay("retention_ms", ms)
            .map_err(ApiError::invalid)?;
    }
    check_lease_ms(body.lease_ms, limits)?;
    let patch = QueuePatch {
        max_attempts: body.max_attempts,
        backoff: body.backoff,
        lease_ms: body.lease_ms,
        retention_ms: body.retention_ms,
        paused: body.paused,
    };
    Ok(axum::Json(st.store.update_queue(&key, patch).await?))
}

async fn set_paused(
    st: AppState,
    caller: Caller,
    queue: String,
    paused: bool,
) -> ApiResult<axum::Json<QueueInfo>> {
    let key = caller.queue(&queue, actions::QUEUES_UPDATE)?;
    // Pausing a queue that does not exist is most likely a typo: say so instead of creating it.
    st.store.queue(&key).await?;
    let patch = QueuePatch {
        paused: Some(paused),
        ..Default::default()
    };
    Ok(axum::Json(st.store.update_queue(&key, patch).await?))
}

#[utoipa::path(post, path = "/v1/queues/{queue}/pause", tag = "queues", params(("queue" = String, Path)),
    responses((status = 200, body = QueueInfo), (status = 404, body = ErrorBody)))]
pub async fn pause(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
) -> ApiResult<axum::Json<QueueInfo>> {
    set_paused(st, caller, queue, true).await
}

#[utoipa::path(post, path = "/v1/queues/{queue}/resume", tag = "queues", params(("queue" = String, Path)),
    responses((status = 200, body = QueueInfo), (status = 404, body = ErrorBody)))]
pub async fn resume(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
) -> ApiResult<axum::Json<QueueInfo>> {
    set_paused(st, caller, queue, false).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PurgeParams {
    /// A final state: succeeded, dead or cancelled.
    pub state: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Purged {
    pub deleted: u64,
}

#[utoipa::path(delete, path = "/v1/queues/{queue}/tasks", tag = "queues",
    params(("queue" = String, Path), PurgeParams),
    responses((status = 200, body = Purged), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn purge(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
    ApiQuery(p): ApiQuery<PurgeParams>,
) -> ApiResult<axum::Json<Purged>> {
    let key = caller.queue(&queue, actions::QUEUES_PURGE)?;
    let state: TaskState = p
        .state
        .ok_or_else(|| {
            ApiError::bad_request("give the state to purge: ?state=dead (or succeeded, cancelled)")
        })?
        .parse()
        .map_err(ApiError::bad_request)?;
    if !state.is_final() {
        return Err(ApiError::bad_request(format!(
            "only final states can be purged (succeeded, dead, cancelled), not `{state}`; cancel tasks first"
        )));
    }
    Ok(axum::Json(Purged {
        deleted: st.store.purge(&key, state).await?,
    }))
}
