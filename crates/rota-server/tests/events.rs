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

/// One Server-Sent Events connection, read frame by frame.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

/// A frame: its `id:`, `event:` and `data:` fields, or the text of a comment line.
#[derive(Debug)]
enum Frame {
    Event { id: i64, kind: String, data: Value },
    Comment(String),
}

impl Sse {
    async fn open(url: &str, token: Option<&str>, last_id: Option<i64>) -> Result<Sse, u16> {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(id) = last_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.unwrap();
        if resp.status() != 200 {
            return Err(resp.status().as_u16());
        }
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(ct, "text/event-stream");
        Ok(Sse {
            resp,
            buf: String::new(),
        })
    }

    /// The next frame, or `None` when the server ended the stream.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, None, None);
                for line in frame.lines().filter(|l| !l.is_empty()) {
                    if let Some(c) = line.strip_prefix(':') {
                        return Some(Frame::Comment(c.trim().to_owned()));
                    }
                    let (k, v) = line.split_once(':').unwrap_or_else(|| panic!("{frame:?}"));
                    let v = v.trim_start().to_owned();
                    match k {
                        "id" => id = Some(v.parse().unwrap()),
                        "event" => kind = Some(v),
                        "data" => data = Some(serde_json::from_str(&v).unwrap()),
                        other => panic!("unexpected field {other}"),
                    }
                }
                return Some(Frame::Event {
                    id: id.unwrap(),
                    kind: kind.unwrap(),
                    data: data.unwrap(),
                });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.resp.chunk())
                .await
                .expect("a frame within 10 s")
                .unwrap()?;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next `n` events, skipping comments.
    async fn events(&mut self, n: usize) -> Vec<(i64, String, Value)> {
        let mut out = vec![];
        while out.len() < n {
            match self.next().await.expect("the stream goes on") {
                Frame::Event { id, kind, data } => out.push((id, kind, data)),
                Frame::Comment(_) => {}
            }
        }
        out
    }
}

#[tokio::test]
async fn a_stream_resumes_after_a_dropped_connection_with_nothing_missed() {
    let mut config = rota_server::ServerConfig::default();
    config.events.keepalive_ms = 200;
    let s = TestServer::with_config(config).await;
    for n in 0..3 {
        s.enqueue("mail", json!({"kind": "send", "payload": n}))
            .await;
    }
    let url = format!("{}/v1/events/stream", s.url);
    let mut sse = Sse::open(&url, Some(ADMIN), None).await.unwrap();
    let first = sse.events(3).await;
    assert!(first.iter().all(|(_, kind, _)| kind == "task.enqueued"));
    assert_eq!(first[0].2["type"], "task.enqueued");
    assert_eq!(first[0].2["cursor"], first[0].0);
    let last = first[2].0;

    // An idle stream sends comment lines.
    match sse.next().await.unwrap() {
        Frame::Comment(c) => assert_eq!(c, "keep-alive"),
        other => panic!("expected a keep-alive comment, got {other:?}"),
    }

    // Dropped; two events commit meanwhile; the reconnect (Last-Event-ID beats ?after=)
    // gets exactly those, then live ones.
    drop(sse);
    let a = s.enqueue("mail", json!({"kind": "send"})).await;
    let c = s.claim("mail", json!({"worker": "w1"})).await.remove(0);
    let resumed_url = format!("{url}?after=0");
    let mut sse = Sse::open(&resumed_url, Some(ADMIN), Some(last))
        .await
        .unwrap();
    let missed = sse.events(2).await;
    assert_eq!(missed[0].1, "task.enqueued");
    assert_eq!(missed[0].2["task_id"], a["id"]);
    assert_eq!(missed[1].1, "task.claimed");
    assert!(missed[0].0 > last && missed[1].0 > missed[0].0);
    s.post(
        &format!("/v1/tasks/{}/complete", id(&c)),
        json!({"lease": lease(&c)}),
    )
    .await;
    let live = sse.events(1).await;
    assert_eq!(live[0].1, "task.succeeded");

    // Filters apply; a bad Last-Event-ID is refused.
    let mut dead_only = Sse::open(&format!("{url}?types=task.succeeded"), Some(ADMIN), None)
        .await
        .unwrap();
    assert_eq!(dead_only.events(1).await[0].0, live[0].0);
    let bad = reqwest::Client::new()
        .get(&url)
        .bearer_auth(ADMIN)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    s.stop().await;
}

