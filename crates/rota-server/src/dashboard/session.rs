//! Signing in and out, and the tenant an admin acts in.

use super::{layout, SESSION_COOKIE, TENANT_COOKIE};
use crate::auth::{Caller, Credential};
use crate::error::ErrorKind;
use crate::AppState;
use axum::extract::{Form, State};
use axum::http::{header, HeaderValue, StatusCode};
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

pub async fn login(State(st): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let refused =
        |status: StatusCode, msg: &str| (status, layout::login(Some(msg))).into_response();
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

pub async fn logout() -> Response {
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
