//! Rotating an API key (`POST /v1/keys/{id}/rotate`): a new secret for the same key, the old
//! one accepted until the grace ends (a manual clock), then refused; on another server at
//! once, before its change feed has brought the rotation.

mod helpers;

use helpers::*;
use rota_server::auth::{Auth, AuthConfig, Credential};
use serde_json::json;
use std::sync::Arc;

/// The status `token` gets for a read of the queues.
async fn status_with(s: &TestServer, token: &str) -> u16 {
    s.send_as(Some(token), "GET", "/v1/queues", None)
        .await
        .status
}

#[tokio::test]
async fn a_rotated_keys_old_secret_works_until_the_grace_ends() {
    let s = TestServer::start().await;
    let made = s
        .post("/v1/keys", json!({"name": "deployer", "roles": ["reader"]}))
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    let old = made.body["token"].as_str().unwrap().to_owned();
    assert_eq!(made.body["rotated_at"], serde_json::Value::Null);
    assert_eq!(status_with(&s, &old).await, 200);

    let rotated = s
        .post(
            &format!("/v1/keys/{id}/rotate"),
            json!({"grace_ms": 3_600_000}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = rotated.body["token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(
        new.starts_with(&format!("rota_{id}_")),
        "same key id: {new}"
    );
    assert_eq!(rotated.body["id"], id.as_str());
    assert_eq!(rotated.body["roles"], json!(["reader"]));
    assert_eq!(rotated.body["rotated_at"], "2027-01-15T08:00:00.000Z");
    assert_eq!(
        rotated.body["previous_secret_until"],
        "2027-01-15T09:00:00.000Z"
    );
    let shown = s.get(&format!("/v1/keys/{id}")).await;
    assert!(shown.body.get("token").is_none(), "the token is shown once");
    assert_eq!(
        shown.body["previous_secret_until"],
        "2027-01-15T09:00:00.000Z"
    );

    // Both secrets work during the grace; the old one stops at its end.
    assert_eq!(status_with(&s, &old).await, 200);
    assert_eq!(status_with(&s, &new).await, 200);
    s.clock.advance_ms(3_599_999);
    assert_eq!(status_with(&s, &old).await, 200);
    s.clock.advance_ms(1);
    let refused = s.send_as(Some(&old), "GET", "/v1/queues", None).await;
    refused.assert_error(401, "unauthorized");
    assert_eq!(status_with(&s, &new).await, 200);

    // No grace: the old secret is refused at once, and only the newest stays.
    let again = s
        .post(&format!("/v1/keys/{id}/rotate"), json!({"grace_ms": 0}))
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    let newest = again.body["token"].as_str().unwrap().to_owned();
    assert_eq!(again.body["previous_secret_until"], serde_json::Value::Null);
    assert_eq!(status_with(&s, &new).await, 401);
    assert_eq!(status_with(&s, &newest).await, 200);

    // A rotation without a grace keeps the old secret a day.
    let default = s.post(&format!("/v1/keys/{id}/rotate"), json!({})).await;
    assert_eq!(
        default.body["previous_secret_until"],
        "2027-01-16T09:00:00.000Z"
    );
    assert_eq!(status_with(&s, &newest).await, 200);
}

#[tokio::test]
async fn a_rotation_refuses_what_it_cannot_do_and_changes_nothing() {
    let s = TestServer::start().await;
    let made = s.post("/v1/keys", json!({"roles": ["reader"]})).await;
    let id = made.body["id"].as_str().unwrap().to_owned();
    let token = made.body["token"].as_str().unwrap().to_owned();

    let long = s
        .post(
            &format!("/v1/keys/{id}/rotate"),
            json!({"grace_ms": 259_200_001u64}),
        )
        .await;
    assert!(long.assert_error(422, "invalid_field").contains("grace_ms"));
    let unknown = s
        .post(&format!("/v1/keys/{id}/rotate"), json!({"grace": 5}))
        .await;
    assert!(
        unknown.status == 400 || unknown.status == 422,
        "{}",
        unknown.body
    );
    let missing = s.post("/v1/keys/0000000000000000/rotate", json!({})).await;
    missing.assert_error(404, "not_found");
    // A reader may not rotate keys, its own included.
    let own = s
        .send_as(
            Some(&token),
            "POST",
            &format!("/v1/keys/{id}/rotate"),
            Some("{}"),
        )
        .await;
    own.assert_error(403, "forbidden");
    assert_eq!(status_with(&s, &token).await, 200, "the key is unchanged");
    assert_eq!(
        s.get(&format!("/v1/keys/{id}")).await.body["rotated_at"],
        serde_json::Value::Null
    );

    let revoked = s.send("DELETE", &format!("/v1/keys/{id}"), None).await;
    assert_eq!(revoked.status, 200);
    let refused = s.post(&format!("/v1/keys/{id}/rotate"), json!({})).await;
    assert!(refused.assert_error(409, "conflict").contains("revoked"));
}

/// Two servers' access control over one store, with no change feed between them: the second
/// learns of the rotation from the first token it cannot match, once per key at most every
/// few seconds.
#[tokio::test]
async fn another_server_takes_the_new_secret_at_once() {
    let s = TestServer::start().await;
    let config = AuthConfig {
        admin_token: Some(rota_server::auth::Secret(ADMIN.into())),
        ..Default::default()
    };
    let clock: Arc<dyn rota_core::Clock> = Arc::new(s.clock.clone());
    let a = Auth::load(s.store.clone(), clock.clone(), config.clone())
        .await
        .unwrap();
    let b = Auth::load(s.store.clone(), clock, config).await.unwrap();
    let (key, old) = a.create_admin_key("rotating").await.unwrap();
    assert!(b.admit(Some(Credential::Token(&old)), None).await.is_ok());

    let grace = rota_core::auth::RotateKey { grace_ms: Some(0) };
    let (_, new) = a.rotate_key("default", &key.id, grace).await.unwrap();
    assert!(
        b.admit(Some(Credential::Token(&new)), None).await.is_ok(),
        "the new secret works on the other server at once"
    );
    assert!(
        b.admit(Some(Credential::Token(&old)), None).await.is_err(),
        "and the old one no longer does there"
    );
}

/// A Faktory client proves the secret without sending it; the old secret's proof is accepted
/// during the grace and refused at its end, command by command.
#[tokio::test]
async fn a_faktory_proof_of_the_old_secret_holds_for_the_grace() {
    let s = TestServer::start().await;
    let config = AuthConfig {
        admin_token: Some(rota_server::auth::Secret(ADMIN.into())),
        ..Default::default()
    };
    let auth = Auth::load(s.store.clone(), Arc::new(s.clock.clone()), config)
        .await
        .unwrap();
    let (key, old) = auth.create_admin_key("faktory").await.unwrap();
    let grace = rota_core::auth::RotateKey {
        grace_ms: Some(60_000),
    };
    let (_, new) = auth.rotate_key("default", &key.id, grace).await.unwrap();
    let proves = |token: &str| Credential::FaktoryProof {
        proof: rota_server::auth::token::proof(token),
        key: Some(&key.id),
    };
    assert!(auth.admit(Some(proves(&old)), None).await.is_ok());
    assert!(auth.admit(Some(proves(&new)), None).await.is_ok());
    s.clock.advance_ms(60_000);
    assert!(auth.admit(Some(proves(&old)), None).await.is_err());
    assert!(auth.admit(Some(proves(&new)), None).await.is_ok());
}
