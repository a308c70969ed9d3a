//! Traces (docs/telemetry.md): OTLP/HTTP export through the `opentelemetry` crates, a span for
//! each request at both doors, and a task's life as spans joined by the W3C trace context it
//! carries (`traceparent`). Off unless an endpoint is configured; off, each hook costs a
//! branch, and a task still keeps and hands on the context it was given.
//!
//! A task's trace: the producer's span → `rota.enqueue` (whose context the task stores) →
//! per attempt `rota.wait` (ready to claimed) and `rota.attempt` (claimed to its outcome) →
//! under the attempt `rota.claim`, the worker's own spans (the claim hands the worker the
//! attempt's context) and `rota.complete` / `rota.fail`; deliveries (`rota.deliver`) under the
//! attempt they report. The attempt span's id is derived from the task id and attempt number
//! ([`attempt_span_id`]), so the server that records the outcome need not be the one that
//! handed out the claim, and nothing more is stored per attempt.

mod export;
mod request;
mod tasks;

pub use request::{http, request_trace, Carried, RequestTrace};
pub use tasks::{Delivering, Enqueueing};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `[telemetry]` in the config file. Each setting left out falls back to the standard
/// `OTEL_*` variable (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`,
/// `OTEL_TRACES_SAMPLER`/`_ARG`); with no endpoint in either, tracing is off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP collector's base URL (`http://collector:4318`); spans go to
    /// `<otlp_endpoint>/v1/traces`, protobuf-encoded.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` spans carry. Default: `OTEL_SERVICE_NAME`, else `rota`.
    pub service_name: Option<String>,
    /// The share of new traces recorded, 0.0 to 1.0; a request or task that arrives with a
    /// trace context follows its sampled flag (parent-based). Default: `OTEL_TRACES_SAMPLER`,
    /// else 1.0.
    pub sampling_ratio: Option<f64>,
}

impl TelemetryConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(r) = self.sampling_ratio {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("telemetry.sampling_ratio is {r}; use 0.0 to 1.0"));
            }
        }
        if let Some(e) = &self.otlp_endpoint {
            let ok = url::Url::parse(e)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(format!(
                    "telemetry.otlp_endpoint `{e}` is not an http(s) URL such as http://localhost:4318"
                ));
            }
        }
        if self.service_name.as_deref() == Some("") {
            return Err("telemetry.service_name must not be empty".into());
        }
        Ok(())
    }

    /// Whether spans are exported: an endpoint here or in the environment, and the SDK not
    /// turned off there (`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`).
    pub fn enabled(&self) -> bool {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return false;
        }
        self.otlp_endpoint.is_some()
            || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
    }
}

/// A tracer provider exporting to the configured collector, or `None` when tracing is off.
/// Must be called within a Tokio runtime: exports run on it.
pub fn provider(
    config: &TelemetryConfig,
    default_service: &str,
) -> Result<Option<SdkTracerProvider>, String> {
    if !config.enabled() {
        return Ok(None);
    }
    let exporter = export::exporter(config)?;
    let service = config
        .service_name
        .clone()
        .or_else(|| {
            std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| default_service.to_owned());
    let mut builder = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(Ids::default())
        .with_resource(Resource::builder().with_service_name(service).build());
    if let Some(r) = config.sampling_ratio {
        builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            r,
        ))));
    }
    Ok(Some(builder.build()))
}

/// The server's tracing: off (the default), or a tracer exporting spans.
#[derive(Clone, Default)]
pub struct Telemetry(Option<Arc<Tracing>>);

struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Telemetry {
    /// Tracing as `config` (and the environment) say; must be called within a Tokio runtime.
    pub fn start(config: &TelemetryConfig) -> Result<Telemetry, String> {
        Ok(Telemetry(provider(config, "rota")?.map(|provider| {
            Arc::new(Tracing {
                tracer: provider.tracer("rota"),
                provider,
            })
        })))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    fn tracer(&self) -> Option<&SdkTracer> {
        self.0.as_ref().map(|t| &t.tracer)
    }

    /// Sends the spans still queued and stops exporting (at the server's end).
    pub async fn shutdown(&self) {
        if let Some(t) = &self.0 {
            let provider = t.provider.clone();
            let done = tokio::task::spawn_blocking(move || {
                provider.shutdown_with_timeout(Duration::from_secs(5))
            })
            .await;
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "spans still queued at shutdown may be lost");
            }
        }
    }
}

