//! A queue page's flow control: its limits and what they hold back, its busiest groups, and
//! forms to change the queue's limits and one group's settings. Rates are written as people
//! write them (`100/1s`, `5000/1h`; `rota_core::flow::Rate`'s `FromStr`); an empty field
//! lifts a limit. A refused change is shown in the page's `#flow-error`, not as a reload.

use super::layout::age;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use rota_core::flow::{GroupInfo, GroupSettings, Hold, Rate};
use rota_core::{QueuePatch, QueueStats, Timestamp};
use serde::Deserialize;

fn limit_text(c: Option<u32>) -> String {
    c.map_or_else(String::new, |c| c.to_string())
}

fn rate_text(r: Option<Rate>) -> String {
    r.map_or_else(String::new, |r| r.to_string())
}

fn hold_text(h: Option<Hold>) -> &'static str {
    match h {
        Some(Hold::Paused) => "paused",
        Some(Hold::Concurrency) => "at its concurrency",
        Some(Hold::Rate) => "held by its rate",
        None => "",
    }
}

/// The flow section of a queue's page.
pub fn section(q: &QueueStats, now: Timestamp, may_update: bool) -> Markup {
    let (s, f) = (&q.queue.settings, &q.flow);
    let name = &q.queue.name;
    html! {
        h2 { "Flow control" }
        div id="flow-error" .error role="alert" {}
        div.grid id="flow" hx-get={ "/queues/" (name) } hx-select="#flow"
            hx-swap="outerHTML" hx-trigger="rota-change from:body" {
            div.card {
                div { "running " strong data-flow="running" { (f.running) }
                    @if let Some(c) = f.concurrency { " of " strong data-flow="concurrency" { (c) } } }
                div { "rate " strong { @if let Some(r) = s.rate { (r) } @else { "none" } } }
                div { "per group: concurrency " strong { (s.group_concurrency.map_or("none".into(), |c| c.to_string())) }
                    ", rate " strong { @if let Some(r) = s.group_rate { (r) } @else { "none" } } }
                @if let Some(t) = f.next_start_at {
                    div.muted { "next start by the rate: in " (age((t.0 - now.0).max(0))) }
                }
                div { "held back " strong data-flow="held" { (f.held.total()) } }
                @for (limit, n) in f.held.by_limit() {
                    @if n > 0 { div.muted data-held=(limit) { (limit.replace('_', " ")) ": " (n) } }
                }
            }
            @if may_update {
                form.card.filters hx-post={ "/queues/" (name) "/limits" } {
                    label { "Concurrency" input name="concurrency" value=(limit_text(s.concurrency)) placeholder="none"; }
                    label { "Rate" input name="rate" value=(rate_text(s.rate)) placeholder="e.g. 100/1s"; }
                    label { "Group concurrency" input name="group_concurrency" value=(limit_text(s.group_concurrency)) placeholder="none"; }
                    label { "Group rate" input name="group_rate" value=(rate_text(s.group_rate)) placeholder="e.g. 5000/1h"; }
                    button type="submit" { "Set limits" }
                }
            }
        }
        h3 { "Groups" }
        p.muted {
            (f.groups_seen) " groups"
            @if !f.groups_complete { " (the first by name; more exist)" }
            @if let (Some(g), Some(m)) = (&f.longest_waiting_group, f.median_group_wait_ms) {
                "; longest wait " (g.group) " " (g.oldest_ready_age_ms.map_or("-".into(), |ms| age(ms as i64)))
                ", median " (age(m as i64))
            }
        }
        (groups_table(name, &f.busiest_groups, may_update))
        @if may_update {
            form.filters hx-post={ "/queues/" (name) "/group" } {
                label { "Group" input name="group" required; }
                (group_fields(&GroupSettings::default()))
                button type="submit" { "Set group" }
            }
        }
    }
}

fn group_fields(g: &GroupSettings) -> Markup {
    html! {
        label { "Concurrency" input name="concurrency" value=(limit_text(g.concurrency)) placeholder="queue's" size="6"; }
        label { "Rate" input name="rate" value=(rate_text(g.rate)) placeholder="queue's" size="10"; }
        label { "Weight" input name="weight" value=(g.weight) size="4"; }
        label { "Paused" input type="checkbox" name="paused" value="1" checked[g.paused]; }
    }
}

