//! Worker tokens from an identity provider, verified against a JWKS served by the test itself.

mod helpers;

use helpers::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rota_server::auth::jwt::JwtConfig;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "rota";

struct Signer {
    kid: &'static str,
    alg: Algorithm,
    key: EncodingKey,
}

impl Signer {
    fn load(kid: &'static str, alg: Algorithm, file: &str) -> Signer {
        let pem = std::fs::read(format!(
            "{}/tests/fixtures/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            _ => unreachable!(),
        }
        .unwrap();
        Signer { kid, alg, key }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.to_owned());
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(tenant: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "worker-7", "tenant": tenant,
        "roles": ["worker"], "kinds": ["email"], "exp": now_s() + 300, "nbf": now_s() - 10,
    })
}

/// A JWKS endpoint whose key set the test can swap, counting fetches; `mode` makes it
/// misbehave.
struct Idp {
    url: String,
    keys: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
    mode: Arc<AtomicUsize>,
}

const SERVE: usize = 0;
const FAIL: usize = 1;
const HANG: usize = 2;
const HUGE: usize = 3;
const REDIRECT: usize = 4;

async fn idp(keys: Vec<Jwk>) -> Idp {
    use axum::response::IntoResponse;
    let keys = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let mode = Arc::new(AtomicUsize::new(SERVE));
    let app = {
        let (keys, fetches, mode) = (keys.clone(), fetches.clone(), mode.clone());
        axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (keys, fetches, mode) = (keys.clone(), fetches.clone(), mode.clone());
                async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    match mode.load(Ordering::SeqCst) {
                        FAIL => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                        HANG => {
                            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                            axum::http::StatusCode::OK.into_response()
                        }
                        HUGE => format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(1 << 20))
                            .into_response(),
                        REDIRECT => {
                            axum::response::Redirect::temporary("/elsewhere").into_response()
                        }
                        _ => {
                            let set = JwkSet {
                                keys: keys.lock().unwrap().clone(),
                            };
                            axum::Json(serde_json::to_value(set).unwrap()).into_response()
                        }
                    }
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Idp {
        url,
        keys,
        fetches,
        mode,
    }
}

async fn server(idp: &Idp) -> TestServer {
    server_with(
        idp,
        JwtConfig {
            refresh_min_interval_ms: 0,
            ..Default::default()
        },
    )
    .await
}

