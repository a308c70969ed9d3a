//! The web dashboard at `/`: pages rendered on the server (maud), made live with htmx and the
//! event stream, every asset embedded in the binary.
//!
//! Sign-in takes an API key (or the admin token) once and keeps a session cookie: a signed,
//! expiring token of the same scheme as event-stream tickets (`auth/tickets.rs`), so any server
//! sharing the store accepts it, it dies with its key, and the key itself is never stored in
//! the browser or put in a URL. Every page acts through the service layer as that key, so the
//! server enforces permissions whatever a page shows; pages also leave out the buttons the key
//! may not use. Changes are POSTs sent by htmx with its `HX-Request` header, which a form on
//! another site cannot send, and the cookie is `SameSite=Strict` (and `Secure` behind TLS).
//! Sign-in itself refuses a form posted from another site (`Sec-Fetch-Site`, `Origin`), and no
//! page may be framed, sniffed as another type or named in another site's `Referer`.

mod assets;
mod audit;
mod flow;
mod layout;
mod lists;
mod overview;
mod queue;
mod session;
mod task;
mod workflows;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

/// `[dashboard]` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Marks the dashboard's cookies `Secure` (sent over HTTPS only). Rota speaks plain HTTP,
    /// so behind a TLS proxy set this (or have the proxy send `X-Forwarded-Proto: https`).
    pub secure_cookie: bool,
}

pub const SESSION_COOKIE: &str = "rota_session";
pub const TENANT_COOKIE: &str = "rota_tenant";

pub fn router(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(overview::page))
        .route("/fragments/overview", get(overview::fragment))
        .route("/queues/{queue}", get(queue::page))
        .route("/queues/{queue}/pause", post(queue::pause))
        .route("/queues/{queue}/resume", post(queue::resume))
        .route("/queues/{queue}/limits", post(flow::set_limits))
        .route("/queues/{queue}/group", post(flow::set_group))
        .route("/workflows", get(workflows::list))
        .route("/workflows/{id}", get(workflows::page))
        .route("/workflows/{id}/cancel", post(workflows::cancel))
        .route("/fragments/workflows/{id}", get(workflows::fragment))
        .route("/tasks/{id}", get(task::page))
        .route("/tasks/{id}/cancel", post(task::cancel))
        .route("/tasks/{id}/retry", post(task::retry))
        .route("/dead", get(queue::dead))
        .route("/dead/requeue", post(queue::requeue))
        .route("/dead/purge", post(queue::purge))
        .route("/workers", get(lists::workers))
        .route("/schedules", get(lists::schedules))
        .route("/webhooks", get(lists::webhooks))
        .route("/hooks", get(lists::hooks))
        .route("/keys", get(lists::keys))
        .route("/audit", get(audit::page))
        .route("/tenant", post(session::switch_tenant))
        .route("/logout", post(session::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            signed_in,
        ));
    Router::new()
        .merge(pages)
        .route("/login", get(session::login_page).post(session::login))
        .route("/assets/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(state, harden))
}

/// Every dashboard response: not to be framed (clickjacking), not sniffed as another type, no
/// URL sent to other sites; cookies `Secure` when the browser reached us over HTTPS.
async fn harden(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let secure = st.config.dashboard.secure_cookie
        || req
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        h.insert(name, header::HeaderValue::from_static(value));
    }
    if secure {
        let cookies: Vec<_> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
        h.remove(header::SET_COOKIE);
        for c in cookies {
            let with = [c.as_bytes(), b"; Secure"].concat();
            if let Ok(v) = header::HeaderValue::from_bytes(&with) {
                h.append(header::SET_COOKIE, v);
            }
        }
    }
    resp
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Every page but sign-in: the session's caller, or the way to sign in.
async fn signed_in(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let Some(session) = cookie(headers, SESSION_COOKIE).map(str::to_owned) else {
        return to_login(&req);
    };
    if req.method() == Method::POST && !headers.contains_key("hx-request") {
        return ApiError::new(
            crate::error::ErrorKind::Forbidden,
            "forbidden",
            "dashboard changes are sent by its pages (htmx), not by plain forms",
        )
        .into_response();
    }
    let tenant = cookie(headers, TENANT_COOKIE).map(str::to_owned);
    let cred = crate::auth::Credential::Session(&session);
    let admitted = st.auth.admit(Some(cred), tenant.as_deref()).await;
    let (caller, permit) = match admitted {
        Ok(a) => a,
        Err(e) if e.kind == crate::error::ErrorKind::Unauthenticated => return to_login(&req),
        // A tenant that is gone (or not the caller's): back to its own.
        Err(e) if tenant.is_some() && e.kind == crate::error::ErrorKind::NotFound => {
            let mut resp = Redirect::to("/").into_response();
            session::set_cookie(&mut resp, TENANT_COOKIE, "", 0);
            return resp;
        }
        Err(e) => return e.into_response(),
    };
    let peer = crate::connections::peer(req.extensions());
    let caller = caller.from_peer(req.headers(), peer);
    req.extensions_mut().insert(caller);
    let resp = next.run(req).await;
    drop(permit);
    resp
}

/// To sign-in; htmx requests follow `HX-Redirect`.
fn to_login(req: &Request) -> Response {
    if req.headers().contains_key("hx-request") {
        ([("hx-redirect", "/login")], StatusCode::UNAUTHORIZED).into_response()
    } else {
        Redirect::to("/login").into_response()
    }
}

/// A page, or the error it came to, as a page.
pub type PageResult = Result<Html<String>, PageError>;

pub struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = e.kind.http_status();
        let body = layout::error_page(status.as_u16(), &e.message);
        (status, Html(body.into_string())).into_response()
    }
}

/// What every page knows about the request.
pub struct Ctx<'a> {
    pub st: &'a AppState,
    pub caller: &'a Caller,
}
