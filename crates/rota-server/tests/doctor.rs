//! `GET /v1/doctor` through a real server on a manual clock: each finding from the situation
//! that causes it.

mod helpers;

use helpers::*;
use serde_json::{json, Value};

/// The findings, as `(check, subject)`, and the whole report.
async fn doctor(s: &TestServer, tenant: Option<&str>) -> (Vec<(String, String)>, Value) {
    let headers: Vec<(&str, &str)> = tenant.map(|t| ("rota-tenant", t)).into_iter().collect();
    let (r, _) = s
        .send_full(Some(ADMIN), &headers, "GET", "/v1/doctor", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let found = r.body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_owned(),
                f["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (found, r.body)
}

fn finding<'a>(report: &'a Value, check: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in {report}"))
}

#[tokio::test]
async fn a_healthy_server_has_no_findings() {
    let s = TestServer::start().await;
    let t = s.enqueue("jobs", json!({"kind": "x"})).await;
    let c = s.claim("jobs", json!({"worker": "w"})).await;
    let done = s
        .post(
            &format!("/v1/tasks/{}/complete", id(&t)),
            json!({"lease": lease(&c[0])}),
        )
        .await;
    assert_eq!(done.status, 200);
    let (found, report) = doctor(&s, None).await;
    assert!(found.is_empty(), "{report}");
    assert_eq!(report["ok"], true);
}

#[tokio::test]
async fn ready_tasks_no_worker_takes_say_why() {
    let s = TestServer::start().await;
    // No worker at all.
    s.enqueue("idle", json!({"kind": "x"})).await;
    // Workers that ask for another kind.
    s.enqueue("picky", json!({"kind": "report"})).await;
    // Workers too few: one task claimed, one waiting.
    s.enqueue("busy", json!({"kind": "x"})).await;
    s.enqueue("busy", json!({"kind": "x"})).await;
    s.clock.advance_ms(61_000);
    assert!(s
        .claim("picky", json!({"worker": "w", "kinds": ["email"]}))
        .await
        .is_empty());
    assert_eq!(
        s.claim("busy", json!({"worker": "w", "max": 1}))
            .await
            .len(),
        1
    );
    let (_, report) = doctor(&s, None).await;
    let stalled: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "queue_stalled")
        .collect();
    let about = |q: &str| {
        *stalled
            .iter()
            .find(|f| f["subject"] == format!("queue {q}"))
            .unwrap_or_else(|| panic!("no finding for {q}: {report}"))
    };
    assert!(about("idle")["seen"]
        .as_str()
        .unwrap()
        .contains("no worker has ever asked"));
    assert!(about("idle")["fix"]
        .as_str()
        .unwrap()
        .contains("rota worker idle"));
    let picky = about("picky")["cause"].as_str().unwrap();
    assert!(
        picky.contains("[email]") && picky.contains("[report]"),
        "{picky}"
    );
    let busy = finding(&report, "queue_backlog");
    assert_eq!(busy["subject"], "queue busy");
    assert_eq!(busy["severity"], "warning");
    assert_eq!(finding(&report, "queue_stalled")["severity"], "error");
}

