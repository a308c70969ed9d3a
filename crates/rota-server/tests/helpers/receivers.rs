//! Receivers for webhook tests: one that hangs (accepts and never answers) and one that
//! answers 204 and keeps each body; and the calls those tests make as an admin in a tenant.

use super::{Answer, TestServer, ADMIN};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP listener that accepts connections and never answers: every attempt to it hangs
/// until its timeout. Counts the connections it holds open.
pub struct Hanging {
    pub url: String,
    pub held: Arc<AtomicUsize>,
}

pub async fn hanging() -> Hanging {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let held = Arc::new(AtomicUsize::new(0));
    let count = held.clone();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = l.accept().await {
            open.push(sock);
            count.store(open.len(), Ordering::SeqCst);
        }
    });
    Hanging { url, held }
}

/// A receiver that answers 204 and keeps each body.
pub async fn receiver() -> (Arc<Mutex<Vec<Value>>>, String) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                keep.lock()
                    .unwrap()
                    .push(serde_json::from_slice::<Value>(&body).unwrap());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (got, url)
}

/// Polls `f` until it answers `Some`, failing after `secs` seconds with `what`.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// As the admin acting in `tenant` (or with `token`, in its own).
pub async fn call(
    s: &TestServer,
    token: Option<&str>,
    tenant: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let headers: &[(&str, &str)] = if token.is_some() {
        &[]
    } else {
        &[("rota-tenant", tenant)]
    };
    let body = body.map(|b| b.to_string());
    s.send_full(
        Some(token.unwrap_or(ADMIN)),
        headers,
        method,
        path,
        body.as_deref(),
    )
    .await
    .0
}

pub async fn webhook(s: &TestServer, tenant: &str, url: &str, token: Option<&str>) -> String {
    let a = call(
        s,
        token,
        tenant,
        "POST",
        "/v1/webhooks",
        Some(json!({"url": url, "events": ["task.enqueued"]})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

pub async fn enqueue_many(s: &TestServer, tenant: &str, queue: &str, n: usize) {
    let tasks: Vec<Value> = (0..n).map(|_| json!({"kind": "k"})).collect();
    let a = call(
        s,
        None,
        tenant,
        "POST",
        &format!("/v1/queues/{queue}/tasks"),
        Some(json!({ "tasks": tasks })),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
}

pub async fn deliveries(s: &TestServer, tenant: &str, webhook: &str) -> Vec<Value> {
    let a = call(
        s,
        None,
        tenant,
        "GET",
        &format!("/v1/webhooks/{webhook}/deliveries"),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["deliveries"].as_array().unwrap().clone()
}
