//! The HTTP request path: the `authenticate` middleware in front of every `/v1` route, which
//! reads the bearer token and the `Rota-Tenant` header and hands the admitted [`Caller`] to the
//! handlers.

use super::*;
use crate::error::ErrorKind;

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(
                ErrorKind::Internal,
                "internal",
                "the route is not behind authentication",
            )
        })
    }
}

fn bearer(headers: &HeaderMap) -> ApiResult<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            unauthorized(
                "no credentials: send `Authorization: Bearer <token>` (an API key or a JWT)",
            )
        })?;
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    match (scheme.eq_ignore_ascii_case("bearer"), token.trim()) {
        // `Bearer $TOKEN` with the variable unset or empty arrives as a bare `Bearer`.
        (true, "") => Err(unauthorized(
            "the Authorization header is `Bearer` with no token after it: the variable or file \
             meant to hold the token is probably empty (send `Authorization: Bearer <token>`)",
        )),
        (true, token) => Ok(token),
        (false, _) => Err(unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

/// The routes a ticket (or the dashboard's session cookie) opens, and nothing else: the event
/// stream as Server-Sent Events and as a WebSocket.
pub const STREAM_ROUTE: &str = "/v1/events/stream";
pub const WEBSOCKET_ROUTE: &str = "/v1/events/ws";

/// Marks a request admitted by the dashboard's session cookie, which a browser attaches to
/// requests other pages start too: the WebSocket route then checks `Origin` (a browser's
/// WebSocket has no CORS to stop another page reading it).
#[derive(Clone, Copy, Debug)]
pub struct BySessionCookie;

#[derive(Deserialize)]
struct TicketParam {
    ticket: Option<String>,
}

/// How a refusal names a credential it could not admit.
fn credential_hint(cred: Option<&Credential>) -> String {
    match cred {
        Some(Credential::Token(t)) => match token::key_id(t) {
            Some(id) => format!("key {id}"),
            None if t.matches('.').count() == 2 => "a JWT".to_owned(),
            None => "an unknown token".to_owned(),
        },
        Some(Credential::Ticket(_)) => "an event-stream ticket".to_owned(),
        _ => "no credentials".to_owned(),
    }
}

/// Notes a 401, 403, 429 or 503 for `rota doctor`.
fn note_refusal(st: &AppState, tenant: Option<&str>, credential: String, resp: &Response) {
    let status = resp.status().as_u16();
    if !matches!(status, 401 | 403 | 429 | 503) {
        return;
    }
    let note = resp.extensions().get::<crate::error::ErrorNote>();
    st.service
        .observed()
        .refused(crate::doctor::observed::Refusal {
            at: st.clock.now(),
            tenant: tenant.map(str::to_owned),
            credential,
            status,
            code: note.map_or("", |n| n.code).to_owned(),
            message: note.map(|n| n.message.clone()).unwrap_or_default(),
        });
}

/// The middleware in front of every `/v1` route.
pub async fn authenticate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let stream = matches!(req.uri().path(), STREAM_ROUTE | WEBSOCKET_ROUTE);
    let ticket = stream
        .then(|| axum::extract::Query::<TicketParam>::try_from_uri(req.uri()).ok())
        .flatten()
        .and_then(|q| q.0.ticket);
    let has_header = req
        .headers()
        .contains_key(axum::http::header::AUTHORIZATION);
    // The dashboard's pages follow the stream with their session cookie (and its tenant).
    let (session, session_tenant) = if stream && !has_header {
        let c = |name| crate::dashboard::cookie(req.headers(), name).map(str::to_owned);
        let s = c(crate::dashboard::SESSION_COOKIE);
        let t = c(crate::dashboard::TENANT_COOKIE).filter(|t| !t.is_empty());
        (s, t)
    } else {
        (None, None)
    };
    let cred = match (&ticket, &session) {
        // The header wins when both are sent.
        (Some(t), _) if !has_header => Some(Credential::Ticket(t)),
        (None, Some(s)) => Some(Credential::Session(s)),
        _ if st.auth.enabled() => match bearer(req.headers()) {
            Ok(t) => Some(Credential::Token(t)),
            Err(e) => {
                let resp = e.into_response();
                note_refusal(&st, None, credential_hint(None), &resp);
                return resp;
            }
        },
        _ => None,
    };
    let tenant = match req.headers().get(TENANT_HEADER).map(|v| v.to_str()) {
        None => session_tenant.as_deref(),
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            return ApiError::bad_request("the Rota-Tenant header is not text").into_response()
        }
    };
    let hint = credential_hint(cred.as_ref());
    let by_cookie = matches!(cred, Some(Credential::Session(_)));
    let key_tenant = match &cred {
        Some(Credential::Token(t)) => token::key_id(t).and_then(|id| st.auth.key_tenant(id)),
        _ => None,
    };
    let (caller, permit) = match st.auth.admit(cred, tenant).await {
        Ok(admitted) => admitted,
        Err(e) => {
            let resp = e.into_response();
            // A known key over its limits: its tenant sees the refusal.
            let known = key_tenant.filter(|_| resp.status().as_u16() != 401);
            note_refusal(&st, known.as_deref(), hint, &resp);
            return resp;
        }
    };
    let (acting, label) = (caller.tenant.clone(), caller.principal.label.clone());
    // Refused from the method and path alone, before a byte of the body is read.
    if let Err(e) = routes::precheck(&caller, &mut req).await {
        drop(permit);
        let resp = e.into_response();
        note_refusal(&st, Some(&acting), label, &resp);
        return resp;
    }
    let peer = crate::connections::peer(req.extensions());
    let caller = caller.from_peer(req.headers(), peer);
    req.extensions_mut().insert(caller);
    if by_cookie {
        req.extensions_mut().insert(BySessionCookie);
    }
    let resp = next.run(req).await;
    drop(permit);
    note_refusal(&st, Some(&acting), label, &resp);
    resp
}
