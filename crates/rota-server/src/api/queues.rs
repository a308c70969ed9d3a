//! Queue routes: list with counts, one queue's stats and settings, settings changes, pause,
//! resume, purge.

use crate::api::schema;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::AppState;
use axum::extract::State;
use rota_core::flow::Rate;
use rota_core::{Backoff, QueueInfo, QueuePatch, QueueStats, TaskState};
use serde::{Deserialize, Serialize};

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueInfo>,
}

#[utoipa::path(get, path = "/v1/queues", tag = "queues", responses((status = 200, body = QueueList)))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<axum::Json<QueueList>> {
    let queues = st.service.queues(&caller).await?;
    Ok(axum::Json(QueueList { queues }))
}

#[utoipa::path(get, path = "/v1/queues/{queue}", tag = "queues", params(("queue" = schema::QueueName, Path)),
    responses((status = 200, description = "The queue, with what its flow-control limits hold back now (`flow`).", body = QueueStats), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
) -> ApiResult<axum::Json<QueueStats>> {
    Ok(axum::Json(st.service.queue_stats(&caller, &queue).await?))
}

/// Settings to change; absent fields keep their value.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueuePatchBody {
    #[schema(value_type = Option<schema::MaxAttempts>)]
    pub max_attempts: Option<u32>,
    /// `max_ms` must be at least `base_ms`.
    #[serde(default, deserialize_with = "rota_core::objects::optional_object")]
    pub backoff: Option<Backoff>,
    #[schema(value_type = Option<schema::LeaseMs>)]
    pub lease_ms: Option<u64>,
    /// How long final tasks are kept.
    #[schema(value_type = Option<schema::DelayMs>)]
    pub retention_ms: Option<u64>,
    pub paused: Option<bool>,
    /// Where the final outcome of this queue's tasks that name no `callback_url` is POSTed;
    /// `""` clears it.
    pub callback_url: Option<String>,
    /// At most this many of the queue's tasks running at once; `null` lifts the limit.
    #[serde(default, deserialize_with = "rota_core::objects::present")]
    #[schema(value_type = Option<schema::Limit>)]
    pub concurrency: Option<Option<u32>>,
    /// At most `limit` of the queue's tasks started in any window of `period_ms`; `null`
    /// lifts it.
    #[serde(default, deserialize_with = "rota_core::objects::present_object")]
    #[schema(value_type = Option<Rate>)]
    pub rate: Option<Option<Rate>>,
    /// `concurrency` for each group of the queue; `null` lifts it.
    #[serde(default, deserialize_with = "rota_core::objects::present")]
    #[schema(value_type = Option<schema::Limit>)]
    pub group_concurrency: Option<Option<u32>>,
    /// `rate` for each group of the queue; `null` lifts it.
    #[serde(default, deserialize_with = "rota_core::objects::present_object")]
    #[schema(value_type = Option<Rate>)]
    pub group_rate: Option<Option<Rate>>,
}

#[utoipa::path(patch, path = "/v1/queues/{queue}", tag = "queues", params(("queue" = schema::QueueName, Path)),
    request_body = QueuePatchBody,
    responses((status = 200, body = QueueInfo), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
    JsonBody(body): JsonBody<QueuePatchBody>,
) -> ApiResult<axum::Json<QueueInfo>> {
    let patch = QueuePatch {
        max_attempts: body.max_attempts,
        backoff: body.backoff,
        lease_ms: body.lease_ms,
        retention_ms: body.retention_ms,
        paused: body.paused,
        callback_url: body.callback_url.map(|u| Some(u).filter(|u| !u.is_empty())),
        concurrency: body.concurrency,
        rate: body.rate,
        group_concurrency: body.group_concurrency,
        group_rate: body.group_rate,
    };
    Ok(axum::Json(
        st.service.update_queue(&caller, &queue, patch).await?,
    ))
}

#[utoipa::path(post, path = "/v1/queues/{queue}/pause", tag = "queues", params(("queue" = schema::QueueName, Path)),
    responses((status = 200, body = QueueInfo), (status = 404, body = ErrorBody)))]
pub async fn pause(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
) -> ApiResult<axum::Json<QueueInfo>> {
    Ok(axum::Json(
        st.service.set_paused(&caller, &queue, true).await?,
    ))
}

#[utoipa::path(post, path = "/v1/queues/{queue}/resume", tag = "queues", params(("queue" = schema::QueueName, Path)),
    responses((status = 200, body = QueueInfo), (status = 404, body = ErrorBody)))]
pub async fn resume(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
) -> ApiResult<axum::Json<QueueInfo>> {
    Ok(axum::Json(
        st.service.set_paused(&caller, &queue, false).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PurgeParams {
    /// The final state whose tasks are deleted.
    #[param(required = true, value_type = schema::FinalState)]
    pub state: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Purged {
    pub deleted: u64,
}

#[utoipa::path(delete, path = "/v1/queues/{queue}/tasks", tag = "queues",
    params(("queue" = schema::QueueName, Path), PurgeParams),
    responses((status = 200, body = Purged), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn purge(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
    ApiQuery(p): ApiQuery<PurgeParams>,
) -> ApiResult<axum::Json<Purged>> {
    let state: TaskState = p
        .state
        .ok_or_else(|| {
            ApiError::bad_request("give the state to purge: ?state=dead (or succeeded, cancelled)")
        })?
        .parse()
        .map_err(ApiError::bad_request)?;
    Ok(axum::Json(Purged {
        deleted: st.service.purge(&caller, &queue, state).await?,
    }))
}
