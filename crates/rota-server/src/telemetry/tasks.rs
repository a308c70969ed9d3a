//! The spans of a task's life (see the module above for the shape of its trace).

use super::{
    attempt_span_id, carried, remote, request_trace, span_context, system_time, with_span_id,
    Telemetry,
};
use opentelemetry::trace::{Span as _, SpanContext, SpanId, SpanKind, Status, Tracer};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::Span;
use rota_core::webhooks::Delivery;
use rota_core::{NewTask, Task, TaskState};
use std::collections::HashMap;
use std::time::SystemTime;

/// The `rota.enqueue` spans of tasks about to be stored, by span id (which each task now
/// carries in its `traceparent`).
#[derive(Default)]
#[must_use = "the spans end when the tasks are stored"]
pub struct Enqueueing(HashMap<SpanId, Span>);

impl Telemetry {
    /// Before tasks are stored: a task without a trace context of its own takes the
    /// request's. Tracing on, each gets a `rota.enqueue` span (under its own context, else
    /// the request's span) and carries that span's context instead.
    pub fn enqueueing<'a>(&self, tasks: impl IntoIterator<Item = &'a mut NewTask>) -> Enqueueing {
        let request = request_trace();
        let Some(tracer) = self.tracer() else {
            if let Some(c) = request.and_then(|r| r.carried) {
                for t in tasks.into_iter().filter(|t| t.traceparent.is_none()) {
                    t.traceparent = Some(c.traceparent.clone());
                    t.tracestate = c.tracestate.clone();
                }
            }
            return Enqueueing::default();
        };
        let request_cx = request.and_then(|r| r.cx).unwrap_or_default();
        let mut spans = HashMap::new();
        for t in tasks {
            let own = t
                .traceparent
                .as_deref()
                .and_then(|p| span_context(p, t.tracestate.as_deref()));
            let parent = own.map_or_else(|| request_cx.clone(), remote);
            let span = tracer
                .span_builder("rota.enqueue")
                .with_kind(SpanKind::Producer)
                .with_attributes([
                    KeyValue::new("messaging.system", "rota"),
                    KeyValue::new("rota.kind", t.kind.clone()),
                ])
                .start_with_context(tracer, &parent);
            let (p, s) = carried(span.span_context());
            t.traceparent = Some(p);
            t.tracestate = s;
            spans.insert(span.span_context().span_id(), span);
        }
        Enqueueing(spans)
    }

    /// Tasks were claimed (`began`: when the claim was asked for). Tracing on, each task with
    /// a trace context gets `rota.wait` (from when it could run to its claim) and `rota.claim`,
    /// and is handed out carrying its attempt's context, so the worker's spans nest under
    /// the attempt.
    pub fn claimed(&self, tenant: &str, tasks: &mut [Task], worker: &str, began: SystemTime) {
        let Some(tracer) = self.tracer() else {
            return;
        };
        for t in tasks {
            let Some(sc) = stored_context(t) else {
                continue;
            };
            let claimed = t.started_at.map_or_else(SystemTime::now, system_time);
            let attributes = attributes(tenant, t);
            tracer
                .span_builder("rota.wait")
                .with_start_time(system_time(t.run_at).min(claimed))
                .with_attributes(attributes.clone())
                .start_with_context(tracer, &remote(sc.clone()))
                .end_with_timestamp(claimed);
            let attempt = attempt_context(&sc, t);
            let mut claim_attributes = attributes;
            claim_attributes.push(KeyValue::new("rota.worker", worker.to_owned()));
            tracer
                .span_builder("rota.claim")
                .with_start_time(began)
                .with_attributes(claim_attributes)
                .start_with_context(tracer, &remote(attempt.clone()))
                .end();
            let (p, s) = carried(&attempt);
            t.traceparent = Some(p);
            t.tracestate = s;
        }
    }

    /// A worker reported an attempt's outcome (`t` as it left it; `began`: when the report
    /// was received): the attempt's span, from its claim to now, and `rota.complete` or
    /// `rota.fail` under it.
    pub fn attempt_ended(&self, tenant: &str, t: &Task, began: SystemTime) {
        let Some(tracer) = self.tracer() else {
            return;
        };
        let (Some(sc), Some(started)) = (stored_context(t), t.started_at) else {
            return;
        };
        let attempt = attempt_of(t);
        let outcome = match t.state {
            TaskState::Scheduled | TaskState::Ready => "retry",
            other => other.as_str(),
        };
        let mut attrs = attributes(tenant, t);
        attrs.retain(|kv| kv.key.as_str() != "rota.attempt");
        attrs.push(KeyValue::new("rota.attempt", i64::from(attempt)));
        attrs.push(KeyValue::new("rota.outcome", outcome));
        let mut span = with_span_id(attempt_span_id(t.id, attempt), || {
            tracer
                .span_builder("rota.attempt")
                .with_kind(SpanKind::Consumer)
                .with_start_time(system_time(started))
                .with_attributes(attrs.clone())
                .start_with_context(tracer, &remote(sc))
        });
        let failed = t.state != TaskState::Succeeded;
        if failed {
            let error = t.errors.last().map_or("failed", |e| e.message.as_str());
            span.set_status(Status::error(error.to_owned()));
        }
        let under = remote(span.span_context().clone());
        span.end_with_timestamp(SystemTime::now().max(system_time(started)));
        tracer
            .span_builder(if failed { "rota.fail" } else { "rota.complete" })
            .with_start_time(began)
            .with_attributes(attrs)
            .start_with_context(tracer, &under)
            .end();
    }

    /// A delivery is about to be sent about `task` (a webhook's event of its attempt
    /// `attempt`, or its result callback). The context to send with it: tracing on, that of
    /// a `rota.deliver` span under the attempt; off, the one the task carries.
    pub fn delivering(&self, d: &Delivery, task: Option<&Task>, url: &str) -> Delivering {
        let Some(sc) = task.and_then(stored_context) else {
            return Delivering::default();
        };
        let Some(tracer) = self.tracer() else {
            let (p, s) = carried(&sc);
            return Delivering {
                headers: Some((p, s)),
                span: None,
            };
        };
        let task = task.expect("a context comes from a task");
        let parent = match d.event.attempt {
            0 => sc,
            n => attempt_context_of(&sc, task.id, n),
        };
        let mut attrs = attributes(&d.tenant, task);
        attrs.extend([
            KeyValue::new("rota.delivery_id", d.id),
            KeyValue::new("rota.webhook_id", d.webhook_id.clone()),
            KeyValue::new("rota.event", d.event.event_type.as_str()),
            KeyValue::new("rota.delivery.attempt", i64::from(d.attempts)),
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("url.full", without_secrets(url)),
        ]);
        let span = tracer
            .span_builder("rota.deliver")
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(tracer, &remote(parent));
        Delivering {
            headers: Some(carried(span.span_context())),
            span: Some(span),
        }
    }
}

