//! `GET /v1/doctor`: what is wrong, why, and what to do (see [`crate::doctor`]).

use crate::auth::Caller;
use crate::doctor::Report;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::AppState;
use axum::extract::State;
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DoctorParams {
    /// Only this queue's findings (and the storage's).
    #[param(value_type = crate::api::schema::QueueName, required = false)]
    pub queue: Option<String>,
}

#[utoipa::path(get, path = "/v1/doctor", tag = "operations", params(DoctorParams),
    responses((status = 200, description = "the findings; `ok` is true when there is none", body = Report),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn doctor(
    caller: Caller,
    State(st): State<AppState>,
    ApiQuery(p): ApiQuery<DoctorParams>,
) -> ApiResult<axum::Json<Report>> {
    Ok(axum::Json(
        st.service.doctor(&caller, p.queue.as_deref()).await?,
    ))
}
