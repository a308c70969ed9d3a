//! The audit page: the tenant's administrative changes (every tenant's for an admin), newest
//! first, filtered by action or actor, a page at a time.

use super::layout::{self, since};
use super::{Ctx, PageResult};
use crate::auth::Caller;
use crate::AppState;
use axum::extract::{Query, State};
use maud::html;
use rota_core::audit::{AuditCursor, AuditFilter};
use rota_core::auth::actions;
use serde::Deserialize;

/// Entries per page.
const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    cursor: String,
}

fn given(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.chars().take(256).collect())
}

pub async fn page(
    caller: Caller,
    State(st): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let cx = Ctx {
        st: &st,
        caller: &caller,
    };
    if !caller.can(actions::AUDIT_READ, crate::audit::RESOURCE) {
        let body = html! {
            h1 { "Audit log" }
            p.muted { "Reading the audit log takes audit:read (the admin and tenant-admin roles)." }
        };
        return Ok(layout::page(&cx, "Audit log", "/audit", false, body));
    }
    // An admin sees its acting tenant's entries here, as every other page shows one tenant.
    let filter = AuditFilter {
        tenant: Some(caller.tenant.clone()),
        actor: given(&q.actor),
        action: given(&q.action),
        after: given(&q.cursor).and_then(|c| AuditCursor::parse(&c).ok()),
        limit: PAGE,
        ..Default::default()
    };
    let page = crate::audit::read(&st.store, &caller, filter).await?;
    let now = st.clock.now();
    let next = page
        .more
        .then(|| page.entries.last().map(|e| AuditCursor::of(e).encode()))
        .flatten()
        .and_then(|c| {
            let params = [("action", &q.action), ("actor", &q.actor), ("cursor", &c)];
            let url = reqwest::Url::parse_with_params("http://rota/audit", params).ok()?;
            Some(format!("/audit?{}", url.query().unwrap_or_default()))
        });
    let body = html! {
        h1 { "Audit log" }
        form method="get" action="/audit" {
            input name="action" placeholder="action, e.g. key. or queue.update" value=(q.action);
            " "
            input name="actor" placeholder="actor, e.g. key:3f2a…" value=(q.actor);
            " "
            button type="submit" { "Filter" }
        }
        @if page.entries.is_empty() { p.muted { "No changes recorded." } } @else {
            table.audit {
                thead { tr { th { "When" } th { "Actor" } th { "Action" } th { "Target" } th { "Change" } th { "From" } } }
                tbody { @for e in &page.entries { tr {
                    td title=(e.at) { (since(Some(e.at), now)) }
                    td { code { (e.actor) } }
                    td { (e.action) }
                    td { code { (e.target) } }
                    td.muted {
                        @if let Some(b) = &e.before { (layout::brief(&b.to_string(), 120)) " → " }
                        @if let Some(a) = &e.after { (layout::brief(&a.to_string(), 120)) }
                    }
                    td.muted { (e.source.as_deref().unwrap_or("")) }
                } } }
            }
        }
        @if let Some(href) = next {
            p { a href=(href) { "Older →" } }
        }
        p.muted { "rota audit --help reads it from the command line, across tenants for an admin." }
    };
    Ok(layout::page(&cx, "Audit log", "/audit", false, body))
}
