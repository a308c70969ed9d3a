//! The overview: every queue with its counts, the last hour's outcomes, how long the oldest
//! ready task has waited and when a worker last asked (queues with work and no worker are
//! marked), and the tenant's outcomes per minute as a chart. It refreshes itself from the event
//! stream.

use super::layout::{self, age, since};
use super::{Ctx, PageResult};
use crate::auth::Caller;
use crate::AppState;
use axum::extract::State;
use axum::response::Html;
use maud::{html, Markup};
use rota_core::events::EventType;
use rota_core::TaskState;
use std::collections::BTreeMap;

/// A queue with ready tasks and no worker asking for this long is marked.
const IDLE_MS: i64 = 60_000;

pub async fn page(caller: Caller, State(st): State<AppState>) -> PageResult {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    let body = html! {
        h1 { "Queues" }
        div id="overview" hx-get="/fragments/overview" hx-trigger="rota-change from:body"
            hx-swap="innerHTML" {
            (content(&cx).await?)
        }
    };
    Ok(layout::page(&cx, "Overview", "/", true, body))
}

pub async fn fragment(caller: Caller, State(st): State<AppState>) -> PageResult {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    Ok(Html(content(&cx).await?.into_string()))
}

async fn content(cx: &Ctx<'_>) -> Result<Markup, crate::error::ApiError> {
    let now = cx.st.clock.now();
    let queues = cx.st.service.queues(cx.caller).await?;
    let activity = cx
        .st
        .store
        .diagnose(
            &cx.caller.tenant,
            now.plus_ms(-3_600_000),
            now.plus_ms(365 * 86_400_000),
        )
        .await?;
    let mut minutes: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for q in &queues {
        if let Some(a) = activity.queues.get(&q.name) {
            for (m, (ok, failed)) in &a.minutes {
                let e = minutes.entry(*m).or_default();
                e.0 += ok;
                e.1 += failed;
            }
        }
    }
    let states = [
        TaskState::Waiting,
        TaskState::Ready,
        TaskState::Scheduled,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Dead,
        TaskState::Cancelled,
    ];
    Ok(html! {
        @if queues.is_empty() {
            p.muted { "No queues yet. Enqueue a task: rota task add <queue> --kind <kind>" }
        } @else {
            table id="queues" {
                thead { tr {
                    th { "Queue" }
                    @for s in states { th.num { (s.as_str()) } }
                    th.num { "Succeeded/h" } th.num { "Failed/h" }
                    th { "Oldest ready" } th { "Worker last asked" }
                } }
                tbody {
                    @for q in &queues {
                        @let a = activity.queues.get(&q.name);
                        @let count = |t| a.map_or(0, |a| a.count(t));
                        @let idle = q.counts.ready > 0 && !q.settings.paused
                            && q.last_claim_at.is_none_or(|t| now.0 - t.0 >= IDLE_MS);
                        tr class=[idle.then_some("alert")] data-queue=(q.name) {
                            td {
                                a href={ "/queues/" (q.name) } { (q.name) }
                                @if q.settings.paused { " " span.badge { "paused" } }
                                @if idle { " " span.badge.dead title="ready tasks and no worker asking" { "no worker" } }
                            }
                            @for s in states {
                                td.num data-state=(s.as_str()) { (q.counts.get(s)) }
                            }
                            td.num { (count(EventType::Succeeded)) }
                            td.num { (count(EventType::Failed) + count(EventType::Dead)) }
                            td { (q.oldest_ready_age_ms.map_or("-".into(), |ms| age(ms as i64))) }
                            td { (since(q.last_claim_at, now)) }
                        }
                    }
                }
            }
            h2 { "Outcomes per minute, last hour" }
            (layout::chart("chart-outcomes", &minutes, now))
            @if activity.truncated { p.muted { "The newest events of the hour only." } }
        }
    })
}
