//! `--traces`: the servers the bench starts export every span (sampling 1.0) over OTLP/HTTP to
//! a receiver in the bench process, which counts what arrives and drops it, so a run with and
//! one without measure what tracing costs the server (docs/telemetry.md).

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::State;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Where the servers send spans, once the receiver runs.
static SINK: OnceLock<String> = OnceLock::new();

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
}

static COUNTS: OnceLock<Arc<Counts>> = OnceLock::new();

async fn receive(State(c): State<Arc<Counts>>, body: Bytes) -> &'static str {
    c.requests.fetch_add(1, Ordering::Relaxed);
    c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    ""
}

/// Starts the receiver; servers started after this export to it.
pub(super) async fn start() -> Result<()> {
    let counts = COUNTS.get_or_init(Arc::default).clone();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(receive))
        .with_state(counts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let _ = SINK.set(format!("http://{}", listener.local_addr()?));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

/// The environment a started server exports with: every span, sent every second.
pub(super) fn server_env() -> Vec<(&'static str, String)> {
    match SINK.get() {
        None => Vec::new(),
        Some(url) => vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", url.clone()),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".into()),
            ("OTEL_TRACES_SAMPLER_ARG", "1.0".into()),
        ],
    }
}

/// What the receiver got (exports, bytes), once it runs.
pub(super) fn received() -> Option<(u64, u64)> {
    COUNTS.get().map(|c| {
        (
            c.requests.load(Ordering::Relaxed),
            c.bytes.load(Ordering::Relaxed),
        )
    })
}
