//! The request's trace: what the caller sent (`traceparent`, `tracestate`) and, while tracing
//! is on, the request's own span. Held for the request's handling in a task-local, so the
//! service's task spans and the tasks an enqueue stores find it without every call passing it.

use super::{remote, span_context, Telemetry};
use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use std::future::Future;

/// A W3C trace context as text, checked ([`rota_core::trace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

impl Carried {
    /// The context a request's headers (or a job's fields) carry; one that is not valid is
    /// ignored, as W3C trace context asks of a receiver.
    pub fn parse(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Carried> {
        let parent = traceparent?.trim();
        rota_core::trace::check_traceparent(parent).ok()?;
        let state = tracestate
            .map(str::trim)
            .filter(|s| !s.is_empty() && rota_core::trace::check_tracestate(s).is_ok());
        Some(Carried {
            traceparent: parent.to_owned(),
            tracestate: state.map(str::to_owned),
        })
    }
}

/// What a request brought and, tracing on, its span.
#[derive(Debug, Clone, Default)]
pub struct RequestTrace {
    pub carried: Option<Carried>,
    /// The request's span; the parent of the spans its handling records.
    pub cx: Option<Context>,
}

tokio::task_local! {
    static REQUEST: RequestTrace;
}

/// The trace of the request being handled, if it has one.
pub fn request_trace() -> Option<RequestTrace> {
    REQUEST.try_with(Clone::clone).ok()
}

impl Telemetry {
    /// Runs `handle` as the request `name` (a door's operation), with its span while tracing
    /// is on: a server span under `carried` with `attributes`; `status` reads the outcome to
    /// say whether the request failed. Off and with nothing carried, `handle` runs as is.
    pub async fn request<F, T>(
        &self,
        name: String,
        carried: Option<Carried>,
        attributes: Vec<KeyValue>,
        handle: F,
        outcome: impl FnOnce(&T) -> (Vec<KeyValue>, Option<String>),
    ) -> T
    where
        F: Future<Output = T>,
    {
        let Some(tracer) = self.tracer() else {
            return match carried {
                None => handle.await,
                Some(c) => {
                    let trace = RequestTrace {
                        carried: Some(c),
                        cx: None,
                    };
                    REQUEST.scope(trace, handle).await
                }
            };
        };
        let parent = match carried
            .as_ref()
            .and_then(|c| span_context(&c.traceparent, c.tracestate.as_deref()))
        {
            Some(sc) => remote(sc),
            None => Context::new(),
        };
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        let cx = parent.with_span(span);
        let trace = RequestTrace {
            carried,
            cx: Some(cx.clone()),
        };
        let out = REQUEST.scope(trace, handle.with_context(cx.clone())).await;
        let (attrs, error) = outcome(&out);
        let span = cx.span();
        span.set_attributes(attrs);
        if let Some(e) = error {
            span.set_status(Status::error(e));
        }
        span.end();
        out
    }
}

/// The HTTP door's middleware: each request in its span (`GET /v1/queues/{queue}`), under the
/// `traceparent` it sent.
pub async fn http(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let carried = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        Carried::parse(header("traceparent"), header("tracestate"))
    };
    let telemetry = st.service.telemetry();
    // Probes and scrapes every few seconds would bury the traces worth reading.
    let probe = matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics");
    if probe || (carried.is_none() && !telemetry.is_on()) {
        return next.run(req).await;
    }
    // The route, not the path, names the span: names stay few (`unmatched` for a 404's).
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let attributes = if telemetry.is_on() {
        vec![
            KeyValue::new("http.request.method", method.clone()),
            KeyValue::new("http.route", route.clone()),
            KeyValue::new("url.path", req.uri().path().to_owned()),
        ]
    } else {
        Vec::new()
    };
    telemetry
        .request(
            format!("{method} {route}"),
            carried,
            attributes,
            next.run(req),
            |res: &Response| {
                let status = res.status();
                (
                    vec![KeyValue::new(
                        "http.response.status_code",
                        i64::from(status.as_u16()),
                    )],
                    status.is_server_error().then(|| status.as_str().to_owned()),
                )
            },
        )
        .await
}
