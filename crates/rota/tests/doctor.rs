//! `rota doctor` from the command line: a table (or JSON) of findings, exit status 1 when
//! there is any, 0 when there is none.

mod common;

use common::cli::{json, ok, rota_at};

#[tokio::test]
async fn doctor_prints_findings_and_exits_non_zero_when_something_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let clean = ok(rota_at(&s).args(["doctor"]));
    assert!(clean.contains("no problems found"), "{clean}");

    ok(rota_at(&s).args(["task", "add", "held", "--kind", "x"]));
    ok(rota_at(&s).args(["queue", "pause", "held"]));
    let out = rota_at(&s).args(["doctor"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("WARNING paused_with_backlog: queue held"),
        "{text}"
    );
    assert!(
        text.contains("fix:   resume it when ready: rota queue resume held"),
        "{text}"
    );
    assert!(out.stderr.is_empty(), "the report says it all");

    let out = rota_at(&s)
        .args(["--output", "json", "doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(report["ok"], false);
    assert_eq!(report["findings"][0]["check"], "paused_with_backlog");

    ok(rota_at(&s).args(["task", "add", "other", "--kind", "x"]));
    let one = ok(rota_at(&s).args(["doctor", "--queue", "other"]));
    assert!(one.contains("no problems found"), "{one}");
}