#[tokio::test]
async fn a_worker_with_a_key_of_another_tenant_is_named() {
    let s = TestServer::start().await;
    s.create_tenant("acme").await;
    s.enqueue_in("acme", "jobs", json!({"kind": "x"})).await;
    s.clock.advance_ms(61_000);
    // The agent claims `jobs` with a key of tenant `default`.
    let key = s.post("/v1/keys", json!({"roles": ["worker"]})).await;
    let token = key.body["token"].as_str().unwrap().to_owned();
    let got = s
        .send_as(
            Some(&token),
            "POST",
            "/v1/queues/jobs/claim",
            Some(r#"{"worker": "agent-1"}"#),
        )
        .await;
    assert_eq!(got.body["tasks"], json!([]));
    let (_, report) = doctor(&s, Some("acme")).await;
    let f = finding(&report, "queue_stalled");
    let cause = f["cause"].as_str().unwrap();
    assert!(
        cause.contains("tenant `default`") && cause.contains("key "),
        "{cause}"
    );
    assert!(f["fix"].as_str().unwrap().contains("tenant `acme`"));
}

#[tokio::test]
async fn expiring_leases_failures_dead_letters_pauses_and_far_runs() {
    let s = TestServer::start().await;
    // Leases that run out.
    for _ in 0..3 {
        s.enqueue("crashy", json!({"kind": "x"})).await;
    }
    s.claim("crashy", json!({"worker": "w", "max": 3, "lease_ms": 1000}))
        .await;
    s.clock.advance_ms(2_000);
    s.maintain().await;
    // Attempts that fail, into the dead letters.
    for _ in 0..10 {
        s.enqueue("broken", json!({"kind": "x", "max_attempts": 1}))
            .await;
    }
    for t in s.claim("broken", json!({"worker": "w", "max": 10})).await {
        let failed = s
            .post(
                &format!("/v1/tasks/{}/fail", id(&t)),
                json!({"lease": lease(&t), "error": "smtp: connection refused"}),
            )
            .await;
        assert_eq!(failed.status, 200, "{}", failed.body);
    }
    // A paused queue with work, and a run two years ahead.
    s.enqueue("held", json!({"kind": "x"})).await;
    assert_eq!(s.post("/v1/queues/held/pause", json!({})).await.status, 200);
    s.enqueue(
        "later",
        json!({"kind": "x", "delay_ms": 2u64 * 365 * 86_400_000}),
    )
    .await;

    let (found, report) = doctor(&s, None).await;
    for (check, queue) in [
        ("leases_expiring", "crashy"),
        ("failing", "broken"),
        ("dead_letters_growing", "broken"),
        ("paused_with_backlog", "held"),
        ("scheduled_far_ahead", "later"),
    ] {
        assert!(
            found.contains(&(check.to_owned(), format!("queue {queue}"))),
            "{check} on {queue}: {report}"
        );
    }
    let failing = finding(&report, "failing")["seen"].as_str().unwrap();
    assert!(
        failing.contains("10 of 10") && failing.contains("10 × \"smtp: connection refused\""),
        "{failing}"
    );
    assert!(finding(&report, "leases_expiring")["seen"]
        .as_str()
        .unwrap()
        .contains("3 leases ran out"));
    // One queue's findings only.
    let one = s.get("/v1/doctor?queue=held").await;
    let checks: Vec<&str> = one.body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["paused_with_backlog"]);
}

#[tokio::test]
async fn refused_credentials_are_named() {
    let s = TestServer::start().await;
    let key = s.post("/v1/keys", json!({"roles": ["reader"]})).await;
    let (token, key_id) = (
        key.body["token"].as_str().unwrap().to_owned(),
        key.body["id"].as_str().unwrap().to_owned(),
    );
    for _ in 0..20 {
        let r = s
            .send_as(
                Some(&token),
                "POST",
                "/v1/queues/jobs/tasks",
                Some(r#"{"kind": "x"}"#),
            )
            .await;
        assert_eq!(r.status, 403);
        let r = s
            .send_as(Some("not-a-key"), "GET", "/v1/queues", None)
            .await;
        assert_eq!(r.status, 401);
    }
    let (found, report) = doctor(&s, None).await;
    assert!(
        found.contains(&("credential_refused".into(), format!("key {key_id}"))),
        "{report}"
    );
    assert!(
        found.contains(&("credential_refused".into(), "an unknown token".into())),
        "{report}"
    );
    let seen = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == format!("key {key_id}"))
        .unwrap()["seen"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        seen.contains("20 requests answered 403") && seen.contains("tasks:enqueue"),
        "{seen}"
    );
    // A tenant's own admin sees its key, not the unknown tokens.
    let admin = s.post("/v1/keys", json!({"roles": ["tenant-admin"]})).await;
    let admin = admin.body["token"].as_str().unwrap().to_owned();
    let mine = s.send_as(Some(&admin), "GET", "/v1/doctor", None).await;
    let subjects: Vec<&str> = mine.body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, [format!("key {key_id}")], "{}", mine.body);
}

