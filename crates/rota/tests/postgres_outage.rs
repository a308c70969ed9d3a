//! PostgreSQL stopped as by a crash (`pg_ctl stop -m immediate`) under a running server, then
//! started again: meanwhile requests are answered 503 `storage_unavailable` with Retry-After
//! (never hang, never exit the server), `/readyz` names `storage`; afterwards the server
//! resumes by itself and nothing acknowledged is lost. Its own PostgreSQL server, since it is
//! stopped here. And an exhausted connection pool, visible in `/readyz` and `/metrics`.

mod common;

use common::start_with;
use rota_client::NewTask;
use rota_postgres::testing::TestCluster;
use std::time::{Duration, Instant};

/// `/readyz`'s status and body.
async fn readyz(http: &reqwest::Client, url: &str) -> (u16, String) {
    let r = http.get(format!("{url}/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

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
    let (status, text) = readyz(&http, &server.url).await;
    assert_eq!(status, 503);
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
        let (status, text) = readyz(&http, &server.url).await;
        if status == 200 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still unready: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.child.kill();
}

/// A seed's "connection pool exhaustion": every connection of a pool busy (here the one task
/// connection, held by an enqueue waiting on its tenant's lock) and a request waiting shows
/// in `/readyz` (naming `pool`) and `/metrics`; the waiting request is answered 503 when its
/// wait runs out, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_shows_in_readyz_and_metrics() {
    let url = tokio::task::spawn_blocking(|| TestCluster::shared().create_database())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rota.toml");
    std::fs::write(
        &config,
        format!("[storage]\nurl = \"{url}\"\npool_size = 1\n"),
    )
    .unwrap();
    let server = start_with(
        dir.path(),
        &[
            ("ROTA_CONFIG", config.to_str().unwrap()),
            ("ROTA_ADMIN_TOKEN", ADMIN),
        ],
    )
    .await;
    let t = NewTask::new("x", &serde_json::json!({}));
    server.client.enqueue("pool", &t).await.unwrap();
    // Another session holds the tenant's lock exclusively (as a tenant deletion would).
    let (u, held) = (url.clone(), std::sync::mpsc::channel::<()>());
    let holder = std::thread::spawn(move || {
        TestCluster::shared().psql(
            &u,
            "SELECT pg_advisory_lock(1919906913, hashtext('default')); SELECT pg_sleep(7);",
        );
        drop(held.0);
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let enqueue = |client: rota_client::Client| async move {
        let t = NewTask::new("x", &serde_json::json!({}));
        client.enqueue("pool", &t).await
    };
    let first = tokio::spawn(enqueue(server.client.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = tokio::spawn(enqueue(server.client.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    let (status, text) = readyz(&http, &server.url).await;
    assert_eq!(status, 503);
    assert!(text.contains("pool") && text.contains("wait"), "{text}");
    let metrics = || async {
        http.get(format!("{}/metrics", server.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let m = metrics().await;
    assert!(m.contains("rota_storage_pool_requests_waiting 1"), "{m}");
    let e = second.await.unwrap().expect_err("no connection came free");
    assert!(e.to_string().contains("server unavailable"), "{e}");
    let m = metrics().await;
    assert!(m.contains("rota_storage_pool_timeouts_total 1"), "{m}");
    holder.join().unwrap();
    first
        .await
        .unwrap()
        .expect("enqueued once the lock is free");
}
