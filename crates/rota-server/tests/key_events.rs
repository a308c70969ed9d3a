//! A key's life in the event log: `key.rotated` and `key.revoked` when they happen,
//! `key.expiring` once the key is within `auth.key_expiry_warning_ms` of its end and
//! `key.expired` once it has ended, each once (a manual clock; the notices are looked for
//! every second); read by who may read the key, not by who may only read tasks.

mod helpers;

use helpers::receivers::eventually;
use helpers::*;
use serde_json::{json, Value};

const DAY: i64 = 24 * 3_600_000;

async fn key_events(s: &TestServer, token: &str) -> Vec<Value> {
    let a = s
        .send_as(Some(token), "GET", "/v1/events?types=key.*&limit=100", None)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["events"].as_array().unwrap().clone()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn rotations_revocations_and_expiry_are_in_the_event_log_once() {
    let s = TestServer::start().await;
    // Events kept a month: the clock moves eleven days.
    let keep = json!({"event_retention_ms": 30 * DAY}).to_string();
    let a = s
        .send("PATCH", "/v1/admin/tenants/default", Some(&keep))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let made = s
        .post(
            "/v1/keys",
            json!({"name": "ci", "roles": ["producer"], "expires_in_s": 10 * DAY / 1000}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    let reader = s.post("/v1/keys", json!({"roles": ["reader"]})).await;
    let reader = reader.body["token"].as_str().unwrap().to_owned();

    let a = s
        .post(
            &format!("/v1/keys/{id}/rotate"),
            json!({"grace_ms": 60_000}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let got = eventually(5, "key.rotated", async || {
        let e = key_events(&s, ADMIN).await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(kinds(&got), ["key.rotated"]);
    assert_eq!(got[0]["queue"], "");
    assert_eq!(got[0]["data"]["key_id"], id);
    assert!(
        got[0]["data"]["previous_secret_until"].is_string(),
        "{}",
        got[0]
    );
    assert!(
        key_events(&s, &reader).await.is_empty(),
        "a reader may not read keys"
    );

    // Ten days ahead: no notice yet. Within the warning (seven days): key.expiring, once.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(kinds(&key_events(&s, ADMIN).await), ["key.rotated"]);
    s.clock.advance_ms(4 * DAY);
    let got = eventually(5, "key.expiring", async || {
        let e = key_events(&s, ADMIN).await;

        (e.len() == 2).then_some(e)
    })
    .await;
    assert_eq!(got[1]["type"], "key.expiring");
    assert_eq!(got[1]["data"]["expires_at"], made.body["expires_at"]);
    // Past its end: key.expired, once.
    s.clock.advance_ms(7 * DAY);
    let got = eventually(5, "key.expired", async || {
        let e = key_events(&s, ADMIN).await;

        (e.len() == 3).then_some(e)
    })
    .await;
    assert_eq!(got[2]["type"], "key.expired");
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    s.clock.advance_ms(DAY);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(
        kinds(&key_events(&s, ADMIN).await),
        ["key.rotated", "key.expiring", "key.expired"],
        "each notice once"
    );

    // A revocation.
    let other = s.post("/v1/keys", json!({"roles": ["worker"]})).await;
    let other = other.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        s.send("DELETE", &format!("/v1/keys/{other}"), None)
            .await
            .status,
        200
    );
    let got = key_events(&s, ADMIN).await;
    assert_eq!(got.last().unwrap()["type"], "key.revoked");
    assert_eq!(got.last().unwrap()["data"]["key_id"], other);
    s.stop().await;
}