#[tokio::test]
async fn failing_and_disabled_webhooks_and_missed_ticks() {
    let s = TestServer::start().await;
    let now = rota_core::Clock::now(&s.clock);
    let mut failing = rota_core::webhooks::Webhook::new(
        "default",
        "whk_failing".into(),
        "https://hooks.example.com/a".into(),
        rota_core::events::EventFilter {
            types: vec!["task.*".into()],
            queues: vec![],
        },
        None,
        "secret".into(),
        now,
    );
    failing.failing_since = Some(now.plus_ms(-3_600_000));
    let mut disabled = failing.clone();
    disabled.id = "whk_off".into();
    disabled.enabled = false;
    disabled.disabled_reason = Some("every delivery failed since …".into());
    for w in [failing, disabled] {
        rota_store::Store::put_webhook(&*s.store, w).await.unwrap();
    }
    let body = json!({"queue": "sync", "every_ms": 60000, "catch_up": "none"}).to_string();
    assert_eq!(
        s.send("PUT", "/v1/schedules/mirror", Some(&body))
            .await
            .status,
        201
    );
    s.clock.advance_ms(5 * 60_000);
    let store: rota_store::DynStore = s.store.clone();
    rota_server::background::schedules::fire_due(&store, &s.clock)
        .await
        .unwrap();
    let (found, report) = doctor(&s, None).await;
    for (check, subject) in [
        ("webhook_failing", "webhook whk_failing"),
        ("webhook_disabled", "webhook whk_off"),
        ("schedule_missed_ticks", "schedule mirror"),
    ] {
        assert!(
            found.contains(&(check.into(), subject.into())),
            "{check}: {report}"
        );
    }
    assert!(finding(&report, "schedule_missed_ticks")["seen"]
        .as_str()
        .unwrap()
        .contains("missed"));
}

#[tokio::test]
async fn a_schema_this_binary_does_not_expect_is_a_finding() {
    let s = TestServer::start().await;
    rusqlite::Connection::open(s.db_path())
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    let (_, report) = doctor(&s, None).await;
    let f = finding(&report, "schema_version");
    assert!(f["seen"].as_str().unwrap().contains("999"), "{f}");
    assert_eq!(f["severity"], "error");
}

