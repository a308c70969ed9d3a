//! `rota audit`: the changes made from the command line are in the audit log, newest first,
//! as a table or JSON, filtered by action and time; bad flags are refused with a clear error.

mod common;

use common::cli::{fails, ok, rota_at};

#[tokio::test(flavor = "multi_thread")]
async fn changes_made_from_the_cli_are_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    ok(rota_at(&s).args(["queue", "set", "mail", "--max-attempts", "5"]));
    ok(rota_at(&s).args(["queue", "pause", "mail"]));
    ok(rota_at(&s).args(["queue", "resume", "mail"]));
    let out = ok(rota_at(&s).args(["audit", "--action", "queue.", "--output", "json"]));
    let entries: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["queue.resume", "queue.pause", "queue.update"],
        "newest first"
    );
    assert_eq!(
        entries[2]["before"],
        serde_json::json!({"max_attempts": 25})
    );
    assert_eq!(entries[2]["after"], serde_json::json!({"max_attempts": 5}));
    assert_eq!(entries[0]["target"], "queues/mail");
    assert_eq!(entries[0]["source"], "127.0.0.1");
    assert!(entries[0]["actor"].as_str().unwrap().starts_with("key:"));

    let table = ok(rota_at(&s).args(["audit", "--since", "1h"]));
    assert!(
        table.contains("queue.pause") && table.contains("ACTOR"),
        "{table}"
    );
    let none = ok(rota_at(&s).args(["audit", "--until", "2000-01-01T00:00:00Z"]));
    assert!(none.contains("no entries"), "{none}");

    let err = fails(rota_at(&s).args(["audit", "--since", "last tuesday"]));
    assert!(err.contains("--since `last tuesday`"), "{err}");
    let err = fails(rota_at(&s).args(["audit", "--limit", "0"]));
    assert!(err.contains("--limit is 0"), "{err}");
}
