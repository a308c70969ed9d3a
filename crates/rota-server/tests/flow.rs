//! Flow control through a real server: queue and group limits set over HTTP, the groups'
//! turns, group settings and listing, bad limits refused with a 422 that changes nothing, and
//! long-polls woken when room appears (a task ending, a rate's window moving on).

mod helpers;

use helpers::{lease, TestServer};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn kinds(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn limits_are_set_shown_and_cleared_over_http() {
    let s = TestServer::start().await;
    let set = s
        .send(
            "PATCH",
            "/v1/queues/gather",
            Some(
                r#"{"concurrency": 4, "rate": {"limit": 100, "period_ms": 1000},
                    "group_concurrency": 1, "group_rate": {"limit": 5000, "period_ms": 3600000, "burst": 10}}"#,
            ),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let settings = &set.body["settings"];
    assert_eq!(settings["concurrency"], 4);
    assert_eq!(settings["rate"], json!({"limit": 100, "period_ms": 1000}));
    assert_eq!(settings["group_concurrency"], 1);
    assert_eq!(settings["group_rate"]["burst"], 10);
    // Absent fields keep their value; null lifts a limit.
    let cleared = s
        .send(
            "PATCH",
            "/v1/queues/gather",
            Some(r#"{"concurrency": null, "group_rate": null}"#),
        )
        .await;
    assert_eq!(cleared.status, 200);
    let settings = &cleared.body["settings"];
    assert!(settings.get("concurrency").is_none());
    assert!(settings.get("group_rate").is_none());
    assert_eq!(settings["group_concurrency"], 1);
    assert_eq!(settings["rate"]["limit"], 100);
    s.stop().await;
}

#[tokio::test]
async fn bad_limits_are_refused_and_change_nothing() {
    let s = TestServer::start().await;
    s.send("PATCH", "/v1/queues/q", Some(r#"{"concurrency": 2}"#))
        .await;
    for (body, names) in [
        (r#"{"concurrency": 0}"#, "concurrency"),
        (r#"{"group_concurrency": 0}"#, "group_concurrency"),
        (r#"{"rate": {"limit": 0, "period_ms": 1000}}"#, "rate.limit"),
        (
            r#"{"rate": {"limit": 5, "period_ms": 0}}"#,
            "rate.period_ms",
        ),
        (
            r#"{"rate": {"limit": 5, "period_ms": 1000, "burst": 6}}"#,
            "rate.burst",
        ),
        (
            r#"{"group_rate": {"limit": 5, "period_ms": 86400001}}"#,
            "group_rate.period_ms",
        ),
    ] {
        let r = s.send("PATCH", "/v1/queues/q", Some(body)).await;
        let msg = r.assert_error(422, "invalid_field");
        assert!(msg.contains(names), "{body}: {msg}");
    }
    let r = s
        .send(
            "PATCH",
            "/v1/queues/q",
            Some(r#"{"rate": {"limit": 5, "period_ms": 1000, "window": 3}}"#),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = s
        .send("PATCH", "/v1/queues/q", Some(r#"{"rate": [5, 1000]}"#))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let q = s.get("/v1/queues/q").await;
    assert_eq!(q.body["settings"]["concurrency"], 2);
    assert!(q.body["settings"].get("rate").is_none());
    // A group's settings and name are checked the same way.
    let r = s
        .send("PUT", "/v1/queues/q/groups/acme", Some(r#"{"weight": 0}"#))
        .await;
    assert!(r.assert_error(422, "invalid_field").contains("weight"));
    let r = s
        .send(
            "PUT",
            "/v1/queues/q/groups/acme",
            Some(r#"{"concurrency": 0}"#),
        )
        .await;
    assert!(r.assert_error(422, "invalid_field").contains("concurrency"));
    let long = "g".repeat(300);
    let r = s
        .send("PUT", &format!("/v1/queues/q/groups/{long}"), Some("{}"))
        .await;
    assert!(r.assert_error(422, "invalid_field").contains("group"));
    let r = s
        .post("/v1/queues/q/tasks", json!({"kind": "x", "group": ""}))
        .await;
    assert!(r.assert_error(422, "invalid_field").contains("group"));
    assert_eq!(s.count("q").await, 0);
    let groups = s.get("/v1/queues/q/groups").await;
    assert_eq!(groups.body["groups"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn groups_take_turns_and_are_listed_with_what_holds_them() {
    let s = TestServer::start().await;
    s.send(
        "PATCH",
        "/v1/queues/reports",
        Some(r#"{"group_concurrency": 1}"#),
    )
    .await;
    let mut tasks = vec![];
    for i in 0..3 {
        tasks.push(json!({"kind": format!("big{i}"), "group": "big-customer"}));
    }
    tasks.push(json!({"kind": "small0", "group": "small-customer"}));
    let r = s
        .post("/v1/queues/reports/tasks", json!({"tasks": tasks}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["tasks"][0]["group"], "big-customer");
    let got = s.claim("reports", json!({"worker": "w", "max": 10})).await;
    assert_eq!(kinds(&got), ["big0", "small0"], "one per client");
    // The big customer gets room for three.
    let put = s
        .send(
            "PUT",
            "/v1/queues/reports/groups/big-customer",
            Some(r#"{"concurrency": 3, "weight": 2}"#),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["concurrency"], 3);
    assert_eq!(put.body["settings"]["weight"], 2);
    assert_eq!(
        (put.body["ready"].as_u64(), put.body["running"].as_u64()),
        (Some(2), Some(1))
    );
    let more = s.claim("reports", json!({"worker": "w", "max": 10})).await;
    assert_eq!(kinds(&more), ["big1", "big2"]);
    let list = s.get("/v1/queues/reports/groups?limit=1").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["groups"][0]["group"], "big-customer");
    assert_eq!(list.body["next"], "big-customer");
    let rest = s.get("/v1/queues/reports/groups?after=big-customer").await;
    assert_eq!(rest.body["groups"][0]["group"], "small-customer");
    assert_eq!(rest.body["groups"][0]["running"], 1);
    assert_eq!(rest.body["next"], Value::Null);
    // A group that does not hold anything says so; paused says paused.
    s.post(
        "/v1/queues/reports/tasks",
        json!({"kind": "small1", "group": "small-customer"}),
    )
    .await;
    let one = s.get("/v1/queues/reports/groups?after=big-customer").await;
    assert_eq!(one.body["groups"][0]["held_by"], "concurrency");
    s.send(
        "PUT",
        "/v1/queues/reports/groups/small-customer",
        Some(r#"{"paused": true}"#),
    )
    .await;
    let one = s.get("/v1/queues/reports/groups?after=big-customer").await;
    assert_eq!(one.body["groups"][0]["held_by"], "paused");
    let bad = s.get("/v1/queues/reports/groups?limit=0").await;
    bad.assert_error(422, "invalid_field");
    let none = s.get("/v1/queues/nope/groups").await;
    none.assert_error(404, "queue_not_found");
    s.stop().await;
}

/// A long-poll on a queue at its concurrency answers the moment a running task ends.
#[tokio::test]
async fn a_waiting_claim_is_woken_when_room_appears() {
    let s = TestServer::start().await;
    s.send("PATCH", "/v1/queues/one", Some(r#"{"concurrency": 1}"#))
        .await;
    s.enqueue("one", json!({"kind": "a"})).await;
    s.enqueue("one", json!({"kind": "b"})).await;
    let first = s.claim("one", json!({"worker": "w"})).await.remove(0);
    let url = format!("{}/v1/queues/one/claim", s.url);
    let http = s.http.clone();
    let started = Instant::now();
    let waiter = tokio::spawn(async move {
        let r = http
            .post(url)
            .json(&json!({"worker": "w2", "wait_ms": 30000}))
            .send()
            .await
            .unwrap();
        (r.json::<Value>().await.unwrap(), started.elapsed())
    });
    while s.get("/v1/queues/one").await.body["last_claim_at"] == Value::Null {
        tokio::task::yield_now().await;
    }
    let done = s
        .post(
            &format!("/v1/tasks/{}/complete", first["id"].as_str().unwrap()),
            json!({"lease": lease(&first)}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let (body, took) = waiter.await.unwrap();
    assert_eq!(kinds(body["tasks"].as_array().unwrap()), ["b"]);
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    s.stop().await;
}

/// A long-poll held back by a rate looks again when the rate says the next task may start,
/// not at the end of its wait.
#[tokio::test]
async fn a_claim_held_by_a_rate_is_answered_when_the_window_moves_on() {
    let s = TestServer::start().await;
    s.send(
        "PATCH",
        "/v1/queues/paced",
        Some(r#"{"rate": {"limit": 1, "period_ms": 300}}"#),
    )
    .await;
    s.enqueue("paced", json!({"kind": "a"})).await;
    s.enqueue("paced", json!({"kind": "b"})).await;
    assert_eq!(s.claim("paced", json!({"worker": "w"})).await.len(), 1);
    // The waiter parks at T0 + 1 ms (its look records the queue's last claim time), told
    // that the next task may start at T0 + 300 ms; the clock gets there while it waits.
    s.clock.advance_ms(1);
    let url = format!("{}/v1/queues/paced/claim", s.url);
    let http = s.http.clone();
    let started = Instant::now();
    let waiter = tokio::spawn(async move {
        let r = http
            .post(url)
            .json(&json!({"worker": "w", "wait_ms": 20000}))
            .send()
            .await
            .unwrap();
        (r.json::<Value>().await.unwrap(), started.elapsed())
    });
    let parked = json!(rota_core::Timestamp(helpers::T0 + 1).to_string());
    while s.get("/v1/queues/paced").await.body["last_claim_at"] != parked {
        tokio::task::yield_now().await;
    }
    s.clock.advance_ms(299);
    let (body, took) = waiter.await.unwrap();
    assert_eq!(kinds(body["tasks"].as_array().unwrap()), ["b"]);
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    s.stop().await;
}

#[tokio::test]
async fn queue_stats_and_metrics_show_what_each_limit_holds_back() {
    let s = TestServer::start().await;
    let set = s
        .send(
            "PATCH",
            "/v1/queues/held",
            Some(r#"{"concurrency": 10, "group_concurrency": 1}"#),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    for g in ["a", "a", "a", "b", "b", "c"] {
        s.enqueue("held", json!({"kind": "x", "group": g})).await;
    }
    s.enqueue("held", json!({"kind": "x"})).await;
    // One of each group and the task with none.
    assert_eq!(
        s.claim("held", json!({"worker": "w", "max": 10}))
            .await
            .len(),
        4
    );
    let q = s.get("/v1/queues/held").await;
    assert_eq!(q.status, 200, "{}", q.body);
    let flow = &q.body["flow"];
    assert_eq!(flow["running"], 4);
    assert_eq!(flow["concurrency"], 10);
    assert_eq!(flow["held"]["group_concurrency"], 3, "{flow}");
    assert_eq!(flow["held"]["queue_concurrency"], 0);
    assert_eq!(flow["groups_seen"], 3);
    assert_eq!(flow["groups_complete"], true);
    let busiest: Vec<&str> = flow["busiest_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(busiest, ["a", "b"], "c has none ready");
    assert_eq!(q.body["counts"]["ready"], 3, "the queue's own fields stay");

    // At its concurrency the queue itself holds every ready task.
    s.send("PATCH", "/v1/queues/held", Some(r#"{"concurrency": 4}"#))
        .await;
    let flow = s.get("/v1/queues/held").await.body["flow"].clone();
    assert_eq!(flow["held"]["queue_concurrency"], 3, "{flow}");
    assert_eq!(flow["held"]["group_concurrency"], 0);
    let m = s.get("/metrics").await;
    let text = m.body.as_str().unwrap();
    for line in [
        r#"rota_queue_concurrency_limit{tenant="default",queue="held"} 4"#,
        r#"rota_queue_held_tasks{tenant="default",queue="held",limit="queue_concurrency"} 3"#,
        r#"rota_queue_held_tasks{tenant="default",queue="held",limit="group_concurrency"} 0"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }

    // A rate holds the rest until its next start.
    s.send(
        "PATCH",
        "/v1/queues/paced",
        Some(r#"{"rate": {"limit": 1, "period_ms": 60000}}"#),
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
    let flow = s.get("/v1/queues/paced").await.body["flow"].clone();
    assert_eq!(flow["held"]["queue_rate"], 2, "{flow}");
    assert!(flow["next_start_at"].is_string(), "{flow}");
    assert_eq!(flow["rate"], json!({"limit": 1, "period_ms": 60000}));
    s.stop().await;
}
