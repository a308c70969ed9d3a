//! What open event streams cost and how they end: an idle stream is not woken by another
//! tenant's commits, streams are capped server-wide, a cookie stream ends with its session,
//! and the WebSocket takes the cookie only from its own origin and refuses large messages.

mod helpers;

use futures_util::{SinkExt, StreamExt};
use helpers::*;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// An SSE response read as text until it holds `needle`.
async fn read_until(r: &mut reqwest::Response, needle: &str) {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk())
            .await
            .unwrap_or_else(|_| panic!("`{needle}` within 5 s; got {seen:?}"))
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Reads an SSE response until the server ends it; panics if it goes on for `limit`.
async fn ends_within(r: &mut reqwest::Response, limit: Duration) {
    tokio::time::timeout(limit, async { while let Ok(Some(_)) = r.chunk().await {} })
        .await
        .expect("the server ends the stream");
}

async fn stream(s: &TestServer, token: &str) -> reqwest::Response {
    let r = reqwest::Client::new()
        .get(format!("{}/v1/events/stream", s.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

#[tokio::test]
async fn an_idle_stream_is_not_woken_by_another_tenants_commits() {
    let s = TestServer::start().await;
    s.create_tenant("acme").await;
    // The admin's stream follows tenant `default`; it has read everything there is.
    s.enqueue("mine", json!({"kind": "x"})).await;
    let mut idle = stream(&s, ADMIN).await;
    read_until(&mut idle, "task.enqueued").await;
    let before = s.store.event_reads();
    for _ in 0..30 {
        s.enqueue_in("acme", "busy", json!({"kind": "x"})).await;
    }
    let reads = s.store.event_reads() - before;
    // One read may follow the event it delivered, one a wait that timed out (5 s).
    assert!(
        reads <= 2,
        "30 commits of another tenant made the idle stream read the log {reads} times"
    );
    // Its own tenant's commit still wakes it at once.
    let t = s.enqueue("mine", json!({"kind": "x"})).await;
    read_until(&mut idle, t["id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn streams_are_capped_server_wide() {
    let mut config = rota_server::ServerConfig::default();
    config.limits.max_streams = 2;
    let s = TestServer::with_config(config).await;
    s.create_tenant("acme").await;
    let _a = stream(&s, ADMIN).await;
    let t = s.post("/v1/events/tickets", json!({})).await;
    let _b = reqwest::get(format!(
        "{}/v1/events/stream?ticket={}",
        s.url,
        t.body["ticket"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(_b.status(), 200);
    // A third, of another tenant whose own limit is far off, is refused by the server's.
    let (refused, _) = s
        .send_full(
            Some(ADMIN),
            &[("rota-tenant", "acme")],
            "GET",
            "/v1/events/stream",
            None,
        )
        .await;
    let msg = refused.assert_error(503, "too_many_streams");
    assert!(msg.contains("limits.max_streams"), "{msg}");
}

/// Signs in to the dashboard with `token`; the session cookie's value.
async fn sign_in(s: &TestServer, token: &str) -> String {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/login", s.url))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("rota_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("a session cookie")
}

#[tokio::test]
async fn a_cookie_stream_ends_when_its_session_does() {
    let mut config = rota_server::ServerConfig::default();
    config.events.keepalive_ms = 200;
    let s = TestServer::with_config(config).await;
    let session = sign_in(&s, ADMIN).await;
    let mut r = reqwest::Client::new()
        .get(format!("{}/v1/events/stream", s.url))
        .header("cookie", format!("rota_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.enqueue("jobs", json!({"kind": "x"})).await;
    read_until(&mut r, "task.enqueued").await;
    // Eight hours on, the session is over, and so is the stream it opened.
    s.clock.advance_ms(8 * 3_600_000);
    ends_within(&mut r, Duration::from_secs(5)).await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_ws(
    s: &TestServer,
    headers: &[(&'static str, String)],
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let url = format!("{}/v1/events/ws", s.url.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

fn status(r: Result<Socket, tokio_tungstenite::tungstenite::Error>) -> u16 {
    match r {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn the_websocket_takes_the_session_cookie_only_from_its_own_origin() {
    let s = TestServer::start().await;
    let session = sign_in(&s, ADMIN).await;
    let cookie = ("cookie", format!("rota_session={session}"));
    let own = s.url.clone();
    // A page of this server: the same scheme, host and port.
    let ok = open_ws(&s, &[cookie.clone(), ("origin", own.clone())]).await;
    assert_eq!(status(ok), 101);
    // A page on another port of the same host (same-site, so the cookie is sent), another
    // host, no Origin at all: refused before the upgrade.
    let port: u16 = own.rsplit(':').next().unwrap().parse().unwrap();
    for origin in [
        Some(format!("http://127.0.0.1:{}", port.wrapping_add(1))),
        Some("http://evil.example".to_owned()),
        Some("null".to_owned()),
        None,
    ] {
        let mut headers = vec![cookie.clone()];
        headers.extend(origin.clone().map(|o| ("origin", o)));
        assert_eq!(status(open_ws(&s, &headers).await), 403, "{origin:?}");
    }
    // A bearer token is not sent by a browser on its own: no Origin check.
    let bearer = ("authorization", format!("Bearer {ADMIN}"));
    let other = ("origin", "http://evil.example".to_owned());
    assert_eq!(status(open_ws(&s, &[bearer, other]).await), 101);
}

#[tokio::test]
async fn the_websocket_closes_on_a_message_over_its_limit() {
    let s = TestServer::start().await;
    let bearer = ("authorization", format!("Bearer {ADMIN}"));
    let mut ws = open_ws(&s, &[bearer]).await.unwrap();
    // Small messages are read and ignored.
    ws.send(Message::Text("hello".into())).await.unwrap();
    ws.send(Message::Text("x".repeat(64 * 1024).into()))
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the server closes the socket");
    assert!(matches!(ended, None | Some(1009)), "{ended:?}");
}
