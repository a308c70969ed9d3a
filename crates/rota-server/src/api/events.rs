//! The event log: `GET /v1/events` pages by cursor and long-polls; `GET /v1/events/stream`
//! follows it as Server-Sent Events (`websocket.rs`: as a WebSocket); `POST /v1/events/tickets`
//! lets a browser open a stream.

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::service::EventQuery;
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use rota_core::events::{Event, EventFilter, EventType};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Events after this cursor (`next_cursor` of the previous answer); 0 or absent: from the
    /// oldest still retained.
    #[param(value_type = crate::api::schema::EventCursor, required = false)]
    pub after: Option<i64>,
    /// Comma-separated event types or patterns, e.g. `task.dead,task.failed` or `task.*`.
    pub types: Option<String>,
    /// Comma-separated queue names or patterns.
    pub queue: Option<String>,
    /// Most events in the answer. Default 100.
    #[param(value_type = crate::api::schema::ListLimit, required = false)]
    pub limit: Option<usize>,
    /// Wait up to this long for an event when there is none yet.
    #[param(value_type = crate::api::schema::WaitMs, required = false)]
    pub wait_ms: Option<u64>,
}

/// One event as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventBody {
    pub cursor: i64,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[schema(value_type = String, format = DateTime)]
    pub at: rota_core::Timestamp,
    /// The queue; empty for an event of the tenant in no queue (`key.*`).
    pub queue: String,
    /// The task's kind (empty for `key.*`).
    pub kind: String,
    /// The task; absent for a schedule's tick that enqueued none.
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<rota_core::TaskId>,
    pub attempt: u32,
    /// What changed: `state`, `worker`, `error`, `run_at`, `lease_expires_at`, `retry_at`, as
    /// the type has them; for schedule events `schedule` and `tick` (and `reason` when
    /// skipped); for delivery events `webhook_id`, `delivery_id` and `error` or `reason`; for
    /// key events (`key.*`, in no queue) `key_id` and `expires_at` or `previous_secret_until`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<Event> for EventBody {
    fn from(e: Event) -> Self {
        let data = e.data();
        EventBody {
            cursor: e.cursor,
            event_type: e.event_type,
            at: e.at,
            queue: e.queue,
            kind: e.kind,
            task_id: (e.task_id != rota_core::TaskId::NONE).then_some(e.task_id),
            attempt: e.attempt,
            data,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    pub events: Vec<EventBody>,
    /// Pass as `after` to continue; it moves past events this caller does not see too.
    pub next_cursor: i64,
}

fn list(text: Option<String>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventParams),
    responses((status = 200, body = EventList), (status = 422, body = ErrorBody)))]
pub async fn events(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<EventParams>,
) -> ApiResult<Json<EventList>> {
    let q = EventQuery {
        after: p.after.unwrap_or(0),
        filter: EventFilter {
            types: list(p.types),
            queues: list(p.queue),
        },
        limit: p.limit.unwrap_or(100),
        wait_ms: p.wait_ms.unwrap_or(0),
    };
    let page = st.service.events(&caller, q).await?;
    Ok(Json(EventList {
        events: page.events.into_iter().map(EventBody::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Events after this cursor when the request has no `Last-Event-ID` header (a reconnecting
    /// `EventSource` sends one, and it wins). 0 or absent: from the oldest still retained.
    #[param(value_type = crate::api::schema::EventCursor, required = false)]
    pub after: Option<i64>,
    /// Comma-separated event types or patterns, e.g. `task.dead,task.failed` or `task.*`.
    pub types: Option<String>,
    /// Comma-separated queue names or patterns.
    pub queue: Option<String>,
    /// A ticket from `POST /v1/events/tickets`, for clients that cannot send headers.
    pub ticket: Option<String>,
}

impl StreamParams {
    /// What a stream (SSE or WebSocket) follows, after cursor `after`.
    pub(super) fn query(self, after: i64, st: &AppState) -> EventQuery {
        EventQuery {
            after,
            filter: EventFilter {
                types: list(self.types),
                queues: list(self.queue),
            },
            limit: st.config.limits.max_list,
            wait_ms: 0,
        }
    }
}

/// The cursor a stream resumes after: `Last-Event-ID`, else `?after=`.
fn resume_cursor(headers: &HeaderMap, after: Option<i64>) -> ApiResult<i64> {
    match headers.get("last-event-id") {
        None => Ok(after.unwrap_or(0)),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|c| *c >= 0)
            .ok_or_else(|| {
                crate::error::ApiError::bad_request(
                    "Last-Event-ID must be an event cursor (an `id:` this stream sent)",
                )
            }),
    }
}

fn sse_event(e: Event) -> sse::Event {
    let id = e.cursor.to_string();
    let name = e.event_type.as_str();
    let body = EventBody::from(e);
    sse::Event::default()
        .id(id)
        .event(name)
        .json_data(body)
        .expect("an event serializes")
}

/// Each event as `id: <cursor>`, `event: <type>` and `data: <the event as GET /v1/events shows
/// it>`; an idle stream sends a comment line every `events.keepalive_ms`. The stream ends when
/// the server shuts down or the credential stops being valid.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events", params(StreamParams),
    responses((status = 200, description = "text/event-stream of events", content_type = "text/event-stream", body = String),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn stream(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<StreamParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>> {
    let after = resume_cursor(&headers, p.after)?;
    let follow = st.service.follow_events(&caller, p.query(after, &st))?;
    let hello = sse::Event::default().comment(format!("following after {}", follow.cursor()));
    let events = stream::unfold(follow, |mut f| async move {
        match f.next().await? {
            Ok(events) => Some((events, f)),
            Err(e) => {
                tracing::warn!(error = %e.message, "event stream ends on a read error; the client resumes by reconnecting");
                None
            }
        }
    })
    .flat_map(|events| stream::iter(events.into_iter().map(sse_event)));
    let body = stream::once(async { hello }).chain(events).map(Ok);
    let keepalive = Duration::from_millis(st.config.events.keepalive_ms);
    Ok(Sse::new(body).keep_alive(KeepAlive::new().interval(keepalive).text("keep-alive")))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ticket {
    /// Pass as `?ticket=` to `GET /v1/events/stream`; it opens nothing else.
    pub ticket: String,
    /// A stream must be opened before this time; once open it lives on.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: rota_core::Timestamp,
}

/// A short-lived ticket that opens this caller's event stream, for a browser's `EventSource`
/// (which cannot send an `Authorization` header). Issued to API keys and the admin token.
#[utoipa::path(post, path = "/v1/events/tickets", tag = "events",
    responses((status = 201, body = Ticket), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn ticket(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<Ticket>)> {
    caller.require_on_some_queue(rota_core::auth::actions::TASKS_READ)?;
    let (ticket, expires_at) = st.auth.issue_ticket(&caller)?;
    Ok((StatusCode::CREATED, Json(Ticket { ticket, expires_at })))
}
