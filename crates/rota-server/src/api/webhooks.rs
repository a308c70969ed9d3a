//! Webhooks over HTTP: `POST/GET /v1/webhooks`, `GET/PATCH/DELETE /v1/webhooks/{id}`,
//! `POST /v1/webhooks/{id}/rotate-secret`, `GET /v1/webhooks/{id}/deliveries` and
//! `POST /v1/webhooks/{id}/deliveries/{delivery}/retry`.

use crate::api::admin::Deleted;
use crate::api::events::EventBody;
use crate::api::schema;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::service::{WebhookInput, WebhookPatch};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rota_core::events::EventFilter;
use rota_core::webhooks::{Delivery, DeliveryState, Webhook};
use rota_core::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Where deliveries are POSTed (http or https, resolving to a public address).
    #[schema(value_type = schema::TargetUrl)]
    pub url: String,
    /// Event types or patterns, e.g. `["task.dead", "task.succeeded"]` or `["task.*"]`; each
    /// must match some event type.
    #[schema(min_items = 1)]
    pub events: Vec<String>,
    /// Queue names or patterns; absent or empty: every queue.
    #[serde(default)]
    #[schema(value_type = Vec<schema::Name>)]
    pub queues: Vec<String>,
    #[schema(value_type = Option<schema::Description>)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatchBody {
    #[schema(value_type = Option<schema::TargetUrl>)]
    pub url: Option<String>,
    #[schema(min_items = 1)]
    pub events: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<schema::Name>>)]
    pub queues: Option<Vec<String>>,
    #[schema(value_type = Option<schema::Description>)]
    pub description: Option<String>,
    /// `true` re-enables a webhook disabled by hand or for failing.
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookOut {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub queues: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why it was disabled automatically.
    pub disabled_reason: Option<String>,
    /// Since when every delivery failed.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<Timestamp>,
    /// Until when the previous secret still signs (after a rotation).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_secret_until: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Only when created or rotated: the signing secret, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookOut {
    fn of(w: Webhook, show_secret: bool) -> Self {
        WebhookOut {
            id: w.id,
            url: w.url,
            events: w.filter.types,
            queues: w.filter.queues,
            description: w.description,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            failing_since: w.failing_since,
            previous_secret_until: w.previous_until,
            created_at: w.created_at,
            updated_at: w.updated_at,
            secret: show_secret.then_some(w.secret),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookOut>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    pub id: i64,
    pub webhook_id: String,
    pub state: DeliveryState,
    pub attempts: u32,
    /// The next attempt (pending or failed), or when the attempt in flight is given up.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub latency_ms: Option<u64>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<Timestamp>,
    /// The event, as it is POSTed.
    pub event: EventBody,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        DeliveryOut {
            id: d.id,
            webhook_id: d.webhook_id,
            state: d.state,
            attempts: d.attempts,
            next_attempt_at: d.next_at,
            last_status: d.last_status,
            last_error: d.last_error,
            latency_ms: d.latency_ms,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
            event: EventBody::from(d.event),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryOut>,
    /// Pass as `before` for the next (older) page.
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryParams {
    /// Only deliveries in this state.
    #[param(value_type = DeliveryState, required = false)]
    pub state: Option<String>,
    /// Default 100.
    #[param(value_type = schema::ListLimit, required = false)]
    pub limit: Option<usize>,
    /// Only deliveries older than this id.
    pub before: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old secret keeps signing (both signatures are sent). Default:
    /// webhooks.rotation_grace_ms (a day); 0 drops it at once.
    #[schema(value_type = Option<schema::DelayMs>)]
    pub grace_ms: Option<u64>,
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookBody,
    responses((status = 201, body = WebhookOut), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<WebhookBody>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    let input = WebhookInput {
        url: b.url,
        filter: EventFilter {
            types: b.events,
            queues: b.queues,
        },
        description: b.description,
    };
    let w = st.service.create_webhook(&caller, input).await?;
    Ok((StatusCode::CREATED, Json(WebhookOut::of(w, true))))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList)))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<WebhookList>> {
    let all = st.service.webhooks(&caller).await?;
    Ok(Json(WebhookList {
        webhooks: all.into_iter().map(|w| WebhookOut::of(w, false)).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WebhookOut>> {
    Ok(Json(WebhookOut::of(
        st.service.webhook(&caller, &id).await?,
        false,
    )))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = WebhookPatchBody,
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(b): JsonBody<WebhookPatchBody>,
) -> ApiResult<Json<WebhookOut>> {
    let patch = WebhookPatch {
        url: b.url,
        filter_types: b.events,
        filter_queues: b.queues,
        description: b.description,
        enabled: b.enabled,
    };
    let w = st.service.update_webhook(&caller, &id, patch).await?;
    Ok(Json(WebhookOut::of(w, false)))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    st.service.delete_webhook(&caller, &id).await?;
    Ok(Json(Deleted { deleted: id }))
}

/// A new signing secret, shown this once; the old one keeps signing for the grace period.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path)), request_body = RotateBody,
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rotate(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<RotateBody>,
) -> ApiResult<Json<WebhookOut>> {
    let w = st
        .service
        .rotate_webhook_secret(&caller, &id, body.grace_ms)
        .await?;
    Ok(Json(WebhookOut::of(w, true)))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), DeliveryParams),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deliveries(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<DeliveryParams>,
) -> ApiResult<Json<DeliveryList>> {
    let state = match p.state.as_deref() {
        None => None,
        Some(s) => Some(DeliveryState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state `{s}` is not one of pending, failed, dead, delivered"
            ))
        })?),
    };
    let limit = p.limit.unwrap_or(100);
    let list = st
        .service
        .deliveries(&caller, &id, state, limit, p.before)
        .await?;
    let next_cursor = (list.len() == limit)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    Ok(Json(DeliveryList {
        deliveries: list.into_iter().map(DeliveryOut::from).collect(),
        next_cursor,
    }))
}

/// Sends the delivery again, whatever its state (a dead one included).
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery}/retry", tag = "webhooks",
    params(("id" = String, Path), ("delivery" = i64, Path)),
    responses((status = 200, body = DeliveryOut), (status = 404, body = ErrorBody)))]
