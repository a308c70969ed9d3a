//! OAuth 2.0 client credentials through a real server: a key's id and token become a
//! short-lived access token signed by Rota (checked by any server holding the session secret),
//! narrowed by its scope, ended at once by revoking its key and at the grace's end by rotating
//! it, with RFC 6749's errors, and nothing told about which client ids exist.

mod helpers;

use base64::Engine;
use helpers::*;
use rota_server::auth::{Auth, AuthConfig, Credential, Secret};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Posts `form` to the token endpoint; `basic` sends the credentials by HTTP Basic instead.
async fn token_request(
    s: &TestServer,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/oauth/token", s.url))
        .form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, resp.json().await.unwrap(), headers)
}

async fn key(s: &TestServer, roles: Value) -> (String, String) {
    let made = s.post("/v1/keys", json!({"roles": roles})).await;
    assert_eq!(made.status, 201, "{}", made.body);
    (
        made.body["id"].as_str().unwrap().to_owned(),
        made.body["token"].as_str().unwrap().to_owned(),
    )
}

async fn issue(s: &TestServer, id: &str, secret: &str, scope: Option<&str>) -> Value {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ];
    if let Some(sc) = scope {
        form.push(("scope", sc));
    }
    let (status, body, _) = token_request(s, &form, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn status_as(
    s: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> u16 {
    let text = body.map(|b| b.to_string());
    s.send_as(Some(token), method, path, text.as_deref())
        .await
        .status
}

#[tokio::test]
async fn a_key_becomes_an_access_token_that_acts_as_the_key() {
    let s = TestServer::start().await;
    let (id, secret) = key(&s, json!(["producer"])).await;
    let (status, body, headers) = token_request(
        &s,
        &[("grant_type", "client_credentials")],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(
        body["scope"],
        "tasks:enqueue tasks:read queues:read schedules:read"
    );
    let access = body["access_token"].as_str().unwrap();
    let task = json!({"kind": "k", "payload": 1});
    assert_eq!(
        status_as(&s, access, "POST", "/v1/queues/q/tasks", Some(task)).await,
        201
    );
    let who = s.send_as(Some(access), "GET", "/v1/whoami", None).await;
    assert!(who.body.to_string().contains(&id), "{}", who.body);
    // What the key may not do, its token may not either.
    assert_eq!(status_as(&s, access, "GET", "/v1/keys", None).await, 403);

    // The same in the form; the token is signed by a key the JWKS publishes.
    let body = issue(&s, &id, &secret, None).await;
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", s.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let t = body["access_token"].as_str().unwrap();
    let kid = jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    let jwk = set.find(&kid).expect("the token's key is published");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["rota"]);
    v.validate_exp = false;
    let claims =
        jsonwebtoken::decode::<Value>(t, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &v)
            .unwrap()
            .claims;
    assert_eq!(claims["sub"], id.as_str());

    // It ends after its lifetime, on the server's clock.
    s.clock.advance_ms(3_599_000);
    assert_eq!(status_as(&s, t, "GET", "/v1/queues", None).await, 200);
    s.clock.advance_ms(1_000);
    let expired = s.send_as(Some(t), "GET", "/v1/queues", None).await;
    assert!(expired
        .assert_error(401, "unauthorized")
        .contains("expired"));
    s.stop().await;
}

#[tokio::test]
async fn a_scope_narrows_the_token_to_some_actions_and_queues() {
    let s = TestServer::start().await;
    let (id, secret) = key(&s, json!(["producer"])).await;
    let body = issue(
        &s,
        &id,
        &secret,
        Some("tasks:read queues:read queues/reports-*"),
    )
    .await;
    assert_eq!(body["scope"], "tasks:read queues:read queues/reports-*");
    let t = body["access_token"].as_str().unwrap();
    s.enqueue("reports-eu", json!({"kind": "k"})).await;
    s.enqueue("emails", json!({"kind": "k"})).await;
    assert_eq!(
        status_as(&s, t, "GET", "/v1/queues/reports-eu/tasks", None).await,
        200
    );
    assert_eq!(
        status_as(&s, t, "GET", "/v1/queues/emails/tasks", None).await,
        403
    );
    let refused = s
        .send_as(
            Some(t),
            "POST",
            "/v1/queues/reports-eu/tasks",
            Some(r#"{"kind": "k"}"#),
        )
        .await;
    let msg = refused.assert_error(403, "forbidden");
    assert!(msg.contains("scope"), "{msg}");

    // Parameters the grant does not know are ignored (RFC 6749 §3.2), repeated or not.
    let extra = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("resource", "https://a.example"),
        ("resource", "https://b.example"),
    ];
    assert_eq!(token_request(&s, &extra, None).await.0, 200);

    // A scope cannot widen the key, nor name what does not exist.
    for (scope, what) in [
        ("keys:create", "keys:create"),
        ("tasks:fly", "tasks:fly"),
        ("queues/a!b", "queues/a!b"),
    ] {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", scope),
        ];
        let (status, body, _) = token_request(&s, &form, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope")),
            "{body}"
        );
        assert!(
            body["error_description"].as_str().unwrap().contains(what),
            "{body}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn revoking_ends_tokens_at_once_and_rotating_at_the_end_of_the_grace() {
    let s = TestServer::start().await;
    let (id, old) = key(&s, json!(["reader"])).await;
    let before = issue(&s, &id, &old, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = s
        .post(
            &format!("/v1/keys/{id}/rotate"),
            json!({"grace_ms": 600_000}),
        )
        .await;
    let new = rotated.body["token"].as_str().unwrap().to_owned();
    // Issued against the old secret during the grace: it lasts no longer than the grace.
    let during = issue(&s, &id, &old, None).await;
    assert_eq!(during["expires_in"], 600);
    let after = issue(&s, &id, &new, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(status_as(&s, &before, "GET", "/v1/queues", None).await, 200);
    s.clock.advance_ms(600_000);
    let ended = s.send_as(Some(&before), "GET", "/v1/queues", None).await;
    assert!(ended.assert_error(401, "unauthorized").contains("rotated"));
    assert_eq!(status_as(&s, &after, "GET", "/v1/queues", None).await, 200);

    let revoked = s.send("DELETE", &format!("/v1/keys/{id}"), None).await;
    assert_eq!(revoked.status, 200);
    assert_eq!(status_as(&s, &after, "GET", "/v1/queues", None).await, 401);
    let (status, body, _) = token_request(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &new),
        ],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_get_rfc_6749_errors_and_unknown_clients_take_as_long_as_known_ones() {
    let s = TestServer::start().await;
    let (id, secret) = key(&s, json!(["reader"])).await;
    let wrong = format!("rota_{id}_{}", "0".repeat(64));
    let unknown_id = "0".repeat(id.len());
    let unknown = format!("rota_{unknown_id}_{}", "0".repeat(64));
    for (cid, sec) in [
        (id.as_str(), wrong.as_str()),
        (unknown_id.as_str(), unknown.as_str()),
    ] {
        let started = Instant::now();
        let (status, body, headers) = token_request(
            &s,
            &[("grant_type", "client_credentials")],
            Some((cid, sec)),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        assert_eq!(headers["www-authenticate"], "Basic realm=\"rota\"");
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "a failure takes the floor"
        );
    }
    let form = |grant: &'static str| {
        vec![
            ("grant_type", grant),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ]
    };
    let (status, body, _) = token_request(&s, &form("password"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let mut twice = form("client_credentials");
    twice.push(("client_id", id.as_str()));
    let (status, body, _) = token_request(&s, &twice, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body, _) =
        token_request(&s, &form("client_credentials"), Some((&id, &secret))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "not both"
    );
    let json_body = reqwest::Client::new()
        .post(format!("{}/oauth/token", s.url))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);

    // Ten failures for one client id: then it is refused unchecked, its right secret too.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{wrong}"));
    for _ in 0..9 {
        let r = reqwest::Client::new()
            .post(format!("{}/oauth/token", s.url))
            .header("authorization", format!("Basic {basic}"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let (status, body, headers) = token_request(&s, &form("client_credentials"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("invalid_client")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));
    s.stop().await;
}

/// Two servers with the same session secret and no change feed between them: a token the
/// first issued is accepted by the second without asking anyone.
#[tokio::test]
async fn another_server_with_the_secret_accepts_the_token() {
    let s = TestServer::start().await;
    let config = AuthConfig {
        admin_token: Some(Secret(ADMIN.into())),
        session_secret: Some(Secret(
            "a-session-secret-shared-by-every-server-0123".into(),
        )),
        ..Default::default()
    };
    let clock: Arc<dyn rota_core::Clock> = Arc::new(s.clock.clone());
    let a = Auth::load(s.store.clone(), clock.clone(), config.clone())
        .await
        .unwrap();
    let b = Auth::load(s.store.clone(), clock.clone(), config.clone())
        .await
        .unwrap();
    let (key, token) = a.create_admin_key("client").await.unwrap();
    let local: std::net::IpAddr = std::net::Ipv4Addr::LOCALHOST.into();
    let issued = a.issue_token(local, &key.id, &token, None).await.unwrap();
    let (caller, _) = b
        .admit(Some(Credential::Token(&issued.access_token)), None)
        .await
        .unwrap();
    assert_eq!(caller.principal.key_id.as_deref(), Some(key.id.as_str()));
    // A server with another secret does not.
    let other = AuthConfig {
        session_secret: Some(Secret("another-session-secret-of-another-cluster-9".into())),
        ..config
    };
    let c = Auth::load(s.store.clone(), clock, other).await.unwrap();
    assert!(c
        .admit(Some(Credential::Token(&issued.access_token)), None)
        .await
        .is_err());
    s.stop().await;
}
