//! Workers that asked for work recently, schedules, webhooks with their latest deliveries,
//! inbound webhooks (hooks) with their latest requests, keys and roles: each shown only as far
//! as the caller may read it.

use super::layout::{self, since};
use super::{Ctx, PageResult};
use crate::auth::Caller;
use crate::hooks::Outcome;
use crate::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use maud::{html, Markup};
use rota_core::auth::{actions, RoleInfo, BUILTIN_ROLES};
use rota_core::Timestamp;

pub async fn workers(caller: Caller, State(st): State<AppState>) -> PageResult {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    let now = st.clock.now();
    let mut asked: Vec<_> = st
        .service
        .observed()
        .claims_since(now.plus_ms(-crate::doctor::observed::KEPT_MS))
        .into_iter()
        .filter(|(t, q, _)| {
            *t == caller.tenant
                && caller.can(actions::QUEUES_READ, &rota_core::auth::queue_resource(q))
        })
        .collect();
    asked.sort_by_key(|(_, _, c)| std::cmp::Reverse(c.at));
    let processes = if caller.can(actions::WORKERS_READ, "workers/*") {
        st.service.workers(&caller)?
    } else {
        Vec::new()
    };
    let body = html! {
        h1 { "Workers" }
        h2 { "Asked for work in the last hour (this server)" }
        table id="claims" {
            thead { tr { th { "Queue" } th { "Credential" } th { "Kinds" } th.num { "Got" } th { "When" } } }
            tbody {
                @for (_, q, c) in &asked {
                    tr {
                        td { a href={ "/queues/" (q) } { (q) } }
                        td { (c.by) }
                        td { @if c.kinds.is_empty() { "any" } @else { (c.kinds.join(", ")) } }
                        td.num { (c.got) }
                        td { (since(Some(c.at), now)) }
                    }
                }
            }
        }
        @if asked.is_empty() { p.muted { "No worker asked for work in the last hour." } }
        h2 { "Faktory worker processes" }
        @if processes.is_empty() { p.muted { "None connected." } } @else {
            table { thead { tr { th { "wid" } th { "host" } th.num { "pid" } th { "connected" } th { "last beat" } } }
                tbody { @for w in &processes { tr {
                    td { (w.wid) } td { (w.hostname) } td.num { (w.pid) }
                    td { (since(Some(w.connected_at), now)) } td { (since(w.last_beat, now)) }
                } } }
            }
        }
    };
    Ok(layout::page(&cx, "Workers", "/workers", false, body))
}

pub async fn schedules(caller: Caller, State(st): State<AppState>) -> PageResult {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    let list = st.service.schedules(&caller).await?;
    let now = st.clock.now();
    let body = html! {
        h1 { "Schedules" }
        @if list.is_empty() { p.muted { "No schedules. rota schedule put <name> --queue Q --cron '0 3 * * *'" } } @else {
            table id="schedules" {
                thead { tr { th { "Name" } th { "Queue" } th { "When" } th { "Next run" } th { "Last runs" } } }
                tbody { @for s in &list {
                    @let r = &s.record;
                    tr {
                        td { (r.name) @if r.spec.paused { " " span.badge { "paused" } } }
                        td { a href={ "/queues/" (r.spec.queue) } { (r.spec.queue) } }
                        td { (r.spec.cron.clone().unwrap_or_else(|| format!("every {}", layout::age(r.spec.every_ms.unwrap_or(0) as i64)))) " " span.muted { (r.spec.timezone) } }
                        td { (r.next_run_at.map_or("-".into(), |t| t.to_string())) }
                        td { @for run in r.runs.iter().take(5) {
                            div {
                                (since(Some(run.fired_at), now)) ": "
                                @if let Some(id) = run.task_id { a href={ "/tasks/" (id) } { (id) } }
                                @if let Some(why) = &run.skipped { span.muted { (why) } }
                            }
                        } }
                    }
                } }
            }
        }
    };
    Ok(layout::page(&cx, "Schedules", "/schedules", false, body))
}

