//! Operational routes: liveness, readiness, Prometheus metrics, the OpenAPI document.

use crate::api::document::{ExclusiveFields, Links, OperationIds, StreamEvents};
use crate::api::schema::{self, DefaultLimits};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::OpenApi;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    pub status: &'static str,
    /// Each part checked, `ok` or what is wrong with it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, String>,
    /// The maintenance banner, while maintenance is on or announced (the server stays ready:
    /// reads work).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<rota_core::maintenance::Maintenance>,
}

#[utoipa::path(get, path = "/healthz", tag = "system", security(()), responses((status = 200, body = Status)))]
pub async fn healthz() -> axum::Json<Status> {
    axum::Json(Status {
        status: "ok",
        checks: BTreeMap::new(),
        maintenance: None,
    })
}

#[utoipa::path(get, path = "/readyz", tag = "system", security(()),
    responses((status = 200, body = Status), (status = 503, description = "a part failed; each is named", body = Status)))]
pub async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let health = st.store.health().await;
    let mut ready = !st.shutdown.is_cancelled();
    let mut checks = BTreeMap::new();
    checks.insert(
        "server".to_owned(),
        if ready {
            "ok".to_owned()
        } else {
            "shutting down".to_owned()
        },
    );
    for (name, r) in health.checks {
        ready &= r.is_ok();
        checks.insert(name, r.err().unwrap_or_else(|| "ok".to_owned()));
    }
    let (code, status) = if ready {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let maintenance = st.auth.maintenance(st.clock.now());
    (
        code,
        axum::Json(Status {
            status,
            checks,
            maintenance,
        }),
    )
}

#[utoipa::path(get, path = "/metrics", tag = "system", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    // Queue depth is read at scrape time, so it is exact whenever Prometheus asks; only the
    // deepest queues are shown one by one, so the scrape's cost is bounded.
    match st
        .store
        .queue_overview(st.config.limits.max_metrics_queues)
        .await
    {
        Ok(overview) => {
            crate::metrics::queue_gauges(&overview, st.clock.now());
            flow_gauges(&st, &overview).await;
        }
        Err(e) => tracing::warn!(error = %e, "queue gauges left out of this scrape"),
    }
    if let Some(pool) = st.store.pool_status() {
        crate::metrics::pool_gauges(&pool);
    }
    if let Some(writer) = st.store.writer_status() {
        crate::metrics::writer_counters(&writer);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}

/// The flow gauges of the deepest limited queues, at most `limits.max_metrics_flow_queues`.
async fn flow_gauges(st: &AppState, overview: &rota_store::QueueOverview) {
    let limited = overview
        .top
        .iter()
        .filter(|(_, q)| q.settings.limited())
        .take(st.config.limits.max_metrics_flow_queues);
    for (tenant, q) in limited {
        let key = rota_core::QueueKey::new(tenant, &q.name);
        match crate::service::flow_stats(&*st.store, &key, q, 0).await {
            Ok(flow) => crate::metrics::flow_gauges(tenant, &q.name, &flow),
            Err(e) => tracing::debug!(error = %e, queue = %q.name, "flow gauges left out"),
        }
    }
}

/// Declares the bearer token every `/v1` route takes (the system routes opt out).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "an API key (rota_…) or a JWT from the configured identity provider",
                    ))
                    .build(),
            ),
        );
    }
}

/// Documents the errors every `/v1` operation can answer, in the one error shape, beside the
/// answers each operation documents itself: any request can be malformed (400), lack or fail
/// its credential (401), lack a permission (403), name something absent (404), pass a rate
/// limit (429) or meet an unavailable store or its client's in-flight limit (503); one with a
/// body can also be too large (413), arrive too slowly (408), have a bad field (422) or conflict
/// with the state (409).
struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        let common = [
            ("400", "malformed request: bad JSON, path or query"),
            ("401", "no credential, or one that is not valid"),
            (
                "403",
                "the credential lacks the permission (named in the message)",
            ),
            (
                "404",
                "not found (another tenant's things are not found either)",
            ),
            ("429", "rate limit reached; see Retry-After"),
            (
                "503",
                "storage unavailable, or the client's in-flight limit; see Retry-After",
            ),
        ];
        let with_body = [
            ("408", "the request body did not arrive in time"),
            (
                "409",
                "conflicts with the current state (lease lost, already exists, a limit)",
            ),
            ("413", "the body or a batch is too large"),
            ("422", "a field has a bad value (named in the message)"),
        ];
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let ops = [
                (&mut item.get, false),
                (&mut item.delete, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.patch, true),
            ];
            for (op, body) in ops {
                let Some(op) = op.as_mut() else { continue };
                let extra = if body { &with_body[..] } else { &[][..] };
                for (status, what) in common.iter().chain(extra) {
                    op.responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| error(what).into());
                }
            }
            // Purging and revoking can conflict too.
            if let Some(op) = item.delete.as_mut() {
                op.responses
                    .responses
                    .entry("409".to_owned())
                    .or_insert_with(|| error("conflicts with the current state").into());
            }
        }
    }
}

