//! OAuth 2.0 over HTTP: `POST /oauth/token` (the client credentials grant, RFC 6749 §4.4) and
//! `GET /.well-known/jwks.json` (the public keys its tokens are signed with). Errors here take
//! RFC 6749's shape (`{"error", "error_description"}`), which OAuth clients read, rather than
//! Rota's own.

use crate::auth::OAuthError;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The token endpoint's form (`application/x-www-form-urlencoded`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    /// Only `client_credentials`.
    #[schema(pattern = "^client_credentials$")]
    pub grant_type: String,
    /// The API key's id. A client may send it and the secret by HTTP Basic instead (RFC 6749
    /// §2.3.1), leaving both out of the form.
    #[schema(min_length = 1)]
    pub client_id: String,
    /// The API key's whole token, `rota_<id>_<secret>`.
    #[schema(min_length = 1)]
    pub client_secret: String,
    /// Space-separated actions (`tasks:claim`, `tasks:*`) and queue patterns
    /// (`queues/emails-*`) the token is narrowed to; the key's roles still apply.
    pub scope: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer`.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds it lasts (auth.token_ttl_s, less when the key expires or its secret's grace
    /// ends sooner).
    pub expires_in: u64,
    /// What it may do: the scope asked for, or the actions the key's roles allow.
    pub scope: String,
}

/// RFC 6749 §5.2.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_scope`, `unsupported_grant_type`,
    /// `temporarily_unavailable` or `server_error`.
    pub error: String,
    pub error_description: String,
}

/// Failed client authentication takes at least this long, whether the client id exists or
/// not, so its answer's timing says nothing about which ids exist.
const FAILURE_FLOOR: Duration = Duration::from_millis(100);
/// The largest form taken.
const MAX_FORM_BYTES: usize = 8 * 1024;

fn refuse(status: StatusCode, e: OAuthError, basic: bool, retry_after: Option<u64>) -> Response {
    let body = OAuthErrorBody {
        error: e.error.to_owned(),
        error_description: e.description,
    };
    let mut r = (status, Json(body)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if basic && status == StatusCode::UNAUTHORIZED {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"rota\""),
        );
    }
    if let Some(s) = retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn bad(description: impl Into<String>) -> Response {
    let e = OAuthError {
        error: "invalid_request",
        description: description.into(),
    };
    refuse(StatusCode::BAD_REQUEST, e, false, None)
}

/// HTTP Basic's client id and secret (each form-urlencoded, RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), String>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return Some(Err(
            "the Basic credentials are not base64 of `id:secret`".into()
        ));
    };
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some(Ok((unescape(id), unescape(secret))))
}

/// Exchanges an API key's id and token for a short-lived access token.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security(()),
    responses((status = 200, body = TokenResponse),
        (status = 400, description = "invalid_request, invalid_scope or unsupported_grant_type", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: not a valid API key's id and token (or it is revoked or expired)", body = OAuthErrorBody),
        (status = 413, description = "the form is larger than 8 KiB", body = OAuthErrorBody),
        (status = 429, description = "too many failed attempts from this address or for this client", body = OAuthErrorBody),
        (status = 503, description = "temporarily_unavailable (storage)", body = OAuthErrorBody)))]
pub async fn token(State(st): State<AppState>, request: axum::extract::Request) -> Response {
    let started = tokio::time::Instant::now();
    let (parts, body) = request.into_parts();
    let addr = crate::connections::peer(&parts.extensions)
        .map_or(std::net::Ipv4Addr::LOCALHOST.into(), |p| p.ip());
    let form_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form_type {
        return bad("send the request as application/x-www-form-urlencoded");
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        let e = OAuthError {
            error: "invalid_request",
            description: format!("the form is larger than {MAX_FORM_BYTES} bytes"),
        };
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, e, false, None);
    };
    // RFC 6749 §3.2: unknown parameters are ignored; a known one may be given once.
    const KNOWN: [&str; 4] = ["grant_type", "client_id", "client_secret", "scope"];
    let mut form = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&bytes) {
        if !KNOWN.contains(&k.as_ref()) {
            continue;
        }
        if form
            .insert(k.clone().into_owned(), v.into_owned())
            .is_some()
        {
            return bad(format!("parameter `{k}` is given more than once"));
        }
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            let e = OAuthError {
                error: "unsupported_grant_type",
                description: format!(
                    "grant_type `{other}` is not supported; use client_credentials"
                ),
            };
            return refuse(StatusCode::BAD_REQUEST, e, false, None);
        }
        None => return bad("grant_type is missing; use client_credentials"),
    }
    if !st.auth.enabled() {
        return bad("access control is off on this server: no token is needed");
    }
    let basic = basic_credentials(&parts.headers);
    let was_basic = basic.is_some();
    let in_form = (form.get("client_id"), form.get("client_secret"));
    let (id, secret) = match (basic, in_form) {
        (Some(_), (Some(_), _) | (_, Some(_))) => {
            return bad("send the client credentials by HTTP Basic or in the form, not both")
        }
        (Some(Err(e)), _) => return bad(e),
        (Some(Ok(c)), _) => c,
        (None, (Some(id), Some(secret))) => (id.clone(), secret.clone()),
        (None, _) => return bad("client_id and client_secret are missing"),
    };
    let scope = form.get("scope").map(String::as_str);
    match st.auth.issue_token(addr, &id, &secret, scope).await {
        Ok(issued) => {
            let mut r = Json(TokenResponse {
                access_token: issued.access_token,
                token_type: "Bearer",
                expires_in: issued.expires_in,
                scope: issued.scope,
            })
            .into_response();
            let h = r.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            r
        }
        Err((e, Some(wait))) => refuse(StatusCode::TOO_MANY_REQUESTS, e, was_basic, Some(wait)),
        Err((e, None)) => {
            let status = match e.error {
                "invalid_client" => {
                    tokio::time::sleep_until(started + FAILURE_FLOOR).await;
                    StatusCode::UNAUTHORIZED
                }
                "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
                "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            refuse(status, e, was_basic, None)
        }
    }
}

/// The public keys access tokens are signed with (the current one, and the previous one
/// during a rotation of the session secret).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "oauth", security(()),
    responses((status = 200, description = "a JSON Web Key Set (RFC 7517) of Ed25519 keys", content_type = "application/json")))]
pub async fn jwks(State(st): State<AppState>) -> Response {
    let mut r = Json(st.auth.jwks()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}
