//! The queue's own latency metrics (docs/operations.md, "Metrics"): how long tasks wait for a
//! worker, run, and take from enqueue to their end, per queue; outcomes per kind; and the
//! example alert rules naming only metrics the server exports. Its own test binary, so the
//! process-wide recorder holds only what these tests did; the server's manual clock makes the
//! times exact.

mod helpers;

use helpers::{id, lease, TestServer};
use serde_json::json;

/// The value of the series `series` (its whole name and labels) in a scrape.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

async fn scrape(s: &TestServer) -> String {
    let m = s.get("/metrics").await;
    m.body.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn tasks_wait_run_and_end_to_end_are_measured_per_queue() {
    let s = TestServer::start().await;
    let t = s.enqueue("hm", json!({"kind": "report"})).await;
    s.clock.advance_ms(80);
    let c = &s.claim("hm", json!({"worker": "w"})).await[0];
    assert!(c["started_at"].is_string(), "{c}");
    s.clock.advance_ms(50);
    let done = s
        .post(
            &format!("/v1/tasks/{}/complete", id(&t)),
            json!({"lease": lease(c)}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["started_at"], c["started_at"]);

    let text = scrape(&s).await;
    let q = r#"tenant="default",queue="hm""#;
    let wait_sum = value(&text, &format!("rota_task_wait_seconds_sum{{{q}}}")).unwrap();
    assert!(
        (wait_sum - 0.08).abs() < 1e-9,
        "wait {wait_sum} in:\n{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"rota_task_wait_seconds_bucket{{{q},le="0.05"}}"#)
        ),
        Some(0.0)
    );
    let run_sum = value(&text, &format!("rota_task_run_seconds_sum{{{q}}}")).unwrap();
    assert!((run_sum - 0.05).abs() < 1e-9, "run {run_sum}");
    assert_eq!(
        value(&text, &format!("rota_task_run_seconds_count{{{q}}}")),
        Some(1.0)
    );
    let e2e = format!(r#"rota_task_end_to_end_seconds_sum{{{q},outcome="succeeded"}}"#);
    assert!((value(&text, &e2e).unwrap() - 0.13).abs() < 1e-9, "{text}");
    assert_eq!(
        value(
            &text,
            r#"rota_task_kind_outcomes_total{tenant="default",kind="report",outcome="succeeded"}"#
        ),
        Some(1.0)
    );

    // A retry waits from when it may run again, not from its creation; a failed attempt's
    // run is measured, and its outcome counted as a retry (not an end).
    let c = &s.claim("hm", json!({"worker": "w"})).await;
    assert!(c.is_empty());
    let r = s.enqueue("hm", json!({"kind": "flaky"})).await;
    s.clock.advance_ms(80);
    let c = &s.claim("hm", json!({"worker": "w"})).await[0];
    let f = s
        .post(
            &format!("/v1/tasks/{}/fail", id(&r)),
            json!({"lease": lease(c), "error": "boom", "retry_in_ms": 0}),
        )
        .await;
    assert_eq!(f.status, 200, "{}", f.body);
    let again = &s.claim("hm", json!({"worker": "w"})).await[0];
    assert_eq!(id(again), id(&r));
    let text = scrape(&s).await;
    assert_eq!(
        value(
            &text,
            &format!(r#"rota_task_wait_seconds_bucket{{{q},le="0.05"}}"#)
        ),
        Some(1.0),
        "the retry's wait is short:\n{text}"
    );
    assert_eq!(
        value(&text, &format!("rota_task_wait_seconds_count{{{q}}}")),
        Some(3.0)
    );
    assert_eq!(
        value(&text, &format!("rota_task_run_seconds_count{{{q}}}")),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            r#"rota_task_kind_outcomes_total{tenant="default",kind="flaky",outcome="retry"}"#
        ),
        Some(1.0)
    );

    // A task released by its dependency waits from its release.
    let a = s.enqueue("hm-a", json!({"kind": "a"})).await;
    let b = s
        .enqueue("hm-b", json!({"kind": "b", "depends_on": [id(&a)]}))
        .await;
    s.clock.advance_ms(100);
    let ca = &s.claim("hm-a", json!({"worker": "w"})).await[0];
    s.post(
        &format!("/v1/tasks/{}/complete", id(ca)),
        json!({"lease": lease(ca)}),
    )
    .await;
    let cb = &s.claim("hm-b", json!({"worker": "w"})).await[0];
    assert_eq!(id(cb), id(&b));
    let text = scrape(&s).await;
    let wait = value(
        &text,
        r#"rota_task_wait_seconds_sum{tenant="default",queue="hm-b"}"#,
    )
    .unwrap();
    assert_eq!(
        wait, 0.0,
        "from its release, not from its creation 0.1 s before"
    );
    s.stop().await;
}

/// Claims of many tasks, and completions and failures reported in one batch, count each task
/// under its own queue, kind and outcome, with one wait, run and end-to-end observation each.
#[tokio::test]
async fn a_batch_counts_each_task_by_queue_kind_and_outcome() {
    let s = TestServer::start().await;
    for _ in 0..3 {
        s.enqueue("mb-1", json!({"kind": "x"})).await;
    }
    for _ in 0..2 {
        s.enqueue("mb-2", json!({"kind": "y"})).await;
    }
    let mut claimed = s.claim("mb-1", json!({"worker": "w", "max": 10})).await;
    claimed.extend(s.claim("mb-2", json!({"worker": "w", "max": 10})).await);
    assert_eq!(claimed.len(), 5);
    s.clock.advance_ms(20);
    let items: Vec<_> = claimed
        .iter()
        .map(|c| json!({"id": id(c), "lease": lease(c)}))
        .collect();
    let done = s
        .post("/v1/tasks/complete", json!({ "items": items }))
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    for _ in 0..2 {
        s.enqueue("mb-1", json!({"kind": "z"})).await;
    }
    let retry = s.claim("mb-1", json!({"worker": "w", "max": 10})).await;
    let items: Vec<_> = retry
        .iter()
        .map(|c| json!({"id": id(c), "lease": lease(c), "error": "boom", "retry_in_ms": 0}))
        .collect();
    let failed = s.post("/v1/tasks/fail", json!({ "items": items })).await;
    assert_eq!(failed.status, 200, "{}", failed.body);

    let text = scrape(&s).await;
    let series = |name: &str, labels: &str| value(&text, &format!("{name}{{{labels}}}"));
    let (one, two) = (
        r#"tenant="default",queue="mb-1""#,
        r#"tenant="default",queue="mb-2""#,
    );
    let outcomes = "rota_task_outcomes_total";
    assert_eq!(
        series(outcomes, &format!(r#"{one},outcome="succeeded""#)),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        series(outcomes, &format!(r#"{two},outcome="succeeded""#)),
        Some(2.0)
    );
    assert_eq!(
        series(outcomes, &format!(r#"{one},outcome="retry""#)),
        Some(2.0)
    );
    let kinds = "rota_task_kind_outcomes_total";
    for (kind, outcome, n) in [
        ("x", "succeeded", 3.0),
        ("y", "succeeded", 2.0),
        ("z", "retry", 2.0),
    ] {
        let labels = format!(r#"tenant="default",kind="{kind}",outcome="{outcome}""#);
        assert_eq!(series(kinds, &labels), Some(n), "{kind} {outcome}");
    }
    assert_eq!(series("rota_task_wait_seconds_count", one), Some(5.0));
    assert_eq!(series("rota_task_wait_seconds_count", two), Some(2.0));
    assert_eq!(series("rota_task_run_seconds_count", one), Some(5.0));
    assert_eq!(series("rota_task_run_seconds_count", two), Some(2.0));
    let ended = "rota_task_end_to_end_seconds_count";
    assert_eq!(
        series(ended, &format!(r#"{one},outcome="succeeded""#)),
        Some(3.0)
    );
    assert_eq!(
        series(ended, &format!(r#"{two},outcome="succeeded""#)),
        Some(2.0)
    );
    assert_eq!(
        series(ended, &format!(r#"{one},outcome="retry""#)),
        None,
        "a retry is no end"
    );
    s.stop().await;
}

/// Every metric the example alert rules name is one the server exports.
#[test]
fn alert_rules_name_metrics_the_server_exports() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    let mut source = String::new();
    let mut dirs = vec![root.join("crates/rota-server/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                source.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let mut named = std::collections::BTreeSet::new();
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if let Some(rest) = word.strip_prefix("rota_") {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| rest.strip_suffix(s))
                .unwrap_or(rest);
            named.insert(format!("rota_{base}"));
        }
    }
    assert!(named.len() >= 4, "{named:?}");
    for name in named {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "the rules name {name}, which the server does not export"
        );
    }
}