#[tokio::test]
async fn refusals_during_maintenance_are_not_blamed_on_the_credential() {
    let s = TestServer::start().await;
    let on = json!({"mode": "on", "message": "upgrade"}).to_string();
    assert_eq!(
        s.send("PUT", "/v1/admin/maintenance", Some(&on))
            .await
            .status,
        200
    );
    for _ in 0..25 {
        let r = s
            .send("POST", "/v1/queues/jobs/tasks", Some(r#"{"kind": "x"}"#))
            .await;
        assert_eq!(r.status, 503);
    }
    let (found, report) = doctor(&s, None).await;
    assert!(
        !found.iter().any(|(check, _)| check == "credential_refused"),
        "{report}"
    );
}

#[tokio::test]
async fn a_queue_held_at_its_concurrency_is_a_finding_once_it_lasts() {
    let s = TestServer::start().await;
    s.send(
        "PATCH",
        "/v1/queues/narrow",
        Some(r#"{"concurrency": 1, "lease_ms": 3600000}"#),
    )
    .await;
    s.enqueue("narrow", json!({"kind": "x"})).await;
    s.enqueue("narrow", json!({"kind": "x"})).await;
    assert_eq!(s.claim("narrow", json!({"worker": "w"})).await.len(), 1);
    let (found, report) = doctor(&s, None).await;
    assert!(found.is_empty(), "just seen at its limit: {report}");
    s.clock.advance_ms(6 * 60_000);
    // A worker asks and gets nothing: the limit, not the workers, holds the task.
    assert!(s.claim("narrow", json!({"worker": "w"})).await.is_empty());
    let (found, report) = doctor(&s, None).await;
    let f = finding(&report, "flow_at_concurrency");
    assert_eq!(f["subject"], "queue narrow");
    assert!(
        f["seen"]
            .as_str()
            .unwrap()
            .contains("(1 running) for 6 min with 1 ready"),
        "{f}"
    );
    assert!(
        f["fix"].as_str().unwrap().contains("--concurrency 2"),
        "{f}"
    );
    assert!(
        !found.iter().any(|(c, _)| c == "queue_backlog"),
        "the limit explains the backlog: {report}"
    );
}

#[tokio::test]
async fn a_rate_holding_a_backlog_and_a_group_left_waiting_are_findings() {
    let s = TestServer::start().await;
    s.send(
        "PATCH",
        "/v1/queues/paced",
        Some(r#"{"rate": {"limit": 1, "period_ms": 3600000}, "lease_ms": 3600000}"#),
    )
    .await;
    for _ in 0..3 {
        s.enqueue("paced", json!({"kind": "x"})).await;
    }
    assert_eq!(
        s.claim("paced", json!({"worker": "w", "max": 3}))
            .await
            .len(),
        1
    );
    // A paused group's task waits while the others' come and go.
    let put = s
        .send(
            "PUT",
            "/v1/queues/shared/groups/slow",
            Some(r#"{"paused": true}"#),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    s.enqueue("shared", json!({"kind": "x", "group": "slow"}))
        .await;
    s.clock.advance_ms(10 * 60_000);
    for g in ["a", "b", "c"] {
        s.enqueue("shared", json!({"kind": "x", "group": g})).await;
    }
    s.clock.advance_ms(1_000);
    assert!(s.claim("paced", json!({"worker": "w"})).await.is_empty());
    let (_, report) = doctor(&s, None).await;
    let f = finding(&report, "flow_rate_backlog");
    assert_eq!(f["subject"], "queue paced");
    assert!(
        f["seen"]
            .as_str()
            .unwrap()
            .contains("(1/1h) holds back 2 ready tasks"),
        "{f}"
    );
    let f = finding(&report, "flow_group_waiting");
    assert_eq!(f["subject"], "queue shared group slow");
    assert!(f["seen"].as_str().unwrap().contains("10 min"), "{f}");
    assert!(f["cause"].as_str().unwrap().contains("paused"), "{f}");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("rota queue group shared slow --resume"),
        "{f}"
    );
}

#[tokio::test]
async fn a_key_that_expires_within_a_week_is_named() {
    let s = TestServer::start().await;
    let made = s
        .post(
            "/v1/keys",
            json!({"name": "nightly-ci", "roles": ["reader"], "expires_in_s": 2 * 86_400}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    let later = s
        .post(
            "/v1/keys",
            json!({"roles": ["reader"], "expires_in_s": 30 * 86_400}),
        )
        .await;
    assert_eq!(later.status, 201, "{}", later.body);

    let (found, report) = doctor(&s, None).await;
    let keys: Vec<_> = found
        .iter()
        .filter(|(c, _)| c.starts_with("key_"))
        .collect();
    assert_eq!(
        keys,
        [&("key_expiring".to_owned(), format!("key {id} (nightly-ci)"))],
        "{report}"
    );
    let f = finding(&report, "key_expiring");
    assert_eq!(f["severity"], "warning");
    assert!(
        f["seen"].as_str().unwrap().ends_with("in 2 d 0 h"),
        "{}",
        f["seen"]
    );

    // Expired and never used since: nothing to warn of any more.
    s.clock.advance_ms(3 * 86_400_000);
    let (found, report) = doctor(&s, None).await;
    assert!(
        !found.iter().any(|(c, _)| c.starts_with("key_")),
        "{report}"
    );
}
