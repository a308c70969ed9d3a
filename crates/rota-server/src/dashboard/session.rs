//! Signing in and out, and the tenant an admin acts in.

use super::{layout, SESSION_COOKIE, TENANT_COOKIE};
use crate::auth::{Caller, Credential};
use crate::error::ErrorKind;
use crate::AppState;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

/// Sets (or, with `max_age_s` 0, clears) a cookie only this site's pages send and scripts
/// cannot read.
pub fn set_cookie(resp: &mut Response, name: &str, value: &str, max_age_s: i64) {
    let c = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age_s.max(0)
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub async fn login_page() -> Html<String> {
    layout::login(None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Whether a sign-in was posted by a page of another site (login CSRF: signing the visitor in
/// as someone else): the browser says so in `Sec-Fetch-Site`, or, older ones, in `Origin`.
/// A client that sends neither (curl, a test) is not a browser acting for a site.
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    // Behind a proxy that rewrites `Host`, the name the browser used is `X-Forwarded-Host`.
    let host = text("x-forwarded-host").or(text("host"));
    match (text("origin"), host) {
        (Some(origin), Some(host)) => {
            let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
            !authority.eq_ignore_ascii_case(host)
        }
        // `Origin: null` (a sandboxed or privacy-redirected form) without a host to match.
        (Some(_), None) => true,
        (None, _) => false,
    }
}

pub async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let refused =
        |status: StatusCode, msg: &str| (status, layout::login(Some(msg))).into_response();
    if cross_site(&headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "Sign in from this dashboard's own page: a sign-in sent from another site is refused.",
        );
    }
    let token = f.token.trim();
    if token.is_empty() {
        return refused(StatusCode::UNPROCESSABLE_ENTITY, "Enter an API key.");
    }
    let cred = Credential::Token(token);
    let caller = match st.auth.admit(Some(cred), None).await {
        Ok((caller, _permit)) => caller,
        Err(e) if e.kind == ErrorKind::Unauthenticated => {
            return refused(
                StatusCode::UNAUTHORIZED,
                "That key is not valid (wrong, expired or revoked).",
            )
        }
        Err(e) => return refused(e.kind.http_status(), &e.message),
    };
    let (session, expires) = match st.auth.issue_session(&caller) {
        Ok(s) => s,
        Err(e) => return refused(e.kind.http_status(), &e.message),
    };
    tracing::info!(by = %caller.principal.label, "dashboard sign-in");
    let mut resp = Redirect::to("/").into_response();
    let max_age = (expires.0 - st.clock.now().0) / 1000;
    set_cookie(&mut resp, SESSION_COOKIE, &session, max_age);
    set_cookie(&mut resp, TENANT_COOKIE, "", 0);
    resp
}

/// Signs out: every session of the signed-in key ends (on every server sharing the store), so
/// this cookie is refused even if it was copied and is sent again.
pub async fn logout(caller: Caller, State(st): State<AppState>) -> Response {
    if let Err(e) = st.auth.end_sessions(&caller.principal).await {
        return (e.kind.http_status(), e.message).into_response();
    }
    tracing::info!(by = %caller.principal.label, "dashboard sign-out");
    let mut resp = ([("hx-redirect", "/login")], StatusCode::OK).into_response();
    set_cookie(&mut resp, SESSION_COOKIE, "", 0);
    set_cookie(&mut resp, TENANT_COOKIE, "", 0);
    resp
}

#[derive(Deserialize)]
pub struct TenantForm {
    tenant: String,
}

/// An admin acts in another tenant (any other caller only in its own, as the API has it).
pub async fn switch_tenant(
    caller: Caller,
    State(st): State<AppState>,
    Form(f): Form<TenantForm>,
) -> Response {
    let allowed = caller.principal.is_admin() && st.auth.tenant(&f.tenant).is_ok();
    if !allowed {
        return (StatusCode::FORBIDDEN, "no such tenant for this key").into_response();
    }
    let mut resp = ([("hx-redirect", "/")], StatusCode::OK).into_response();
    let own = f.tenant == caller.principal.tenant;
    set_cookie(
        &mut resp,
        TENANT_COOKIE,
        &f.tenant,
        if own { 0 } else { 28_800 },
    );
    resp
}
