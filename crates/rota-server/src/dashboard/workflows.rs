//! Workflows: the recent ones with their states, and one drawn as a graph (a column per step,
//! each task a box in its state's colour, an arrow from each dependency), with its tasks as a
//! table; both refresh themselves from the event stream. Cancel for those who may.

use super::layout::{self, badge, since};
use super::{Ctx, PageResult};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};
use rota_core::auth::{actions, queue_resource};
use rota_core::workflow::{Workflow, WorkflowState};
use rota_core::TaskId;
use std::collections::HashMap;

/// Workflows the list shows.
const LISTED: usize = 100;
/// Past this many tasks a workflow is shown as its table only.
const MAX_DRAWN: usize = 300;
const COL_W: i64 = 190;
const ROW_H: i64 = 36;
const BOX_W: i64 = 150;
const BOX_H: i64 = 24;

fn parse(id: &str) -> Result<TaskId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not a workflow id")))
}

fn state_name(s: WorkflowState) -> &'static str {
    match s {
        WorkflowState::Running => "running",
        WorkflowState::Succeeded => "succeeded",
        WorkflowState::Failed => "dead",
        WorkflowState::Cancelled => "cancelled",
    }
}

pub async fn list(caller: Caller, State(st): State<AppState>) -> PageResult {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    let now = st.clock.now();
    let all = st.service.workflows(&caller, None, LISTED).await?;
    let body = html! {
        h1 { "Workflows" }
        @if all.is_empty() {
            p.muted { "No workflows yet. Submit one: rota workflow submit workflow.json" }
        } @else {
            table id="workflows" {
                thead { tr { th { "Workflow" } th { "Kind" } th { "State" } th { "Created" } th { "Tasks" } } }
                tbody {
                    @for w in &all {
                        tr {
                            td { a href={ "/workflows/" (w.id) } { code { (w.id) } } }
                            td { (format!("{:?}", w.kind).to_lowercase()) }
                            td { span class={ "badge " (state_name(w.state)) } { (state_name(w.state)) } }
                            td { (since(Some(w.created_at), now)) }
                            td { (w.counts.summary()) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&cx, "Workflows", "/workflows", true, body))
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
    let wf = st.service.workflow(&caller, parse(&id)?).await?;
    let may_cancel = wf.state == WorkflowState::Running
        && wf
            .tasks
            .iter()
            .filter(|t| !t.task.state.is_final())
            .all(|t| caller.can(actions::TASKS_CANCEL, &queue_resource(&t.task.queue)));
    let body = html! {
        h1 { "Workflow " code { (wf.id) } }
        @if let Some(open) = wf.open {
            p.muted {
                @if open {
                    "An open batch: members may be added until it is closed (POST /v1/batches/"
                    (wf.id) "/close); its callback waits for the close."
                } @else {
                    "A batch, closed: its callback runs once every member has ended."
                }
            }
        }
        p {
            @if may_cancel {
                button.danger hx-post={ "/workflows/" (wf.id) "/cancel" }
                    hx-confirm="Cancel every task of this workflow that has not ended?" { "Cancel" }
            }
        }
        div id="workflow" hx-get={ "/fragments/workflows/" (wf.id) }
            hx-trigger="rota-change from:body" hx-swap="innerHTML" {
            (content(&wf))
        }
    };
    Ok(layout::page(&cx, "Workflow", "/workflows", true, body))
}

pub async fn fragment(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> PageResult {
    let wf = st.service.workflow(&caller, parse(&id)?).await?;
    Ok(Html(content(&wf).into_string()))
}

pub async fn cancel(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let id = match parse(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match st.service.cancel_workflow(&caller, id).await {
        Ok(_) => ([("hx-refresh", "true")], StatusCode::NO_CONTENT).into_response(),
        Err(e) => e.into_response(),
    }
}

fn content(wf: &Workflow) -> Markup {
    let names: HashMap<TaskId, &str> = wf
        .tasks
        .iter()
        .map(|t| (t.task.id, t.name.as_str()))
        .collect();
    html! {
        p { span class={ "badge " (state_name(wf.state)) } { (state_name(wf.state)) } " " (wf.counts.summary()) }
        @if wf.tasks.len() <= MAX_DRAWN { (graph(wf)) }
        @else { p.muted { (wf.tasks.len()) " tasks: too many to draw; their table follows." } }
        table id="workflow-tasks" {
            thead { tr { th { "Task" } th { "State" } th { "Queue" } th { "Kind" } th { "After" } } }
            tbody {
                @for t in &wf.tasks {
                    tr {
                        td { a href={ "/tasks/" (t.task.id) } { (t.name) } }
                        td { (badge(t.task.state)) }
                        td { a href={ "/queues/" (t.task.queue) } { (t.task.queue) } }
                        td { (t.task.kind) }
                        td { (t.task.depends_on.iter().map(|d| names.get(d).copied().unwrap_or("?")).collect::<Vec<_>>().join(", ")) }
                    }
                }
            }
        }
    }
}

/// Each task's column: the longest chain of dependencies (within the workflow) before it.
fn columns(wf: &Workflow) -> Vec<usize> {
    let index: HashMap<TaskId, usize> = wf
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.task.id, i))
        .collect();
    let mut col = vec![0usize; wf.tasks.len()];
    // Submission order need not put dependencies first: relax until nothing moves (a graph
    // is acyclic, so at most one pass per task).
    for _ in 0..wf.tasks.len() {
        let mut moved = false;
        for (i, t) in wf.tasks.iter().enumerate() {
            for d in &t.task.depends_on {
                if let Some(&j) = index.get(d) {
                    if col[i] < col[j] + 1 {
                        col[i] = col[j] + 1;
                        moved = true;
                    }
                }
            }
        }
        if !moved {
            break;
        }
    }
    col
}

/// The workflow as an SVG: boxes by column, arrows from dependencies.
fn graph(wf: &Workflow) -> Markup {
    let col = columns(wf);
    let mut row_in = HashMap::<usize, i64>::new();
    let mut at = Vec::with_capacity(wf.tasks.len());
    for c in &col {
        let r = row_in.entry(*c).or_default();
        at.push((*c as i64 * COL_W + 10, *r * ROW_H + 10));
        *r += 1;
    }
    let index: HashMap<TaskId, usize> = wf
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.task.id, i))
        .collect();
    let width = (col.iter().max().copied().unwrap_or(0) as i64 + 1) * COL_W + 20;
    let height = row_in.values().max().copied().unwrap_or(1) * ROW_H + 20;
    html! {
        svg.graph id="workflow-graph" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img"
            aria-label="the workflow's tasks, each after the tasks it depends on" {
            @for (i, t) in wf.tasks.iter().enumerate() {
                @for d in &t.task.depends_on {
                    @if let Some(&j) = index.get(d) {
                        line.edge x1=(at[j].0 + BOX_W) y1=(at[j].1 + BOX_H / 2)
                            x2=(at[i].0) y2=(at[i].1 + BOX_H / 2) {}
                    }
                }
            }
            @for (i, t) in wf.tasks.iter().enumerate() {
                a href={ "/tasks/" (t.task.id) } {
                    rect class={ "node " (t.task.state.as_str()) } x=(at[i].0) y=(at[i].1)
                        width=(BOX_W) height=(BOX_H) rx="4" {
                        title { (t.name) ": " (t.task.state.as_str()) }
                    }
                    text x=(at[i].0 + 8) y=(at[i].1 + 16) { (cut(&t.name, 18)) }
                }
            }
        }
    }
}

/// At most `max` characters of a name, with an ellipsis when cut (the box's title has it all).
fn cut(name: &str, max: usize) -> String {
    match name.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &name[..i]),
        None => name.to_owned(),
    }
}
