//! `GET /v1/events`: the event log, paged by cursor and long-polled.

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::service::EventQuery;
use crate::AppState;
use axum::extract::State;
use axum::Json;
use rota_core::events::{Event, EventFilter, EventType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Events after this cursor (`next_cursor` of the previous answer); 0 or absent: from the
    /// oldest still retained.
    pub after: Option<i64>,
    /// Comma-separated event types or patterns, e.g. `task.dead,task.failed` or `task.*`.
    pub types: Option<String>,
    /// Comma-separated queue names or patterns.
    pub queue: Option<String>,
    /// Most events in the answer, 1 to limits.max_list. Default 100.
    pub limit: Option<usize>,
    /// Wait up to this long for an event when there is none yet (0 to limits.max_wait_ms).
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
    pub queue: String,
    /// The task's kind.
    pub kind: String,
    #[schema(value_type = String)]
    pub task_id: rota_core::TaskId,
    pub attempt: u32,
    /// What changed: `state`, `worker`, `error`, `run_at`, `lease_expires_at`, `retry_at`, as
    /// the type has them.
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
            task_id: e.task_id,
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
