//! Rota's HTTP server. The caller owns the listener, the store, the clock and the shutdown
//! signal and passes them to [`run`], so tests bind port 0 and stop the server at will.
//!
//! Architecture Invariant: handlers know the store only as `dyn Store`; no SQL or file format
//! is visible here. Every error leaves through [`error::ApiError`].

pub mod api;
pub mod audit;
pub mod auth;
pub mod background;
pub mod bodies;
pub mod connections;
pub mod dashboard;
pub mod doctor;
pub mod error;
pub mod extract;
pub mod faktory;
pub mod fds;
pub mod hooks;
pub mod maintenance;
pub mod metrics;
pub mod service;
pub mod telemetry;
pub mod webhooks;

use crate::error::ErrorKind;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use rota_core::{Clock, Limits};
use rota_store::DynStore;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

/// The server's settings (the `rota serve` config minus where to listen and store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub limits: Limits,
    /// Credentials, access control and per-client limits.
    pub auth: auth::AuthConfig,
    /// Longest pause between maintenance passes (retention is enforced on each pass).
    pub maintenance_interval_ms: u64,
    /// The event log and its streams.
    pub events: EventsConfig,
    /// Webhook delivery.
    pub webhooks: webhooks::WebhooksConfig,
    /// Inbound webhooks (`POST /hooks/{id}`).
    pub hooks: hooks::HooksConfig,
    /// The audit log.
    pub audit: audit::AuditConfig,
    /// The Faktory door's own bounds.
    pub faktory: faktory::FaktoryConfig,
    /// The web dashboard.
    pub dashboard: dashboard::DashboardConfig,
    /// Traces exported over OTLP (docs/telemetry.md); off unless an endpoint is set here or
    /// in `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub telemetry: telemetry::TelemetryConfig,
}

/// `[events]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// An idle event stream sends a comment line this often, so proxies keep it open.
    pub keepalive_ms: u64,
    /// How long the event log keeps an event (a tenant may set its own).
    pub retention_ms: u64,
    /// An open stream woken by its tenant's commits reads the log at most once per this
    /// many milliseconds, so a burst of commits costs it one read, not one per commit.
    pub min_read_interval_ms: u64,
    /// The largest message (and frame) a WebSocket client may send; the socket closes on a
    /// larger one. Clients send nothing the server reads, so a few KiB is plenty.
    pub ws_max_message_bytes: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            keepalive_ms: 15_000,
            retention_ms: rota_store::DEFAULT_EVENT_RETENTION_MS,
            min_read_interval_ms: 5,
            ws_max_message_bytes: 4_096,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            auth: auth::AuthConfig::default(),
            maintenance_interval_ms: 1_000,
            events: EventsConfig::default(),
            webhooks: webhooks::WebhooksConfig::default(),
            hooks: hooks::HooksConfig::default(),
            audit: audit::AuditConfig::default(),
            faktory: faktory::FaktoryConfig::default(),
            dashboard: dashboard::DashboardConfig::default(),
            telemetry: telemetry::TelemetryConfig::default(),
        }
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.limits.validate()?;
        self.auth.validate()?;
        if self.maintenance_interval_ms == 0 {
            return Err("maintenance_interval_ms must be at least 1".into());
        }
        self.webhooks.validate()?;
        self.hooks.validate(&self.limits)?;
        self.faktory.validate()?;
        self.telemetry.validate()?;
        if self.events.keepalive_ms == 0 {
            return Err("events.keepalive_ms must be at least 1".into());
        }
        if self.events.min_read_interval_ms > 1_000 {
            return Err("events.min_read_interval_ms must be at most 1000".into());
        }
        if self.events.ws_max_message_bytes < 125 {
            // A control frame (ping, close) carries up to 125 bytes.
            return Err("events.ws_max_message_bytes must be at least 125".into());
        }
        self.audit.validate()?;
        if self.events.retention_ms == 0 || self.events.retention_ms > self.limits.max_delay_ms {
            return Err(
                "events.retention_ms must be at least 1 and at most limits.max_delay_ms".into(),
            );
        }
        Ok(())
    }
}

/// What every handler shares; cloned for each request, so it is one `Arc` (a clone of the
/// fields themselves took the cancellation tokens' locks twice per request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: DynStore,
    pub config: Arc<ServerConfig>,
    pub clock: Arc<dyn Clock>,
    /// Cancelled when the server begins shutting down: long-polls return at once.
    pub shutdown: CancellationToken,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub auth: Arc<auth::Auth>,
    pub bodies: Arc<bodies::BodyBudget>,
    /// The operations every front door shares.
    pub service: service::Service,
    /// The Faktory door's worker processes and handed-out leases.
    pub faktory: Arc<faktory::workers::Registry>,
}

