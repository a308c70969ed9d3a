//! Trace context in the worker runtime (docs/telemetry.md). A claim hands each task out with
//! the W3C context of its attempt (`Task::traceparent`). With the `otel` feature, each run is
//! a span (`rota.run`, a consumer span) under that context, recorded through the global tracer
//! provider (`opentelemetry::global`; a no-op until the application installs one), and the
//! handler runs inside it, so `opentelemetry::Context::current()` there is the run's. Without
//! the feature the context is only handed on ([`child_context`]).

use rota_core::Task;
use std::future::Future;

/// A run's span, while the `otel` feature is on; nothing otherwise.
pub(crate) struct Run {
    #[cfg(feature = "otel")]
    cx: opentelemetry::Context,
}

#[cfg(feature = "otel")]
mod otel {
    use super::*;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use std::collections::HashMap;

    /// The context `task` carries, as a parent.
    pub(super) fn parent_of(task: &Task) -> Context {
        let mut carrier = HashMap::with_capacity(2);
        if let Some(p) = &task.traceparent {
            carrier.insert("traceparent".to_owned(), p.clone());
        }
        if let Some(s) = &task.tracestate {
            carrier.insert("tracestate".to_owned(), s.clone());
        }
        TraceContextPropagator::new().extract(&carrier)
    }

    impl Run {
        pub(crate) fn start(task: &Task) -> Run {
            let tracer = opentelemetry::global::tracer("rota-worker");
            let span = tracer
                .span_builder("rota.run")
                .with_kind(SpanKind::Consumer)
                .with_attributes([
                    KeyValue::new("messaging.system", "rota"),
                    KeyValue::new("rota.queue", task.queue.clone()),
                    KeyValue::new("rota.kind", task.kind.clone()),
                    KeyValue::new("rota.task_id", task.id.to_string()),
                    KeyValue::new("rota.attempt", i64::from(task.attempt)),
                ])
                .start_with_context(&tracer, &parent_of(task));
            Run {
                cx: parent_of(task).with_span(span),
            }
        }

        pub(crate) fn wrap<F: Future>(&self, f: F) -> impl Future<Output = F::Output> {
            opentelemetry::context::FutureExt::with_context(f, self.cx.clone())
        }

        /// The run ended: `outcome` names how (`succeeded`, `failed`, `cancelled`, ...),
        /// `error` why it failed.
        pub(crate) fn end(self, outcome: &'static str, error: Option<&str>) {
            let span = self.cx.span();
            span.set_attribute(KeyValue::new("rota.outcome", outcome));
            if let Some(e) = error {
                span.set_status(Status::error(e.to_owned()));
            }
            span.end();
        }
    }

    /// The current span's context, if there is one.
    pub(crate) fn current() -> Option<(String, Option<String>)> {
        let cx = Context::current();
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return None;
        }
        let state = sc.trace_state().header();
        Some((
            format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            ),
            (!state.is_empty()).then_some(state),
        ))
    }
}

/// The current span's W3C context, sent as `traceparent` with each request (with the `otel`
/// feature; never without).
pub(crate) fn current() -> Option<(String, Option<String>)> {
    #[cfg(feature = "otel")]
    return otel::current();
    #[cfg(not(feature = "otel"))]
    None
}

#[cfg(not(feature = "otel"))]
impl Run {
    pub(crate) fn start(_task: &Task) -> Run {
        Run {}
    }
    pub(crate) fn wrap<F: Future>(&self, f: F) -> F {
        f
    }
    pub(crate) fn end(self, _outcome: &'static str, _error: Option<&str>) {}
}

/// The W3C context (`traceparent`, `tracestate`) that work started for `task` should
/// continue, such as a process it runs (`TRACEPARENT` in its environment): inside a handler
/// with the `otel` feature the run's span, otherwise the context the task was handed out with.
pub fn child_context(task: &Task) -> Option<(String, Option<String>)> {
    if let Some(current) = current() {
        return Some(current);
    }
    task.traceparent
        .clone()
        .map(|p| (p, task.tracestate.clone()))
}
