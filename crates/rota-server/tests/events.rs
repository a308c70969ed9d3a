//! The event log over HTTP: what a caller sees, paging by cursor, filters, and a long poll
//! woken by the commit that logs the event.

mod helpers;

use helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn types(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn events_page_filter_and_wait_for_the_next_commit() {
    let s = TestServer::start().await;
    let t = s.enqueue("mail", json!({"kind": "send"})).await;
    let c = s.claim("mail", json!({"worker": "w1"})).await.remove(0);
    let done = s
        .post(
            &format!("/v1/tasks/{}/complete", id(&c)),
            json!({"lease": lease(&c)}),
        )
        .await;
    assert_eq!(done.status, 200);
    let page = s.get("/v1/events").await.body;
    assert_eq!(
        types(&page),
        ["task.enqueued", "task.claimed", "task.succeeded"]
    );
    let first = &page["events"][0];
    assert_eq!(first["task_id"], t["id"]);
    assert_eq!(
        (first["queue"].as_str(), first["kind"].as_str()),
        (Some("mail"), Some("send"))
    );
    assert_eq!(first["data"]["state"], "ready");
    assert_eq!(page["events"][1]["data"]["worker"], "w1");
    assert!(page["events"][1]["data"]["lease_expires_at"].is_string());

    // Paging and filters.
    let one = s.get("/v1/events?limit=1").await.body;
    assert_eq!(types(&one), ["task.enqueued"]);
    let next = one["next_cursor"].as_i64().unwrap();
    let rest = s.get(&format!("/v1/events?after={next}")).await.body;
    assert_eq!(types(&rest), ["task.claimed", "task.succeeded"]);
    let only = s
        .get("/v1/events?types=task.succeeded,task.dead")
        .await
        .body;
    assert_eq!(types(&only), ["task.succeeded"]);
    assert_eq!(types(&s.get("/v1/events?queue=other").await.body).len(), 0);
    let msg = s
        .get("/v1/events?types=job.done")
        .await
        .assert_error(422, "invalid_field")
        .to_owned();
    assert!(msg.contains("task.enqueued"), "{msg}");
    s.get("/v1/events?limit=0")
        .await
        .assert_error(400, "bad_request");

    // A long poll answers when the next event commits, not at the end of its wait.
    let end = page["next_cursor"].as_i64().unwrap();
    let started = Instant::now();
    let waiting = {
        let (url, http) = (s.url.clone(), reqwest::Client::new());
        tokio::spawn(async move {
            http.get(format!("{url}/v1/events?after={end}&wait_ms=10000"))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.enqueue("mail", json!({"kind": "send"})).await;
    let woke = waiting.await.unwrap();
    assert_eq!(types(&woke), ["task.enqueued"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    s.stop().await;
}

#[tokio::test]
async fn a_caller_sees_only_its_tenant_and_the_queues_it_may_read() {
    let s = TestServer::start().await;
    let admin = |method: &'static str, path: &'static str, body: Value| {
        let s = &s;
        async move {
            s.send_full(
                Some(ADMIN),
                &[("rota-tenant", "acme")],
                method,
                path,
                Some(&body.to_string()),
            )
            .await
            .0
        }
    };
    let t = s.post("/v1/admin/tenants", json!({"name": "acme"})).await;
    assert_eq!(t.status, 201, "{}", t.body);
    let role = json!({"rules": [{"resource": "queues/a", "action": "*", "effect": "allow"}]});
    assert_eq!(admin("PUT", "/v1/roles/only-a", role).await.status, 201);
    let key = admin("POST", "/v1/keys", json!({"roles": ["only-a"]})).await;
    let token = key.body["token"].as_str().unwrap().to_owned();
    s.enqueue("a", json!({"kind": "x"})).await; // in tenant default
    for q in ["a", "b"] {
        let path = format!("/v1/queues/{q}/tasks");
        let (r, _) = s
            .send_full(
                Some(ADMIN),
                &[("rota-tenant", "acme")],
                "POST",
                &path,
                Some(r#"{"kind":"x"}"#),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let seen = s
        .send_as(Some(&token), "GET", "/v1/events", None)
        .await
        .body;
    let queues: Vec<&str> = seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["queue"].as_str().unwrap())
        .collect();
    assert_eq!(queues, ["a"], "{seen}");
    s.stop().await;
}
