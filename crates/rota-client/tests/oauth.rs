//! OAuth 2.0 client credentials from the Rust client: a token fetched by hand, and a client
//! built with a key's id and token that fetches its own, narrowed by a scope, renewed after a
//! 401 (the key rotated) and failing once its key is revoked.

mod common;

use common::server;
use rota_client::{Client, Error, NewKey, NewTask};

async fn producer(s: &common::Server) -> (String, String) {
    let k = s
        .client
        .create_key(&NewKey {
            roles: vec!["producer".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    (k.key.id, k.token)
}

#[tokio::test]
async fn a_client_with_credentials_fetches_renews_and_ends_with_its_key() {
    let s = server().await;
    let (id, token) = producer(&s).await;
    let t = s.client.fetch_token(&id, &token, None).await.unwrap();
    assert_eq!((t.token_type.as_str(), t.expires_in), ("Bearer", 3600));
    assert!(
        !format!("{t:?}").contains(&t.access_token),
        "kept out of Debug"
    );

    let c = Client::with_client_credentials(&s.url, &id, &token, None).unwrap();
    let task = NewTask::new("k", &serde_json::json!(1));
    c.enqueue("q", &task).await.unwrap();

    // The key rotated with no grace: the client's token is refused, and it fetches a new one
    // with... the old secret, which is refused too: the request fails, after one retry.
    let rotated = s.client.rotate_key(&id, Some(0)).await.unwrap();
    match c.enqueue("q", &task).await {
        Err(Error::Unauthorized { message }) => {
            assert!(message.starts_with("invalid_client"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // With the new secret it works, and a revocation ends it.
    let c = Client::with_client_credentials(&s.url, &id, &rotated.token, None).unwrap();
    c.enqueue("q", &task).await.unwrap();
    s.client.revoke_key(&id).await.unwrap();
    assert!(matches!(
        c.enqueue("q", &task).await,
        Err(Error::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn a_scope_narrows_what_the_client_may_do() {
    let s = server().await;
    let (id, token) = producer(&s).await;
    let c = Client::with_client_credentials(&s.url, &id, &token, Some("tasks:read queues/r-*"))
        .unwrap();
    let task = NewTask::new("k", &serde_json::json!(1));
    assert!(matches!(
        c.enqueue("r-1", &task).await,
        Err(Error::Forbidden { .. })
    ));
    match s.client.fetch_token(&id, &token, Some("tasks:fly")).await {
        Err(Error::Invalid { message }) => {
            assert!(message.starts_with("invalid_scope"), "{message}")
        }
        other => panic!("expected invalid_scope, got {other:?}"),
    }
}
