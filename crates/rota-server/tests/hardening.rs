//! Findings of the outside review, each checked through a real server: bad input is refused
//! with a clear 4xx in the one error shape and changes nothing; storage failures do not leak
//! the engine's words; leases end when they expire.

mod helpers;

use helpers::*;
use serde_json::json;

/// Trailing data after the JSON value is malformed JSON, not silently dropped.
#[tokio::test]
async fn trailing_data_after_the_body_is_refused() {
    let s = TestServer::start().await;
    for body in [
        r#"{"kind":"a"}{"kind":"b"}"#,
        r#"{"kind":"a"} trailing"#,
        r#"{"tasks":[{"kind":"a"}]}]"#,
    ] {
        let a = s.send("POST", "/v1/queues/q/tasks", Some(body)).await;
        let msg = a.assert_error(400, "bad_request");
        assert!(msg.contains("malformed JSON"), "{body}: {msg}");
    }
    // Whitespace after the value is fine.
    let a = s
        .send("POST", "/v1/queues/q/tasks", Some("{\"kind\":\"a\"}\n  "))
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(s.count("q").await, 1);
    s.stop().await;
}

/// A path that does not decode, and the queue names `.` and `..`, get a JSON 400.
#[tokio::test]
async fn undecodable_paths_and_dot_queue_names_are_refused_as_json() {
    let s = TestServer::start().await;
    for (method, path) in [
        ("POST", "/v1/queues/%FF/tasks"),
        ("GET", "/v1/tasks/%FF%FE"),
    ] {
        let body = (method == "POST").then_some(r#"{"kind":"a"}"#);
        let a = s.send(method, path, body).await;
        assert!(
            a.body["error"]["code"].is_string(),
            "{path}: not the JSON error shape: {}",
            a.body
        );
        assert_eq!(a.status, 400, "{path}: {}", a.body);
    }
    // HTTP clients resolve `.` and `..` away; a raw request (curl --path-as-is) still arrives.
    for name in [".", "..", "%2E", "%2E%2E"] {
        let (status, body) = raw_post(&s.url, &format!("/v1/queues/{name}/tasks"), "{}").await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(
            body.contains("cannot appear in a URL path"),
            "{name}: {body}"
        );
    }
    let a = s.get("/v1/queues").await;
    assert_eq!(a.body["queues"].as_array().unwrap().len(), 0);
    s.stop().await;
}

/// One HTTP/1.1 request written by hand, path as is; returns the status and body.
async fn raw_post(url: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {ADMIN}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// Delays and times are bounded (limits.max_delay_ms), so no stored time is ever invalid.
#[tokio::test]
async fn unbounded_delays_are_refused_naming_the_field() {
    let s = TestServer::start().await;
    let huge = u64::MAX / 2;
    for (body, field) in [
        (json!({"kind": "a", "delay_ms": huge}), "task.delay_ms"),
        (
            json!({"kind": "a", "run_at": "9999-12-31T00:00:00Z"}),
            "task.run_at",
        ),
        (
            json!({"tasks": [{"kind": "a"}, {"kind": "b", "delay_ms": huge}]}),
            "tasks[1].delay_ms",
        ),
    ] {
        let a = s.post("/v1/queues/q/tasks", body.clone()).await;
        let msg = a.assert_error(422, "invalid_field");
        assert!(msg.contains(field), "{body}: {msg}");
    }
    assert_eq!(s.count("q").await, 0);
    for (body, field) in [
        (
            json!({"backoff": {"base_ms": 1, "max_ms": huge}}),
            "backoff.max_ms",
        ),
        (json!({"retention_ms": huge}), "retention_ms"),
    ] {
        let a = s
            .send("PATCH", "/v1/queues/q", Some(&body.to_string()))
            .await;
        let msg = a.assert_error(422, "invalid_field");
        assert!(msg.contains(field), "{body}: {msg}");
    }
    s.enqueue("q", json!({"kind": "a"})).await;
    let t = s.claim("q", json!({"worker": "w"})).await.remove(0);
    let a = s
        .post(
            &format!("/v1/tasks/{}/fail", id(&t)),
            json!({"lease": lease(&t), "error": "x", "retry_in_ms": huge}),
        )
        .await;
    let msg = a.assert_error(422, "invalid_field");
    assert!(msg.contains("retry_in_ms"), "{msg}");
    let a = s
        .post(
            "/v1/tasks/fail",
            json!({"items": [{"id": id(&t), "lease": lease(&t), "error": "x", "retry_in_ms": huge}]}),
        )
        .await;
    a.assert_error(422, "invalid_field");
    // Nothing changed: the task still runs, and every listed time is a real one.
    let got = s.get(&format!("/v1/tasks/{}", id(&t))).await;
    assert_eq!(got.body["state"], "running");
    let list = s.get("/v1/queues/q/tasks").await;
    assert_eq!(list.status, 200);
    assert!(!list.body.to_string().contains("invalid-timestamp"));
    s.stop().await;
}

/// An expired lease is refused by heartbeat, complete and fail at once, before maintenance;
/// a second completion says the task is already final.
#[tokio::test]
async fn leases_end_when_they_expire_and_final_tasks_say_so() {
    let s = TestServer::start().await;
    s.enqueue("q", json!({"kind": "a"})).await;
    let t = s
        .claim("q", json!({"worker": "w", "lease_ms": 1000}))
        .await
        .remove(0);
    s.clock.advance_ms(1_000);
    for (path, body) in [
        ("heartbeat", json!({"lease": lease(&t)})),
        ("complete", json!({"lease": lease(&t)})),
        ("fail", json!({"lease": lease(&t), "error": "late"})),
    ] {
        let a = s.post(&format!("/v1/tasks/{}/{path}", id(&t)), body).await;
        let msg = a.assert_error(409, "lease_lost");
        assert!(msg.contains("expired"), "{path}: {msg}");
    }
    s.maintain().await;
    s.clock.advance_ms(3_600_000);
    s.maintain().await;
    let t = s.claim("q", json!({"worker": "w"})).await.remove(0);
    let path = format!("/v1/tasks/{}/complete", id(&t));
    assert_eq!(s.post(&path, json!({"lease": lease(&t)})).await.status, 200);
    let again = s.post(&path, json!({"lease": lease(&t)})).await;
    let msg = again.assert_error(409, "lease_lost");
    assert!(msg.contains("already succeeded"), "{msg}");
    s.stop().await;
}

/// A storage failure answers 503 `storage_unavailable` with a stable message: the engine's own
/// words (SQL, JSON errors, file names) stay in the log.
#[tokio::test]
async fn storage_errors_do_not_leak_engine_text() {
    let s = TestServer::start().await;
    s.enqueue("q", json!({"kind": "a"})).await;
    let t = s.claim("q", json!({"worker": "w"})).await.remove(0);
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn.execute("UPDATE tasks SET errors = 'not json'", [])
        .unwrap();
    drop(conn);
    let a = s
        .post(
            &format!("/v1/tasks/{}/complete", id(&t)),
            json!({"lease": lease(&t)}),
        )
        .await;
    let msg = a.assert_error(503, "storage_unavailable").to_owned();
    assert_eq!(msg, rota_server::error::STORAGE_UNAVAILABLE);
    for leaked in ["json", "sqlite", "SQL", "column", "rota.db"] {
        assert!(!msg.contains(leaked), "{msg}");
    }
    s.stop().await;
}

async fn new_key(s: &TestServer, tenant: &str, role: &str) -> String {
    if tenant != "default" {
        let t = s.post("/v1/admin/tenants", json!({ "name": tenant })).await;
        assert!(t.status == 201 || t.status == 409, "{}", t.body);
    }
    let (a, _) = s
        .send_full(
            Some(ADMIN),
            &[("rota-tenant", tenant)],
            "POST",
            "/v1/keys",
            Some(&json!({ "roles": [role] }).to_string()),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["token"].as_str().unwrap().to_owned()
}

/// A request the caller may not make is refused from its method and path, before its body is
/// read: a `reader` sending a large body to enqueue gets 403, not a parse error.
#[tokio::test]
async fn permission_is_decided_before_the_body_is_read() {
    let s = TestServer::start().await;
    let reader = new_key(&s, "default", "reader").await;
    let junk = "x".repeat(7 << 20);
    for path in [
        "/v1/queues/q/tasks",
        "/v1/queues/q/claim",
        "/v1/tasks/complete",
        "/v1/tasks/019ab8f0-2c4e-7000-8000-000000000000/fail",
    ] {
        let a = s.send_as(Some(&reader), "POST", path, Some(&junk)).await;
        a.assert_error(403, "forbidden");
    }
    assert_eq!(s.count("q").await, 0);
    s.stop().await;
}

/// Opens a connection that sends a request's headers (declaring `len` body bytes) and only
/// part of its body, then stalls: a slow client holding body budget.
async fn stalled_body(url: &str, token: &str, len: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = url.trim_start_matches("http://");
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/queues/q/tasks HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-length: {len}\r\n\r\n{{\"kind\":"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c
}

/// Bodies in flight are bounded per credential and tenant (503 with Retry-After past it, other
/// tenants unaffected) and a body that does not arrive in time gets 408.
#[tokio::test]
async fn bodies_in_flight_are_bounded_per_client_and_in_time() {
    let mut config = rota_server::ServerConfig::default();
    config.limits.max_body_bytes = 10_000;
    config.limits.max_body_bytes_in_flight_per_client = 20_000;
    config.limits.max_body_bytes_in_flight = 100_000;
    config.limits.body_read_timeout_ms = 1_500;
    let s = TestServer::with_config(config).await;
    let mine = new_key(&s, "default", "producer").await;
    let theirs = new_key(&s, "other", "producer").await;
    let stalled = [
        stalled_body(&s.url, &mine, 10_000).await,
        stalled_body(&s.url, &mine, 10_000).await,
    ];
    // Wait until both stalled bodies hold their budget.
    let body = json!({"kind": "a"}).to_string();
    let mut refused = None;
    for _ in 0..200 {
        let (a, h) = s
            .send_full(Some(&mine), &[], "POST", "/v1/queues/q/tasks", Some(&body))
            .await;
        if a.status == 503 {
            refused = Some((a, h));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (a, h) = refused.expect("the third body is refused while two stall");
    let msg = a.assert_error(503, "too_many_in_flight");
    assert!(
        msg.contains("limits.max_body_bytes_in_flight_per_client"),
        "{msg}"
    );
    assert_eq!(h["retry-after"], "1");
    let other = s
        .send_as(Some(&theirs), "POST", "/v1/queues/q/tasks", Some(&body))
        .await;
    assert_eq!(
        other.status, 201,
        "another tenant is not affected: {}",
        other.body
    );
    // The stalled bodies time out (408) and give their budget back.
    let started = std::time::Instant::now();
    for mut c in stalled {
        use tokio::io::AsyncReadExt;
        let mut out = String::new();
        let _ = c.read_to_string(&mut out).await;
        assert!(out.starts_with("HTTP/1.1 408"), "{out}");
        assert!(out.contains("limits.body_read_timeout_ms"), "{out}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let after = s
        .send_as(Some(&mine), "POST", "/v1/queues/q/tasks", Some(&body))
        .await;
    assert_eq!(after.status, 201, "{}", after.body);
    s.stop().await;
}

/// Opens `n` connections that send a request head a few bytes at a time and never finish it.
async fn slowloris(url: &str, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    use tokio::io::AsyncWriteExt;
    let addr = url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..n {
        let Ok(mut c) = tokio::net::TcpStream::connect(&addr).await else {
            continue;
        };
        held.push(tokio::spawn(async move {
            let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
            for i in 0..100 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                if c.write_all(format!("X-{i}: y\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }));
    }
    held
}

/// (limit + 50) slowloris connections cannot keep normal requests from being answered within a
/// second: at the limit, a new connection closes the oldest one that has no request in progress.
#[tokio::test]
async fn slowloris_connections_do_not_starve_real_requests() {
    let mut config = rota_server::ServerConfig::default();
    config.limits.max_connections = 16;
    let s = TestServer::with_config(config).await;
    let attackers = slowloris(&s.url, 16 + 50).await;
    for i in 0..20 {
        let started = std::time::Instant::now();
        // A new client each time: a new connection, as a new user would open.
        let status = reqwest::Client::new()
            .get(format!("{}/v1/queues", s.url))
            .bearer_auth(ADMIN)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(status.ok(), Some(200), "request {i}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "request {i} took {:?}",
            started.elapsed()
        );
    }
    for a in attackers {
        a.abort();
    }
    s.stop().await;
}

/// A head must be complete within limits.header_read_timeout_ms of its first byte; a silent
/// connection closes after limits.idle_timeout_ms; shutdown does not wait for either.
#[tokio::test]
async fn slow_heads_and_idle_connections_are_closed_and_never_delay_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = rota_server::ServerConfig::default();
    config.limits.header_read_timeout_ms = 300;
    config.limits.idle_timeout_ms = 600;
    let s = TestServer::with_config(config).await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("the slow head is cut off")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(started.elapsed() < std::time::Duration::from_millis(550));
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the idle connection is closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // A half-sent request does not hold up shutdown.
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"POST /v1/queues/q/tasks HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    s.stop().await;
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    drop(half);
}

/// Past limits.max_connections_per_address, a new connection from that address closes its
/// oldest idle one, or is refused when all of them are busy; other addresses are unaffected.
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = rota_server::ServerConfig::default();
    config.limits.max_connections_per_address = 3;
    let s = TestServer::with_config(config).await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let body = r#"{"worker": "w", "wait_ms": 30000}"#;
    let claim = format!(
        "POST /v1/queues/q/claim HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut busy = Vec::new();
    for _ in 0..3 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(claim.as_bytes()).await.unwrap();
        busy.push(c);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut fourth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), fourth.read(&mut buf))
        .await
        .expect("refused at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "a fourth connection from a busy address is closed");
    // Another address (127.0.0.2 is loopback too) is served.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = other
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(busy);
    s.stop().await;
}

/// `/metrics` shows the deepest `limits.max_metrics_queues` queues one by one and sums the
/// rest, so its size does not grow with the number of queues.
#[tokio::test]
async fn metrics_stay_bounded_however_many_queues_exist() {
    let mut config = rota_server::ServerConfig::default();
    config.limits.max_metrics_queues = 5;
    let s = TestServer::with_config(config).await;
    for i in 0..60 {
        s.enqueue(&format!("mq-{i}"), json!({"kind": "a"})).await;
    }
    let deep: Vec<_> = (0..20).map(|_| json!({"kind": "a"})).collect();
    let a = s
        .post("/v1/queues/mq-deep/tasks", json!({ "tasks": deep }))
        .await;
    assert_eq!(a.status, 201);
    let text = reqwest::get(format!("{}/metrics", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let queues: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("rota_queue_tasks{"))
        .filter_map(|l| l.split("queue=\"").nth(1)?.split('"').next())
        .collect();
    assert!(queues.len() <= 6, "{queues:?}");
    assert!(queues.contains("mq-deep"), "{queues:?}");
    assert!(queues.contains("_other"), "{queues:?}");
    let other_ready = text
        .lines()
        .find(|l| {
            l.starts_with("rota_queue_tasks{")
                && l.contains("queue=\"_other\"")
                && l.contains("state=\"ready\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap();
    // 61 queues: 5 shown, 56 summed (the deepest is shown, so 56 single tasks).
    assert_eq!(other_ready, 56.0);
    s.stop().await;
}