fn groups_table(queue: &str, groups: &[GroupInfo], may_update: bool) -> Markup {
    html! {
        table id="groups" {
            thead { tr {
                th { "Group" } th.num { "Ready" } th.num { "Running" } th { "Concurrency" }
                th { "Rate" } th { "Held" } th { "Oldest ready" }
                @if may_update { th { "Own settings" } }
            } }
            tbody {
                @for g in groups {
                    tr data-group=(g.group) {
                        td { (g.group) }
                        td.num { (g.ready) }
                        td.num { (g.running) }
                        td { (g.concurrency.map_or("-".into(), |c| c.to_string())) }
                        td { (g.rate.map_or("-".into(), |r| r.to_string())) }
                        td { (hold_text(g.held_by)) }
                        td { (g.oldest_ready_age_ms.map_or("-".into(), |ms| age(ms as i64))) }
                        @if may_update {
                            td { form.inline hx-post={ "/queues/" (queue) "/group" } {
                                input type="hidden" name="group" value=(g.group);
                                (group_fields(&g.settings))
                                button type="submit" { "Set" }
                            } }
                        }
                    }
                }
            }
        }
        @if groups.is_empty() { p.muted { "No group has ready tasks." } }
    }
}

/// A refused change, shown in `#flow-error` instead of reloading the page.
fn refused(e: ApiError) -> Response {
    let body = html! { (e.message) }.into_string();
    (
        StatusCode::OK,
        [("hx-retarget", "#flow-error"), ("hx-reswap", "innerHTML")],
        body,
    )
        .into_response()
}

/// An empty field is none; else a whole number.
fn parse_limit(field: &str, v: &str) -> Result<Option<u32>, ApiError> {
    let v = v.trim();
    if v.is_empty() || v == "none" {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| ApiError::invalid(format!("{field} `{v}` is not a whole number")))
}

fn parse_rate(field: &str, v: &str) -> Result<Option<Rate>, ApiError> {
    let v = v.trim();
    if v.is_empty() || v == "none" {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

#[derive(Deserialize)]
pub struct LimitsForm {
    #[serde(default)]
    concurrency: String,
    #[serde(default)]
    rate: String,
    #[serde(default)]
    group_concurrency: String,
    #[serde(default)]
    group_rate: String,
}

pub async fn set_limits(
    caller: Caller,
    State(st): State<AppState>,
    Path(queue): Path<String>,
    Form(f): Form<LimitsForm>,
) -> Response {
    let patch = (|| {
        Ok::<_, ApiError>(QueuePatch {
            concurrency: Some(parse_limit("concurrency", &f.concurrency)?),
            rate: Some(parse_rate("rate", &f.rate)?),
            group_concurrency: Some(parse_limit("group concurrency", &f.group_concurrency)?),
            group_rate: Some(parse_rate("group rate", &f.group_rate)?),
            ..Default::default()
        })
    })();
    let done = match patch {
        Ok(p) => st
            .service
            .update_queue(&caller, &queue, p)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match done {
        Ok(()) => super::queue::reload(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
pub struct GroupForm {
    group: String,
    #[serde(default)]
    concurrency: String,
    #[serde(default)]
    rate: String,
    #[serde(default)]
    weight: String,
    /// Present (`1`) when the box is checked.
    #[serde(default)]
    paused: Option<String>,
}

pub async fn set_group(
    caller: Caller,
    State(st): State<AppState>,
    Path(queue): Path<String>,
    Form(f): Form<GroupForm>,
) -> Response {
    let settings = (|| {
        Ok::<_, ApiError>(GroupSettings {
            concurrency: parse_limit("concurrency", &f.concurrency)?,
            rate: parse_rate("rate", &f.rate)?,
            paused: f.paused.is_some(),
            weight: parse_limit("weight", &f.weight)?.unwrap_or(1),
        })
    })();
    let done = match settings {
        Ok(s) => st
            .service
            .put_group(&caller, &queue, f.group.trim(), s)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match done {
        Ok(()) => super::queue::reload(),
        Err(e) => refused(e),
    }
}
