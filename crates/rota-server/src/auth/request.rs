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
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

/// The route a ticket opens, and nothing else.
pub const STREAM_ROUTE: &str = "/v1/events/stream";

#[derive(Deserialize)]
struct TicketParam {
    ticket: Option<String>,
}

/// The middleware in front of every `/v1` route.
pub async fn authenticate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let ticket = (req.uri().path() == STREAM_ROUTE)
        .then(|| axum::extract::Query::<TicketParam>::try_from_uri(req.uri()).ok())
        .flatten()
        .and_then(|q| q.0.ticket);
    let cred = match &ticket {
        // The header wins when both are sent.
        Some(t)
            if !req
                .headers()
                .contains_key(axum::http::header::AUTHORIZATION) =>
        {
            Some(Credential::Ticket(t))
        }
        _ if st.auth.enabled() => match bearer(req.headers()) {
            Ok(t) => Some(Credential::Token(t)),
            Err(e) => return e.into_response(),
        },
        _ => None,
    };
    let tenant = match req.headers().get(TENANT_HEADER).map(|v| v.to_str()) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            return ApiError::bad_request("the Rota-Tenant header is not text").into_response()
        }
    };
    let (caller, permit) = match st.auth.admit(cred, tenant).await {
        Ok(admitted) => admitted,
        Err(e) => return e.into_response(),
    };
    // Refused from the method and path alone, before a byte of the body is read.
    if let Err(e) = routes::precheck(&caller, &mut req).await {
        drop(permit);
        return e.into_response();
    }
    req.extensions_mut().insert(caller);
    let resp = next.run(req).await;
    drop(permit);
    resp
}