pub async fn webhooks(caller: Caller, State(st): State<AppState>) -> PageResult {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    let hooks = st.service.webhooks(&caller).await?;
    let mut rows = Vec::new();
    for w in hooks {
        let recent = st.service.deliveries(&caller, &w.id, None, 5, None).await?;
        rows.push((w, recent));
    }
    let now = st.clock.now();
    let body = html! {
        h1 { "Webhooks" }
        @if rows.is_empty() { p.muted { "No webhooks. rota webhook add <url> --events 'task.*'" } }
        @for (w, recent) in &rows {
            div.card id={ "webhook-" (w.id) } {
                h2 { (w.id) " " @if w.enabled { span.badge.succeeded { "enabled" } } @else { span.badge.dead { "disabled" } } }
                div { (w.url) }
                div.muted { "events: " (w.filter.types.join(", ")) }
                @if let Some(r) = &w.disabled_reason { div.error { (r) } }
                @if let Some(f) = w.failing_since { div.error { "failing since " (since(Some(f), now)) } }
                table { tbody { @for d in recent { tr {
                    td { (d.id) } td { (d.event.event_type) } td { (d.state.as_str()) }
                    td.num { (d.attempts) } td { (d.last_status.map_or("-".into(), |s| s.to_string())) }
                    td.muted { (layout::brief(d.last_error.as_deref().unwrap_or(""), 120)) }
                } } } }
            }
        }
    };
    Ok(layout::page(&cx, "Webhooks", "/webhooks", false, body))
}

/// Requests shown per hook (the server keeps its last 50 of each).
const HOOK_REQUESTS_SHOWN: usize = 10;

pub async fn hooks(caller: Caller, State(st): State<AppState>, headers: HeaderMap) -> PageResult {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    let base = crate::api::hooks::base_url(&st, &headers);
    let mut rows = Vec::new();
    for h in st.service.hooks(&caller) {
        let recent = st.service.hook_requests(&caller, &h.id)?;
        rows.push((h, recent));
    }
    let now = st.clock.now();
    let body = html! {
        h1 { "Inbound webhooks" }
        @if rows.is_empty() {
            p.muted { "None to show (seeing hooks takes hooks:read). \
                       rota hook create <name> --queue Q --kind K --verify github" }
        }
        @for (h, recent) in &rows {
            div.card id={ "hook-" (h.id) } {
                h2 { (h.name) " "
                     @if h.enabled { span.badge.succeeded { "enabled" } } @else { span.badge.dead { "disabled" } }
                     " " span.badge { (h.verify.as_str()) } }
                div { code { (base) "/hooks/" (h.id) } }
                div.muted { "tasks of kind " (h.kind) " in queue " a href={ "/queues/" (h.queue) } { (h.queue) }
                    @if let Some(o) = &h.owner { ", enqueued as " (o.label) } }
                @if let Some(d) = &h.description { div { (d) } }
                @if let Some(until) = h.previous_until.filter(|u| *u > now) {
                    div.muted { "old secret accepted " (ahead(until, now)) " (until " (until) ")" }
                }
                @if recent.is_empty() { p.muted { "No requests on this server yet." } } @else {
                    table.requests {
                        thead { tr { th { "When" } th { "Outcome" } th.num { "Status" } th { "Delivery" } th { "Task" } th { "Reason" } } }
                        tbody { @for r in recent.iter().take(HOOK_REQUESTS_SHOWN) { tr {
                            td { (since(Some(r.at), now)) }
                            td { @match r.outcome {
                                Outcome::Received => { span.badge.succeeded { "received" } }
                                Outcome::Duplicate => { span.badge { "duplicate" } }
                                Outcome::Rejected => { span.badge.dead { "rejected" } }
                            } }
                            td.num { (r.status) }
                            td { code { (r.delivery.as_deref().unwrap_or("-")) } }
                            td { @if let Some(t) = r.task_id { a href={ "/tasks/" (t) } { (t) } } @else { "-" } }
                            td.muted { (layout::brief(r.reason.as_deref().unwrap_or(""), 120)) }
                        } } }
                    }
                    @if recent.len() > HOOK_REQUESTS_SHOWN {
                        p.muted { "The newest " (HOOK_REQUESTS_SHOWN) " of " (recent.len()) "; rota hook requests " (h.id) " shows them all." }
                    }
                }
            }
        }
        @if !rows.is_empty() {
            p.muted { "Requests are the ones this server answered; every server's are in the event log as hook.received and hook.rejected." }
        }
    };
    Ok(layout::page(&cx, "Inbound webhooks", "/hooks", false, body))
}