thread_local! {
    /// The id the next span built on this thread takes ([`with_span_id`]).
    static NEXT_SPAN_ID: Cell<Option<SpanId>> = const { Cell::new(None) };
}

/// Random ids, except a span built through [`with_span_id`], which takes the id given.
#[derive(Debug, Default)]
struct Ids(RandomIdGenerator);

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        self.0.new_trace_id()
    }
    fn new_span_id(&self) -> SpanId {
        NEXT_SPAN_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.0.new_span_id())
    }
}

/// Runs `build` (which builds one span, synchronously) so that the span's id is `id`.
fn with_span_id<T>(id: SpanId, build: impl FnOnce() -> T) -> T {
    NEXT_SPAN_ID.with(|c| c.set(Some(id)));
    let out = build();
    NEXT_SPAN_ID.with(|c| c.set(None));
    out
}

/// The span id of attempt `attempt` of task `task`: the same on every server, so the claim
/// can hand out the attempt's context before the span (recorded at the outcome) exists.
pub fn attempt_span_id(task: rota_core::TaskId, attempt: u32) -> SpanId {
    let mut h = Sha256::new();
    h.update(b"rota attempt");
    h.update(task.as_i64().to_be_bytes());
    h.update(attempt.to_be_bytes());
    let mut id: [u8; 8] = h.finalize()[..8].try_into().expect("8 bytes");
    if id == [0; 8] {
        id[7] = 1; // the invalid id
    }
    SpanId::from_bytes(id)
}

/// The span context a `traceparent` (and `tracestate`) names, if valid. Read on every claim
/// and outcome of a traced task, so a context already checked ([`rota_core::trace`]) is cut
/// into its fields rather than parsed through a propagator's carrier map.
pub fn span_context(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    rota_core::trace::check_traceparent(traceparent).ok()?;
    let trace_id = TraceId::from_hex(&traceparent[3..35]).ok()?;
    let span_id = SpanId::from_hex(&traceparent[36..52]).ok()?;
    let flags = u8::from_str_radix(&traceparent[53..55], 16).ok()?;
    let state = match tracestate {
        Some(s) => s.parse().unwrap_or_default(),
        None => TraceState::default(),
    };
    let sc = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
        true,
        state,
    );
    sc.is_valid().then_some(sc)
}

/// A context whose parent is `sc`, as received from elsewhere.
fn remote(sc: SpanContext) -> Context {
    Context::new().with_remote_span_context(sc)
}

/// `sc` as a version-00 `traceparent` and its `tracestate` (none when empty).
pub fn carried(sc: &SpanContext) -> (String, Option<String>) {
    let state = sc.trace_state().header();
    (
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        ),
        (!state.is_empty()).then_some(state),
    )
}

/// A Rota time as the SDK's.
fn system_time(t: rota_core::Timestamp) -> SystemTime {
    if t.0 >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_millis(t.0 as u64)
    } else {
        SystemTime::UNIX_EPOCH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_goes_out_as_it_came_in() {
        let p = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = span_context(p, Some("rojo=00f067aa0ba902b7")).unwrap();
        assert_eq!(
            carried(&sc),
            (p.to_owned(), Some("rojo=00f067aa0ba902b7".to_owned()))
        );
        assert!(span_context(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            None
        )
        .is_none());
    }

    #[test]
    fn attempt_ids_differ_by_task_and_attempt_and_repeat() {
        let t = rota_core::TaskId::from_i64(42);
        assert_eq!(attempt_span_id(t, 1), attempt_span_id(t, 1));
        assert_ne!(attempt_span_id(t, 1), attempt_span_id(t, 2));
        assert_ne!(
            attempt_span_id(t, 1),
            attempt_span_id(rota_core::TaskId::from_i64(43), 1)
        );
    }

    #[test]
    fn the_ratio_is_bounded_and_the_endpoint_a_url() {
        let bad = TelemetryConfig {
            sampling_ratio: Some(1.5),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("sampling_ratio"));
        let bad = TelemetryConfig {
            otlp_endpoint: Some("collector:4318".into()),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("otlp_endpoint"));
        assert_eq!(TelemetryConfig::default().validate(), Ok(()));
    }
}
