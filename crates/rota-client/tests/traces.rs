//! A task's whole trace, from the producer's span to the worker's and the callback delivery,
//! exported over OTLP/HTTP to a receiver in this test (docs/telemetry.md): parent links, the
//! attributes each span carries, a retry as a second attempt, and the callback request's
//! `traceparent` header naming the delivery's span.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use rota_client::worker::{HandlerError, Worker};
use rota_client::NewTask;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One span as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

#[derive(Default)]
struct Received {
    spans: Vec<Got>,
    /// `traceparent` headers of the callback requests.
    callbacks: Vec<String>,
}

type Shared = Arc<Mutex<Received>>;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

async fn traces(State(got): State<Shared>, body: Bytes) -> &'static str {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut got = got.lock().unwrap();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                got.spans.push(Got {
                    service: service.clone(),
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    attributes: s
                        .attributes
                        .iter()
                        .map(|kv| {
                            (
                                kv.key.clone(),
                                text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                            )
                        })
                        .collect(),
                });
            }
        }
    }
    ""
}

async fn callback(State(got): State<Shared>, headers: HeaderMap) -> &'static str {
    let parent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_owned();
    got.lock().unwrap().callbacks.push(parent);
    ""
}

/// The receiver: OTLP/HTTP traces at `/v1/traces`, task results at `/callback`.
async fn receiver() -> (String, Shared) {
    let got: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .route("/callback", post(callback))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Waits (up to 10 s) for `ready` to hold of what was received.
async fn until(got: &Shared, what: &str, ready: impl Fn(&Received) -> bool) {
    for _ in 0..200 {
        if ready(&got.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = got.lock().unwrap();
    let names: Vec<_> = r.spans.iter().map(|s| (&s.service, &s.name)).collect();
    panic!(
        "{what}: never came; spans so far {names:?}, callbacks {:?}",
        r.callbacks
    );
}

fn one<'a>(spans: &'a [Got], name: &str, pick: impl Fn(&Got) -> bool) -> &'a Got {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name && pick(s)).collect();
    assert_eq!(found.len(), 1, "one {name} span: {found:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_trace_runs_from_producer_to_worker_and_callback() {
    // Spans go out every 50 ms rather than every 5 s.
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "50");
    let (otlp, got) = receiver().await;

    let mut config = rota_server::ServerConfig::default();
    config.webhooks.allow_private = true;
    config.telemetry.otlp_endpoint = Some(otlp.clone());
    config.telemetry.service_name = Some("rota-under-test".into());
    let server = common::server_with(config).await;

    // The producer and the worker export through their own providers, as separate
    // processes would; the worker runtime records through the global one.
    let exporting = |service: &str| {
        rota_server::telemetry::provider(
            &rota_server::telemetry::TelemetryConfig {
                otlp_endpoint: Some(otlp.clone()),
                service_name: Some(service.into()),
                sampling_ratio: None,
            },
            service,
        )
        .unwrap()
        .expect("an endpoint turns tracing on")
    };
    let producer = exporting("producer");
    let worker_traces = exporting("worker");
    opentelemetry::global::set_tracer_provider(worker_traces.clone());

    let client = server.client.clone();
    client.rotate_callback_secret(None).await.unwrap();
    let tracer = producer.tracer("producer");
    let produce = tracer.start("produce");
    let produce_cx = opentelemetry::Context::current_with_span(produce);
    let task = NewTask::new("render", &serde_json::json!({"page": 1}))
        .callback(format!("{otlp}/callback"))
        .max_attempts(3);
    let enqueued = client
        .enqueue("reports", &task)
        .with_context(produce_cx.clone())
        .await
        .unwrap();
    produce_cx.span().end();
    let id = enqueued.task.id.to_string();

    // The first run fails (a retry), the second succeeds; each records the context it ran in.
    let ran: Arc<Mutex<Vec<String>>> = Arc::default();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let done_tx = Arc::new(Mutex::new(Some(done_tx)));
    let worker = {
        let ran = ran.clone();
        let client = client.clone();
        tokio::spawn(async move {
            Worker::new(client, "reports")
                .poll_wait(Duration::from_millis(200))
                .run(
                    move |task| {
                        let ran = ran.clone();
                        let done_tx = done_tx.clone();
                        async move {
                            let cx = opentelemetry::Context::current();
                            ran.lock()
                                .unwrap()
                                .push(cx.span().span_context().span_id().to_string());
                            if task.attempt == 1 {
                                return Err(HandlerError::new("flaky").retry_in(Duration::ZERO));
                            }
                            if let Some(tx) = done_tx.lock().unwrap().take() {
                                let _ = tx.send(());
                            }
                            Ok(Some(serde_json::value::to_raw_value(&true).unwrap()))
                        }
                    },
                    async {
                        let _ = done_rx.await;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    },
                )
                .await
                .unwrap()
        })
    };
    let stats = worker.await.unwrap();
    assert_eq!((stats.failed, stats.succeeded), (1, 1));
    producer.force_flush().unwrap();
    worker_traces.force_flush().unwrap();

    until(&got, "the callback and every span", |r| {
        let has = |n: &str, k: usize| r.spans.iter().filter(|s| s.name == n).count() >= k;
        !r.callbacks.is_empty()
            && has("produce", 1)
            && has("rota.enqueue", 1)
            && has("rota.attempt", 2)
            && has("rota.claim", 2)
            && has("rota.wait", 2)
            && has("rota.fail", 1)
            && has("rota.complete", 1)
            && has("rota.run", 2)
            && has("rota.deliver", 1)
    })
    .await;
    let (spans, callbacks) = {
        let r = got.lock().unwrap();
        (r.spans.clone(), r.callbacks.clone())
    };
    let spans = &spans;

    // producer → the enqueue request (a server span) → rota.enqueue, all in one trace.
    let produce = one(spans, "produce", |_| true);
    assert_eq!(produce.parent, "", "the producer's span is the root");
    let request = one(spans, "POST /v1/queues/{queue}/tasks", |s| {
        s.trace_id == produce.trace_id
    });
    assert_eq!(request.parent, produce.span_id);
    assert_eq!(request.service, "rota-under-test");
    assert_eq!(request.attributes["http.response.status_code"], "201");
    let enqueue = one(spans, "rota.enqueue", |_| true);
    assert_eq!(enqueue.parent, request.span_id);
    assert_eq!(enqueue.trace_id, produce.trace_id);
    for (k, v) in [
        ("rota.tenant", "default"),
        ("rota.queue", "reports"),
        ("rota.kind", "render"),
        ("rota.task_id", id.as_str()),
    ] {
        assert_eq!(enqueue.attributes[k], v, "{k}");
    }
    let in_trace: Vec<&Got> = spans
        .iter()
        .filter(|s| s.trace_id == produce.trace_id)
        .collect();

    // Each attempt: its span under the enqueue, its wait beside it, its claim, the worker's
    // run and the outcome under it.
    for (n, outcome, report) in [(1, "retry", "rota.fail"), (2, "succeeded", "rota.complete")] {
        let attempt = one(spans, "rota.attempt", |s| {
            s.attributes["rota.attempt"] == n.to_string()
        });
        assert_eq!(attempt.parent, enqueue.span_id, "attempt {n}");
        assert_eq!(attempt.attributes["rota.outcome"], outcome);
        assert_eq!(attempt.attributes["rota.task_id"], id);
        let claim = one(spans, "rota.claim", |s| s.parent == attempt.span_id);
        assert_eq!(claim.attributes["rota.attempt"], n.to_string());
        assert!(!claim.attributes["rota.worker"].is_empty());
        let run = one(spans, "rota.run", |s| s.parent == attempt.span_id);
        assert_eq!(run.service, "worker");
        assert_eq!(run.attributes["rota.attempt"], n.to_string());
        assert_eq!(
            ran.lock().unwrap()[n - 1],
            run.span_id,
            "the handler ran inside its run's span"
        );
        one(spans, report, |s| s.parent == attempt.span_id);
    }
    assert_eq!(
        in_trace
            .iter()
            .filter(|s| s.name == "rota.wait" && s.parent == enqueue.span_id)
            .count(),
        2,
        "a wait per attempt"
    );

    // The callback: a client span under the attempt it reports, whose context the request
    // carried.
    let last = one(spans, "rota.attempt", |s| {
        s.attributes["rota.attempt"] == "2"
    });
    let deliver = one(spans, "rota.deliver", |_| true);
    assert_eq!(deliver.parent, last.span_id);
    assert_eq!(deliver.trace_id, produce.trace_id);
    assert_eq!(deliver.attributes["http.response.status_code"], "200");
    assert_eq!(
        callbacks[0],
        format!("00-{}-{}-01", deliver.trace_id, deliver.span_id)
    );
}
