//! `rota key rotate`: a new token for the same key, printed once; the old one works for the
//! grace given, and with `--grace 0s` stops at once.

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
