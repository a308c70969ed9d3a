//! Webhooks against receivers that hang and owners that lose access, through a real server: a
//! hanging endpoint with a full page of due work starves no other tenant, a webhook hands on
//! only what its owner may read when each delivery is sent, readers see no webhook URL, and
//! rotating a secret takes what writing the webhook takes. (The bounds on attempts in flight
//! are in webhook_in_flight.rs, alone in its process because it reads a process-wide gauge.)

mod helpers;

use helpers::receivers::*;
use helpers::*;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// No attempt starts while fewer than `webhooks.fd_reserve` descriptors are left below the
/// limit on open files: with a reserve beyond any limit, a delivery stays pending, unsent.
#[tokio::test]
async fn no_attempt_starts_while_descriptors_are_low() {
    let mut c = rota_server::ServerConfig::default();
    c.webhooks.allow_private = true;
    c.webhooks.fd_reserve = 1 << 30;
    let s = TestServer::with_config(c).await;
    let (got, url) = receiver().await;
    let id = webhook(&s, "default", &url, None).await;
    s.enqueue("jobs", json!({"kind": "k"})).await;
    // Nothing to await for an attempt that must not start: the deliverer looks at least once
    // a second (and at once on the commit), so two seconds give it several chances.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(got.lock().unwrap().is_empty());
    let list = deliveries(&s, "default", &id).await;
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0]["state"].as_str(), list[0]["attempts"].as_u64()),
        (Some("pending"), Some(0)),
        "{list:?}"
    );
}

