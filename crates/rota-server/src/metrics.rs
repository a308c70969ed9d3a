//! Prometheus metrics: task counters by queue, kind and outcome, how long tasks wait, run and
//! take from enqueue to their end (per queue), request latency by route.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use rota_core::{Task, TaskState, Timestamp};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A gauge not set for this long is dropped from `/metrics`.
const GAUGE_IDLE: Duration = Duration::from_secs(120);

/// Queues that get their own label on task counters; others count under `_other`, so the
/// number of series stays bounded however many queues exist.
const MAX_COUNTER_QUEUES: usize = 1_000;

/// The `queue` label for a task counter: the queue's name while fewer than
/// [`MAX_COUNTER_QUEUES`] queues have one, else `_other`.
fn queue_label(tenant: &str, queue: &str) -> (String, String) {
    static SEEN: OnceLock<Mutex<HashSet<(String, String)>>> = OnceLock::new();
    bounded(&SEEN, MAX_COUNTER_QUEUES, tenant, queue)
}

/// `(tenant, name)` while fewer than `max` pairs were seen in `seen` (or this one was), else
/// `_other` for both: label values that keep the number of series bounded.
fn bounded(
    seen: &OnceLock<Mutex<HashSet<(String, String)>>>,
    max: usize,
    tenant: &str,
    name: &str,
) -> (String, String) {
    let key = (tenant.to_owned(), name.to_owned());
    let mut seen = seen
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if seen.contains(&key) || seen.len() < max {
        seen.insert(key.clone());
        key
    } else {
        ("_other".into(), "_other".into())
    }
}

/// Kinds that get their own label on the per-kind outcome counter; others count as `_other`.
const MAX_COUNTER_KINDS: usize = 1_000;

/// The `kind` label for the per-kind outcome counter, bounded as [`queue_label`] is.
fn kind_label(tenant: &str, kind: &str) -> (String, String) {
    static SEEN: OnceLock<Mutex<HashSet<(String, String)>>> = OnceLock::new();
    bounded(&SEEN, MAX_COUNTER_KINDS, tenant, kind)
}

/// Buckets of the task histograms (wait, run, end to end): a millisecond to a day.
const TASK_SECONDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0, 21600.0, 86400.0,
];

/// Seconds from `from` to `to`, none below zero (clocks of several servers may disagree).
fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    (to.0 - from.0).max(0) as f64 / 1000.0
}

/// The process-wide recorder (metrics are global; several servers in one test process share it).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                // Queue gauges are set at each scrape; a queue that left the deepest set (or
                // was deleted) drops out instead of showing its last value for ever.
                .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
                .set_buckets_for_metric(
                    Matcher::Full("rota_http_request_duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0, 30.0, 60.0,
                    ],
                )
                .expect("buckets are not empty")
                .set_buckets_for_metric(Matcher::Prefix("rota_task_".into()), TASK_SECONDS)
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
        let (tenant, queue) = queue_label(tenant, queue);
        metrics::counter!("rota_tasks_enqueued_total", "tenant" => tenant, "queue" => queue)
            .increment(n as u64);
    }
}

pub fn tasks_claimed(tenant: &str, queue: &str, n: usize) {
    if n > 0 {
        let (tenant, queue) = queue_label(tenant, queue);
        metrics::counter!("rota_tasks_claimed_total", "tenant" => tenant, "queue" => queue)
            .increment(n as u64);
    }
}

/// Claimed tasks: how long each waited from when it could first run (`run_at`: its creation,
/// its delay's end, its retry's, or its release by its dependencies) to its claim. The series
/// is looked up once per queue of the claim (one, but for a claim across queues).
pub fn tasks_started(tenant: &str, tasks: &[Task]) {
    let mut waited: Option<(&str, metrics::Histogram)> = None;
    for t in tasks {
        let Some(started) = t.started_at else {
            continue;
        };
        if waited.as_ref().is_none_or(|(q, _)| *q != t.queue) {
            let (tn, queue) = queue_label(tenant, &t.queue);
            let h = metrics::histogram!("rota_task_wait_seconds", "tenant" => tn, "queue" => queue);
            waited = Some((&t.queue, h));
        }
        if let Some((_, h)) = &waited {
            h.record(seconds(t.run_at, started));
        }
    }
}

/// Workers reported attempts' outcomes (each task as it left it): how long each attempt ran,
/// then the outcomes as [`task_outcome`] counts them.
pub fn attempts_ended<'t>(tenant: &str, tasks: impl IntoIterator<Item = &'t Task>) {
    outcomes(tenant, tasks, true);
}

/// A task finished an attempt or was cancelled (`t` as it left it): counted by queue and by
/// kind with the state it went to as `outcome` (`succeeded`, `retry` for a retry waiting,
/// `dead`, `cancelled`); a final one also records its time from enqueue to that end.
pub fn task_outcome(tenant: &str, t: &Task) {
    outcomes(tenant, [t], false);
}

