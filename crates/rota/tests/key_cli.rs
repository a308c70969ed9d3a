//! `rota key rotate`: a new token for the same key, printed once; the old one works for the
//! grace given, and with `--grace 0s` stops at once. And a key's id and token as OAuth client
//! credentials (`ROTA_CLIENT_ID`, `ROTA_CLIENT_SECRET`, `rota token`).

mod common;

use common::cli::{fails, json, ok, rota, rota_at};

#[tokio::test(flavor = "multi_thread")]
async fn rotate_prints_a_new_token_and_the_old_one_stops_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let key = json(&ok(rota_at(&s).args([
        "key", "create", "--role", "reader", "--name", "ci", "--output", "json",
    ])));
    let (id, old) = (
        key["id"].as_str().unwrap().to_owned(),
        key["token"].as_str().unwrap().to_owned(),
    );
    let with = |token: &str| {
        let mut c = rota(&s.url);
        c.env("ROTA_TOKEN", token);
        c
    };
    ok(with(&old).args(["queue", "list"]));

    let shown = ok(rota_at(&s).args(["key", "rotate", &id, "--grace", "1h"]));
    assert!(
        shown.contains(&format!("rotated key {id}; its old secret works until")),
        "{shown}"
    );
    let new = shown
        .split_whitespace()
        .find(|w| w.starts_with(&format!("rota_{id}_")))
        .unwrap_or_else(|| panic!("no token in {shown}"))
        .to_owned();
    assert_ne!(new, old);
    ok(with(&old).args(["queue", "list"]));
    ok(with(&new).args(["queue", "list"]));
    let listed = ok(rota_at(&s).args(["key", "list"]));
    assert!(listed.contains("ROTATED"), "{listed}");

    let again =
        json(&ok(rota_at(&s).args([
            "key", "rotate", &id, "--grace", "0s", "--output", "json",
        ])));
    assert_eq!(again["previous_secret_until"], serde_json::Value::Null);
    let newest = again["token"].as_str().unwrap().to_owned();
    let refused = fails(with(&new).args(["queue", "list"]));
    assert!(refused.contains("not valid"), "{refused}");
    ok(with(&newest).args(["queue", "list"]));

    let too_long = fails(rota_at(&s).args(["key", "rotate", &id, "--grace", "73h"]));
    assert!(too_long.contains("grace_ms"), "{too_long}");
    let unknown = fails(rota_at(&s).args(["key", "rotate", "0000000000000000"]));
    assert!(unknown.contains("acting tenant"), "{unknown}");
}

/// Client credentials instead of a token: the CLI fetches its own access token (and prints one
/// with `rota token`), narrowed by a scope; a token and client credentials together are refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_authenticates_with_client_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let key =
        json(&ok(rota_at(&s).args([
            "key", "create", "--role", "producer", "--output", "json",
        ])));
    let (id, token) = (
        key["id"].as_str().unwrap().to_owned(),
        key["token"].as_str().unwrap().to_owned(),
    );
    let with_credentials = |scope: Option<&str>| {
        let mut c = rota(&s.url);
        c.env("ROTA_CLIENT_ID", &id)
            .env("ROTA_CLIENT_SECRET", &token);
        if let Some(sc) = scope {
            c.env("ROTA_OAUTH_SCOPE", sc);
        }
        c
    };
    let who = ok(with_credentials(None).args(["whoami"]));
    assert!(who.contains("(access token)"), "{who}");
    ok(with_credentials(None).args(["task", "add", "q", "--kind", "k"]));
    let printed = ok(with_credentials(None).args(["token"]));
    assert_eq!(printed.trim().split('.').count(), 3, "a JWT: {printed}");
    let narrowed =
        fails(with_credentials(Some("tasks:read")).args(["task", "add", "q", "--kind", "k"]));
    assert!(narrowed.contains("scope"), "{narrowed}");
    let both = fails(
        with_credentials(None)
            .env("ROTA_TOKEN", &token)
            .args(["whoami"]),
    );
    assert!(both.contains("not both"), "{both}");
    let half = fails(rota(&s.url).env("ROTA_CLIENT_ID", &id).args(["whoami"]));
    assert!(half.contains("--client-secret"), "{half}");
    let no_credentials = fails(rota_at(&s).args(["token"]));
    assert!(no_credentials.contains("--client-id"), "{no_credentials}");
}