impl Enqueueing {
    /// The tasks as stored (a kept duplicate answers the live task, which carries its own
    /// context): each span gets its task's attributes and ends.
    pub fn stored<'a>(mut self, tenant: &str, tasks: impl IntoIterator<Item = &'a Task>) {
        if self.0.is_empty() {
            return;
        }
        for t in tasks {
            let Some(sc) = stored_context(t) else {
                continue;
            };
            if let Some(mut span) = self.0.remove(&sc.span_id()) {
                span.set_attributes(attributes(tenant, t));
                span.end();
            }
        }
        // Spans no task took: duplicates answered by a live task.
        for (_, mut span) in self.0.drain() {
            span.set_attribute(KeyValue::new("rota.duplicate", true));
            span.end();
        }
    }
}

/// A delivery's trace context and, tracing on, its span.
#[derive(Default)]
pub struct Delivering {
    /// `traceparent` and `tracestate` to send.
    pub headers: Option<(String, Option<String>)>,
    span: Option<Span>,
}

impl Delivering {
    /// What came of the attempt: the status the endpoint answered, or why it failed.
    pub fn done(self, status: Option<u16>, error: Option<&str>) {
        if let Some(mut span) = self.span {
            if let Some(s) = status {
                span.set_attribute(KeyValue::new("http.response.status_code", i64::from(s)));
            }
            if let Some(e) = error {
                span.set_status(Status::error(e.to_owned()));
            }
            span.end();
        }
    }
}

/// `url` without what may be a credential (user info, query, fragment): span attributes
/// leave the server.
fn without_secrets(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

/// The context a task carries as stored (its enqueue's).
fn stored_context(t: &Task) -> Option<SpanContext> {
    span_context(t.traceparent.as_deref()?, t.tracestate.as_deref())
}

/// The attempt `t` is on: its latest claim's.
fn attempt_context(sc: &SpanContext, t: &Task) -> SpanContext {
    attempt_context_of(sc, t.id, t.attempt)
}

fn attempt_context_of(sc: &SpanContext, task: rota_core::TaskId, attempt: u32) -> SpanContext {
    SpanContext::new(
        sc.trace_id(),
        attempt_span_id(task, attempt),
        sc.trace_flags(),
        false,
        sc.trace_state().clone(),
    )
}

/// The attempt an outcome reports: a failure records its attempt with its error (a
/// temporary failure gives the attempt back, so the task's counter is one lower).
fn attempt_of(t: &Task) -> u32 {
    match t.state {
        TaskState::Succeeded => t.attempt,
        _ => t.errors.last().map_or(t.attempt, |e| e.attempt),
    }
}

/// What every span of a task says of it.
fn attributes(tenant: &str, t: &Task) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", "rota"),
        KeyValue::new("rota.tenant", tenant.to_owned()),
        KeyValue::new("rota.queue", t.queue.clone()),
        KeyValue::new("rota.kind", t.kind.clone()),
        KeyValue::new("rota.task_id", t.id.to_string()),
        KeyValue::new("rota.attempt", i64::from(t.attempt)),
    ]
}

#[cfg(test)]
mod tests {
    use super::without_secrets;

    #[test]
    fn a_delivery_url_loses_what_may_be_a_credential() {
        assert_eq!(
            without_secrets("https://ops:pw@hooks.example.com/rota/cb?token=s3cret#x"),
            "https://hooks.example.com/rota/cb"
        );
        assert_eq!(without_secrets("not a url"), "");
    }
}
