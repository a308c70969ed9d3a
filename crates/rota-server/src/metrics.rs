//! Prometheus metrics: task counters by queue and outcome, request latency by route.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rota_core::TaskState;
use std::sync::OnceLock;

/// The process-wide recorder (metrics are global; several servers in one test process share it).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("rota_http_request_duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0, 30.0, 60.0,
                    ],
                )
                .expect("buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

pub fn tasks_enqueued(tenant: &str, queue: &str, n: usize) {
    if n > 0 {
        metrics::counter!("rota_tasks_enqueued_total", "tenant" => tenant.to_owned(), "queue" => queue.to_owned())
            .increment(n as u64);
    }
}

pub fn tasks_claimed(tenant: &str, queue: &str, n: usize) {
    if n > 0 {
        metrics::counter!("rota_tasks_claimed_total", "tenant" => tenant.to_owned(), "queue" => queue.to_owned())
            .increment(n as u64);
    }
}

/// A task finished an attempt or was cancelled: `outcome` is the state it went to
/// (`succeeded`, `scheduled`/`ready` for a retry, `dead`, `cancelled`).
pub fn task_outcome(tenant: &str, queue: &str, state: TaskState) {
    let outcome = match state {
        TaskState::Scheduled | TaskState::Ready => "retry",
        other => other.as_str(),
    };
    metrics::counter!("rota_task_outcomes_total", "tenant" => tenant.to_owned(), "queue" => queue.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Per queue: tasks by state, how long the oldest ready task has waited, and how long since a
/// worker last asked for work ("queued, and nobody is claiming").
pub fn queue_gauges(queues: &[(String, rota_core::QueueInfo)], now: rota_core::Timestamp) {
    for (tenant, q) in queues {
        for state in TaskState::ALL {
            metrics::gauge!(
                "rota_queue_tasks",
                "tenant" => tenant.clone(),
                "queue" => q.name.clone(),
                "state" => state.as_str()
            )
            .set(q.counts.get(state) as f64);
        }
        let oldest = q.oldest_ready_age_ms.unwrap_or(0) as f64 / 1000.0;
        metrics::gauge!("rota_queue_oldest_ready_seconds", "tenant" => tenant.clone(), "queue" => q.name.clone())
            .set(oldest);
        if let Some(t) = q.last_claim_at {
            let age = (now.millis() - t.millis()).max(0) as f64 / 1000.0;
            metrics::gauge!("rota_queue_last_claim_age_seconds", "tenant" => tenant.clone(), "queue" => q.name.clone())
                .set(age);
        }
    }
}

pub fn maintenance(report: &rota_store::MaintenanceReport) {
    metrics::counter!("rota_tasks_promoted_total").increment(report.promoted);
    metrics::counter!("rota_leases_expired_total").increment(report.expired);
    metrics::counter!("rota_tasks_deleted_total").increment(report.deleted);
}

/// Records each request's latency by method, route and status.
pub async fn track_http(req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    metrics::histogram!(
        "rota_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => resp.status().as_u16().to_string()
    )
    .record(start.elapsed().as_secs_f64());
    resp
}
