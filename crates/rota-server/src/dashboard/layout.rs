//! The page shell (navigation, the maintenance banner, the tenant switch for admins) and small
//! pieces every page uses.

use super::assets;
use super::Ctx;
use axum::response::Html;
use maud::{html, Markup, DOCTYPE};
use rota_core::{TaskState, Timestamp};

const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/workflows", "Workflows"),
    ("/dead", "Dead letters"),
    ("/workers", "Workers"),
    ("/schedules", "Schedules"),
    ("/webhooks", "Webhooks"),
    ("/hooks", "Hooks"),
    ("/keys", "Keys & roles"),
    ("/audit", "Audit"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Rota" }
            link rel="stylesheet" href={ "/assets/" (assets::APP_CSS) };
            link rel="stylesheet" href={ "/assets/" (assets::UPLOT_CSS) };
            script src={ "/assets/" (assets::HTMX) } {}
            script src={ "/assets/" (assets::UPLOT_JS) } {}
        }
    }
}

/// A whole page: `active` is the navigation entry it belongs to; `live` opens the event
/// stream so marked parts refresh themselves.
pub fn page(cx: &Ctx, title: &str, active: &str, live: bool, body: Markup) -> Html<String> {
    let p = &cx.caller.principal;
    let now = cx.st.clock.now();
    let maintenance = cx.st.auth.maintenance(now);
    let tenants = if p.is_admin() {
        cx.st.auth.tenants()
    } else {
        Vec::new()
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body data-live=[live.then_some("1")] data-events=[live.then_some(event_types())] {
                header {
                    span.brand { "Rota" }
                    nav {
                        @for (href, label) in NAV {
                            a href=(href) class=[(*href == active).then_some("on")] { (label) }
                        }
                    }
                    div.who {
                        @if tenants.len() > 1 {
                            select name="tenant" hx-post="/tenant" hx-trigger="change"
                                title="Act in tenant" {
                                @for t in &tenants {
                                    option value=(t.name) selected[t.name == cx.caller.tenant] {
                                        (t.name)
                                    }
                                }
                            }
                        } @else {
                            span { "tenant " strong { (cx.caller.tenant) } }
                        }
                        span { (p.label) }
                        button hx-post="/logout" { "Sign out" }
                    }
                }
                @if let Some(m) = maintenance {
                    div.banner.on[m.refusing] id="maintenance" {
                        strong { @if m.refusing { "Maintenance: " } @else { "Announced: " } }
                        (m.message)
                        @if let Some(u) = m.until { span.muted { " (until " (u) ")" } }
                        @if m.refusing { span.muted { " — writes and claims are refused" } }
                    }
                }
                main { (body) }
                script src={ "/assets/" (assets::APP_JS) } {}
            }
        }
    };
    Html(markup.into_string())
}

/// Every event type's name, for the page's stream listeners.
fn event_types() -> String {
    let names: Vec<&str> = rota_core::events::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    names.join(" ")
}

/// The sign-in page (no session yet).
pub fn login(error: Option<&str>) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body {
                main.login {
                    div.card {
                        h1 { "Rota" }
                        form method="post" action="/login" {
                            label for="token" { "API key (or the admin token)" }
                            input type="password" id="token" name="token" autocomplete="off"
                                autofocus required;
                            @if let Some(e) = error { p.error id="login-error" { (e) } }
                            button.primary type="submit" { "Sign in" }
                        }
                        p.muted { "The key is checked once; the browser keeps only a session that \
                                   expires in 8 hours." }
                    }
                }
            }
        }
    };
    Html(markup.into_string())
}

pub fn error_page(status: u16, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Error"))
            body { main { div.card { h1 { (status) } p.error { (message) } a href="/" { "Back" } } } }
        }
    }
}

pub fn badge(s: TaskState) -> Markup {
    html! { span class={ "badge " (s.as_str()) } { (s.as_str()) } }
}

/// A duration in ms as people read it, as the CLI writes it: 250ms, 45s, 12m 5s, 3h 0m, 2d 1h.
pub fn age(ms: i64) -> String {
    rota_core::timestamp::duration_ms(ms.max(0) as u64)
}

/// Long text for a table cell: at most `max` characters, cut at a word's end with an ellipsis;
/// the whole of it is in the cell's title.
pub fn brief(text: &str, max: usize) -> Markup {
    let shown = match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => {
            let cut = text[..end].rfind(char::is_whitespace).unwrap_or(end);
            format!("{}…", text[..cut].trim_end())
        }
    };
    html! { span title=(text) { (shown) } }
}

pub fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map_or("never".into(), |t| format!("{} ago", age(now.0 - t.0)))
}

/// JSON shown pretty (escaped); stored JSON is kept verbatim, so it is parsed again first.
pub fn json(v: &impl serde::Serialize) -> Markup {
    let value = serde_json::to_value(v).unwrap_or_default();
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    html! { pre { (text) } }
}

/// A chart of per-minute outcomes over the last hour.
pub fn chart(
    id: &str,
    minutes: &std::collections::BTreeMap<i64, (u64, u64)>,
    now: Timestamp,
) -> Markup {
    let end = now.0 / 60_000 * 60_000;
    let (mut x, mut ok, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for i in (0..60).rev() {
        let m = end - i * 60_000;
        let (s, f) = minutes.get(&m).copied().unwrap_or((0, 0));
        x.push(m / 1000);
        ok.push(s);
        failed.push(f);
    }
    let series = serde_json::json!({"x": x, "ok": ok, "failed": failed}).to_string();
    html! { div.chart id=(id) data-series=(series) {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_cuts_at_a_word_and_keeps_the_whole_in_the_title() {
        let cell = brief("connection refused by the mail server", 24).into_string();
        assert!(cell.contains(">connection refused by…<"), "{cell}");
        assert!(
            cell.contains("title=\"connection refused by the mail server\""),
            "{cell}"
        );
        assert!(brief("short", 20).into_string().contains(">short<"));
        assert_eq!(age(30_000), "30s");
    }
}
