//! Flow-control group routes: one group's settings, and a queue's groups listed by name.

use crate::api::schema;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::AppState;
use axum::extract::State;
use rota_core::flow::{GroupInfo, GroupPage, GroupSettings};
use serde::Deserialize;

#[utoipa::path(put, path = "/v1/queues/{queue}/groups/{group}", tag = "queues",
    params(("queue" = schema::QueueName, Path), ("group" = schema::Name, Path)),
    request_body = GroupSettings,
    responses((status = 200, body = GroupInfo), (status = 422, body = ErrorBody)))]
pub async fn put_group(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath((queue, group)): ApiPath<(String, String)>,
    JsonBody(settings): JsonBody<GroupSettings>,
) -> ApiResult<axum::Json<GroupInfo>> {
    Ok(axum::Json(
        st.service
            .put_group(&caller, &queue, &group, settings)
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GroupParams {
    /// `next` of the previous page.
    #[param(value_type = schema::Name, required = false)]
    pub after: Option<String>,
    /// Page size. Default 100.
    #[param(value_type = schema::ListLimit, required = false)]
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/queues/{queue}/groups", tag = "queues",
    params(("queue" = schema::QueueName, Path), GroupParams),
    responses((status = 200, body = GroupPage), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`limit` out of range")))]
pub async fn list_groups(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
    ApiQuery(p): ApiQuery<GroupParams>,
) -> ApiResult<axum::Json<GroupPage>> {
    let page = st
        .service
        .groups(&caller, &queue, p.after.as_deref(), p.limit.unwrap_or(100))
        .await?;
    Ok(axum::Json(page))
}