pub async fn keys(caller: Caller, State(st): State<AppState>) -> PageResult {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    let now = st.clock.now();
    let keys: Vec<_> = if caller.can(actions::KEYS_READ, "keys/*") {
        st.auth
            .keys(&caller.tenant)
            .into_iter()
            .filter(|k| caller.can(actions::KEYS_READ, &format!("keys/{}", k.id)))
            .collect()
    } else {
        Vec::new()
    };
    let mut roles: Vec<RoleInfo> = Vec::new();
    if caller.can(actions::ROLES_READ, "roles/*") {
        roles.extend(BUILTIN_ROLES.iter().filter_map(|n| RoleInfo::builtin(n)));
        roles.extend(
            st.auth
                .roles(&caller.tenant)
                .into_iter()
                .map(RoleInfo::from),
        );
    }
    let body = html! {
        h1 { "Keys" }
        @if keys.is_empty() { p.muted { "None to show (reading keys takes keys:read)." } } @else {
            table id="keys" {
                thead { tr { th { "Key" } th { "Name" } th { "Roles" } th { "Queues" } th { "Last used" } th { "Expires" } th { "Rotated" } th { "State" } } }
                tbody { @for k in &keys { tr {
                    td { code { (k.id) } } td { (k.name.as_deref().unwrap_or("")) }
                    td { (k.roles.join(", ")) } td { (k.queues.join(", ")) }
                    td { (since(k.last_used_at, now)) }
                    td { (expiry(k.expires_at, now)) }
                    td { @if let Some(r) = k.rotated_at { (since(Some(r), now)) } @else { "never" }
                         @if let Some(until) = k.previous_until.filter(|u| *u > now) {
                             br; span.muted { "old secret valid " (ahead(until, now)) } } }
                    td { @if k.revoked_at.is_some() { span.badge.dead { "revoked" } }
                         @else if k.expires_at.is_some_and(|e| e <= now) { span.badge { "expired" } }
                         @else { span.badge.succeeded { "active" } } }
                } } }
            }
        }
        h1 { "Roles" }
        @if roles.is_empty() { p.muted { "None to show (reading roles takes roles:read)." } }
        @for r in &roles {
            div.card {
                strong { (r.name) } @if r.builtin { " " span.badge { "built-in" } }
                ul { @for rule in &r.rules { li { code { (rule.resource) ":" (rule.action) ":" (serde_json::to_value(rule.effect).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) } } } }
            }
        }
    };
    Ok(layout::page(&cx, "Keys & roles", "/keys", false, body))
}

/// When a key expires: `in 3d 4h` (a warning within a week), `expired 2h ago`, or `never`.
fn expiry(at: Option<Timestamp>, now: Timestamp) -> Markup {
    let week = crate::doctor::keys::EXPIRING_WITHIN_MS;
    match at {
        None => html! { "never" },
        Some(e) if e <= now => html! { "expired " (since(Some(e), now)) },
        Some(e) if e.0 - now.0 <= week => html! { span.badge { (ahead(e, now)) } },
        Some(e) => html! { (ahead(e, now)) },
    }
}

/// `in 3d 4h`.
fn ahead(at: Timestamp, now: Timestamp) -> String {
    format!("in {}", layout::age(at.0 - now.0))
}
