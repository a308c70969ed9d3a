//! A webhook delivery in flight when the server is killed (SIGKILL) is sent exactly once more
//! after the restart, and then recorded as delivered.

mod common;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Got(Arc<Mutex<Vec<String>>>);

/// The first request hangs (the server dies while waiting); later ones answer 200.
async fn hook(axum::extract::State(got): axum::extract::State<Got>, h: HeaderMap) -> StatusCode {
    let first = {
        let mut g = got.0.lock().unwrap();
        g.push(h["rota-delivery-id"].to_str().unwrap().to_owned());
        g.len() == 1
    };
    if first {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    StatusCode::OK
}

const ADMIN: &str = "crash-test-admin-token-0123456789abcdef0123";

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ROTA_ADMIN_TOKEN", ADMIN),
        ("ROTA_WEBHOOKS_ALLOW_PRIVATE", "true"),
        ("ROTA_WEBHOOKS_TIMEOUT_MS", "1000"),
    ]
}

async fn call(url: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_cut_by_sigkill_is_sent_once_more_after_restart() {
    let got = Got::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(got.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut server = common::start_with(dir.path(), &env()).await;
    let made = call(
        &server.url,
        reqwest::Method::POST,
        "/v1/webhooks",
        Some(json!({"url": hook_url, "events": ["task.enqueued"]})),
    )
    .await;
    let hook_id = made["id"].as_str().unwrap().to_owned();
    call(
        &server.url,
        reqwest::Method::POST,
        "/v1/queues/jobs/tasks",
        Some(json!({"kind": "x"})),
    )
    .await;
    wait_until("the first attempt", || got.0.lock().unwrap().len() == 1).await;
    server.child.kill().unwrap(); // SIGKILL while the receiver holds the request
    server.child.wait().unwrap();

    let server = common::start_with(dir.path(), &env()).await;
    wait_until("the attempt after the restart", || {
        got.0.lock().unwrap().len() == 2
    })
    .await;
    let path = format!("/v1/webhooks/{hook_id}/deliveries");
    let delivered = loop {
        let l = call(&server.url, reqwest::Method::GET, &path, None).await;
        let d = l["deliveries"][0].clone();
        if d["state"] == "delivered" {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(delivered["attempts"], 2);
    // Nothing more: exactly one attempt after the restart, with the same delivery id.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ids = got.0.lock().unwrap().clone();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0], delivered["id"].to_string());
}