pub fn router(state: AppState) -> Router {
    use api::{
        admin, batch, changes, doctor, events, groups, maintenance, queues, schedules, spawn,
        system, tasks, webhooks, workers, workflows,
    };
    let body_limit = state.config.limits.max_body_bytes;
    let v1 = Router::new()
        .route("/v1/queues", get(queues::list))
        .route("/v1/queues/{queue}", get(queues::get).patch(queues::update))
        .route("/v1/queues/{queue}/pause", post(queues::pause))
        .route("/v1/queues/{queue}/resume", post(queues::resume))
        .route("/v1/queues/{queue}/groups", get(groups::list_groups))
        .route("/v1/queues/{queue}/groups/{group}", put(groups::put_group))
        .route(
            "/v1/queues/{queue}/tasks",
            post(tasks::enqueue).get(tasks::list).delete(queues::purge),
        )
        .route("/v1/queues/{queue}/claim", post(tasks::claim))
        .route("/v1/tasks/complete", post(batch::complete_batch))
        .route("/v1/tasks/fail", post(batch::fail_batch))
        .route("/v1/tasks/{id}", get(tasks::get).delete(changes::delete))
        .route("/v1/events", get(events::events))
        .route(auth::STREAM_ROUTE, get(events::stream))
        .route(auth::WEBSOCKET_ROUTE, get(api::websocket::websocket))
        .route("/v1/events/tickets", post(events::ticket))
        .route("/v1/schedules", get(schedules::list))
        .route(
            "/v1/schedules/{name}",
            get(schedules::get)
                .put(schedules::put)
                .delete(schedules::delete),
        )
        .route("/v1/schedules/{name}/trigger", post(schedules::trigger))
        .route("/v1/schedules/{name}/pause", post(schedules::pause))
        .route("/v1/schedules/{name}/resume", post(schedules::resume))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/rotate-secret", post(webhooks::rotate))
        .route("/v1/callbacks", get(webhooks::callbacks))
        .route(
            "/v1/callbacks/rotate-secret",
            post(webhooks::rotate_callbacks),
        )
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/v1/webhooks/{id}/deliveries/{delivery}/retry",
            post(webhooks::retry),
        )
        .route(
            "/v1/workflows",
            get(workflows::list).post(workflows::submit),
        )
        .route("/v1/workflows/{id}", get(workflows::get))
        .route("/v1/workflows/{id}/cancel", post(workflows::cancel))
        .route("/v1/batches", post(workflows::submit_batch))
        .route("/v1/batches/{id}", get(workflows::get_batch))
        .route("/v1/batches/{id}/tasks", post(workflows::add_to_batch))
        .route("/v1/batches/{id}/close", post(workflows::close_batch))
        .route("/v1/tasks/{id}/spawn", post(spawn::spawn))
        .route("/v1/tasks/{id}/heartbeat", post(tasks::heartbeat))
        .route("/v1/tasks/{id}/complete", post(tasks::complete))
        .route("/v1/tasks/{id}/fail", post(tasks::fail))
        .route("/v1/tasks/{id}/cancel", post(changes::cancel))
        .route("/v1/tasks/{id}/retry", post(changes::retry))
        .route("/v1/tasks/{id}/run-now", post(changes::run_now))
        .route("/v1/tasks/{id}/kill", post(changes::kill))
        .route(
            "/v1/admin/tenants",
            get(admin::list_tenants).post(admin::create_tenant),
        )
        .route("/v1/audit", get(api::audit::list))
        .route(
            "/v1/admin/tenants/{tenant}",
            get(admin::get_tenant)
                .patch(admin::update_tenant)
                .delete(admin::delete_tenant),
        )
        .route("/v1/keys", get(admin::list_keys).post(admin::create_key))
        .route(
            "/v1/keys/{id}",
            get(admin::get_key).delete(admin::revoke_key),
        )
        .route("/v1/keys/{id}/rotate", post(admin::rotate_key))
        .route(
            "/v1/keys/{id}/sessions/revoke",
            post(admin::revoke_key_sessions),
        )
        .route("/v1/roles", get(admin::list_roles))
        .route(
            "/v1/roles/{name}",
            get(admin::get_role)
                .put(admin::put_role)
                .delete(admin::delete_role),
        )
        .route(
            "/v1/admin/maintenance",
            get(maintenance::get)
                .put(maintenance::put)
                .delete(maintenance::delete),
        )
        .route("/v1/whoami", get(admin::whoami))
        .route("/v1/doctor", get(doctor::doctor))
        .route("/v1/workers", get(workers::list))
        .route("/v1/workers/{wid}/quiet", post(workers::quiet))
        .route("/v1/workers/{wid}/terminate", post(workers::terminate))
        .merge(api::hooks::admin_routes())
        // Maintenance is checked after authentication (a wrong key is still 401).
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::maintenance::refuse_writes,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .merge(v1)
        .merge(dashboard::router(state.clone()))
        // Providers' requests: no bearer token (the signature is the credential).
        .route(api::hooks::RECEIVE_ROUTE, post(api::hooks::receive))
        // OAuth clients exchange a key for an access token (no bearer token: the key is it).
        .route("/oauth/token", post(api::oauth::token))
        .route("/.well-known/jwks.json", get(api::oauth::jwks))
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(system::openapi))
        .fallback(|| async {
            error::ApiError::new(
                ErrorKind::NotFound,
                "not_found",
                "no such route; see /openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                ErrorKind::MethodNotAllowed,
                "method_not_allowed",
                "this route does not take that method; see /openapi.json",
            )
        })
        .layer(axum::middleware::from_fn(metrics::track_http))
        // Inside the request's span: its trace, then its own span while tracing is on.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::http,
        ))
        // A span per request with its id, method and path, so every log line of the request
        // names it; its status and latency at DEBUG (`ROTA_LOG=tower_http=debug`).
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_span)
                // A 503 for a client's own in-flight limit, or a 429, is the client's doing, not
                // a server fault: nothing at ERROR here. Storage failures are logged at ERROR
                // where they happen (error.rs), with their cause.
                .on_failure(
                    tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
                ),
        )
        // The request's id: the client's `X-Request-Id` when it sends one, else a new one;
        // returned on the response.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), RequestIds))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

static REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// Ids for requests that come without an `X-Request-Id`: 24 random hex digits.
#[derive(Clone, Copy)]
struct RequestIds;

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id: String = rand::random::<[u8; 12]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(RequestId::new(
            id.parse().expect("hex is a valid header value"),
        ))
    }
}

/// The span every log line of a request is written in.
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", id, method = %req.method(), path = req.uri().path())
}

/// Serves until `shutdown` resolves, then stops accepting, ends long-polls, lets in-flight
/// requests finish and stops maintenance. The caller closes the store afterwards.
pub async fn run(
    listener: TcpListener,
    store: DynStore,
    config: ServerConfig,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let auth = auth::Auth::load(store.clone(), clock.clone(), config.auth.clone())
        .await
        .map_err(std::io::Error::other)?;
    run_with_auth(listener, store, config, clock, auth, shutdown).await
}

/// [`run`] with access control already loaded (`rota serve` creates the first admin key
/// before it serves).
pub async fn run_with_auth(
    listener: TcpListener,
    store: DynStore,
    config: ServerConfig,
    clock: Arc<dyn Clock>,
    auth: Arc<auth::Auth>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let doors = Doors {
        http: listener,
        faktory: None,
    };
    run_doors(doors, store, config, clock, auth, shutdown).await
}

/// Where the server listens: the HTTP API, and the Faktory protocol if asked for.
pub struct Doors {
    pub http: TcpListener,
    pub faktory: Option<TcpListener>,
}

