//! Inbound webhooks over HTTP: `POST/GET /v1/hooks`, `GET/PATCH/DELETE /v1/hooks/{id}`,
//! `POST /v1/hooks/{id}/rotate-secret`, `GET /v1/hooks/{id}/requests`, and the public
//! `POST /hooks/{id}` that providers send to (no bearer token: the signature is the
//! credential).

use crate::api::admin::Deleted;
use crate::api::schema;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorKind};
use crate::extract::{ApiPath, JsonBody};
use crate::hooks::receive::Inbound;
use crate::hooks::HookRequest;
use crate::service::{HookInput, HookPatch};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use rota_core::hooks::{HookRecord, Verify};
use rota_core::{TaskId, Timestamp};
use serde::{Deserialize, Serialize};

/// The administration routes (behind authentication, with the other `/v1` routes).
pub fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/hooks", get(list).post(create))
        .route("/v1/hooks/{id}", get(get_one).patch(update).delete(delete))
        .route("/v1/hooks/{id}/rotate-secret", post(rotate))
        .route("/v1/hooks/{id}/requests", get(requests))
}

/// The public route providers send to.
pub const RECEIVE_ROUTE: &str = "/hooks/{id}";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookBody {
    /// Unique in the tenant.
    #[schema(value_type = schema::ShortName)]
    pub name: String,
    /// The queue its tasks go to (the writer must hold `tasks:enqueue` on it).
    #[schema(value_type = schema::QueueName)]
    pub queue: String,
    /// Their kind.
    #[schema(value_type = schema::Name)]
    pub kind: String,
    /// How requests are proven.
    pub verify: Verify,
    /// The shared secret as the provider knows it (GitHub's "Secret", GitLab's "Secret
    /// token", Stripe's signing secret); left out, one is made and shown once.
    #[schema(min_length = 16, max_length = 256, pattern = "^[!-~]([ -~]*[!-~])?$")]
    pub secret: Option<String>,
    #[schema(value_type = Option<schema::Description>)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookPatchBody {
    #[schema(value_type = Option<schema::QueueName>)]
    pub queue: Option<String>,
    #[schema(value_type = Option<schema::Name>)]
    pub kind: Option<String>,
    #[schema(value_type = Option<schema::Description>)]
    pub description: Option<String>,
    /// `false` refuses its requests (403) until it is `true` again.
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookRotateBody {
    /// How long the old secret is still accepted beside the new one. Default:
    /// webhooks.rotation_grace_ms (a day); 0 refuses it at once; at most 72 hours.
    #[schema(maximum = 259_200_000)]
    pub grace_ms: Option<u64>,
    /// The new secret; left out, one is made.
    #[schema(min_length = 16, max_length = 256, pattern = "^[!-~]([ -~]*[!-~])?$")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookOut {
    pub id: String,
    pub name: String,
    /// Where the provider sends: `POST` here, no bearer token.
    pub url: String,
    pub queue: String,
    pub kind: String,
    pub verify: Verify,
    pub enabled: bool,
    pub description: Option<String>,
    /// The credential its requests enqueue as (its last writer).
    pub owner: Option<String>,
    /// Until when the previous secret is still accepted (after a rotation).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_secret_until: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Only when created or rotated: the secret, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl HookOut {
    fn of(h: HookRecord, base: &str, show_secret: bool) -> Self {
        HookOut {
            url: format!("{base}/hooks/{}", h.id),
            id: h.id,
            name: h.name,
            queue: h.queue,
            kind: h.kind,
            verify: h.verify,
            enabled: h.enabled,
            description: h.description,
            owner: h.owner.map(|o| o.label),
            previous_secret_until: h.previous_until,
            created_at: h.created_at,
            updated_at: h.updated_at,
            secret: show_secret.then_some(h.secret),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookList {
    pub hooks: Vec<HookOut>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookRequestList {
    /// Newest first: the last requests this server answered for the hook (at most 50; every
    /// server's are in the event log as `hook.received` and `hook.rejected`).
    pub requests: Vec<HookRequest>,
}

/// What a provider's request became.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookReceived {
    #[schema(value_type = schema::TaskIdText)]
    pub task_id: TaskId,
    /// A redelivery: the task an earlier delivery made (no new task).
    pub duplicate: bool,
}

/// `hooks.public_url`, else the scheme and host the request came through (the dashboard's
/// hooks page shows the same URLs).
pub(crate) fn base_url(st: &AppState, headers: &HeaderMap) -> String {
    let public = st.config.hooks.public_url.trim_end_matches('/');
    if !public.is_empty() {
        return public.to_owned();
    }
    let text = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let host = text("x-forwarded-host")
        .or(text("host"))
        .unwrap_or("localhost");
    let scheme = match text("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

#[utoipa::path(post, path = "/v1/hooks", tag = "hooks", request_body = HookBody,
    responses((status = 201, description = "the hook, with its secret shown this once", body = HookOut),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(b): JsonBody<HookBody>,
) -> ApiResult<(StatusCode, Json<HookOut>)> {
    let input = HookInput {
        name: b.name,
        queue: b.queue,
        kind: b.kind,
        verify: b.verify,
        secret: b.secret,
        description: b.description,
    };
    let h = st.service.create_hook(&caller, input).await?;
    tracing::info!(hook = %h.id, by = %caller.principal.label, "inbound webhook created");
    let out = HookOut::of(h, &base_url(&st, &headers), true);
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(get, path = "/v1/hooks", tag = "hooks",
    responses((status = 200, body = HookList)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Json<HookList>> {
    let base = base_url(&st, &headers);
    let hooks = st.service.hooks(&caller);
    Ok(Json(HookList {
        hooks: hooks
            .into_iter()
            .map(|h| HookOut::of(h, &base, false))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/hooks/{id}", tag = "hooks", params(("id" = String, Path)),
    responses((status = 200, body = HookOut), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<HookOut>> {
    let h = st.service.hook(&caller, &id)?;
    Ok(Json(HookOut::of(h, &base_url(&st, &headers), false)))
}

#[utoipa::path(patch, path = "/v1/hooks/{id}", tag = "hooks", params(("id" = String, Path)),
    request_body = HookPatchBody,
    responses((status = 200, body = HookOut), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    JsonBody(b): JsonBody<HookPatchBody>,
) -> ApiResult<Json<HookOut>> {
    let patch = HookPatch {
        queue: b.queue,
        kind: b.kind,
        description: b.description,
        enabled: b.enabled,
    };
    let h = st.service.update_hook(&caller, &id, patch).await?;
    Ok(Json(HookOut::of(h, &base_url(&st, &headers), false)))
}

#[utoipa::path(delete, path = "/v1/hooks/{id}", tag = "hooks", params(("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    st.service.delete_hook(&caller, &id).await?;
    tracing::info!(hook = %id, by = %caller.principal.label, "inbound webhook deleted");
    Ok(Json(Deleted { deleted: id }))
}

/// A new secret (shown this once); the old one is still accepted for the grace period.
#[utoipa::path(post, path = "/v1/hooks/{id}/rotate-secret", tag = "hooks",
    params(("id" = String, Path)), request_body = HookRotateBody,
    responses((status = 200, body = HookOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rotate(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    JsonBody(b): JsonBody<HookRotateBody>,
) -> ApiResult<Json<HookOut>> {
    let h = st
        .service
        .rotate_hook_secret(&caller, &id, b.grace_ms, b.secret)
        .await?;
    tracing::info!(hook = %id, by = %caller.principal.label, "inbound webhook secret rotated");
    Ok(Json(HookOut::of(h, &base_url(&st, &headers), true)))
}

#[utoipa::path(get, path = "/v1/hooks/{id}/requests", tag = "hooks", params(("id" = String, Path)),
    responses((status = 200, body = HookRequestList), (status = 404, body = ErrorBody)))]
pub async fn requests(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<HookRequestList>> {
    let requests = st.service.hook_requests(&caller, &id)?;
    Ok(Json(HookRequestList { requests }))
}

/// A provider's request: verified by the hook's `verify` rule, it becomes a task of the
/// hook's queue and kind (202), or finds the task an earlier delivery of it made (200).
#[utoipa::path(post, path = "/hooks/{id}", tag = "hooks", params(("id" = String, Path)),
    request_body(description = "the provider's body, byte for byte as it signed it: JSON (kept as JSON in the task) or text",
        content((serde_json::Value = "application/json"), (String = "text/plain"))),
    security(()),
    responses((status = 202, description = "the task it became", body = HookReceived), (status = 200, description = "a redelivery: the task an earlier delivery made", body = HookReceived),
        (status = 400, description = "the body is not what its content type says", body = ErrorBody),
        (status = 401, description = "a missing or wrong signature, or a stale timestamp", body = ErrorBody),
        (status = 403, description = "the hook is disabled, or its owner no longer may enqueue", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "maintenance mode, or the store is unavailable", body = ErrorBody)))]
pub async fn receive(
    State(st): State<AppState>,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match receive_one(st, id, request).await {
        Ok(ok) => ok.into_response(),
        Err(e) => {
            let mut r = e.into_response();
            // The signature is the credential here, not a bearer token.
            r.headers_mut().remove(axum::http::header::WWW_AUTHENTICATE);
            r
        }
    }
}

async fn receive_one(
    st: AppState,
    id: String,
    request: axum::extract::Request,
) -> ApiResult<(StatusCode, Json<HookReceived>)> {
    let (parts, body) = request.into_parts();
    let peer = crate::connections::peer(&parts.extensions);
    let headers = parts.headers;
    let max = st.config.hooks.max_body_bytes;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let bytes = if declared.is_some_and(|n| n > max) {
        None
    } else {
        match axum::body::to_bytes(body, max).await {
            Ok(b) => Some(b),
            Err(e) if is_length_limit(&e) => None,
            Err(e) => {
                return Err(ApiError::new(
                    ErrorKind::BadRequest,
                    "bad_request",
                    format!("the body could not be read: {e}"),
                ))
            }
        }
    };
    let addr = peer.map_or(std::net::Ipv4Addr::LOCALHOST.into(), |p| p.ip());
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let req = Inbound {
        hook_id: &id,
        addr,
        header: &header,
        body: bytes.as_deref(),
    };
    let r = st.service.receive_hook(&st.auth, req).await?;
    let status = if r.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(HookReceived {
            task_id: r.task.id,
            duplicate: r.duplicate,
        }),
    ))
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string().contains("length limit exceeded") {
            return true;
        }
        source = s.source();
    }
    false
}
