//! The CLI for the push side: schedules, webhooks and the event log, through the real binary
//! against a real server.

mod common;

use common::cli::{fails, json, ok, rota_at};
use rota_client::NewTask;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn schedule_and_events_commands() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let made = ok(rota_at(&s).args([
        "schedule",
        "put",
        "nightly",
        "--queue",
        "mirrors",
        "--kind",
        "sync",
        "--cron",
        "0 3 * * *",
        "--timezone",
        "Europe/Berlin",
        "--payload",
        r#"{"mirror":"crates"}"#,
    ]));
    assert!(made.starts_with("NAME"), "{made}");
    assert!(made.contains("0 3 * * * (Europe/Berlin)"), "{made}");
    let triggered =
        json(&ok(rota_at(&s).args([
            "schedule", "trigger", "nightly", "--output", "json",
        ])));
    assert_eq!(triggered["runs"][0]["trigger"], "manual");
    let got = ok(rota_at(&s).args(["schedule", "get", "nightly"]));
    assert!(got.contains("TICK") && got.contains("manual"), "{got}");
    let paused = json(&ok(
        rota_at(&s).args(["schedule", "pause", "nightly", "--output", "json"])
    ));
    assert_eq!(paused["paused"], true);
    let list = ok(rota_at(&s).args(["schedule", "list"]));
    assert!(list.contains("paused"), "{list}");
    let err = fails(rota_at(&s).args([
        "schedule",
        "put",
        "bad",
        "--queue",
        "q",
        "--cron",
        "99 * * * *",
    ]));
    assert!(err.contains("cron"), "{err}");

    // The trigger's task is in the event log.
    let events = json(&ok(rota_at(&s).args(["events", "--output", "json"])));
    let first = &events["events"][0];
    assert_eq!(
        (first["type"].as_str(), first["queue"].as_str()),
        (Some("task.enqueued"), Some("mirrors"))
    );
    let table = ok(rota_at(&s).args(["events", "--types", "task.enqueued"]));
    assert!(
        table.starts_with("CURSOR") && table.contains("sync"),
        "{table}"
    );
    ok(rota_at(&s).args(["schedule", "delete", "nightly"]));
    assert!(ok(rota_at(&s).args(["schedule", "list"])).lines().count() == 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_commands() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let err = fails(rota_at(&s).args([
        "webhook",
        "add",
        "http://127.0.0.1:9/hook",
        "--events",
        "task.*",
    ]));
    assert!(err.contains("webhooks.allow_private"), "{err}");
    drop(s);

    let dir = tempfile::tempdir().unwrap();
    // Port 9: nothing listens there.
    let env = [
        ("ROTA_WEBHOOKS_ALLOW_PRIVATE", "true"),
        ("ROTA_WEBHOOKS_ALLOWED_PORTS", "1-65535"),
    ];
    let s = common::start_with(dir.path(), &env).await;
    let added = ok(rota_at(&s).args([
        "webhook",
        "add",
        "http://127.0.0.1:9/hook",
        "--events",
        "task.enqueued,task.dead",
        "--queue",
        "mail-*",
    ]));
    assert!(added.contains("signing secret (shown once"), "{added}");
    let id = added
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("wh_"), "{added}");
    s.client
        .enqueue("mail-eu", &NewTask::new("send", &1))
        .await
        .unwrap();
    // Nothing listens on port 9: the attempt fails and is recorded.
    let t = Instant::now();
    loop {
        let list = json(&ok(rota_at(&s).args([
            "webhook",
            "deliveries",
            &id,
            "--output",
            "json",
        ])));
        if list[0]["state"] == "failed" {
            assert!(list[0]["last_error"].as_str().unwrap().len() > 3, "{list}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let table = ok(rota_at(&s).args(["webhook", "deliveries", &id]));
    assert!(
        table.starts_with("ID") && table.contains("task.enqueued"),
        "{table}"
    );
    let rotated = json(&ok(
        rota_at(&s).args(["webhook", "rotate", &id, "--output", "json"])
    ));
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
    let off = json(&ok(
        rota_at(&s).args(["webhook", "disable", &id, "--output", "json"])
    ));
    assert_eq!(off["enabled"], false);
    assert!(ok(rota_at(&s).args(["webhook", "list"])).contains(&id));
    ok(rota_at(&s).args(["webhook", "delete", &id]));
    let gone = fails(rota_at(&s).args(["webhook", "get", &id]));
    assert!(gone.contains("does not exist"), "{gone}");
}