async fn server_with(idp: &Idp, jwt: JwtConfig) -> TestServer {
    let mut config = rota_server::ServerConfig::default();
    config.auth.jwt = Some(JwtConfig {
        jwks_url: idp.url.clone(),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        leeway_s: 5,
        allow_http: true,
        ..jwt
    });
    let s = TestServer::with_config(config).await;
    let a = s
        .send("POST", "/v1/admin/tenants", Some(r#"{"name": "acme"}"#))
        .await;
    assert_eq!(a.status, 201);
    s
}

async fn as_jwt(
    s: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let body = body.map(|b| b.to_string());
    s.send_as(Some(token), method, path, body.as_deref()).await
}

#[tokio::test]
async fn good_tokens_of_each_algorithm_act_in_their_tenant_with_their_role_and_kinds() {
    let signers = [
        Signer::load("rsa", Algorithm::RS256, "rsa-a.pem"),
        Signer::load("ec", Algorithm::ES256, "ec.pem"),
        Signer::load("ed", Algorithm::EdDSA, "ed25519.pem"),
    ];
    let idp = idp(signers.iter().map(Signer::jwk).collect()).await;
    let s = server(&idp).await;
    for signer in &signers {
        let token = signer.sign(&claims("acme"));
        let me = as_jwt(&s, &token, "GET", "/v1/whoami", None).await;
        assert_eq!(me.status, 200, "{:?}: {}", signer.alg, me.body);
        assert_eq!(me.body["tenant"], "acme");
        assert_eq!(me.body["principal"], "jwt subject worker-7");
        assert_eq!(me.body["kinds"], json!(["email"]));
    }
    // Verified keys are cached: many requests, one fetch.
    let token = signers[0].sign(&claims("acme"));
    for _ in 0..5 {
        assert_eq!(
            as_jwt(&s, &token, "GET", "/v1/queues", None).await.status,
            200
        );
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    // The role is `worker`: it claims but does not enqueue.
    as_jwt(
        &s,
        &token,
        "POST",
        "/v1/queues/q/tasks",
        Some(json!({"kind": "email"})),
    )
    .await
    .assert_error(403, "forbidden");
    let (a, _) = s
        .send_full(
            Some(ADMIN),
            &[("rota-tenant", "acme")],
            "POST",
            "/v1/queues/q/tasks",
            Some(r#"{"tasks": [{"kind": "sms"}, {"kind": "email"}]}"#),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    // It claims only the kinds its token names, asked or not.
    let claimed = as_jwt(
        &s,
        &token,
        "POST",
        "/v1/queues/q/claim",
        Some(json!({"worker": "w", "max": 10})),
    )
    .await;
    let kinds: Vec<&str> = claimed.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["email"]);
    let msg = as_jwt(
        &s,
        &token,
        "POST",
        "/v1/queues/q/claim",
        Some(json!({"worker": "w", "kinds": ["sms"]})),
    )
    .await
    .assert_error(403, "forbidden")
    .to_owned();
    assert!(msg.contains("sms"), "{msg}");
    s.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_reason() {
    let rsa = Signer::load("rsa", Algorithm::RS256, "rsa-a.pem");
    let idp = idp(vec![rsa.jwk()]).await;
    let s = server(&idp).await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims("acme");
        f(&mut c);
        rsa.sign(&c)
    };
    let good = rsa.sign(&claims("acme"));
    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    // Same signature, payload changed to another tenant.
    let forged_payload = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut c = claims("acme");
        c["roles"] = json!(["tenant-admin"]);
        b64.encode(c.to_string())
    };
    let tampered = format!("{head}.{forged_payload}.{sig}");
    let stranger = Signer::load("rsa", Algorithm::RS256, "rsa-b.pem");
    let cases: Vec<(String, &str)> = vec![
        (with(&|c| c["exp"] = json!(now_s() - 120)), "expired"),
        (with(&|c| c["nbf"] = json!(now_s() + 600)), "not valid yet"),
        (with(&|c| c["iss"] = json!("https://evil.test")), "issuer"),
        (with(&|c| c["aud"] = json!("another-service")), "audience"),
        (tampered, "signature"),
        // Signed by a key the provider does not have, under a kid it does have.
        (stranger.sign(&claims("acme")), "signature"),
        (
            Signer {
                kid: "nope",
                ..Signer::load("x", Algorithm::RS256, "rsa-a.pem")
            }
            .sign(&claims("acme")),
            "not in the identity provider's key set",
        ),
        (with(&|c| c["tenant"] = json!("globex")), "globex"),
        (with(&|c| c["roles"] = json!(["admin"])), "admin"),
        (
            with(&|c| c["roles"] = json!(["no-such-role"])),
            "no-such-role",
        ),
        (
            with(&|c| {
                c.as_object_mut().unwrap().remove("tenant");
            }),
            "tenant",
        ),
    ];
    for (token, needle) in cases {
        let a = as_jwt(&s, &token, "GET", "/v1/queues", None).await;
        let msg = a.assert_error(401, "unauthorized");
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_rotated_key_set_is_fetched_on_an_unknown_kid() {
    let old = Signer::load("2026-a", Algorithm::RS256, "rsa-a.pem");
    let new = Signer::load("2026-b", Algorithm::RS256, "rsa-b.pem");
    let idp = idp(vec![old.jwk()]).await;
    let s = server(&idp).await;
    let before = old.sign(&claims("acme"));
    assert_eq!(
        as_jwt(&s, &before, "GET", "/v1/queues", None).await.status,
        200
    );
    // The provider rotates: the new key replaces the old one.
    *idp.keys.lock().unwrap() = vec![new.jwk()];
    let after = new.sign(&claims("acme"));
    let a = as_jwt(&s, &after, "GET", "/v1/queues", None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // Tokens under the retired key stop working once the set no longer has it.
    let msg = as_jwt(&s, &before, "GET", "/v1/queues", None)
        .await
        .assert_error(401, "unauthorized")
        .to_owned();
    assert!(msg.contains("2026-a"), "{msg}");
    s.stop().await;
}

/// A JWT's `kinds` limit holds on every operation, not only enqueue and claim: it cannot read
/// another kind's lease token through get or list, nor heartbeat, complete or fail that task
/// with a token learned elsewhere.
#[tokio::test]
async fn the_kinds_limit_holds_on_every_operation() {
    let rsa = Signer::load("rsa", Algorithm::RS256, "rsa-a.pem");
    let idp = idp(vec![rsa.jwk()]).await;
    let s = server(&idp).await;
    let token = rsa.sign(&claims("acme"));
    let admin = |method: &'static str, path: String, body: Value| {
        let s = &s;
        async move {
            s.send_full(
                Some(ADMIN),
                &[("rota-tenant", "acme")],
                method,
                &path,
                Some(&body.to_string()),
            )
            .await
            .0
        }
    };
    let a = admin("POST", "/v1/queues/q/tasks".into(), json!({"kind": "sms"})).await;
    assert_eq!(a.status, 201, "{}", a.body);
    // Another worker (the admin, here) holds the sms task.
    let claimed = admin(
        "POST",
        "/v1/queues/q/claim".into(),
        json!({"worker": "other", "kinds": ["sms"]}),
    )
    .await;
    let sms = claimed.body["tasks"][0].clone();
    let sms_id = id(&sms);
    // The email-only JWT reads the task, but not its lease token.
    let got = as_jwt(&s, &token, "GET", &format!("/v1/tasks/{sms_id}"), None).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["lease"]["worker"], "other");
    assert!(got.body["lease"].get("token").is_none(), "{}", got.body);
    let list = as_jwt(&s, &token, "GET", "/v1/queues/q/tasks", None).await;
    assert!(list.body["tasks"][0]["lease"].get("token").is_none());
    // With the token learned elsewhere, it still cannot act on that kind.
    for (op, body) in [
        ("heartbeat", json!({"lease": lease(&sms)})),
        ("complete", json!({"lease": lease(&sms)})),
        ("fail", json!({"lease": lease(&sms), "error": "x"})),
    ] {
        let a = as_jwt(
            &s,
            &token,
            "POST",
            &format!("/v1/tasks/{sms_id}/{op}"),
            Some(body),
        )
        .await;
        let msg = a.assert_error(403, "forbidden");
        assert!(msg.contains("sms"), "{op}: {msg}");
    }
    let batch = as_jwt(
        &s,
        &token,
        "POST",
        "/v1/tasks/complete",
        Some(json!({"items": [{"id": sms_id, "lease": lease(&sms)}]})),
    )
    .await;
    assert_eq!(batch.body["items"][0]["ok"], false, "{}", batch.body);
    assert_eq!(batch.body["items"][0]["error"]["code"], "forbidden");
    // The holder of the lease still sees its token and completes it.
    let mine = admin("GET", format!("/v1/tasks/{sms_id}"), json!(null)).await;
    assert_eq!(mine.body["lease"]["token"], sms["lease"]["token"]);
    let done = admin(
        "POST",
        format!("/v1/tasks/{sms_id}/complete"),
        json!({"lease": lease(&sms)}),
    )
    .await;
    assert_eq!(done.body["state"], "succeeded", "{}", done.body);
    s.stop().await;
}

/// With a stale key set and a provider that fails or hangs, the provider is asked at most once
/// per refresh interval, and requests whose kid is known never wait for it.
#[tokio::test]
async fn a_failing_or_hanging_provider_is_asked_rarely_and_never_waited_for() {
    let rsa = Signer::load("rsa", Algorithm::RS256, "rsa-a.pem");
    let idp = idp(vec![rsa.jwk()]).await;
    // cache_ttl_s = 0: the key set is stale as soon as it is fetched. With no throttle, a
    // hanging provider holds its one fetch in flight while known kids go on without it.
    let token = rsa.sign(&claims("acme"));
    let unthrottled = JwtConfig {
        cache_ttl_s: 0,
        refresh_min_interval_ms: 0,
        ..Default::default()
    };
    let s = server_with(&idp, unthrottled).await;
    assert_eq!(
        as_jwt(&s, &token, "GET", "/v1/whoami", None).await.status,
        200
    );
    idp.mode.store(HANG, Ordering::SeqCst);
    let before = idp.fetches.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    for _ in 0..50 {
        assert_eq!(
            as_jwt(&s, &token, "GET", "/v1/whoami", None).await.status,
            200
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let during = idp.fetches.load(Ordering::SeqCst) - before;
    assert_eq!(during, 1, "one fetch in flight at a time");
    s.stop().await;
    idp.mode.store(SERVE, Ordering::SeqCst);
    idp.fetches.store(0, Ordering::SeqCst);

    let s = server_with(
        &idp,
        JwtConfig {
            cache_ttl_s: 0,
            refresh_min_interval_ms: 60_000,
            fetch_timeout_ms: 5_000,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        as_jwt(&s, &token, "GET", "/v1/whoami", None).await.status,
        200
    );
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    for mode in [FAIL, HANG] {
        idp.mode.store(mode, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let statuses = concurrent_whoami(&s.url, &token, 100).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "known kids waited on the provider: {:?}",
            started.elapsed()
        );
    }
    // One fetch at the start; the throttle allowed no other in the minute.
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    // Unknown kids are throttled too: a flood of made-up kids asks nobody.
    let stranger = Signer::load("other", Algorithm::RS256, "rsa-b.pem");
    for _ in 0..20 {
        let t = stranger.sign(&claims("acme"));
        as_jwt(&s, &t, "GET", "/v1/whoami", None)
            .await
            .assert_error(401, "unauthorized");
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    s.stop().await;
}

/// Concurrent requests with a new kid share one fetch; a key set too large, or a redirect,
/// is refused and the keys already known stay.
#[tokio::test]
async fn unknown_kids_share_one_fetch_and_bad_key_sets_are_refused() {
    let rsa = Signer::load("rsa", Algorithm::RS256, "rsa-a.pem");
    let idp = idp(vec![rsa.jwk()]).await;
    let s = server(&idp).await;
    let token = rsa.sign(&claims("acme"));
    assert_eq!(
        as_jwt(&s, &token, "GET", "/v1/whoami", None).await.status,
        200
    );
    let fetches = idp.fetches.load(Ordering::SeqCst);
    let rotated = Signer::load("rsa-next", Algorithm::RS256, "rsa-b.pem");
    idp.keys.lock().unwrap().push(rotated.jwk());
    let new_token = rotated.sign(&claims("acme"));
    let statuses = concurrent_whoami(&s.url, &new_token, 16).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let used = idp.fetches.load(Ordering::SeqCst) - fetches;
    assert!(used <= 2, "{used} fetches for one rotation");
    for mode in [HUGE, REDIRECT] {
        idp.mode.store(mode, Ordering::SeqCst);
        let stranger = Signer::load("unknown", Algorithm::RS256, "rsa-b.pem");
        let msg = as_jwt(
            &s,
            &stranger.sign(&claims("acme")),
            "GET",
            "/v1/whoami",
            None,
        )
        .await
        .assert_error(401, "unauthorized")
        .to_owned();
        assert!(
            msg.contains("not in the identity provider's key set"),
            "{msg}"
        );
        // The keys already known still work.
        assert_eq!(
            as_jwt(&s, &token, "GET", "/v1/whoami", None).await.status,
            200
        );
    }
    s.stop().await;
}

/// `n` whoami requests with `token` at once, each on its own connection; their statuses.
async fn concurrent_whoami(url: &str, token: &str, n: usize) -> Vec<u16> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let (url, token) = (url.to_owned(), token.to_owned());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .get(format!("{url}/v1/whoami"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for c in calls {
        out.push(c.await.unwrap());
    }
    out
}

#[test]
fn plain_http_key_sets_need_allow_http() {
    let cfg = JwtConfig {
        jwks_url: "http://idp.example/jwks.json".into(),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        ..Default::default()
    };
    let e = cfg.validate().unwrap_err();
    assert!(e.contains("allow_http"), "{e}");
    let ok = JwtConfig {
        allow_http: true,
        ..cfg
    };
    assert!(ok.validate().is_ok());
}

#[tokio::test]
async fn an_event_stream_ends_when_its_jwt_expires() {
    let signer = Signer::load("rsa", Algorithm::RS256, "rsa-a.pem");
    let idp = idp(vec![signer.jwk()]).await;
    let s = server(&idp).await;
    // Past its `exp`, within the server's leeway (5 s): about two seconds left.
    let mut c = claims("acme");
    c["exp"] = json!(now_s() - 3);
    let token = signer.sign(&c);
    let mut r = reqwest::Client::new()
        .get(format!("{}/v1/events/stream", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The stream sends nothing more once the token has expired: the server ends it.
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Ok(Some(_)) = r.chunk().await {}
    })
    .await
    .expect("the stream ends at the token's expiry");
    // And the token opens nothing now.
    let again = as_jwt(&s, &token, "GET", "/v1/events/stream", None).await;
    again.assert_error(401, "unauthorized");
}
