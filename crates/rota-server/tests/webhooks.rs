//! Webhooks through a real server to a real local receiver: signatures checked as a receiver
//! would, failures retried, a slow endpoint beside a fast one, a secret rotation, manual
//! retries, private targets refused by default, tenants kept apart.

mod helpers;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use helpers::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    endpoint: String,
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer on `fast`, in order; 200 once empty.
    plan: Arc<Mutex<VecDeque<u16>>>,
}

async fn hook(
    State(r): State<Receiver>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    r.got.lock().unwrap().push(Received {
        endpoint: endpoint.clone(),
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    if endpoint == "slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let status = r.plan.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/hook/{endpoint}", axum::routing::post(hook))
        .with_state(r.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (r, url)
}

impl Receiver {
    async fn wait_for(&self, endpoint: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got: Vec<Received> = self
                .got
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.endpoint == endpoint)
                .cloned()
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{endpoint}: {} of {n} requests",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn hex_hmac(secret: &str, parts: &[&[u8]]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a receiver checks, as docs/webhooks.md tells it: `v1=` against HMAC-SHA256(secret,
/// "<Rota-Timestamp>.<body>") and `v2=` against HMAC-SHA256(secret, "<Rota-Timestamp>\n
/// <Rota-Delivery-Id>\n<Rota-Webhook-Id>\n<url>\n<body>"). Answers which of `secrets`
/// signed it both ways.
fn signed_by(r: &Received, url: &str, secrets: &[&str]) -> Vec<usize> {
    let h = |k: &str| r.headers[k].to_str().unwrap().to_owned();
    let (ts, delivery, webhook) = (
        h("rota-timestamp"),
        h("rota-delivery-id"),
        h("rota-webhook-id"),
    );
    let sigs = h("rota-signature");
    let sigs: Vec<&str> = sigs.split(',').collect();
    let mut out = vec![];
    for (i, secret) in secrets.iter().enumerate() {
        let v1 = hex_hmac(secret, &[format!("{ts}.").as_bytes(), &r.body]);
        let head = format!("{ts}\n{delivery}\n{webhook}\n{url}\n");
        let v2 = hex_hmac(secret, &[head.as_bytes(), &r.body]);
        if sigs.contains(&format!("v1={v1}").as_str())
            && sigs.contains(&format!("v2={v2}").as_str())
        {
            out.push(i);
        }
    }
    out
}

async fn run_one_task(s: &TestServer, queue: &str) -> Value {
    let t = s.enqueue(queue, json!({"kind": "report"})).await;
    let c = s.claim(queue, json!({"worker": "w"})).await.remove(0);
    let done = s
        .post(
            &format!("/v1/tasks/{}/complete", id(&c)),
            json!({"lease": lease(&c)}),
        )
        .await;
    assert_eq!(done.status, 200);
    t
}

fn config() -> rota_server::ServerConfig {
    let mut c = rota_server::ServerConfig::default();
    c.webhooks.allow_private = true;
    // Port 9 (nothing listens) is the tests' failing endpoint.
    c.webhooks.allowed_ports = "1-65535".into();
    c.webhooks.timeout_ms = 500;
    c
}

#[tokio::test]
async fn deliveries_are_signed_retried_and_a_slow_endpoint_delays_no_other() {
    let (rx, base) = receiver().await;
    let s = TestServer::with_config(config()).await;
    let fast = s
        .post(
            "/v1/webhooks",
            json!({"url": format!("{base}/hook/fast"), "events": ["task.succeeded"],
                   "queues": ["reports*"], "description": "reports done"}),
        )
        .await;
    assert_eq!(fast.status, 201, "{}", fast.body);
    let secret = fast.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let fast_id = fast.body["id"].as_str().unwrap().to_owned();
    let slow = s
        .post(
            "/v1/webhooks",
            json!({"url": format!("{base}/hook/slow"), "events": ["task.*"]}),
        )
        .await;
    assert_eq!(slow.status, 201);
    let slow_id = slow.body["id"].as_str().unwrap().to_owned();
    // The secret is shown once.
    let got = s.get(&format!("/v1/webhooks/{fast_id}")).await.body;
    assert!(got.get("secret").is_none(), "{got}");

    rx.plan.lock().unwrap().push_back(500);
    let committed = Instant::now();
    let task = run_one_task(&s, "reports").await;
    let first = rx.wait_for("fast", 1).await.remove(0);
    // Sent at once (woken by the commit), while the slow endpoint still hangs.
    assert!(first.at.duration_since(committed) < Duration::from_secs(2));
    assert_eq!(
        signed_by(&first, &format!("{base}/hook/fast"), &[&secret]),
        [0]
    );
    assert_eq!(first.headers["rota-webhook-id"], fast_id.as_str());
    let event: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(event["type"], "task.succeeded");
    assert_eq!(event["task_id"], task["id"]);
    let ts: i64 = first.headers["rota-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ts, rota_core::Clock::now(&s.clock).0 / 1000);

    // The 500 is retried after the backoff (10 s on the server's clock), with the same id.
    s.clock.advance_ms(10_000);
    let both = rx.wait_for("fast", 2).await;
    assert_eq!(
        both[0].headers["rota-delivery-id"],
        both[1].headers["rota-delivery-id"]
    );
    let list = loop {
        let l = s
            .get(&format!(
                "/v1/webhooks/{fast_id}/deliveries?state=delivered"
            ))
            .await
            .body;
        if !l["deliveries"].as_array().unwrap().is_empty() {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let d = &list["deliveries"][0];
    assert_eq!(
        (d["attempts"].as_u64(), d["last_status"].as_u64()),
        (Some(2), Some(200))
    );
    assert!(d["latency_ms"].is_u64());
    assert_eq!(d["event"]["type"], "task.succeeded");

    // The slow endpoint's attempts time out and are recorded so.
    let slow_failed = loop {
        let l = s
            .get(&format!("/v1/webhooks/{slow_id}/deliveries?state=failed"))
            .await
            .body;
        if let Some(d) = l["deliveries"].as_array().unwrap().first() {
            break d.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        slow_failed["last_error"]
            .as_str()
            .unwrap()
            .contains("500 ms"),
        "{slow_failed}"
    );

    // A delivered delivery is sent again by hand.
    let delivery = d["id"].as_i64().unwrap();
    let again = s
        .post(
            &format!("/v1/webhooks/{fast_id}/deliveries/{delivery}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    rx.wait_for("fast", 3).await;

    // Rotation: both secrets sign until the grace period ends.
    let rotated = s
        .post(&format!("/v1/webhooks/{fast_id}/rotate-secret"), json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    run_one_task(&s, "reports").await;
    let fourth = rx.wait_for("fast", 4).await.remove(3);
    assert_eq!(
        signed_by(
            &fourth,
            &format!("{base}/hook/fast"),
            &[&new_secret, &secret]
        ),
        [0, 1]
    );
    s.stop().await;
}

#[tokio::test]
async fn targets_are_checked_and_tenants_kept_apart() {
    let s = TestServer::start().await;
    let private = s
        .post(
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "events": ["task.*"]}),
        )
        .await;
    let msg = private.assert_error(422, "invalid_field");
    assert!(msg.contains("webhooks.allow_private"), "{msg}");
    for (body, word) in [
        (
            json!({"url": "ftp://example.com/x", "events": ["task.*"]}),
            "http",
        ),
        (
            json!({"url": "https://example.com/x", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com/x", "events": ["job.done"]}),
            "task.dead",
        ),
    ] {
        let r = s.post("/v1/webhooks", body).await;
        let msg = r.assert_error(422, "invalid_field");
        assert!(msg.contains(word), "{msg}");
    }
    s.stop().await;

    let s = TestServer::with_config(config()).await;
    let made = s
        .post(
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "events": ["task.*"]}),
        )
        .await;
    assert_eq!(made.status, 201);
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        s.post("/v1/admin/tenants", json!({"name": "acme"}))
            .await
            .status,
        201
    );
    let (key, _) = s
        .send_full(
            Some(ADMIN),
            &[("rota-tenant", "acme")],
            "POST",
            "/v1/keys",
            Some(r#"{"roles": ["tenant-admin"]}"#),
        )
        .await;
    let token = key.body["token"].as_str().unwrap().to_owned();
    let theirs = s
        .send_as(Some(&token), "GET", &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(theirs.status, 404);
    let listed = s.send_as(Some(&token), "GET", "/v1/webhooks", None).await;
    assert_eq!(listed.body["webhooks"], json!([]));
    // A reader may look but not change.
    let (reader, _) = s
        .send_full(
            Some(ADMIN),
            &[("rota-tenant", "acme")],
            "POST",
            "/v1/keys",
            Some(r#"{"roles": ["reader"]}"#),
        )
        .await;
    let reader = reader.body["token"].as_str().unwrap().to_owned();
    let body = json!({"url": "http://127.0.0.1:9/x", "events": ["task.*"]}).to_string();
    let refused = s
        .send_as(Some(&reader), "POST", "/v1/webhooks", Some(&body))
        .await;
    assert_eq!(refused.status, 403);
    let patched = s
        .send(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            Some(r#"{"enabled": false}"#),
        )
        .await;
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(
        s.send("DELETE", &format!("/v1/webhooks/{id}"), None)
            .await
            .status,
        200
    );
    s.get(&format!("/v1/webhooks/{id}"))
        .await
        .assert_error(404, "webhook_not_found");
    s.stop().await;
}

#[tokio::test]
async fn task_results_are_posted_to_their_callback_url_signed() {
    let (rx, base) = receiver().await;
    let s = TestServer::with_config(config()).await;
    let callback = format!("{base}/hook/result");
    let early = s
        .post(
            "/v1/queues/reports/tasks",
            json!({"kind": "report", "callback_url": callback}),
        )
        .await;
    let msg = early.assert_error(422, "invalid_field");
    assert!(msg.contains("/v1/callbacks"), "{msg}");
    assert_eq!(s.get("/v1/callbacks").await.body["configured"], false);
    let made = s.post("/v1/callbacks/rotate-secret", json!({})).await;
    assert_eq!(made.status, 200, "{}", made.body);
    let secret = made.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/v1/callbacks").await.body["configured"], true);
    assert!(s.get("/v1/callbacks").await.body.get("secret").is_none());

    let t = s
        .enqueue(
            "reports",
            json!({"kind": "report", "callback_url": callback}),
        )
        .await;
    assert_eq!(t["callback_url"], callback.as_str());
    let c = s.claim("reports", json!({"worker": "w"})).await.remove(0);
    s.post(
        &format!("/v1/tasks/{}/complete", id(&c)),
        json!({"lease": lease(&c), "result": {"rows": 7}}),
    )
    .await;
    let got = rx.wait_for("result", 1).await.remove(0);
    assert_eq!(signed_by(&got, &callback, &[&secret]), [0]);
    assert_eq!(got.headers["rota-webhook-id"], "callbacks");
    let task: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(task["id"], t["id"]);
    assert_eq!(task["state"], "succeeded");
    assert_eq!(task["result"], json!({"rows": 7}));

    // The signer is not a webhook one can list or change; its deliveries are listed.
    let listed = s.get("/v1/webhooks").await.body;
    assert_eq!(listed["webhooks"], json!([]));
    s.send(
        "PATCH",
        "/v1/webhooks/callbacks",
        Some(r#"{"enabled": true}"#),
    )
    .await
    .assert_error(409, "conflict");
    let deliveries = loop {
        let l = s
            .get("/v1/webhooks/callbacks/deliveries?state=delivered")
            .await
            .body;
        if !l["deliveries"].as_array().unwrap().is_empty() {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(deliveries["deliveries"][0]["event"]["task_id"], t["id"]);
    // A private literal address is refused without the setting.
    s.stop().await;
    let s = TestServer::start().await;
    s.post("/v1/callbacks/rotate-secret", json!({})).await;
    let r = s
        .post(
            "/v1/queues/q/tasks",
            json!({"kind": "x", "callback_url": "http://10.0.0.7/cb"}),
        )
        .await;
    let msg = r.assert_error(422, "invalid_field");
    assert!(
        msg.contains("task.callback_url") && msg.contains("webhooks.allow_private"),
        "{msg}"
    );
    s.stop().await;
}

/// A task result is sent as the task is when sent; if the task was retried and leased again
/// meanwhile, the body shows the lease without its token (the token proves the lease).
#[tokio::test]
async fn a_callback_never_carries_a_lease_token() {
    let (rx, base) = receiver().await;
    let s = TestServer::with_config(config()).await;
    let made = s.post("/v1/callbacks/rotate-secret", json!({})).await;
    assert_eq!(made.status, 200, "{}", made.body);
    let callback = format!("{base}/hook/result");
    rx.plan.lock().unwrap().push_back(500);
    let t = s
        .enqueue(
            "reports",
            json!({"kind": "report", "callback_url": callback, "max_attempts": 1}),
        )
        .await;
    let c = s.claim("reports", json!({"worker": "w"})).await.remove(0);
    let failed = s
        .post(
            &format!("/v1/tasks/{}/fail", id(&c)),
            json!({"lease": lease(&c), "error": "boom"}),
        )
        .await;
    assert_eq!(failed.status, 200, "{}", failed.body);
    rx.wait_for("result", 1).await;
    // The 500 is recorded (a retry due in 10 s) before the task is retried and leased again.
    loop {
        let l = s
            .get("/v1/webhooks/callbacks/deliveries?state=failed")
            .await
            .body;
        if !l["deliveries"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let retried = s
        .post(&format!("/v1/tasks/{}/retry", id(&t)), json!({}))
        .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    let again = s.claim("reports", json!({"worker": "w2"})).await.remove(0);
    let token = lease(&again);
    assert!(!token.is_empty());
    s.clock.advance_ms(10_000);
    let got = rx.wait_for("result", 2).await.remove(1);
    let task: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(task["state"], "running", "{task}");
    assert_eq!(task["lease"]["worker"], "w2", "{task}");
    assert!(task["lease"].get("token").is_none(), "{task}");
    assert!(!String::from_utf8_lossy(&got.body).contains(&token));
    s.stop().await;
}
