//! Inbound webhooks through a real server: a provider's signed request (the real GitHub,
//! GitLab, Stripe and Rota formats) becomes one task, a redelivery finds it, and every bad
//! request is refused with its status, logged as `hook.rejected` and changes nothing.

mod helpers;

use helpers::*;
use rota_server::ServerConfig;
use serde_json::{json, Value};

/// The signature GitHub's documentation gives for this secret and body
/// ("Validating webhook deliveries").
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITHUB_BODY: &str = "Hello, World!";
const GITHUB_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

/// Sends a provider's request: no bearer token, the given headers and body.
async fn deliver(s: &TestServer, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let _ = s;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn create(s: &TestServer, body: Value) -> Value {
    let a = s.post("/v1/hooks", body).await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body
}

/// The hook events of the log, oldest first.
async fn hook_events(s: &TestServer) -> Vec<Value> {
    let a = s.get("/v1/events?types=hook.*&limit=100").await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_github_delivery_becomes_one_task_and_a_redelivery_finds_it() {
    let s = TestServer::start().await;
    let hook = create(
        &s,
        json!({"name": "github", "queue": "mirror", "kind": "push", "verify": "github",
               "secret": GITHUB_SECRET}),
    )
    .await;
    let url = hook["url"].as_str().unwrap().to_owned();
    let id = hook["id"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("{}/hooks/{id}", s.url));
    assert_eq!(hook["secret"], GITHUB_SECRET, "shown when created");
    assert!(s
        .get(&format!("/v1/hooks/{id}"))
        .await
        .body
        .get("secret")
        .is_none());

    let headers = [
        ("content-type", "text/plain"),
        ("x-hub-signature-256", GITHUB_SIGNATURE),
        ("x-github-event", "push"),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("x-github-hook-id", "292430182"),
        ("user-agent", "GitHub-Hookshot/044aadd"),
    ];
    let (status, got) = deliver(&s, &url, &headers, GITHUB_BODY).await;
    assert_eq!(status, 202, "{got}");
    assert_eq!(got["duplicate"], false);
    let task_id = got["task_id"].as_str().unwrap().to_owned();
    let task = s.get(&format!("/v1/tasks/{task_id}")).await.body;
    assert_eq!(task["queue"], "mirror");
    assert_eq!(task["kind"], "push");
    assert_eq!(
        task["payload"],
        json!({"body": "Hello, World!", "headers": {
            "x-github-event": "push",
            "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "x-github-hook-id": "292430182"}})
    );
    assert_eq!(
        task["unique_key"],
        format!("hook:{id}:72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );

    // The same delivery again (GitHub's "Redeliver"): the same task, no second one.
    let (status, again) = deliver(&s, &url, &headers, GITHUB_BODY).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["task_id"], task_id.as_str());
    assert_eq!(s.count("mirror").await, 1);

    // A body that is not what was signed, a missing signature: 401, nothing enqueued.
    let mut forged = headers;
    forged[3] = ("x-github-delivery", "another-delivery");
    let (status, refused) = deliver(&s, &url, &forged, "Hello, World?").await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["error"]["code"], "bad_signature");
    let (status, refused) = deliver(&s, &url, &[("x-github-event", "push")], GITHUB_BODY).await;
    assert_eq!(status, 401);
    assert_eq!(refused["error"]["code"], "missing_signature");
    assert_eq!(s.count("mirror").await, 1);

    // Logged in the event log (so a webhook or a stream sees them) and listed on the hook.
    let events = hook_events(&s).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "hook.received",
            "hook.received",
            "hook.rejected",
            "hook.rejected"
        ]
    );
    assert_eq!(events[0]["task_id"], task_id.as_str());
    assert_eq!(events[0]["data"]["hook_id"], id.as_str());
    assert_eq!(
        events[0]["data"]["delivery"],
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );
    let reason = events[2]["data"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("bad_signature: "), "{reason}");
    let recent = s.get(&format!("/v1/hooks/{id}/requests")).await;
    let outcomes: Vec<&str> = recent.body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["rejected", "rejected", "duplicate", "received"]);
    assert_eq!(recent.body["requests"][0]["status"], 401);
    s.stop().await;
}

#[tokio::test]
async fn gitlab_sends_its_token_and_a_json_body_stays_json() {
    let s = TestServer::start().await;
    let hook = create(
        &s,
        json!({"name": "gitlab", "queue": "mirror", "kind": "sync", "verify": "gitlab"}),
    )
    .await;
    let url = hook["url"].as_str().unwrap();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64, "a made secret: {secret}");
    let body = r#"{"object_kind":"push","ref":"refs/heads/main","project":{"id":15}}"#;
    let headers = [
        ("content-type", "application/json"),
        ("x-gitlab-token", secret.as_str()),
        ("x-gitlab-event", "Push Hook"),
        (
            "x-gitlab-event-uuid",
            "13792a34-cac6-4fda-95a8-c58e00a3954e",
        ),
        ("idempotency-key", "f1d1c1a6-3a6f-4b56-9f4e-6d0f3c7b8a21"),
    ];
    let (status, got) = deliver(&s, url, &headers, body).await;
    assert_eq!(status, 202, "{got}");
    let task = s
        .get(&format!("/v1/tasks/{}", got["task_id"].as_str().unwrap()))
        .await
        .body;
    assert_eq!(task["payload"]["body"]["project"]["id"], 15);
    assert_eq!(task["payload"]["headers"]["x-gitlab-event"], "Push Hook");
    assert!(task["unique_key"]
        .as_str()
        .unwrap()
        .ends_with(":f1d1c1a6-3a6f-4b56-9f4e-6d0f3c7b8a21"));

    let wrong = [
        ("content-type", "application/json"),
        ("x-gitlab-token", "not-the-secret-token"),
    ];
    let (status, refused) = deliver(&s, url, &wrong, body).await;
    assert_eq!(status, 401);
    assert_eq!(refused["error"]["code"], "bad_signature");
    // Signed, but not the JSON its content type says: 400, nothing enqueued.
    let (status, refused) = deliver(&s, url, &headers[..2], "{not json").await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(s.count("mirror").await, 1);
    let (status, unknown) = deliver(&s, &format!("{}/hooks/hk_nope", s.url), &headers, body).await;
    assert_eq!(status, 404, "{unknown}");
    s.stop().await;
}

#[tokio::test]
async fn timestamped_signatures_are_refused_outside_the_replay_window() {
    let s = TestServer::start().await;
    let secret = "whsec_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH";
    let stripe = create(
        &s,
        json!({"name": "stripe", "queue": "billing", "kind": "stripe-event", "verify": "stripe",
               "secret": secret}),
    )
    .await;
    let rota = create(
        &s,
        json!({"name": "rota", "queue": "billing", "kind": "rota-event", "verify": "hmac-sha256",
               "secret": secret}),
    )
    .await;
    let body = r#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","type":"invoice.paid"}"#;
    let t = (T0 / 1000).to_string();
    // Stripe's v1 and Rota's v1 are both hex(HMAC-SHA256(secret, "<t>.<body>")).
    let v1 = rota_server::webhooks::sign(secret, T0 / 1000, body.as_bytes());
    let stripe_sig = format!(
        "t={t},v1={v1},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    );
    let json_type = ("content-type", "application/json");
    let stripe_url = stripe["url"].as_str().unwrap();
    let stripe_headers = [json_type, ("stripe-signature", stripe_sig.as_str())];
    let (status, got) = deliver(&s, stripe_url, &stripe_headers, body).await;
    assert_eq!(status, 202, "{got}");
    let task = s
        .get(&format!("/v1/tasks/{}", got["task_id"].as_str().unwrap()))
        .await
        .body;
    assert!(task["unique_key"]
        .as_str()
        .unwrap()
        .ends_with(":evt_1NG8Du2eZvKYlo2CUI79vXWy"));

    let rota_sig = format!("v1={v1},v2=00");
    let rota_headers = [
        json_type,
        ("rota-timestamp", t.as_str()),
        ("rota-signature", rota_sig.as_str()),
        ("rota-webhook-id", "wh_1"),
        ("rota-delivery-id", "7"),
    ];
    let rota_url = rota["url"].as_str().unwrap();
    let (status, got) = deliver(&s, rota_url, &rota_headers, body).await;
    assert_eq!(status, 202, "{got}");

    // Five minutes on, the same signatures are still accepted; a second more, refused.
    s.clock.advance_ms(300_000);
    let (status, again) = deliver(&s, stripe_url, &stripe_headers, body).await;
    assert_eq!((status, again["duplicate"].clone()), (200, json!(true)));
    s.clock.advance_ms(1_000);
    let (status, refused) = deliver(&s, stripe_url, &stripe_headers, body).await;
    assert_eq!(status, 401);
    assert_eq!(refused["error"]["code"], "stale_timestamp");
    let (status, refused) = deliver(&s, rota_url, &rota_headers, body).await;
    assert_eq!(status, 401);
    assert_eq!(refused["error"]["code"], "stale_timestamp");
    assert_eq!(s.count("billing").await, 2);
    s.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_is_accepted_until_the_grace_ends() {
    let s = TestServer::start().await;
    let hook = create(
        &s,
        json!({"name": "gl", "queue": "q", "kind": "k", "verify": "gitlab",
               "secret": "the-first-secret-0001"}),
    )
    .await;
    let (id, url) = (hook["id"].as_str().unwrap(), hook["url"].as_str().unwrap());
    let rotated = s
        .post(
            &format!("/v1/hooks/{id}/rotate-secret"),
            json!({"grace_ms": 3_600_000, "secret": "the-second-secret-02"}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(rotated.body["secret"], "the-second-secret-02");
    assert!(rotated.body["previous_secret_until"].is_string());
    let old = [("x-gitlab-token", "the-first-secret-0001")];
    let new = [("x-gitlab-token", "the-second-secret-02")];
    assert_eq!(deliver(&s, url, &old, "ping").await.0, 202);
    assert_eq!(deliver(&s, url, &new, "ping").await.0, 202);
    s.clock.advance_ms(3_600_000);
    assert_eq!(deliver(&s, url, &old, "ping").await.0, 401);
    assert_eq!(deliver(&s, url, &new, "ping").await.0, 202);
    let too_long = s
        .post(
            &format!("/v1/hooks/{id}/rotate-secret"),
            json!({"grace_ms": 259_200_001}),
        )
        .await;
    too_long.assert_error(422, "invalid_field");
    s.stop().await;
}

#[tokio::test]
async fn disabled_oversized_unknown_and_throttled_requests_change_nothing() {
    let mut config = ServerConfig::default();
    config.hooks.max_body_bytes = 1_024;
    config.hooks.per_hook_per_minute = 4;
    config.hooks.rejected_per_address_per_minute = 3;
    let s = TestServer::with_config(config).await;
    let hook = create(
        &s,
        json!({"name": "gl", "queue": "q", "kind": "k", "verify": "gitlab",
               "secret": "a-secret-for-gitlab-1"}),
    )
    .await;
    let (id, url) = (hook["id"].as_str().unwrap(), hook["url"].as_str().unwrap());
    let token = [("x-gitlab-token", "a-secret-for-gitlab-1")];

    let (status, refused) = deliver(&s, url, &token, &"x".repeat(1_025)).await;
    assert_eq!(status, 413, "{refused}");
    assert_eq!(refused["error"]["code"], "body_too_large");

    let off = s
        .send(
            "PATCH",
            &format!("/v1/hooks/{id}"),
            Some(r#"{"enabled": false}"#),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    let (status, refused) = deliver(&s, url, &token, "ping").await;
    assert_eq!(status, 403);
    assert_eq!(refused["error"]["code"], "hook_disabled");
    // Who cannot sign does not learn that the hook is off.
    let (status, _) = deliver(
        &s,
        url,
        &[("x-gitlab-token", "not-the-secret-at-all")],
        "ping",
    )
    .await;
    assert_eq!(status, 401);
    let on = s
        .send(
            "PATCH",
            &format!("/v1/hooks/{id}"),
            Some(r#"{"enabled": true}"#),
        )
        .await;
    assert_eq!(on.status, 200);
    assert_eq!(s.count("q").await, 0);

    // Three refusals so far from this address: it is refused before anything is checked,
    // an unknown hook's id included.
    let (status, throttled) =
        deliver(&s, &format!("{}/hooks/hk_nope", s.url), &token, "ping").await;
    assert_eq!(status, 429, "{throttled}");
    s.clock.advance_ms(60_000);

    // The hook's own bound: four requests a minute.
    for _ in 0..4 {
        assert_eq!(deliver(&s, url, &token, "ping").await.0, 202);
    }
    let (status, throttled) = deliver(&s, url, &token, "ping").await;
    assert_eq!(status, 429, "{throttled}");
    assert_eq!(throttled["error"]["code"], "rate_limited");
    assert_eq!(s.count("q").await, 4);
    s.stop().await;
}

#[tokio::test]
async fn a_hook_enqueues_as_its_owner_is_now() {
    let s = TestServer::start().await;
    let rules = json!({"rules": [
        {"resource": "hooks/*", "action": "hooks:*", "effect": "allow"},
        {"resource": "queues/mirror", "action": "tasks:enqueue", "effect": "allow"}]});
    let key = s
        .send("PUT", "/v1/roles/hook-maker", Some(&rules.to_string()))
        .await;
    assert!(key.status == 200 || key.status == 201, "{}", key.body);
    let made = s
        .post("/v1/keys", json!({"name": "ci", "roles": ["hook-maker"]}))
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let (key_id, token) = (
        made.body["id"].as_str().unwrap().to_owned(),
        made.body["token"].as_str().unwrap().to_owned(),
    );
    let body = json!({"name": "gl", "queue": "secret", "kind": "k", "verify": "gitlab",
                      "secret": "a-secret-for-gitlab-1"});
    let elsewhere = s
        .send_as(Some(&token), "POST", "/v1/hooks", Some(&body.to_string()))
        .await;
    elsewhere.assert_error(403, "forbidden");
    let mut body = body;
    body["queue"] = json!("mirror");
    let hook = s
        .send_as(Some(&token), "POST", "/v1/hooks", Some(&body.to_string()))
        .await;
    assert_eq!(hook.status, 201, "{}", hook.body);
    assert_eq!(hook.body["owner"], format!("key {key_id}"));
    let url = hook.body["url"].as_str().unwrap();
    let gl = [("x-gitlab-token", "a-secret-for-gitlab-1")];
    assert_eq!(deliver(&s, url, &gl, "ping").await.0, 202);

    // The owner's key revoked: the hook enqueues nothing more.
    let revoked = s.send("DELETE", &format!("/v1/keys/{key_id}"), None).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let (status, refused) = deliver(&s, url, &gl, "ping").await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no longer holds"));
    assert_eq!(s.count("mirror").await, 1);

    // A reader sees hooks, but may not make one.
    let reader = s.post("/v1/keys", json!({"roles": ["reader"]})).await;
    let reader = reader.body["token"].as_str().unwrap().to_owned();
    let listed = s.send_as(Some(&reader), "GET", "/v1/hooks", None).await;
    assert_eq!(listed.body["hooks"].as_array().unwrap().len(), 1);
    let refused = s
        .send_as(Some(&reader), "POST", "/v1/hooks", Some(&body.to_string()))
        .await;
    refused.assert_error(403, "forbidden");
    s.stop().await;
}

#[tokio::test]
async fn bad_hook_definitions_are_refused_by_name() {
    let s = TestServer::start().await;
    let ok = json!({"name": "gh", "queue": "q", "kind": "k", "verify": "github"});
    create(&s, ok.clone()).await;
    s.post("/v1/hooks", ok).await.assert_error(409, "conflict");
    for (body, field) in [
        (
            json!({"name": "x", "queue": "q", "kind": "k", "verify": "svix"}),
            "verify",
        ),
        (
            json!({"name": "x", "queue": "q", "kind": "k", "verify": "github", "secret": "short"}),
            "secret",
        ),
        (
            json!({"name": "x y", "queue": "q", "kind": "k", "verify": "github"}),
            "hook name",
        ),
        (
            json!({"name": "x", "queue": "a/b", "kind": "k", "verify": "github"}),
            "queue name",
        ),
    ] {
        let a = s.post("/v1/hooks", body.clone()).await;
        assert!(a.status == 422 || a.status == 400, "{body}: {}", a.body);
        let msg = a.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field), "{body}: {msg}");
    }
    assert_eq!(
        s.get("/v1/hooks").await.body["hooks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.stop().await;
}

#[tokio::test]
async fn the_doctor_names_a_hook_that_refuses_everything_its_provider_sends() {
    let s = TestServer::start().await;
    let hook = create(
        &s,
        json!({"name": "gl", "queue": "mirror", "kind": "push", "verify": "gitlab",
               "secret": "the-right-secret-0001"}),
    )
    .await;
    let (id, url) = (hook["id"].as_str().unwrap(), hook["url"].as_str().unwrap());
    let named = |report: &Value| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == "hook_rejecting")
            .cloned()
    };
    for _ in 0..3 {
        let wrong = [("x-gitlab-token", "an-old-secret-000001")];
        assert_eq!(deliver(&s, url, &wrong, "ping").await.0, 401);
    }
    let report = s.get("/v1/doctor").await.body;
    let f = named(&report).unwrap_or_else(|| panic!("no hook_rejecting in {report}"));
    assert_eq!(f["subject"], format!("hook {id} (gl)"));
    let seen = f["seen"].as_str().unwrap();
    assert!(
        seen.contains("3 requests refused") && seen.contains("bad_signature"),
        "{seen}"
    );
    // Once one request is taken, the secret is right again.
    let right = [("x-gitlab-token", "the-right-secret-0001")];
    assert_eq!(deliver(&s, url, &right, "ping").await.0, 202);
    assert_eq!(named(&s.get("/v1/doctor").await.body), None);
    s.stop().await;
}
