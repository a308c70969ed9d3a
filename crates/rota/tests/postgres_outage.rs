//! PostgreSQL stopped as by a crash (`pg_ctl stop -m immediate`) under a running server, then
//! started again: meanwhile requests are answered 503 `storage_unavailable` with Retry-After
//! (never hang, never exit the server), `/readyz` names `storage`; afterwards the server
//! resumes by itself and nothing acknowledged is lost. Its own PostgreSQL server, since it is
//! stopped here.

mod common;

use common::start_with;
use rota_client::NewTask;
use rota_postgres::testing::TestCluster;
use std::time::{Duration, Instant};

const ADMIN: &str = "pg-outage-admin-token-0123456789abcdef01234567";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_then_heals_by_itself() {
    let cluster = tokio::task::spawn_blocking(|| TestCluster::start().unwrap())
        .await
        .unwrap();
    let cluster = std::sync::Arc::new(cluster);
    let c = cluster.clone();
    let url = tokio::task::spawn_blocking(move || c.create_database())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_with(
        dir.path(),
        &[("ROTA_DATABASE_URL", &url), ("ROTA_ADMIN_TOKEN", ADMIN)],
    )
    .await;
    let mut acked = Vec::new();
    for i in 0..50 {
        let t = NewTask::new("x", &serde_json::json!({ "i": i }));
        acked.push(server.client.enqueue("outage", &t).await.unwrap().task.id);
    }
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop_immediate().unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let enqueue = || {
        http.post(format!("{}/v1/queues/outage/tasks", server.url))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({ "kind": "x", "payload": {} }))
            .timeout(Duration::from_secs(15))
            .send()
    };
    for _ in 0..3 {
        let t = Instant::now();
        let r = enqueue().await.expect("answered, not hung");
        assert!(
            t.elapsed() < Duration::from_secs(12),
            "took {:?}",
            t.elapsed()
        );
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    }
    let ready = http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let text = ready.text().await.unwrap();
    assert!(text.contains("storage"), "{text}");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server keeps running through the outage"
    );
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.launch().unwrap())
        .await
        .unwrap();
    let t = Instant::now();
    loop {
        let r = enqueue().await.unwrap();
        if r.status() == 201 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the server did not resume after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("resumed {:?} after the database restarted", t.elapsed());
    for id in acked {
        server
            .client
            .get(id)
            .await
            .expect("acknowledged before the outage");
    }
    // Ready again once the change feed has reconnected too (it retries with backoff).
    let t = Instant::now();
    loop {
        let ready = http
            .get(format!("{}/readyz", server.url))
            .send()
            .await
            .unwrap();
        if ready.status() == 200 {
            break;
        }
        let text = ready.text().await.unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still unready: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.child.kill();
}