pub async fn retry(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath((id, delivery)): ApiPath<(String, i64)>,
) -> ApiResult<Json<DeliveryOut>> {
    let d = st.service.retry_delivery(&caller, &id, delivery).await?;
    Ok(Json(d.into()))
}

/// The tenant's callback signer: whether it has a secret for task results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallbacksOut {
    /// Whether a callback secret exists (tasks may carry a `callback_url`).
    pub configured: bool,
    /// Until when the previous secret still signs (after a rotation).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_secret_until: Option<Timestamp>,
    /// Only when created or rotated: the secret, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl CallbacksOut {
    fn of(w: Option<Webhook>, show_secret: bool) -> Self {
        CallbacksOut {
            configured: w.is_some(),
            previous_secret_until: w.as_ref().and_then(|w| w.previous_until),
            secret: w.filter(|_| show_secret).map(|w| w.secret),
        }
    }
}

#[utoipa::path(get, path = "/v1/callbacks", tag = "webhooks",
    responses((status = 200, body = CallbacksOut), (status = 403, body = ErrorBody)))]
pub async fn callbacks(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<CallbacksOut>> {
    let w = st.service.callback_signer(&caller).await?;
    Ok(Json(CallbacksOut::of(w, false)))
}

/// Creates the tenant's callback secret, or rotates it (the old one keeps signing for the
/// grace period); the answer shows the new secret this once.
#[utoipa::path(post, path = "/v1/callbacks/rotate-secret", tag = "webhooks", request_body = RotateBody,
    responses((status = 200, body = CallbacksOut), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rotate_callbacks(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<RotateBody>,
) -> ApiResult<Json<CallbacksOut>> {
    let w = st
        .service
        .rotate_callback_secret(&caller, body.grace_ms)
        .await?;
    Ok(Json(CallbacksOut::of(Some(w), true)))
}
