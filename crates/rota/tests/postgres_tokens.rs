//! OAuth access tokens and inbound webhooks on two real `rota serve` processes sharing one
//! PostgreSQL database (and, as every such cluster must, one session secret): a token issued by
//! one server is accepted by the other at once and ended there by a revocation on the first;
//! a hook created on one takes its provider's requests on the other.

mod common;

use common::{start_with, Server};
use rota_postgres::testing::TestCluster;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ADMIN: &str = "pg-test-admin-token-0123456789abcdef0123456789";
const SECRET: &str = "shared-session-secret-0123456789abcdef";
/// docs/security.md promises a second for a change to reach every server.
const PROPAGATION: Duration = Duration::from_secs(1);

async fn two_servers() -> (Vec<tempfile::TempDir>, Server, Server) {
    let url = tokio::task::spawn_blocking(|| TestCluster::shared().create_database())
        .await
        .unwrap();
    let env = [
        ("ROTA_DATABASE_URL", url.as_str()),
        ("ROTA_ADMIN_TOKEN", ADMIN),
        ("ROTA_SESSION_SECRET", SECRET),
    ];
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_with(da.path(), &env).await;
    let b = start_with(db.path(), &env).await;
    (vec![da, db], a, b)
}

async fn send(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_one_server_works_on_another_until_its_key_is_revoked() {
    let (_dirs, a, b) = two_servers().await;
    let key = a
        .client
        .create_key(&rota_core::auth::NewKey {
            roles: vec!["producer".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let issued: Value = reqwest::Client::new()
        .post(format!("{}/oauth/token", a.url))
        .basic_auth(&key.key.id, Some(&key.token))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["access_token"].as_str().expect("a token").to_owned();
    // On B the moment A answered: B checks the signature itself and learns the key.
    let enqueue = || {
        send(
            reqwest::Method::POST,
            format!("{}/v1/queues/q/tasks", b.url),
            Some(&token),
            Some(json!({"kind": "k"})),
        )
    };
    assert_eq!(enqueue().await.0, 201);
    a.client.revoke_key(&key.key.id).await.unwrap();
    let t = Instant::now();
    while enqueue().await.0 != 401 {
        assert!(
            t.elapsed() < PROPAGATION,
            "the revoked key's token still works on B"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "token refused on B {:?} after the revocation on A",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_created_on_one_server_takes_requests_on_another() {
    let (_dirs, a, b) = two_servers().await;
    let (status, hook) = send(
        reqwest::Method::POST,
        format!("{}/v1/hooks", a.url),
        Some(ADMIN),
        Some(
            json!({"name": "gitlab", "queue": "mirror", "kind": "push", "verify": "gitlab",
                    "secret": "gitlab-secret-token-1"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().unwrap();
    let deliver = || async {
        reqwest::Client::new()
            .post(format!("{}/hooks/{id}", b.url))
            .header("x-gitlab-token", "gitlab-secret-token-1")
            .header("idempotency-key", "delivery-1")
            .body("ping")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let t = Instant::now();
    let mut status = deliver().await;
    while status == 404 {
        assert!(t.elapsed() < PROPAGATION, "the hook is unknown on B");
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = deliver().await;
    }
    assert_eq!(status, 202);
    println!("hook known on B {:?} after its creation on A", t.elapsed());
    // The redelivery, to A this time, finds the task B made.
    let again = reqwest::Client::new()
        .post(format!("{}/hooks/{id}", a.url))
        .header("x-gitlab-token", "gitlab-secret-token-1")
        .header("idempotency-key", "delivery-1")
        .body("ping")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let (_, events) = send(
        reqwest::Method::GET,
        format!("{}/v1/events?types=hook.received", a.url),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(events["events"].as_array().unwrap().len(), 2, "{events}");
}
