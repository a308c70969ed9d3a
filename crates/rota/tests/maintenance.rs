//! Maintenance mode from the outside: set with the CLI, kept across a `kill -9` and restart,
//! refused at both doors (HTTP and Faktory), ended with the CLI.

mod common;

use common::cli::{json, ok, rota_at};
use rota_client::NewTask;

#[tokio::test(flavor = "multi_thread")]
async fn maintenance_survives_a_restart_and_holds_both_doors() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let env = [("ROTA_FAKTORY_LISTEN", addr.as_str())];
    let mut s = common::start_with(dir.path(), &env).await;
    let shown = ok(rota_at(&s).args([
        "maintenance",
        "on",
        "--message",
        "moving to new disks",
        "--until",
        "1h",
    ]));
    assert!(shown.contains("maintenance: on until"), "{shown}");

    // kill -9 and start again: still on.
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let s = common::start_with(dir.path(), &env).await;
    let status = json(&ok(rota_at(&s).args([
        "--output",
        "json",
        "maintenance",
        "status",
    ])));
    assert_eq!(status["maintenance"]["message"], "moving to new disks");
    assert_eq!(status["maintenance"]["refusing"], true);
    let refused = s
        .client
        .enqueue("q", &NewTask::new("x", &serde_json::json!(null)))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("moving to new disks"),
        "{refused}"
    );
    let faktory_url = format!("tcp://:{}@{addr}", s.admin_token);
    let mut producer = faktory::Client::connect_to(&faktory_url).await.unwrap();
    let pushed = producer
        .enqueue(faktory::Job::new("x", vec!["a"]))
        .await
        .unwrap_err();
    // The client's error names the server's reply in its debug form.
    assert!(format!("{pushed:?}").contains("maintenance"), "{pushed:?}");

    ok(rota_at(&s).args(["maintenance", "off"]));
    s.client
        .enqueue("q", &NewTask::new("x", &serde_json::json!(null)))
        .await
        .unwrap();
    producer
        .enqueue(faktory::Job::new("x", vec!["a"]))
        .await
        .unwrap();
    let whoami = ok(rota_at(&s).args(["whoami"]));
    assert!(!whoami.contains("maintenance"), "{whoami}");
}