// The modifiers run in order: the ids come before the links, which name their targets by id.
#[derive(OpenApi)]
#[openapi(
    modifiers(
        &BearerAuth,
        &ErrorResponses,
        &DefaultLimits,
        &OperationIds,
        &ExclusiveFields,
        &StreamEvents,
        &Links
    ),
    security(("bearer" = [])),
    info(
        title = "Rota",
        description = "A durable, multi-tenant task queue. Every /v1 route takes `Authorization: Bearer <token>` (an API key or a JWT); an admin may add `Rota-Tenant: <tenant>` to act in another tenant. Errors are always {\"error\": {\"code\", \"message\"}}; times are RFC 3339 UTC; durations are integer milliseconds (`_ms`)."
    ),
    paths(
        crate::api::tasks::enqueue,
        crate::api::tasks::claim,
        crate::api::tasks::heartbeat,
        crate::api::tasks::complete,
        crate::api::tasks::fail,
        crate::api::batch::complete_batch,
        crate::api::batch::fail_batch,
        crate::api::tasks::get,
        crate::api::tasks::list,
        crate::api::changes::cancel,
        crate::api::changes::retry,
        crate::api::changes::run_now,
        crate::api::changes::kill,
        crate::api::changes::delete,
        crate::api::events::events,
        crate::api::events::stream,
        crate::api::events::ticket,
        crate::api::schedules::put,
        crate::api::schedules::list,
        crate::api::schedules::get,
        crate::api::schedules::delete,
        crate::api::schedules::trigger,
        crate::api::schedules::pause,
        crate::api::schedules::resume,
        crate::api::webhooks::create,
        crate::api::webhooks::list,
        crate::api::webhooks::get,
        crate::api::webhooks::update,
        crate::api::webhooks::delete,
        crate::api::webhooks::rotate,
        crate::api::webhooks::deliveries,
        crate::api::webhooks::retry,
        crate::api::webhooks::callbacks,
        crate::api::webhooks::rotate_callbacks,
        crate::api::hooks::create,
        crate::api::hooks::list,
        crate::api::hooks::get_one,
        crate::api::hooks::update,
        crate::api::hooks::delete,
        crate::api::hooks::rotate,
        crate::api::hooks::requests,
        crate::api::hooks::receive,
        crate::api::oauth::token,
        crate::api::oauth::jwks,
        crate::api::queues::list,
        crate::api::queues::get,
        crate::api::queues::update,
        crate::api::queues::pause,
        crate::api::queues::resume,
        crate::api::queues::purge,
        crate::api::groups::put_group,
        crate::api::groups::list_groups,
        crate::api::workflows::submit,
        crate::api::workflows::list,
        crate::api::workflows::get,
        crate::api::workflows::cancel,
        crate::api::workflows::submit_batch,
        crate::api::workflows::get_batch,
        crate::api::workflows::add_to_batch,
        crate::api::workflows::close_batch,
        crate::api::spawn::spawn,
        crate::api::admin::list_tenants,
        crate::api::admin::create_tenant,
        crate::api::admin::get_tenant,
        crate::api::admin::update_tenant,
        crate::api::admin::delete_tenant,
        crate::api::admin::create_key,
        crate::api::admin::list_keys,
        crate::api::admin::get_key,
        crate::api::admin::revoke_key,
        crate::api::audit::list,
        crate::api::admin::revoke_key_sessions,
        crate::api::admin::rotate_key,
        crate::api::admin::list_roles,
        crate::api::admin::get_role,
        crate::api::admin::put_role,
        crate::api::admin::delete_role,
        crate::api::admin::whoami,
        crate::api::workers::list,
        crate::api::workers::quiet,
        crate::api::workers::terminate,
        crate::api::doctor::doctor,
        crate::api::websocket::websocket,
        crate::api::maintenance::get,
        crate::api::maintenance::put,
        crate::api::maintenance::delete,
        healthz,
        readyz,
        metrics,
        openapi
    ),
    components(schemas(
        crate::api::TaskInput,
        crate::api::batch::CompleteItem,
        crate::api::batch::FailItem,
        crate::error::ErrorBody,
        crate::api::EnqueuedTask,
        crate::api::EnqueuedBatch
    ))
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "this document, with this server's limits", content_type = "application/json")))]
pub async fn openapi(State(st): State<AppState>) -> impl IntoResponse {
    // Built per request (it is asked for rarely): servers in one process may differ in limits.
    let mut doc = ApiDoc::openapi();
    schema::state_limits(&mut doc, &st.config.limits);
    let text = doc.to_pretty_json().expect("the document serializes");
    ([(header::CONTENT_TYPE, "application/json")], text)
}
