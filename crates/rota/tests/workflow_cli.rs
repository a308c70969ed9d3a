//! `rota workflow` and `rota task add --after` through the real binary, as docs/workflows.md
//! shows them.

mod common;

use common::cli::{fails, json, ok, rota_at};

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_workflow_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    // Mirror -> rescan, by id.
    let mirror = json(&ok(rota_at(&s).args([
        "task",
        "add",
        "mirrors",
        "--kind",
        "mirror.sync",
        "--payload",
        "{}",
        "--output",
        "json",
    ])));
    let mirror_id = mirror["task"]["id"].as_str().unwrap().to_owned();
    let rescan = json(&ok(rota_at(&s).args([
        "task",
        "add",
        "rescans",
        "--kind",
        "modules.rescan",
        "--payload",
        "{}",
        "--after",
        &mirror_id,
        "--output",
        "json",
    ])));
    assert_eq!(rescan["task"]["state"], "waiting");
    assert_eq!(rescan["task"]["depends_on"][0], mirror_id.as_str());

    // A workflow from a file, read back and cancelled.
    let file = dir.path().join("release.json");
    std::fs::write(
        &file,
        r#"{"tasks": [
          {"name": "scrape", "queue": "scrape", "kind": "release.scrape"},
          {"name": "evaluate", "queue": "rules", "kind": "rules.evaluate", "depends_on": ["scrape"]}
        ]}"#,
    )
    .unwrap();
    let wf = json(&ok(rota_at(&s)
        .args(["workflow", "submit", "--output", "json"])
        .arg(&file)));
    let id = wf["id"].as_str().unwrap().to_owned();
    let table = ok(rota_at(&s).args(["workflow", "get", &id]));
    assert!(table.contains("evaluate") && table.contains("waiting") && table.contains("scrape"));
    let listed = json(&ok(
        rota_at(&s).args(["workflow", "list", "--output", "json"])
    ));
    assert_eq!(listed["workflows"][0]["id"], id.as_str());
    let cancelled = json(&ok(
        rota_at(&s).args(["workflow", "cancel", &id, "--output", "json"])
    ));
    assert_eq!(cancelled["state"], "cancelled");

    // A batch from standard input.
    let batch = json(&ok(rota_at(&s)
        .args(["workflow", "batch", "-", "--output", "json"])
        .write_stdin(
            r#"{"tasks": [{"queue": "variants", "kind": "v"}], "callback": {"queue": "publish", "kind": "p"}}"#,
        )));
    assert_eq!(batch["kind"], "batch");

    // An open batch: members added from standard input, then closed.
    let open = json(&ok(rota_at(&s)
        .args(["workflow", "batch", "-", "--output", "json"])
        .write_stdin(
            r#"{"tasks": [], "open": true, "callback": {"queue": "reports", "kind": "r"}}"#,
        )));
    let bid = open["id"].as_str().unwrap().to_owned();
    let added = json(&ok(rota_at(&s)
        .args(["workflow", "add", &bid, "-", "--output", "json"])
        .write_stdin(r#"{"tasks": [{"queue": "rows", "kind": "row"}]}"#)));
    assert_eq!(added[0]["queue"], "rows");
    let closed = json(&ok(
        rota_at(&s).args(["workflow", "close", &bid, "--output", "json"])
    ));
    assert_eq!(closed["open"], false);
    let err = fails(
        rota_at(&s)
            .args(["workflow", "add", &bid, "-"])
            .write_stdin(r#"{"tasks": [{"queue": "rows"}]}"#),
    );
    assert!(err.contains("closed"), "{err}");

    // A cycle is refused with the server's message; nothing is stored.
    std::fs::write(
        &file,
        r#"{"tasks": [{"name": "a", "queue": "q", "depends_on": ["a"]}]}"#,
    )
    .unwrap();
    let err = fails(rota_at(&s).args(["workflow", "submit"]).arg(&file));
    assert!(err.contains("depends on itself"), "{err}");
}
