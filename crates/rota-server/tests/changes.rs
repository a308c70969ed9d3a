//! An operator's changes by task id over HTTP: cancel, retry, run now, kill, delete.

mod helpers;

use helpers::*;
use serde_json::json;

#[tokio::test]
async fn cancel_and_retry() {
    let s = TestServer::start().await;
    let t = s.enqueue("c", json!({"kind": "x"})).await;
    let c = s
        .post(&format!("/v1/tasks/{}/cancel", id(&t)), json!({}))
        .await;
    assert_eq!(c.status, 200);
    assert_eq!(c.body["state"], "cancelled");
    let msg = s
        .post(&format!("/v1/tasks/{}/cancel", id(&t)), json!({}))
        .await
        .assert_error(409, "invalid_state")
        .to_owned();
    assert!(msg.contains("cancelled task cannot be cancelled"), "{msg}");
    let r = s
        .post(&format!("/v1/tasks/{}/retry", id(&t)), json!({}))
        .await;
    assert_eq!(r.body["state"], "ready");
    s.stop().await;
}

#[tokio::test]
async fn run_now_kill_and_delete() {
    let s = TestServer::start().await;
    let later = s
        .enqueue("ops", json!({"kind": "x", "delay_ms": 3_600_000}))
        .await;
    let path = |t: &serde_json::Value, what: &str| format!("/v1/tasks/{}/{what}", id(t));
    let r = s.post(&path(&later, "run-now"), json!({})).await;
    assert_eq!((r.status, r.body["state"].as_str()), (200, Some("ready")));
    let msg = s
        .post(&path(&later, "run-now"), json!({}))
        .await
        .assert_error(409, "invalid_state")
        .to_owned();
    assert!(msg.contains("only scheduled tasks wait to run"), "{msg}");

    let k = s
        .post(&path(&later, "kill"), json!({"reason": "customer left"}))
        .await;
    assert_eq!((k.status, k.body["state"].as_str()), (200, Some("dead")));
    assert_eq!(k.body["errors"][0]["message"], "customer left");
    let other = s.enqueue("ops", json!({"kind": "x"})).await;
    let k = s.post(&path(&other, "kill"), json!({})).await;
    assert_eq!(k.body["errors"][0]["message"], "killed by an operator");
    // Bad input changes nothing.
    let fresh = s.enqueue("ops", json!({"kind": "x"})).await;
    let msg = s
        .post(&path(&fresh, "kill"), json!({"reason": 7}))
        .await
        .assert_error(422, "invalid_field")
        .to_owned();
    assert!(msg.contains("reason"), "{msg}");
    assert_eq!(
        s.get(&format!("/v1/tasks/{}", id(&fresh))).await.body["state"],
        "ready"
    );

    // A running task is neither killed nor deleted.
    let running = s.claim("ops", json!({"worker": "w"})).await.remove(0);
    assert_eq!(id(&running), id(&fresh));
    s.post(&path(&running, "kill"), json!({}))
        .await
        .assert_error(409, "invalid_state");
    let task = format!("/v1/tasks/{}", id(&running));
    let msg = s
        .send("DELETE", &task, None)
        .await
        .assert_error(409, "invalid_state")
        .to_owned();
    assert!(msg.contains("cancel it first"), "{msg}");

    let dead = format!("/v1/tasks/{}", id(&later));
    let d = s.send("DELETE", &dead, None).await;
    assert_eq!((d.status, d.body["state"].as_str()), (200, Some("dead")));
    s.get(&dead).await.assert_error(404, "task_not_found");
    s.send("DELETE", &dead, None)
        .await
        .assert_error(404, "task_not_found");
    let q = s.get("/v1/queues/ops").await.body;
    assert_eq!(
        (
            q["counts"]["dead"].as_u64(),
            q["counts"]["running"].as_u64()
        ),
        (Some(1), Some(1))
    );
    s.stop().await;
}