/// [`run_with_auth`] on every door in `doors`.
pub async fn run_doors(
    doors: Doors,
    store: DynStore,
    config: ServerConfig,
    clock: Arc<dyn Clock>,
    auth: Arc<auth::Auth>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Doors {
        http: listener,
        faktory,
    } = doors;
    let token = CancellationToken::new();
    let metrics = metrics::handle();
    let interval = Duration::from_millis(config.maintenance_interval_ms);
    let shared_config = Arc::new(config.clone());
    let faktory_registry = Arc::new(faktory::workers::Registry::default());
    let telemetry =
        telemetry::Telemetry::start(&config.telemetry).map_err(std::io::Error::other)?;
    if telemetry.is_on() {
        tracing::info!("exporting traces over OTLP (docs/telemetry.md)");
    }
    let state = AppState(Arc::new(Shared {
        service: service::Service::new(
            store.clone(),
            shared_config.clone(),
            clock.clone(),
            token.clone(),
            faktory_registry.clone(),
        )
        .with_telemetry(telemetry.clone()),
        store: store.clone(),
        config: shared_config,
        clock: clock.clone(),
        shutdown: token.clone(),
        metrics: metrics.clone(),
        auth: auth.clone(),
        bodies: Arc::new(bodies::BodyBudget::new(&config.limits)),
        faktory: faktory_registry,
    }));
    let me: Arc<str> = background::server_id().into();
    let maintenance = {
        let (store, clock) = (store.clone(), clock.clone());
        tokio::spawn(background::elected(
            store.clone(),
            "maintenance",
            me.clone(),
            token.clone(),
            move |stop| background::maintenance::run(store.clone(), clock.clone(), interval, stop),
        ))
    };
    let scheduler = {
        let (store, clock) = (store.clone(), clock.clone());
        let wake = state.service.schedules_changed();
        // Maintenance mode holds the scheduler: a tick is an enqueue.
        let (auth, held_clock) = (state.auth.clone(), clock.clone());
        let held: background::schedules::Held = Arc::new(move || {
            let now = held_clock.now();
            auth.maintenance(now).is_some_and(|m| m.refuses(now))
        });
        tokio::spawn(background::elected(
            store.clone(),
            "schedules",
            me.clone(),
            token.clone(),
            move |stop| {
                let (store, clock) = (store.clone(), clock.clone());
                background::schedules::run(store, clock, wake.clone(), held.clone(), stop)
            },
        ))
    };
    let deliverer = {
        let deliverer = webhooks::deliver::Deliverer::new(
            store.clone(),
            clock.clone(),
            config.webhooks.clone(),
            state.auth.clone(),
            telemetry.clone(),
        );
        tokio::spawn(background::elected(
            store.clone(),
            "webhooks",
            me.clone(),
            token.clone(),
            move |stop| deliverer.clone().run(stop),
        ))
    };
    let notices = {
        let (auth, clock) = (state.auth.clone(), clock.clone());
        tokio::spawn(background::elected(
            store.clone(),
            "key-notices",
            me.clone(),
            token.clone(),
            move |stop| background::notices::run(auth.clone(), clock.clone(), stop),
        ))
    };
    let access_feed = tokio::spawn(background::access_feed(
        store.clone(),
        auth.clone(),
        token.clone(),
    ));
    let membership = tokio::spawn(background::membership(
        store,
        auth.clone(),
        me,
        token.clone(),
    ));
    let upkeep = {
        let token = token.clone();
        let bodies = state.bodies.clone();
        let (store, observed) = (state.store.clone(), state.service.observed.clone());
        let (clock, deepest) = (state.clock.clone(), state.config.limits.max_metrics_queues);
        tokio::spawn(async move {
            let mut ticks = 0u64;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {
                        metrics.run_upkeep();
                        bodies.return_memory();
                        if let Some(w) = store.writer_status() {
                            observed.writer_sampled(std::time::Instant::now(), w.busy_by_writer);
                        }
                        ticks += 1;
                        // Every 30 s, which of the deepest queues sit at their concurrency
                        // limit, so the doctor can tell for how long.
                        if ticks.is_multiple_of(6) {
                            doctor::flow::sample_limits(&*store, &observed, &*clock, deepest).await;
                        }
                    }
                    _ = token.cancelled() => return,
                }
            }
        })
    };
    let touch = {
        let token = token.clone();
        let auth = auth.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(auth::TOUCH_INTERVAL) => auth.flush_last_used().await,
                    _ = token.cancelled() => break,
                }
            }
        })
    };
    let on_signal = {
        let token = token.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown => token.cancel(),
                _ = token.cancelled() => {}
            }
        })
    };
    let faktory = faktory.map(|l| tokio::spawn(faktory::serve(l, state.clone())));
    let served = connections::serve(listener, router(state), &config.limits, token.clone()).await;
    on_signal.abort();
    if let Some(f) = faktory {
        let _ = f.await;
    }
    token.cancel();
    let _ = maintenance.await;
    let _ = scheduler.await;
    let _ = deliverer.await;
    let _ = notices.await;
    let _ = access_feed.await;
    let _ = membership.await;
    let _ = upkeep.await;
    let _ = touch.await;
    auth.flush_last_used().await;
    telemetry.shutdown().await;
    served
}
