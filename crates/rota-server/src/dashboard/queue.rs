//! A queue's page (its tasks by state with filters and search, pause and resume, settings) and
//! the dead letters (requeue selected or all, purge).

use super::layout::{self, age, badge, brief, since};
use super::{Ctx, PageResult};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use rota_core::auth::{actions, queue_resource};
use rota_core::{Task, TaskId, TaskState};
use rota_store::{Change, ListFilter};
use serde::Deserialize;

/// Tasks a list shows, and the most a search by unique key looks through.
const SHOWN: usize = 100;
const SEARCHED: usize = 500;

#[derive(Deserialize, Default)]
pub struct TaskFilter {
    state: Option<String>,
    kind: Option<String>,
    /// A task id (opens it) or a unique key.
    search: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A change answered by reloading the page (the event stream refreshes other open pages).
pub(super) fn reload() -> Response {
    ([("hx-refresh", "true")], StatusCode::NO_CONTENT).into_response()
}

fn tasks_table(tasks: &[Task], now: rota_core::Timestamp, select: bool) -> maud::Markup {
    html! {
        table id="tasks" {
            thead { tr {
                @if select { th {} }
                th { "Task" } th { "Kind" } th { "State" } th.num { "Attempt" }
                th { "Unique key" } th { "Created" } th { "Last error" }
            } }
            tbody {
                @for t in tasks {
                    tr data-task=(t.id) {
                        @if select { td { input type="checkbox" name="id" value=(t.id); } }
                        td { a href={ "/tasks/" (t.id) } { (t.id) } }
                        td { (t.kind) }
                        td { (badge(t.state)) }
                        td.num { (t.attempt) "/" (t.max_attempts) }
                        td { (t.unique_key.as_deref().unwrap_or("")) }
                        td { (since(Some(t.created_at), now)) }
                        td.muted { (brief(t.errors.last().map_or("", |e| e.message.as_str()), 120)) }
                    }
                }
            }
        }
        @if tasks.is_empty() { p.muted { "No tasks." } }
    }
}

pub async fn page(
    caller: Caller,
    State(st): State<AppState>,
    Path(queue): Path<String>,
    Query(f): Query<TaskFilter>,
) -> Result<Response, super::PageError> {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    if let Some(s) = non_empty(&f.search) {
        if let Ok(id) = s.parse::<TaskId>() {
            return Ok(Redirect::to(&format!("/tasks/{id}")).into_response());
        }
    }
    let stats = st.service.queue_stats(&caller, &queue).await?;
    let q = &stats.queue;
    let state = match non_empty(&f.state) {
        Some(s) => Some(s.parse::<TaskState>().map_err(ApiError::invalid)?),
        None => None,
    };
    let search = non_empty(&f.search);
    let filter = ListFilter {
        state,
        kind: non_empty(&f.kind).map(str::to_owned),
        limit: if search.is_some() { SEARCHED } else { SHOWN },
        before: None,
        unique_key: None,
    };
    let mut tasks = st.service.list(&caller, &queue, filter).await?.tasks;
    if let Some(key) = search {
        tasks.retain(|t| t.unique_key.as_deref() == Some(key));
    }
    let now = st.clock.now();
    let may_update = caller.can(actions::QUEUES_UPDATE, &queue_resource(&queue));
    let s = &q.settings;
    let body = html! {
        h1 {
            "Queue " (q.name)
            @if s.paused { " " span.badge { "paused" } }
        }
        div.grid {
            div.card id="counts" hx-get={ "/queues/" (q.name) } hx-select="#counts"
                hx-swap="outerHTML" hx-trigger="rota-change from:body" {
                @for st in TaskState::ALL {
                    div { (badge(st)) " " strong data-state=(st.as_str()) { (q.counts.get(st)) } }
                }
                div.muted { "oldest ready: " (q.oldest_ready_age_ms.map_or("-".into(), |ms| age(ms as i64))) }
                div.muted { "worker last asked: " (since(q.last_claim_at, now)) }
                @if let Some(n) = q.shard {
                    div.muted { "shard " (n) }
                }
            }
            div.card {
                div { "max attempts " strong { (s.max_attempts) } }
                div { "lease " strong { (age(s.lease_ms as i64)) } }
                div { "backoff " strong { (age(s.backoff.base_ms as i64)) " – " (age(s.backoff.max_ms as i64)) } }
                div { "keeps finished tasks " strong { (age(s.retention_ms as i64)) } }
                @if let Some(u) = &s.callback_url { div { "results to " (u) } }
                @if may_update {
                    p {
                        @if s.paused {
                            button.primary hx-post={ "/queues/" (q.name) "/resume" } { "Resume" }
                        } @else {
                            button hx-post={ "/queues/" (q.name) "/pause" } { "Pause" }
                        }
                    }
                }
            }
        }
        (super::flow::section(&stats, now, may_update))
        h2 { "Tasks" }
        form.filters method="get" {
            label { "State" select name="state" {
                option value="" { "any" }
                @for st in TaskState::ALL {
                    option value=(st.as_str()) selected[state == Some(st)] { (st.as_str()) }
                }
            } }
            label { "Kind" input name="kind" value=(f.kind.as_deref().unwrap_or("")); }
            label { "Task id or unique key" input name="search" value=(search.unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        (tasks_table(&tasks, now, false))
    };
    // A queue page is no entry of the navigation; none is marked.
    Ok(layout::page(&cx, &q.name, "", true, body).into_response())
}

async fn set_paused(caller: Caller, st: AppState, queue: String, paused: bool) -> Response {
    match st.service.set_paused(&caller, &queue, paused).await {
        Ok(_) => reload(),
        Err(e) => e.into_response(),
    }
}

pub async fn pause(caller: Caller, State(st): State<AppState>, Path(q): Path<String>) -> Response {
    set_paused(caller, st, q, true).await
}

pub async fn resume(caller: Caller, State(st): State<AppState>, Path(q): Path<String>) -> Response {
    set_paused(caller, st, q, false).await
}

#[derive(Deserialize, Default)]
pub struct DeadQuery {
    queue: Option<String>,
}

pub async fn dead(
    caller: Caller,
    State(st): State<AppState>,
    Query(dq): Query<DeadQuery>,
) -> PageResult {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    let queues = st.service.queues(&caller).await?;
    let chosen = non_empty(&dq.queue).map(str::to_owned).or_else(|| {
        queues
            .iter()
            .find(|q| q.counts.dead > 0)
            .map(|q| q.name.clone())
    });
    let now = st.clock.now();
    let body = html! {
        h1 { "Dead letters" }
        form.filters method="get" {
            label { "Queue" select name="queue" onchange="this.form.submit()" {
                @for q in &queues {
                    option value=(q.name) selected[chosen.as_deref() == Some(q.name.as_str())] {
                        (q.name) " (" (q.counts.dead) ")"
                    }
                }
            } }
        }
        @if let Some(queue) = &chosen {
            @let filter = ListFilter { state: Some(TaskState::Dead), limit: SHOWN, ..Default::default() };
            @let tasks = st.service.list(&caller, queue, filter).await?.tasks;
            @let may_retry = caller.can(actions::TASKS_RETRY, &queue_resource(queue));
            @let may_purge = caller.can(actions::QUEUES_PURGE, &queue_resource(queue));
            form id="dead" hx-post=[may_retry.then_some("/dead/requeue")] {
                input type="hidden" name="queue" value=(queue);
                (tasks_table(&tasks, now, may_retry))
                p {
                    @if may_retry && !tasks.is_empty() {
                        button.primary type="submit" { "Requeue selected" } " "
                        button type="submit" name="all" value="1" { "Requeue all" } " "
                    }
                    @if may_purge && !tasks.is_empty() {
                        button.danger hx-post="/dead/purge" hx-confirm="Delete every dead task of this queue?"
                            { "Purge" }
                    }
                }
            }
        } @else {
            p.muted { "No dead tasks." }
        }
    };
    Ok(layout::page(&cx, "Dead letters", "/dead", true, body))
}

/// The form's fields: the queue, the ids checked (repeated), `all`.
fn fields(form: &[(String, String)]) -> (Option<&str>, Vec<&str>, bool) {
    let queue = form
        .iter()
        .find(|(k, _)| k == "queue")
        .map(|(_, v)| v.as_str());
    let ids = form
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v.as_str())
        .collect();
    (queue, ids, form.iter().any(|(k, v)| k == "all" && v == "1"))
}

pub async fn requeue(
    caller: Caller,
    State(st): State<AppState>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (queue, ids, all) = fields(&form);
    let Some(queue) = queue else {
        return ApiError::invalid("queue: name the queue").into_response();
    };
    let ids: Vec<TaskId> = if all {
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let filter = ListFilter {
                state: Some(TaskState::Dead),
                kind: None,
                limit: st.config.limits.max_list,
                before,
                unique_key: None,
            };
            match st.service.list(&caller, queue, filter).await {
                Ok(page) => {
                    out.extend(page.tasks.iter().map(|t| t.id));
                    match page.next_cursor {
                        Some(c) => before = Some(c),
                        None => break,
                    }
                }
                Err(e) => return e.into_response(),
            }
        }
        out
    } else {
        match ids.iter().map(|s| s.parse()).collect::<Result<_, _>>() {
            Ok(ids) => ids,
            Err(_) => return ApiError::invalid("id: not a task id").into_response(),
        }
    };
    for id in ids {
        if let Err(e) = st.service.change(&caller, id, Change::Retry).await {
            return e.into_response();
        }
    }
    reload()
}

pub async fn purge(
    caller: Caller,
    State(st): State<AppState>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let Some(queue) = fields(&form).0 else {
        return ApiError::invalid("queue: name the queue").into_response();
    };
    match st.service.purge(&caller, queue, TaskState::Dead).await {
        Ok(_) => reload(),
        Err(e) => e.into_response(),
    }
}
