//! The HTTP API through a real server on port 0: every row of the API table, and every kind of
//! bad input answered with a clear 4xx that changes nothing.

mod helpers;

use helpers::{id, lease, TestServer, T0};
use rota_store::Store;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn enqueue_one_then_get() {
    let s = TestServer::start().await;
    let t = s
        .enqueue(
            "mail",
            json!({"kind": "email.send", "payload": {"to": "ada@example.com"}, "priority": 3,
                   "max_attempts": 5, "tags": ["welcome"]}),
        )
        .await;
    assert_eq!(t["state"], "ready");
    assert_eq!(t["queue"], "mail");
    assert_eq!(t["kind"], "email.send");
    assert_eq!(t["payload"], json!({"to": "ada@example.com"}));
    assert_eq!(t["priority"], 3);
    assert_eq!(t["attempt"], 0);
    assert_eq!(t["max_attempts"], 5);
    assert_eq!(t["duplicate"], false);
    assert_eq!(t["tags"], json!(["welcome"]));
    assert_eq!(t["run_at"], "2027-01-15T08:00:00.000Z");
    let got = s.get(&format!("/v1/tasks/{}", id(&t))).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["payload"], t["payload"]);
    assert_eq!(got.body["lease"], Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn enqueue_batch_and_delays() {
    let s = TestServer::start().await;
    let a = s
        .post(
            "/v1/queues/jobs/tasks",
            json!({"tasks": [
                {"kind": "a"},
                {"kind": "b", "delay_ms": 5000},
                {"kind": "c", "run_at": "2027-01-15T09:00:00Z"}
            ]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let tasks = a.body["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[0]["state"], "ready");
    assert_eq!(tasks[1]["state"], "scheduled");
    assert_eq!(tasks[1]["run_at"], "2027-01-15T08:00:05.000Z");
    assert_eq!(tasks[2]["state"], "scheduled");
    // The delayed one becomes claimable when its time comes.
    assert_eq!(
        s.claim("jobs", json!({"worker": "w", "max": 10}))
            .await
            .len(),
        1
    );
    s.clock.advance_ms(5_000);
    s.maintain().await;
    let got = s.claim("jobs", json!({"worker": "w", "max": 10})).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["kind"], "b");
    s.stop().await;
}

#[tokio::test]
async fn unique_key_answers_200_with_the_live_task() {
    let s = TestServer::start().await;
    let first = s
        .enqueue(
            "sync",
            json!({"kind": "mirror", "unique_key": "registry@10:00"}),
        )
        .await;
    let again = s
        .post(
            "/v1/queues/sync/tasks",
            json!({"kind": "mirror", "unique_key": "registry@10:00"}),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["id"], first["id"]);
    assert_eq!(s.count("sync").await, 1);
    // The live holder is listed by its key (a key with characters a query must escape).
    s.enqueue("sync", json!({"kind": "mirror"})).await;
    let held = s
        .get("/v1/queues/sync/tasks?unique_key=registry%4010%3A00")
        .await;
    assert_eq!(held.status, 200);
    let ids: Vec<_> = held.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(ids, [id(&first)]);
    let none = s.get("/v1/queues/sync/tasks?unique_key=registry").await;
    assert_eq!(none.body["tasks"], json!([]));
    s.stop().await;
}

/// An enqueue answer's `(duplicate, replaced)`.
fn flags(t: &Value) -> (bool, bool) {
    (t["duplicate"] == true, t["replaced"] == true)
}

/// Debounce: `on_duplicate: replace` rewrites a waiting holder in place (200, same id,
/// `replaced: true`, its delay counted again), keeps a running one, and needs a unique key.
#[tokio::test]
async fn on_duplicate_replace_debounces_a_waiting_task() {
    let s = TestServer::start().await;
    let first = s
        .enqueue(
            "index",
            json!({"kind": "reindex", "payload": {"rev": 1}, "unique_key": "doc-7",
                   "delay_ms": 10000, "on_duplicate": "replace"}),
        )
        .await;
    assert_eq!(flags(&first), (false, false));
    s.clock.advance_ms(4_000);
    let again = s
        .post(
            "/v1/queues/index/tasks",
            json!({"kind": "reindex", "payload": {"rev": 2}, "unique_key": "doc-7",
                   "delay_ms": 10000, "priority": 2, "on_duplicate": "replace"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["replaced"], true);
    assert_eq!(again.body["id"], first["id"]);
    assert_eq!(again.body["payload"], json!({"rev": 2}));
    assert_eq!(again.body["priority"], 2);
    assert_eq!(again.body["run_at"], "2027-01-15T08:00:14.000Z");
    let got = s.get(&format!("/v1/tasks/{}", id(&first))).await;
    assert_eq!(got.body["payload"], json!({"rev": 2}));
    assert_eq!(s.count("index").await, 1);

    // Keep (the default) answers the holder unchanged.
    let kept = s
        .post(
            "/v1/queues/index/tasks",
            json!({"kind": "reindex", "payload": {"rev": 3}, "unique_key": "doc-7"}),
        )
        .await;
    assert_eq!(kept.status, 200);
    assert_eq!(flags(&kept.body), (true, false));
    assert_eq!(kept.body["payload"], json!({"rev": 2}));

    // A batch: one key twice (replaced in order), a new key (created): 201.
    let batch = s
        .post(
            "/v1/queues/index/tasks",
            json!({"tasks": [
                {"kind": "reindex", "payload": {"rev": 4}, "unique_key": "doc-7",
                 "on_duplicate": "replace"},
                {"kind": "reindex", "payload": {"rev": 5}, "unique_key": "doc-7",
                 "on_duplicate": "replace"},
                {"kind": "reindex", "payload": {"rev": 1}, "unique_key": "doc-8",
                 "on_duplicate": "replace"}
            ]}),
        )
        .await;
    assert_eq!(batch.status, 201, "{}", batch.body);
    let answers: Vec<(bool, bool)> = batch.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(flags)
        .collect();
    assert_eq!(answers, [(true, true), (true, true), (false, false)]);
    assert_eq!(batch.body["tasks"][1]["payload"], json!({"rev": 5}));
    assert_eq!(
        batch.body["tasks"][1]["state"], "ready",
        "no delay: ready now"
    );

    // A running holder is kept: nothing is enqueued, and the answer says it was not replaced.
    let running = s.claim("index", json!({"worker": "w", "max": 1})).await;
    assert_eq!(running[0]["id"], first["id"]);
    let late = s
        .post(
            "/v1/queues/index/tasks",
            json!({"kind": "reindex", "payload": {"rev": 6}, "unique_key": "doc-7",
                   "on_duplicate": "replace"}),
        )
        .await;
    assert_eq!(late.status, 200);
    assert_eq!(flags(&late.body), (true, false));
    assert_eq!(late.body["state"], "running");
    assert_eq!(late.body["payload"], json!({"rev": 5}));
    assert_eq!(s.count("index").await, 2);

    // The replacements are in the event log.
    let events = s.get("/v1/events?types=task.replaced").await;
    assert_eq!(events.status, 200, "{}", events.body);
    assert_eq!(events.body["events"].as_array().unwrap().len(), 3);

    // Replace without a unique key, and an unknown mode, are refused and change nothing.
    let bad = s
        .post(
            "/v1/queues/index/tasks",
            json!({"kind": "reindex", "on_duplicate": "replace"}),
        )
        .await;
    assert!(bad
        .assert_error(422, "invalid_field")
        .contains("on_duplicate"));
    let bad = s
        .post(
            "/v1/queues/index/tasks",
            json!({"kind": "reindex", "unique_key": "doc-7", "on_duplicate": "merge"}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(s.count("index").await, 2);
    s.stop().await;
}

#[tokio::test]
async fn claim_honours_priority_kinds_and_max() {
    let s = TestServer::start().await;
    let low = s.enqueue("q", json!({"kind": "a", "priority": 0})).await;
    let high = s.enqueue("q", json!({"kind": "b", "priority": 10})).await;
    let other = s.enqueue("q", json!({"kind": "c", "priority": 5})).await;
    let got = s
        .claim(
            "q",
            json!({"worker": "w1", "kinds": ["a", "b"], "max": 5, "lease_ms": 60000}),
        )
        .await;
    let ids: Vec<_> = got.iter().map(id).collect();
    assert_eq!(ids, [id(&high), id(&low)]);
    assert_eq!(got[0]["state"], "running");
    assert_eq!(got[0]["attempt"], 1);
    assert_eq!(got[0]["lease"]["worker"], "w1");
    assert_eq!(got[0]["lease"]["expires_at"], "2027-01-15T08:01:00.000Z");
    let rest = s.claim("q", json!({"worker": "w2"})).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(id(&rest[0]), id(&other));
    s.stop().await;
}

#[tokio::test]
async fn long_poll_answers_the_moment_a_task_is_ready() {
    let s = TestServer::start().await;
    // The queue exists (with nothing ready) so the parked claim records last_claim_at.
    assert_eq!(
        s.send("PATCH", "/v1/queues/lp", Some("{}")).await.status,
        200
    );
    let url = format!("{}/v1/queues/lp/claim", s.url);
    let http = s.http.clone();
    let started = Instant::now();
    let waiter = tokio::spawn(async move {
        let r = http
            .post(url)
            .json(&json!({"worker": "w", "wait_ms": 30000}))
            .send()
            .await
            .unwrap();
        (r.json::<Value>().await.unwrap(), started.elapsed())
    });
    // Enqueue once the claim is parked: the queue's last_claim_at shows it has asked.
    while s.get("/v1/queues/lp").await.body["last_claim_at"] == Value::Null {
        tokio::task::yield_now().await;
    }
    s.enqueue("lp", json!({"kind": "x"})).await;
    let (body, took) = waiter.await.unwrap();
    assert_eq!(body["tasks"].as_array().unwrap().len(), 1);
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    // With nothing to claim, the wait runs out and answers an empty list.
    let t = Instant::now();
    let empty = s.claim("lp", json!({"worker": "w", "wait_ms": 150})).await;
    assert!(empty.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(150));
    s.stop().await;
}

#[tokio::test]
async fn heartbeat_complete_and_fencing() {
    let s = TestServer::start().await;
    let t = s.enqueue("work", json!({"kind": "x"})).await;
    let c = &s
        .claim("work", json!({"worker": "w", "lease_ms": 10000}))
        .await[0];
    let path = |verb: &str| format!("/v1/tasks/{}/{verb}", id(&t));
    s.clock.advance_ms(5_000);
    let hb = s
        .post(
            &path("heartbeat"),
            json!({"lease": lease(c), "lease_ms": 20000, "progress": {"done": 1}}),
        )
        .await;
    assert_eq!(hb.status, 200, "{}", hb.body);
    assert_eq!(hb.body["lease"]["expires_at"], "2027-01-15T08:00:25.000Z");
    assert_eq!(hb.body["progress"], json!({"done": 1}));
    s.post(&path("heartbeat"), json!({"lease": "0000000000000000"}))
        .await
        .assert_error(409, "lease_lost");
    // The lease runs out; the task returns and another worker claims it.
    s.clock.advance_ms(20_000);
    s.maintain().await;
    let back = s.get(&format!("/v1/tasks/{}", id(&t))).await.body;
    assert_eq!(back["state"], "scheduled");
    assert_eq!(back["errors"][0]["attempt"], 1);
    s.clock.advance_ms(3_600_000);
    s.maintain().await;
    let c2 = &s.claim("work", json!({"worker": "w2"})).await[0];
    assert_eq!(c2["attempt"], 2);
    let msg = s
        .post(&path("complete"), json!({"lease": lease(c), "result": 1}))
        .await
        .assert_error(409, "lease_lost")
        .to_owned();
    assert!(msg.contains("no longer held"), "{msg}");
    s.post(&path("fail"), json!({"lease": lease(c), "error": "late"}))
        .await
        .assert_error(409, "lease_lost");
    let done = s
        .post(
            &path("complete"),
            json!({"lease": lease(c2), "result": {"rows": 42}}),
        )
        .await;
    assert_eq!(done.status, 200);
    assert_eq!(done.body["state"], "succeeded");
    assert_eq!(done.body["result"], json!({"rows": 42}));
    assert_eq!(done.body["finished_at"], "2027-01-15T09:00:25.000Z");
    s.stop().await;
}

#[tokio::test]
async fn a_cancelled_task_answers_its_worker_task_cancelled() {
    let s = TestServer::start().await;
    let t = s.enqueue("stop", json!({"kind": "x"})).await;
    let c = &s.claim("stop", json!({"worker": "w"})).await[0];
    let path = |verb: &str| format!("/v1/tasks/{}/{verb}", id(&t));
    let cancelled = s.post(&path("cancel"), json!({})).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let msg = s
        .post(&path("heartbeat"), json!({"lease": lease(c)}))
        .await
        .assert_error(409, "task_cancelled")
        .to_owned();
    assert!(msg.contains(&id(&t)) && msg.contains("cancelled"), "{msg}");
    s.post(&path("complete"), json!({"lease": lease(c)}))
        .await
        .assert_error(409, "task_cancelled");
    s.post(&path("fail"), json!({"lease": lease(c), "error": "late"}))
        .await
        .assert_error(409, "task_cancelled");
    let batch = s
        .post(
            "/v1/tasks/complete",
            json!({"items": [{"id": id(&t), "lease": lease(c)}]}),
        )
        .await;
    assert_eq!(batch.body["items"][0]["error"]["code"], "task_cancelled");
    // Nothing the worker sent brought it back: it stays cancelled, its attempt not retried.
    let now = s.get(&format!("/v1/tasks/{}", id(&t))).await.body;
    assert_eq!(now["state"], "cancelled");
    assert_eq!(now["attempt"], 1);
    // Retried by an operator and claimed again, the old token is merely a lost lease.
    s.post(&path("retry"), json!({})).await;
    s.claim("stop", json!({"worker": "w2"})).await;
    s.post(&path("heartbeat"), json!({"lease": lease(c)}))
        .await
        .assert_error(409, "lease_lost");
    s.stop().await;
}

#[tokio::test]
async fn fail_retries_with_backoff_then_dead_then_retry() {
    let s = TestServer::start().await;
    let t = s
        .enqueue("f", json!({"kind": "x", "max_attempts": 2}))
        .await;
    let path = |verb: &str| format!("/v1/tasks/{}/{verb}", id(&t));
    let c = &s.claim("f", json!({"worker": "w"})).await[0];
    let f = s
        .post(
            &path("fail"),
            json!({"lease": lease(c), "error": "timeout", "retry_in_ms": 2000}),
        )
        .await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(f.body["state"], "scheduled");
    assert_eq!(f.body["run_at"], "2027-01-15T08:00:02.000Z");
    s.clock.advance_ms(2_000);
    s.maintain().await;
    let c = &s.claim("f", json!({"worker": "w"})).await[0];
    let f = s
        .post(&path("fail"), json!({"lease": lease(c), "error": "again"}))
        .await;
    assert_eq!(f.body["state"], "dead");
    assert_eq!(f.body["errors"].as_array().unwrap().len(), 2);
    assert_eq!(f.body["errors"][1]["message"], "again");
    let dead = s.get("/v1/queues/f/tasks?state=dead").await;
    assert_eq!(dead.body["tasks"][0]["id"], t["id"]);
    let r = s.post(&path("retry"), json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["state"], "ready");
    assert_eq!(r.body["attempt"], 0);
    s.post(&path("retry"), json!({}))
        .await
        .assert_error(409, "invalid_state");
    // `temporary: true` is recorded but gives the attempt back.
    let c = &s.claim("f", json!({"worker": "w"})).await[0];
    let body = json!({"lease": lease(c), "error": "db busy", "temporary": true, "retry_in_ms": 0});
    let f = s.post(&path("fail"), body).await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(f.body["state"], "ready");
    assert_eq!(f.body["attempt"], 0);
    assert_eq!(f.body["errors"].as_array().unwrap().len(), 3);
    // `dead: true` ends it at once.
    let c = &s.claim("f", json!({"worker": "w"})).await[0];
    let f = s
        .post(
            &path("fail"),
            json!({"lease": lease(c), "error": "bad input", "dead": true}),
        )
        .await;
    assert_eq!(f.body["state"], "dead");
    s.stop().await;
}

#[tokio::test]
async fn batch_complete_and_fail_report_each_item() {
    let s = TestServer::start().await;
    s.post(
        "/v1/queues/b/tasks",
        json!({"tasks": [{"kind": "x"}, {"kind": "x"}, {"kind": "x"}]}),
    )
    .await;
    let got = s.claim("b", json!({"worker": "w", "max": 3})).await;
    let missing = "01a20c27-4e6d-7000-8000-000000000000";
    let a = s
        .post(
            "/v1/tasks/complete",
            json!({"items": [
                {"id": id(&got[0]), "lease": lease(&got[0]), "result": "ok"},
                {"id": id(&got[1]), "lease": "ffffffffffffffff"},
                {"id": missing, "lease": "ffffffffffffffff"},
            ]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let items = a.body["items"].as_array().unwrap();
    assert_eq!(items[0]["ok"], true);
    assert_eq!(items[0]["state"], "succeeded");
    assert_eq!(items[1]["ok"], false);
    assert_eq!(items[1]["error"]["code"], "lease_lost");
    assert_eq!(items[2]["error"]["code"], "task_not_found");
    let f = s
        .post(
            "/v1/tasks/fail",
            json!({"items": [
                {"id": id(&got[1]), "lease": lease(&got[1]), "error": "e1", "retry_in_ms": 0},
                {"id": id(&got[2]), "lease": lease(&got[2]), "error": "e2", "dead": true},
            ]}),
        )
        .await;
    let items = f.body["items"].as_array().unwrap();
    assert_eq!(items[0]["state"], "ready");
    assert_eq!(items[1]["state"], "dead");
    s.post("/v1/tasks/complete", json!({"items": []}))
        .await
        .assert_error(422, "invalid_field");
    s.stop().await;
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let s = TestServer::start().await;
    let mut ids = vec![];
    for i in 0..5 {
        let kind = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(id(&s.enqueue("l", json!({"kind": kind})).await));
    }
    let p1 = s.get("/v1/queues/l/tasks?limit=2").await;
    assert_eq!(p1.status, 200);
    let got: Vec<_> = p1.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(got, [ids[4].clone(), ids[3].clone()]);
    let cursor = p1.body["next_cursor"].as_str().unwrap().to_owned();
    let p2 = s
        .get(&format!("/v1/queues/l/tasks?limit=2&cursor={cursor}"))
        .await;
    let got: Vec<_> = p2.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(got, [ids[2].clone(), ids[1].clone()]);
    let odd = s.get("/v1/queues/l/tasks?state=ready&kind=odd").await;
    assert_eq!(odd.body["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(odd.body["next_cursor"], Value::Null);
    s.get("/v1/queues/l/tasks?state=sleeping")
        .await
        .assert_error(400, "bad_request");
    s.get("/v1/queues/l/tasks?limit=0")
        .await
        .assert_error(400, "bad_request");
    s.get("/v1/queues/l/tasks?cursor=abc")
        .await
        .assert_error(400, "bad_request");
    s.get("/v1/queues/l/tasks?color=red")
        .await
        .assert_error(400, "bad_request");
    s.get("/v1/queues/nope/tasks")
        .await
        .assert_error(404, "queue_not_found");
    s.stop().await;
}

#[tokio::test]
async fn queues_stats_settings_pause_and_purge() {
    let s = TestServer::start().await;
    for _ in 0..3 {
        s.enqueue("ops", json!({"kind": "x"})).await;
    }
    s.enqueue("other", json!({"kind": "x"})).await;
    s.clock.advance_ms(2_500);
    let list = s.get("/v1/queues").await;
    let names: Vec<_> = list.body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].clone())
        .collect();
    assert_eq!(names, [json!("ops"), json!("other")]);
    let q = s.get("/v1/queues/ops").await.body;
    assert_eq!(q["counts"]["ready"], 3);
    assert_eq!(q["oldest_ready_age_ms"], 2500);
    assert_eq!(q["last_claim_at"], Value::Null);
    let patched = s
        .send(
            "PATCH",
            "/v1/queues/ops",
            Some(r#"{"max_attempts": 3, "backoff": {"base_ms": 500, "max_ms": 60000}, "lease_ms": 15000, "retention_ms": 3600000}"#),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["settings"]["max_attempts"], 3);
    assert_eq!(patched.body["settings"]["backoff"]["base_ms"], 500);
    assert_eq!(patched.body["settings"]["lease_ms"], 15000);
    let p = s.post("/v1/queues/ops/pause", json!({})).await;
    assert_eq!(p.body["settings"]["paused"], true);
    assert!(s.claim("ops", json!({"worker": "w"})).await.is_empty());
    s.post("/v1/queues/ops/resume", json!({})).await;
    let c = &s.claim("ops", json!({"worker": "w"})).await[0];
    assert_eq!(
        c["lease"]["expires_at"], "2027-01-15T08:00:17.500Z",
        "queue lease_ms applies"
    );
    s.post(
        &format!("/v1/tasks/{}/fail", id(c)),
        json!({"lease": lease(c), "error": "x", "dead": true}),
    )
    .await;
    let purged = s
        .send("DELETE", "/v1/queues/ops/tasks?state=dead", None)
        .await;
    assert_eq!(purged.status, 200);
    assert_eq!(purged.body["deleted"], 1);
    s.send("DELETE", "/v1/queues/ops/tasks?state=ready", None)
        .await
        .assert_error(400, "bad_request");
    s.send("DELETE", "/v1/queues/ops/tasks", None)
        .await
        .assert_error(400, "bad_request");
    s.send("DELETE", "/v1/queues/ghost/tasks?state=dead", None)
        .await
        .assert_error(404, "queue_not_found");
    s.post("/v1/queues/ghost/pause", json!({}))
        .await
        .assert_error(404, "queue_not_found");
    s.get("/v1/queues/ghost")
        .await
        .assert_error(404, "queue_not_found");
    assert_eq!(s.count("ops").await, 2);
    s.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let s = TestServer::start().await;
    let h = s.get("/healthz").await;
    assert_eq!((h.status, h.body["status"].clone()), (200, json!("ok")));
    let r = s.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["checks"]["storage.schema"], "ok");
    let t = s.enqueue("m", json!({"kind": "x"})).await;
    let c = &s.claim("m", json!({"worker": "w"})).await[0];
    s.post(
        &format!("/v1/tasks/{}/complete", id(&t)),
        json!({"lease": lease(c)}),
    )
    .await;
    let m = s.get("/metrics").await;
    let text = m.body.as_str().unwrap();
    assert!(
        text.contains(r#"rota_tasks_enqueued_total{tenant="default",queue="m"}"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"rota_task_outcomes_total{tenant="default",queue="m",outcome="succeeded"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains("rota_http_request_duration_seconds_bucket"),
        "{text}"
    );
    // Queue gauges, read at scrape time: one succeeded task, nothing waiting, claimed just now.
    for series in [
        r#"rota_queue_tasks{tenant="default",queue="m",state="succeeded"} 1"#,
        r#"rota_queue_tasks{tenant="default",queue="m",state="ready"} 0"#,
        r#"rota_queue_oldest_ready_seconds{tenant="default",queue="m"} 0"#,
        r#"rota_queue_last_claim_age_seconds{tenant="default",queue="m"} 0"#,
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    // The embedded writer: the enqueue and the completion waited for an fsync, the claim not.
    let value = |series: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("missing {series} in:\n{text}"));
        line[series.len()..].trim().parse().unwrap()
    };
    assert!(value(r#"rota_storage_commits_total{fsync="yes"}"#) >= 2);
    assert!(value(r#"rota_storage_commits_total{fsync="no"}"#) >= 1);
    assert!(value(r#"rota_storage_writer_busy_microseconds_total{shard="0"}"#) > 0);
    let doc = s.get("/openapi.json").await.body;
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/queues/{queue}/tasks",
        "/v1/queues/{queue}/claim",
        "/v1/tasks/{id}/heartbeat",
        "/v1/tasks/{id}/complete",
        "/v1/tasks/{id}/fail",
        "/v1/tasks/complete",
        "/v1/tasks/fail",
        "/v1/tasks/{id}",
        "/v1/tasks/{id}/cancel",
        "/v1/tasks/{id}/retry",
        "/v1/queues",
        "/v1/queues/{queue}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/admin/tenants",
        "/v1/keys",
        "/v1/roles/{name}",
        "/v1/whoami",
    ] {
        assert!(paths.contains_key(p), "openapi lacks {p}");
    }
    // Every /v1 route takes the bearer token; the system routes need none.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([{}])
    );
    assert!(doc["components"]["schemas"]["Task"].is_object());
    // After the store closes, readiness names the failing part.
    s.store.close().await;
    let r = s.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert_ne!(r.body["checks"]["storage.schema"], "ok");
    s.stop().await;
}

/// Every bad request gets the error shape, the right status, and writes nothing.
#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let config = rota_server::ServerConfig {
        limits: rota_core::Limits {
            max_payload_bytes: 1_000,
            max_batch: 5,
            max_body_bytes: 20_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = TestServer::with_config(config).await;
    let t = s.enqueue("v", json!({"kind": "x"})).await;
    let tid = id(&t);
    let cases: Vec<(&str, String, Option<String>, u16, &str)> = vec![
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some("{\"kind\": ".into()),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some("[1,2".into()),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some("".into()),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(r#"{"kind": 7}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(r#"{"priority": "high"}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(r#"{"kind": "x", "colour": 1}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(r#"{"kind": ""}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(r#"{"max_attempts": 0}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(r#"{"run_at": "tomorrow"}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(r#"{"run_at": "2027-01-15T08:00:00Z", "delay_ms": 5}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(r#"{"tasks": []}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(r#"{"tasks": [{"kind": "a"}], "kind": "b"}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(r#"{"tasks": [{"kind": "a"}, {"kind": 3}]}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(format!(r#"{{"payload": "{}"}}"#, "x".repeat(2_000))),
            413,
            "too_large",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(format!(
                r#"{{"tasks": [{}]}}"#,
                [r#"{"kind":"a"}"#; 6].join(",")
            )),
            413,
            "too_large",
        ),
        (
            "POST",
            "/v1/queues/v/tasks".into(),
            Some(format!(r#"{{"kind": "{}"}}"#, "k".repeat(30_000))),
            413,
            "too_large",
        ),
        (
            "POST",
            "/v1/queues/bad%20name/tasks".into(),
            Some(r#"{"kind": "x"}"#.into()),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("/v1/queues/{}/tasks", "q".repeat(129)),
            Some(r#"{"kind": "x"}"#.into()),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/queues/v/claim".into(),
            Some(r#"{"max": 1}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/claim".into(),
            Some(r#"{"worker": "w", "max": 1001}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/claim".into(),
            Some(r#"{"worker": "w", "wait_ms": 60001}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/claim".into(),
            Some(format!(
                r#"{{"worker": "w", "kinds": [{}]}}"#,
                ["\"k\""; 65].join(",")
            )),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/queues/v/claim".into(),
            Some(r#"{"worker": "w", "lease_ms": 5}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            format!("/v1/tasks/{tid}/complete"),
            Some(r#"{"result": 1}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            format!("/v1/tasks/{tid}/fail"),
            Some(r#"{"lease": "x"}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            format!("/v1/tasks/{tid}/heartbeat"),
            Some(r#"{"lease": 5}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/tasks/not-an-id/complete".into(),
            Some(r#"{"lease": "x"}"#.into()),
            400,
            "bad_request",
        ),
        (
            "GET",
            "/v1/tasks/not-an-id".into(),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/v1/tasks/01a20c27-4e6d-7000-8000-000000000000".into(),
            None,
            404,
            "task_not_found",
        ),
        (
            "POST",
            "/v1/tasks/01a20c27-4e6d-7000-8000-000000000000/cancel".into(),
            None,
            404,
            "task_not_found",
        ),
        (
            "POST",
            "/v1/tasks/01a20c27-4e6d-7000-8000-000000000000/complete".into(),
            Some(r#"{"lease": "x"}"#.into()),
            404,
            "task_not_found",
        ),
        (
            "POST",
            "/v1/tasks/complete".into(),
            Some(r#"{"items": [{"id": "nope", "lease": "x"}]}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "PATCH",
            "/v1/queues/v".into(),
            Some(r#"{"backoff": {"base_ms": 10, "max_ms": 1}}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "PATCH",
            "/v1/queues/v".into(),
            Some(r#"{"max_attempts": -1}"#.into()),
            422,
            "invalid_field",
        ),
        (
            "PATCH",
            "/v1/queues/v".into(),
            Some(r#"{"paused": "yes"}"#.into()),
            422,
            "invalid_field",
        ),
        ("GET", "/v1/nowhere".into(), None, 404, "not_found"),
        (
            "PUT",
            "/v1/queues/v".into(),
            Some("{}".into()),
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let a = s.send(method, &path, body.as_deref()).await;
        assert_eq!(
            a.status,
            status,
            "{method} {path} {:?}: {}",
            body.as_deref().map(|b| &b[..b.len().min(80)]),
            a.body
        );
        assert_eq!(a.body["error"]["code"], code, "{method} {path}: {}", a.body);
        assert!(a.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.len() > 10));
    }
    // Nothing was written: one task, untouched, and no other queue.
    assert_eq!(s.count("v").await, 1);
    let q = s.get("/v1/queues").await;
    assert_eq!(q.body["queues"].as_array().unwrap().len(), 1);
    let again = s.get(&format!("/v1/tasks/{tid}")).await.body;
    assert_eq!(again["state"], "ready");
    assert_eq!(again["attempt"], 0);
    assert_eq!(again["updated_at"], t["updated_at"]);
    assert_eq!(
        s.get("/v1/queues/v").await.body["settings"]["max_attempts"],
        25
    );
    // Messages name the problem.
    let m = s
        .post(
            "/v1/queues/v/tasks",
            json!({"tasks": [{"kind": "a"}, {"kind": 3}]}),
        )
        .await;
    assert!(
        m.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tasks[1].kind"),
        "{}",
        m.body
    );
    s.stop().await;
}

#[tokio::test]
async fn shutdown_ends_long_polls() {
    let s = TestServer::start().await;
    assert_eq!(
        s.send("PATCH", "/v1/queues/idle", Some("{}")).await.status,
        200
    );
    let url = format!("{}/v1/queues/idle/claim", s.url);
    let http = s.http.clone();
    let waiter = tokio::spawn(async move {
        http.post(url)
            .json(&json!({"worker": "w", "wait_ms": 60000}))
            .send()
            .await
    });
    // The claim is parked once the queue records it; then shut down.
    while s.get("/v1/queues/idle").await.body["last_claim_at"] == Value::Null {
        tokio::task::yield_now().await;
    }
    let t = Instant::now();
    s.stop().await;
    let resp = waiter.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(10));
    let _ = T0;
}

/// Parked claims are woken for tasks they can take: one filtered by another kind must not
/// swallow the wake-up, and two plain waiters both get one of two new tasks.
#[tokio::test]
async fn long_polls_wake_for_their_own_kind() {
    let s = TestServer::start().await;
    assert_eq!(
        s.send("PATCH", "/v1/queues/k", Some("{}")).await.status,
        200
    );
    let park = |body: Value| {
        let (http, url) = (s.http.clone(), format!("{}/v1/queues/k/claim", s.url));
        tokio::spawn(async move {
            let t = Instant::now();
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.json::<Value>().await.unwrap(), t.elapsed())
        })
    };
    // Wait until `n` claims have been seen by the queue (each records last_claim_at).
    let srv = &s;
    let parked = move |before: Value| async move {
        loop {
            let now = srv.get("/v1/queues/k").await.body["last_claim_at"].clone();
            if now != before && now != Value::Null {
                return now;
            }
            tokio::task::yield_now().await;
        }
    };
    let wants_a = park(json!({"worker": "a", "kinds": ["a"], "wait_ms": 20000}));
    let seen = parked(Value::Null).await;
    // Same clock instant for both claims: advance it so the second one shows.
    s.clock.advance_ms(1);
    let wants_b = park(json!({"worker": "b", "kinds": ["b"], "wait_ms": 20000}));
    parked(seen).await;
    s.enqueue("k", json!({"kind": "b"})).await;
    let (got_b, took) = wants_b.await.unwrap();
    assert_eq!(got_b["tasks"][0]["kind"], "b");
    assert!(
        took < Duration::from_secs(15),
        "the kind-b waiter waited {took:?}"
    );
    s.enqueue("k", json!({"kind": "a"})).await;
    let (got_a, _) = wants_a.await.unwrap();
    assert_eq!(got_a["tasks"][0]["kind"], "a");

    s.clock.advance_ms(1);
    let seen = s.get("/v1/queues/k").await.body["last_claim_at"].clone();
    let one = park(json!({"worker": "p1", "wait_ms": 20000}));
    let seen = parked(seen).await;
    s.clock.advance_ms(1);
    let two = park(json!({"worker": "p2", "wait_ms": 20000}));
    parked(seen).await;
    s.post(
        "/v1/queues/k/tasks",
        json!({"tasks": [{"kind": "x"}, {"kind": "y"}]}),
    )
    .await;
    let (r1, t1) = one.await.unwrap();
    let (r2, t2) = two.await.unwrap();
    assert_eq!(r1["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(r2["tasks"].as_array().unwrap().len(), 1);
    assert!(t1.max(t2) < Duration::from_secs(15));
    s.stop().await;
}

/// `limits.max_connections`: with two connections busy (long-polling claims), a third is not
/// served until one finishes; an idle connection is closed to make room for a new one.
#[tokio::test]
async fn connection_limit_waits_for_busy_connections_and_closes_idle_ones() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = rota_server::ServerConfig {
        limits: rota_core::Limits {
            max_connections: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = TestServer::with_config(config).await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    async fn answer(conn: &mut tokio::net::TcpStream) -> String {
        let mut buf = vec![0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
    let claim = |wait_ms: u64| {
        let body = format!(r#"{{"worker": "w", "wait_ms": {wait_ms}}}"#);
        format!(
            "POST /v1/queues/idle/claim HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            helpers::ADMIN,
            body.len()
        )
    };
    let mut busy1 = tokio::net::TcpStream::connect(&addr).await.unwrap();
    busy1.write_all(claim(60_000).as_bytes()).await.unwrap();
    let mut busy2 = tokio::net::TcpStream::connect(&addr).await.unwrap();
    busy2.write_all(claim(1_500).as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = tokio::net::TcpStream::connect(&addr).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the third connection was served while two were busy"
    );
    // The shorter long-poll ends; its connection is then idle and gives way.
    let got = tokio::time::timeout(Duration::from_secs(10), answer(&mut third))
        .await
        .expect("served once a connection was no longer busy");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(answer(&mut busy2).await.starts_with("HTTP/1.1 200"));
    drop(busy1);
    s.stop().await;
}
