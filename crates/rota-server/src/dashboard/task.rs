//! A task: payload, result, progress, errors per attempt, its timeline, cancel and retry.

use super::layout::{self, badge};
use super::{Ctx, PageResult};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use rota_core::auth::{actions, queue_resource};
use rota_core::{Task, TaskId, Timestamp};
use rota_store::Change;

fn parse(id: &str) -> Result<TaskId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not a task id")))
}

/// What happened to the task, oldest first, from its own record: created, each failed
/// attempt, the lease it holds, and how it ended.
fn timeline(t: &Task) -> Vec<(Timestamp, String)> {
    let mut out = vec![(t.created_at, "enqueued".to_owned())];
    if t.run_at > t.created_at {
        out.push((t.run_at, "due to run".to_owned()));
    }
    for e in &t.errors {
        // Attempt 0 is no attempt: a task killed before it ever ran.
        let what = match e.attempt {
            0 => format!("before any attempt: {}", e.message),
            n => format!("attempt {n} failed: {}", e.message),
        };
        out.push((e.at, what));
    }
    if let Some(l) = &t.lease {
        out.push((
            l.expires_at,
            format!(
                "attempt {} running on {}; lease until then",
                t.attempt, l.worker
            ),
        ));
    }
    if let Some(f) = t.finished_at {
        out.push((f, format!("{}", t.state)));
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

pub async fn page(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> PageResult {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    let t = st.service.get(&caller, parse(&id)?).await?;
    let resource = queue_resource(&t.queue);
    let may_cancel = !t.state.is_final() && caller.can(actions::TASKS_CANCEL, &resource);
    let may_retry = matches!(
        t.state,
        rota_core::TaskState::Dead | rota_core::TaskState::Cancelled
    ) && caller.can(actions::TASKS_RETRY, &resource);
    let body = html! {
        h1 { "Task " (t.id) " " (badge(t.state)) }
        p {
            "queue " a href={ "/queues/" (t.queue) } { (t.queue) }
            " · kind " strong { (t.kind) }
            " · attempt " (t.attempt) "/" (t.max_attempts)
            " · priority " (t.priority)
            @if let Some(k) = &t.unique_key { " · unique key " code { (k) } }
        }
        p {
            @if may_cancel { button.danger hx-post={ "/tasks/" (t.id) "/cancel" } hx-confirm="Cancel this task?" { "Cancel" } " " }
            @if may_retry { button.primary hx-post={ "/tasks/" (t.id) "/retry" } { "Retry" } }
        }
        div.grid {
            div { h2 { "Payload" } (layout::json(&t.payload)) }
            @if let Some(r) = &t.result { div { h2 { "Result" } (layout::json(r)) } }
            @if let Some(p) = &t.progress { div { h2 { "Progress" } (layout::json(p)) } }
        }
        h2 { "Timeline" }
        table id="timeline" {
            tbody {
                @for (at, what) in timeline(&t) {
                    tr { td { (at) } td { (what) } }
                }
            }
        }
        @if !t.errors.is_empty() {
            h2 { "Errors by attempt" }
            table { tbody {
                @for e in &t.errors { tr { td.num { (e.attempt) } td { (e.at) } td { pre { (e.message) } } } }
            } }
        }
    };
    Ok(layout::page(
        &cx,
        &format!("Task {}", t.id),
        "",
        false,
        body,
    ))
}

async fn change(caller: Caller, st: AppState, id: String, c: Change) -> Response {
    let id = match parse(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match st.service.change(&caller, id, c).await {
        Ok(_) => ([("hx-refresh", "true")], StatusCode::NO_CONTENT).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn cancel(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    change(caller, st, id, Change::Cancel).await
}

pub async fn retry(caller: Caller, State(st): State<AppState>, Path(id): Path<String>) -> Response {
    change(caller, st, id, Change::Retry).await
}