/// A hanging endpoint with more due deliveries than one read of due work (512) must not hide
/// another tenant's delivery behind them.
#[tokio::test]
async fn a_hanging_endpoint_with_a_full_page_of_due_work_starves_no_other_tenant() {
    let mut c = rota_server::ServerConfig::default();
    c.webhooks.allow_private = true;
    c.webhooks.timeout_ms = 60_000;
    let s = TestServer::with_config(c).await;
    let hang = hanging().await;
    s.create_tenant("noisy").await;
    webhook(&s, "noisy", &hang.url, None).await;
    enqueue_many(&s, "noisy", "jobs", 700).await;
    eventually(10, "the hanging webhook's attempts", async || {
        (hang.held.load(Ordering::SeqCst) == 8).then_some(())
    })
    .await;
    let (got, fast) = receiver().await;
    webhook(&s, "default", &fast, None).await;
    let committed = Instant::now();
    let t = s.enqueue("emails", json!({"kind": "send"})).await;
    let body = eventually(5, "the bystander's delivery", async || {
        got.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(body["task_id"], t["id"]);
    assert!(committed.elapsed() < Duration::from_secs(3));
    assert_eq!(hang.held.load(Ordering::SeqCst), 8);
}

/// A webhook's owner is checked as it is when each delivery is sent: a deny on one queue keeps
/// that queue's events from the webhook (ended dead with the reason, never sent), and once the
/// owner's key is revoked nothing is sent at all.
#[tokio::test]
async fn a_webhook_sends_only_what_its_owner_may_read_now() {
    let mut c = rota_server::ServerConfig::default();
    c.webhooks.allow_private = true;
    c.webhooks.timeout_ms = 2_000;
    let s = TestServer::with_config(c).await;
    s.create_tenant("t").await;
    let role = call(
        &s,
        None,
        "t",
        "PUT",
        "/v1/roles/watcher",
        Some(json!({"rules": [
            {"resource": "queues/*", "action": "tasks:read", "effect": "allow"},
            {"resource": "webhooks/*", "action": "webhooks:*", "effect": "allow"},
            {"resource": "queues/secret", "action": "tasks:read", "effect": "deny"},
        ]})),
    )
    .await;
    assert_eq!(role.status, 201, "{}", role.body);
    let key = call(
        &s,
        None,
        "t",
        "POST",
        "/v1/keys",
        Some(json!({"roles": ["watcher"]})),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.body);
    let (key_id, token) = (
        key.body["id"].as_str().unwrap().to_owned(),
        key.body["token"].as_str().unwrap().to_owned(),
    );
    // The owner itself is refused the secret queue's tasks.
    let own = call(
        &s,
        Some(&token),
        "t",
        "GET",
        "/v1/queues/secret/tasks",
        None,
    )
    .await;
    own.assert_error(403, "forbidden");
    let (got, url) = receiver().await;
    let id = webhook(&s, "t", &url, Some(&token)).await;
    let secret = call(
        &s,
        None,
        "t",
        "POST",
        "/v1/queues/secret/tasks",
        Some(json!({"kind": "k"})),
    )
    .await;
    assert_eq!(secret.status, 201);
    let public = call(
        &s,
        None,
        "t",
        "POST",
        "/v1/queues/public/tasks",
        Some(json!({"kind": "k"})),
    )
    .await;
    assert_eq!(public.status, 201);
    let list = eventually(10, "both deliveries finished", async || {
        let l = deliveries(&s, "t", &id).await;
        (l.len() == 2 && l.iter().all(|d| d["state"] != "pending")).then_some(l)
    })
    .await;
    let of = |q: &str| {
        list.iter()
            .find(|d| d["event"]["queue"] == q)
            .cloned()
            .unwrap()
    };
    assert_eq!(of("public")["state"], "delivered", "{list:?}");
    let denied = of("secret");
    assert_eq!(denied["state"], "dead", "{denied}");
    let why = denied["last_error"].as_str().unwrap();
    assert!(
        why.contains("may not read") && why.contains("secret"),
        "{why}"
    );
    let sent: Vec<Value> = got.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["queue"], "public");

    // The owner's key revoked: nothing more is sent.
    let revoked = call(&s, None, "t", "DELETE", &format!("/v1/keys/{key_id}"), None).await;
    assert!(revoked.status < 300, "{}", revoked.body);
    let again = call(
        &s,
        None,
        "t",
        "POST",
        "/v1/queues/public/tasks",
        Some(json!({"kind": "k"})),
    )
    .await;
    assert_eq!(again.status, 201);
    let last = eventually(10, "the third delivery finished", async || {
        let l = deliveries(&s, "t", &id).await;
        (l.len() == 3 && l[0]["state"] != "pending").then(|| l[0].clone())
    })
    .await;
    assert_eq!(last["state"], "dead", "{last}");
    assert!(
        last["last_error"].as_str().unwrap().contains("revoked"),
        "{last}"
    );
    assert_eq!(got.lock().unwrap().len(), 1);
}

/// A webhook's URL can be a credential: a reader sees its origin only, a writer all of it.
/// Rotating the secret takes what writing the webhook takes: reading every event it covers.
#[tokio::test]
async fn readers_see_no_webhook_url_and_rotating_takes_what_writing_takes() {
    let mut c = rota_server::ServerConfig::default();
    c.webhooks.allow_private = true;
    let s = TestServer::with_config(c).await;
    s.create_tenant("t").await;
    let (_, url) = receiver().await;
    let url = format!("{url}/T000/B000/XXXXSECRET");
    let hidden = call(
        &s,
        None,
        "t",
        "POST",
        "/v1/webhooks",
        Some(json!({"url": url, "events": ["task.*"], "queues": ["secret"]})),
    )
    .await;
    assert_eq!(hidden.status, 201, "{}", hidden.body);
    let id = hidden.body["id"].as_str().unwrap().to_owned();
    let key = |roles: Value| {
        let s = &s;
        async move {
            let k = call(
                s,
                None,
                "t",
                "POST",
                "/v1/keys",
                Some(json!({ "roles": roles })),
            )
            .await;
            assert_eq!(k.status, 201, "{}", k.body);
            k.body["token"].as_str().unwrap().to_owned()
        }
    };
    let reader = key(json!(["reader"])).await;
    let listed = call(&s, Some(&reader), "t", "GET", "/v1/webhooks", None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let shown = listed.body["webhooks"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!shown.contains("XXXXSECRET"), "{shown}");
    assert!(url.starts_with(shown.trim_end_matches("...")), "{shown}");
    let one = call(
        &s,
        Some(&reader),
        "t",
        "GET",
        &format!("/v1/webhooks/{id}"),
        None,
    )
    .await;
    assert!(
        !one.body["url"].as_str().unwrap().contains("XXXXSECRET"),
        "{}",
        one.body
    );
    let admin = call(&s, None, "t", "GET", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(admin.body["url"], url.as_str());

    // May write webhooks, but not read the queue this one covers: no new secret.
    let role = call(
        &s,
        None,
        "t",
        "PUT",
        "/v1/roles/hooks-only",
        Some(json!({"rules": [
            {"resource": "webhooks/*", "action": "webhooks:*", "effect": "allow"},
            {"resource": "queues/public", "action": "tasks:read", "effect": "allow"},
        ]})),
    )
    .await;
    assert_eq!(role.status, 201, "{}", role.body);
    let hooks_only = key(json!(["hooks-only"])).await;
    let rotate = call(
        &s,
        Some(&hooks_only),
        "t",
        "POST",
        &format!("/v1/webhooks/{id}/rotate-secret"),
        Some(json!({})),
    )
    .await;
    let msg = rotate.assert_error(403, "forbidden");
    assert!(msg.contains("queues/secret"), "{msg}");
    let rotated = call(
        &s,
        None,
        "t",
        "POST",
        &format!("/v1/webhooks/{id}/rotate-secret"),
        Some(json!({})),
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
}