#[tokio::test]
async fn a_ticket_opens_only_its_tenants_stream_and_only_for_a_minute() {
    let mut config = rota_server::ServerConfig::default();
    config.events.keepalive_ms = 200;
    let s = TestServer::with_config(config).await;
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
            Some(r#"{"roles": ["reader"]}"#),
        )
        .await;
    let token = key.body["token"].as_str().unwrap().to_owned();
    let key_id = key.body["id"].as_str().unwrap().to_owned();
    s.enqueue("mail", json!({"kind": "default-tenant"})).await;
    let (r, _) = s
        .send_full(
            Some(ADMIN),
            &[("rota-tenant", "acme")],
            "POST",
            "/v1/queues/mail/tasks",
            Some(r#"{"kind":"acme-task"}"#),
        )
        .await;
    assert_eq!(r.status, 201);

    let issued = s
        .send_as(Some(&token), "POST", "/v1/events/tickets", None)
        .await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    let ticket = issued.body["ticket"].as_str().unwrap().to_owned();
    assert!(issued.body["expires_at"].is_string());
    let url = format!("{}/v1/events/stream?ticket={ticket}", s.url);
    let mut sse = Sse::open(&url, None, None).await.unwrap();
    let seen = sse.events(1).await;
    assert_eq!(seen[0].2["kind"], "acme-task");

    // The ticket opens the stream and nothing else; a changed one opens nothing.
    let elsewhere = s
        .send_as(None, "GET", &format!("/v1/events?ticket={ticket}"), None)
        .await;
    assert_eq!(elsewhere.status, 401);
    let forged = ticket.replace("_acme", "_default");
    assert_eq!(
        Sse::open(
            &format!("{}/v1/events/stream?ticket={forged}", s.url),
            None,
            None
        )
        .await
        .err(),
        Some(401)
    );

    // Revoking the key ends the open stream; after a minute the ticket opens nothing.
    let revoked = s
        .send_full(
            Some(ADMIN),
            &[("rota-tenant", "acme")],
            "DELETE",
            &format!("/v1/keys/{key_id}"),
            None,
        )
        .await
        .0;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    loop {
        match sse.next().await {
            None => break,
            Some(Frame::Comment(_)) => {}
            Some(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(Sse::open(&url, None, None).await.err(), Some(401));

    let admin_ticket = s.post("/v1/events/tickets", json!({})).await;
    assert_eq!(admin_ticket.status, 201);
    s.clock.advance_ms(61_000);
    let late = format!(
        "{}/v1/events/stream?ticket={}",
        s.url,
        admin_ticket.body["ticket"].as_str().unwrap()
    );
    let r = s.send_as(None, "GET", &late[s.url.len()..], None).await;
    assert_eq!(r.status, 401);
    assert!(r.body.to_string().contains("expired"), "{}", r.body);
    s.stop().await;
}

#[tokio::test]
async fn get_with_wait_answers_when_the_task_is_final() {
    let s = TestServer::start().await;
    let t = s.enqueue("jobs", json!({"kind": "report"})).await;
    let path = format!("/v1/tasks/{}?wait_ms=10000", id(&t));
    let waiting = {
        let (url, path) = (s.url.clone(), path.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let body = reqwest::Client::new()
                .get(format!("{url}{path}"))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap();
            (body, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = s.claim("jobs", json!({"worker": "w"})).await.remove(0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "a claim is not final");
    s.post(
        &format!("/v1/tasks/{}/complete", id(&c)),
        json!({"lease": lease(&c), "result": {"rows": 3}}),
    )
    .await;
    let (done, took) = waiting.await.unwrap();
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["result"], json!({"rows": 3}));
    assert!(took < Duration::from_secs(5), "{took:?}");

    // Already final: at once. Not final by the end of the wait: as it is.
    let again = s.get(&path).await;
    assert_eq!(again.body["state"], "succeeded");
    let other = s.enqueue("jobs", json!({"kind": "report"})).await;
    let started = Instant::now();
    let late = s
        .get(&format!("/v1/tasks/{}?wait_ms=300", id(&other)))
        .await;
    assert_eq!(late.body["state"], "ready");
    assert!(started.elapsed() >= Duration::from_millis(300));
    s.get(&format!("/v1/tasks/{}?wait_ms=999999999", id(&other)))
        .await
        .assert_error(422, "invalid_field");
    s.stop().await;
}

#[tokio::test]
async fn a_tenant_keeps_its_events_for_its_own_retention() {
    let s = TestServer::start().await;
    let t = s
        .post(
            "/v1/admin/tenants",
            json!({"name": "brief", "event_retention_ms": 60_000}),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.body);
    assert_eq!(t.body["event_retention_ms"], 60_000);
    let events = |tenant: &'static str| {
        let s = &s;
        async move {
            let (r, _) = s
                .send_full(
                    Some(ADMIN),
                    &[("rota-tenant", tenant)],
                    "GET",
                    "/v1/events",
                    None,
                )
                .await;
            r.body["events"].as_array().unwrap().len()
        }
    };
    let enqueue = |tenant| s.enqueue_in(tenant, "q", json!({"kind": "x"}));
    enqueue("brief").await;
    enqueue("default").await;
    s.clock.advance_ms(61_000);
    s.maintain().await;
    assert_eq!((events("brief").await, events("default").await), (0, 1));

    // Bad values are refused and change nothing; null goes back to the default.
    let path = "/v1/admin/tenants/brief";
    let r = s
        .send("PATCH", path, Some(r#"{"event_retention_ms": 5}"#))
        .await;
    assert!(r
        .assert_error(422, "invalid_field")
        .contains("event_retention_ms is 5"));
    let r = s
        .send("PATCH", path, Some(r#"{"event_retention_ms": null}"#))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("event_retention_ms").is_none(), "{}", r.body);
    enqueue("brief").await;
    s.clock.advance_ms(61_000);
    s.maintain().await;
    assert_eq!(events("brief").await, 1, "kept the default day");
}

mod websocket {
    use super::*;
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    async fn open(
        s: &TestServer,
        query: &str,
        token: Option<&str>,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::Error,
    > {
        let url = format!("{}/v1/events/ws{query}", s.url.replace("http://", "ws://"));
        let mut req = url.into_client_request().unwrap();
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
            .await
            .map(|(ws, _)| ws)
    }

    async fn next_event(
        ws: &mut tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("an event within 5 s")
                .expect("the socket stays open")
                .unwrap();
            if let Message::Text(t) = msg {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }

    #[tokio::test]
    async fn a_websocket_follows_resumes_and_authenticates_like_the_stream() {
        let s = TestServer::start().await;
        let first = s.enqueue("jobs", json!({"kind": "x"})).await;
        let mut ws = open(&s, "?queue=jobs", Some(ADMIN)).await.unwrap();
        let e = next_event(&mut ws).await;
        assert_eq!(
            (e["type"].as_str(), e["task_id"].as_str()),
            (Some("task.enqueued"), first["id"].as_str())
        );
        let cursor = e["cursor"].as_i64().unwrap();
        // Woken by the commit: a new task arrives on the open socket.
        let second = s.enqueue("jobs", json!({"kind": "x"})).await;
        let e = next_event(&mut ws).await;
        assert_eq!(e["task_id"], second["id"]);
        ws.close(None).await.unwrap();
        // Resuming after the first cursor gives the second event, nothing before it.
        let mut again = open(&s, &format!("?after={cursor}&queue=jobs"), Some(ADMIN))
            .await
            .unwrap();
        assert_eq!(next_event(&mut again).await["task_id"], second["id"]);

        // A browser's way in: a ticket; no credential or a bad one is refused before the
        // upgrade.
        let t = s.post("/v1/events/tickets", json!({})).await;
        let ticket = t.body["ticket"].as_str().unwrap().to_owned();
        let mut by_ticket = open(&s, &format!("?ticket={ticket}"), None).await.unwrap();
        assert_eq!(next_event(&mut by_ticket).await["type"], "task.enqueued");
        for bad in [None, Some("rota_0123456789abcdef0123456789abcdef_nope")] {
            match open(&s, "", bad).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                    assert_eq!(r.status(), 401)
                }
                other => panic!("expected 401, got {:?}", other.map(|_| ())),
            }
        }
        let bad_types = open(&s, "?types=job.done", Some(ADMIN)).await;
        assert!(
            matches!(bad_types, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 422)
        );
    }
}
