//! Schedules over HTTP: `PUT/GET/DELETE /v1/schedules/{name}`, `GET /v1/schedules`, and
//! `POST /v1/schedules/{name}/trigger|pause|resume`.

use crate::api::admin::Deleted;
use crate::api::schema;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiPath, JsonBody};
use crate::service::ScheduleView;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rota_core::schedule::{CatchUp, Overlap, ScheduleSpec};
use rota_core::{TaskId, TaskState, Timestamp};
use serde::{Deserialize, Serialize};

/// A schedule's definition. Exactly one of `cron` and `every_ms`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// The queue each tick's task goes to.
    #[schema(value_type = schema::QueueName)]
    pub queue: String,
    /// The task kind. Default `default`.
    #[schema(value_type = Option<schema::Name>)]
    pub kind: Option<String>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<rota_core::Json>,
    pub priority: Option<i32>,
    /// Default: the queue's.
    #[schema(value_type = Option<schema::MaxAttempts>)]
    pub max_attempts: Option<u32>,
    /// Five fields (`0 3 * * *`), or six with seconds first (`*/10 * * * * *`).
    pub cron: Option<String>,
    /// A tick every this many milliseconds (at least 1000), on multiples of it since the epoch.
    #[schema(value_type = Option<schema::EveryMs>)]
    pub every_ms: Option<u64>,
    /// IANA time zone the cron expression is read in. Default `UTC`.
    pub timezone: Option<String>,
    /// `allow` (default) or `skip`: skip a tick while the previous tick's task is not final.
    pub overlap: Option<Overlap>,
    /// After downtime or a pause: `none`, `latest` (default) or `all` (up to 100) missed ticks.
    pub catch_up: Option<CatchUp>,
    /// Each tick's task runs up to this much later (stable per tick). Default 0.
    #[schema(value_type = Option<schema::DelayMs>)]
    pub jitter_ms: Option<u64>,
    pub paused: Option<bool>,
    /// The flow-control group of every task it enqueues (docs/flow-control.md).
    #[schema(value_type = Option<schema::Name>)]
    pub group: Option<String>,
}

impl From<ScheduleBody> for ScheduleSpec {
    fn from(b: ScheduleBody) -> Self {
        ScheduleSpec {
            queue: b.queue,
            kind: b.kind.unwrap_or_else(|| "default".into()),
            payload: b.payload,
            priority: b.priority.unwrap_or(0),
            max_attempts: b.max_attempts,
            cron: b.cron,
            every_ms: b.every_ms,
            timezone: b.timezone.unwrap_or_else(|| "UTC".into()),
            overlap: b.overlap.unwrap_or_default(),
            catch_up: b.catch_up.unwrap_or_default(),
            jitter_ms: b.jitter_ms.unwrap_or(0),
            paused: b.paused.unwrap_or(false),
            group: b.group,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunOut {
    #[schema(value_type = String, format = DateTime)]
    pub tick: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub fired_at: Timestamp,
    #[schema(value_type = Option<String>)]
    pub task_id: Option<TaskId>,
    /// `manual` for a trigger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// Why nothing was enqueued (overlap, missed ticks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The task's state now (one schedule's GET only; absent once the task is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<TaskState>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleOut {
    pub name: String,
    pub queue: String,
    pub kind: String,
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<rota_core::Json>,
    pub priority: i32,
    pub max_attempts: Option<u32>,
    pub cron: Option<String>,
    pub every_ms: Option<u64>,
    pub timezone: String,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
    pub jitter_ms: u64,
    pub paused: bool,
    /// The flow-control group of every task it enqueues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The next tick; null while paused.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// The latest runs, newest first (at most 20).
    pub runs: Vec<RunOut>,
}

impl From<ScheduleView> for ScheduleOut {
    fn from(v: ScheduleView) -> Self {
        let r = v.record;
        let runs = r
            .runs
            .into_iter()
            .zip(v.outcomes)
            .map(|(run, outcome)| RunOut {
                tick: run.tick,
                fired_at: run.fired_at,
                task_id: run.task_id,
                trigger: run.trigger,
                skipped: run.skipped,
                outcome,
            })
            .collect();
        let s = r.spec;
        ScheduleOut {
            name: r.name,
            queue: s.queue,
            kind: s.kind,
            payload: s.payload,
            priority: s.priority,
            max_attempts: s.max_attempts,
            cron: s.cron,
            every_ms: s.every_ms,
            timezone: s.timezone,
            overlap: s.overlap,
            catch_up: s.catch_up,
            jitter_ms: s.jitter_ms,
            paused: s.paused,
            group: s.group,
            next_run_at: r.next_run_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            runs,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleOut>,
}

#[utoipa::path(put, path = "/v1/schedules/{name}", tag = "schedules", params(("name" = schema::ShortName, Path)),
    request_body = ScheduleBody,
    responses((status = 201, body = ScheduleOut), (status = 200, body = ScheduleOut),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    JsonBody(body): JsonBody<ScheduleBody>,
) -> ApiResult<(StatusCode, Json<ScheduleOut>)> {
    let (view, created) = st.service.put_schedule(&caller, &name, body.into()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view.into())))
}

#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    responses((status = 200, body = ScheduleList)))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<ScheduleList>> {
    let all = st.service.schedules(&caller).await?;
    Ok(Json(ScheduleList {
        schedules: all.into_iter().map(ScheduleOut::from).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/schedules/{name}", tag = "schedules", params(("name" = schema::ShortName, Path)),
    responses((status = 200, body = ScheduleOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ScheduleOut>> {
    Ok(Json(st.service.schedule(&caller, &name).await?.into()))
}

#[utoipa::path(delete, path = "/v1/schedules/{name}", tag = "schedules", params(("name" = schema::ShortName, Path)),
    responses((status = 200, body = Deleted), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    st.service.delete_schedule(&caller, &name).await?;
    Ok(Json(Deleted { deleted: name }))
}

/// Enqueues the schedule's task now (recorded as a `manual` run); the ticks go on as before.
#[utoipa::path(post, path = "/v1/schedules/{name}/trigger", tag = "schedules", params(("name" = schema::ShortName, Path)),
    responses((status = 200, body = ScheduleOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn trigger(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ScheduleOut>> {
    Ok(Json(
        st.service.trigger_schedule(&caller, &name).await?.into(),
    ))
}

#[utoipa::path(post, path = "/v1/schedules/{name}/pause", tag = "schedules", params(("name" = schema::ShortName, Path)),
    responses((status = 200, body = ScheduleOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pause(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ScheduleOut>> {
    Ok(Json(
        st.service
            .pause_schedule(&caller, &name, true)
            .await?
            .into(),
    ))
}

/// Resumes from the next tick after now (missed ticks of the pause are not fired).
#[utoipa::path(post, path = "/v1/schedules/{name}/resume", tag = "schedules", params(("name" = schema::ShortName, Path)),
    responses((status = 200, body = ScheduleOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn resume(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ScheduleOut>> {
    Ok(Json(
        st.service
            .pause_schedule(&caller, &name, false)
            .await?
            .into(),
    ))
}