/// [`task_outcome`] for many tasks, and with `run`, each attempt's run time. The labels and
/// series are looked up once per queue, kind and outcome, not once per task (a completion
/// batch is mostly one queue and one kind).
fn outcomes<'t>(tenant: &str, tasks: impl IntoIterator<Item = &'t Task>, run: bool) {
    let mut by_queue: HashMap<(&str, &'static str), Vec<&Task>> = HashMap::new();
    let mut by_kind: HashMap<(&str, &'static str), u64> = HashMap::new();
    for t in tasks {
        let outcome = match t.state {
            TaskState::Scheduled | TaskState::Ready => "retry",
            other => other.as_str(),
        };
        by_queue.entry((&t.queue, outcome)).or_default().push(t);
        *by_kind.entry((&t.kind, outcome)).or_default() += 1;
    }
    for ((queue, outcome), ts) in by_queue {
        let (tn, queue) = queue_label(tenant, queue);
        let (mut ran, mut ended) = (None, None);
        for t in &ts {
            if let Some(started) = t.started_at.filter(|_| run) {
                ran.get_or_insert_with(|| {
                    metrics::histogram!("rota_task_run_seconds", "tenant" => tn.clone(), "queue" => queue.clone())
                })
                .record(seconds(started, t.finished_at.unwrap_or(t.updated_at)));
            }
            if let Some(finished) = t.finished_at.filter(|_| t.state.is_final()) {
                ended.get_or_insert_with(|| {
                    metrics::histogram!("rota_task_end_to_end_seconds", "tenant" => tn.clone(), "queue" => queue.clone(), "outcome" => outcome)
                })
                .record(seconds(t.created_at, finished));
            }
        }
        metrics::counter!("rota_task_outcomes_total", "tenant" => tn, "queue" => queue, "outcome" => outcome)
            .increment(ts.len() as u64);
    }
    for ((kind, outcome), n) in by_kind {
        let (tk, kind) = kind_label(tenant, kind);
        metrics::counter!("rota_task_kind_outcomes_total", "tenant" => tk, "kind" => kind, "outcome" => outcome)
            .increment(n);
    }
}

/// Per queue (the deepest `limits.max_metrics_queues`): tasks by state, how long the oldest
/// ready task has waited, and how long since a worker last asked for work ("queued, and nobody
/// is claiming"). The other queues' tasks are summed under `tenant="_other", queue="_other"`.
pub fn queue_gauges(overview: &rota_store::QueueOverview, now: rota_core::Timestamp) {
    for (tenant, q) in &overview.top {
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
    for state in TaskState::ALL {
        metrics::gauge!(
            "rota_queue_tasks",
            "tenant" => "_other",
            "queue" => "_other",
            "state" => state.as_str()
        )
        .set(overview.rest.get(state) as f64);
    }
    metrics::gauge!("rota_queues_summed").set(overview.rest_queues as f64);
}

/// One limited queue's flow: its concurrency limit beside `rota_queue_tasks{state="running"}`,
/// and its ready tasks held back by each limit (`limit` is `queue_paused`,
/// `queue_concurrency`, `queue_rate`, `group_paused`, `group_concurrency` or `group_rate`).
/// Shown for at most `limits.max_metrics_flow_queues` queues, so the series stay bounded.
pub fn flow_gauges(tenant: &str, queue: &str, flow: &rota_core::flow_stats::FlowStats) {
    let (t, q) = (tenant.to_owned(), queue.to_owned());
    if let Some(c) = flow.concurrency {
        metrics::gauge!("rota_queue_concurrency_limit", "tenant" => t.clone(), "queue" => q.clone())
            .set(f64::from(c));
    }
    for (limit, n) in flow.held.by_limit() {
        metrics::gauge!("rota_queue_held_tasks", "tenant" => t.clone(), "queue" => q.clone(), "limit" => limit)
            .set(n as f64);
    }
}

/// The database connection pool, for engines that have one: an exhausted pool shows as
/// `busy == max` with requests waiting, and as timeouts that grow.
pub fn pool_gauges(pool: &rota_store::PoolStatus) {
    metrics::gauge!("rota_storage_pool_connections_max").set(pool.max as f64);
    metrics::gauge!("rota_storage_pool_connections_busy").set(pool.busy as f64);
    metrics::gauge!("rota_storage_pool_requests_waiting").set(pool.waiting as f64);
    metrics::counter!("rota_storage_pool_timeouts_total").absolute(pool.timeouts);
}

/// The embedded store's writers: each one's busy time (its rate is the share of time that
/// writer is busy), commits, by whether they waited for an fsync, and WAL checkpoints, by who
/// ran them.
pub fn writer_counters(w: &rota_store::WriterStatus) {
    for (shard, busy) in w.busy_by_writer.iter().enumerate() {
        metrics::counter!("rota_storage_writer_busy_microseconds_total", "shard" => shard.to_string())
            .absolute((busy * 1e6) as u64);
    }
    metrics::counter!("rota_storage_commits_total", "fsync" => "yes").absolute(w.synced_commits);
    metrics::counter!("rota_storage_commits_total", "fsync" => "no")
        .absolute(w.commits.saturating_sub(w.synced_commits));
    metrics::counter!("rota_storage_checkpoints_total", "by" => "background")
        .absolute(w.checkpoints);
    metrics::counter!("rota_storage_checkpoints_total", "by" => "writer")
        .absolute(w.writer_checkpoints);
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
