//! Flow control from the CLI, the real binary against a real server: the commands
//! docs/flow-control.md promises, limits lifted with `none`, one group's settings changed flag
//! by flag, the groups listed as a table and as JSON, a task's `--group`, the flow in
//! `rota queue stats`, and clear errors for a bad rate or limit.

mod common;

use common::cli::{json, ok, rota_at};

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_flow_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    // docs/flow-control.md's recipes, exactly.
    ok(rota_at(&s).args(["queue", "set", "gather", "--group-rate", "5000/1h"]));
    ok(rota_at(&s).args(["queue", "set", "reports", "--group-concurrency", "2"]));
    let acme = ok(rota_at(&s).args([
        "queue",
        "group",
        "reports",
        "client-acme",
        "--concurrency",
        "8",
    ]));
    assert!(
        acme.starts_with("GROUP") && acme.contains("client-acme"),
        "{acme}"
    );
    ok(rota_at(&s).args(["queue", "set", "mirror", "--group-concurrency", "1"]));

    let gather = json(&ok(
        rota_at(&s).args(["queue", "stats", "gather", "--output", "json"])
    ));
    assert_eq!(
        gather["settings"]["group_rate"],
        serde_json::json!({"limit": 5000, "period_ms": 3_600_000})
    );
    // Every limit at once, then lifted one by one with `none`.
    let set = json(&ok(rota_at(&s).args([
        "queue",
        "set",
        "gather",
        "--concurrency",
        "4",
        "--rate",
        "10/1s,burst=5",
        "--group-concurrency",
        "1",
        "--output",
        "json",
    ])));
    assert_eq!(set["settings"]["concurrency"], 4);
    assert_eq!(set["settings"]["rate"]["burst"], 5);
    let lifted = json(&ok(rota_at(&s).args([
        "queue",
        "set",
        "gather",
        "--concurrency",
        "none",
        "--group-rate",
        "none",
        "--output",
        "json",
    ])));
    assert!(lifted["settings"].get("concurrency").is_none(), "{lifted}");
    assert!(lifted["settings"].get("group_rate").is_none(), "{lifted}");
    assert_eq!(lifted["settings"]["group_concurrency"], 1, "others stay");

    // A group's flags change only what they name.
    ok(rota_at(&s).args([
        "queue",
        "group",
        "reports",
        "client-acme",
        "--weight",
        "3",
        "--pause",
    ]));
    let g = json(&ok(rota_at(&s).args([
        "queue",
        "group",
        "reports",
        "client-acme",
        "--rate",
        "5/1s",
        "--output",
        "json",
    ])));
    assert_eq!(
        g["settings"],
        serde_json::json!({"concurrency": 8, "rate": {"limit": 5, "period_ms": 1000}, "paused": true, "weight": 3})
    );
    let g = json(&ok(rota_at(&s).args([
        "queue",
        "group",
        "reports",
        "client-acme",
        "--resume",
        "--concurrency",
        "none",
        "--output",
        "json",
    ])));
    assert_eq!(g["settings"]["paused"], false);
    assert!(g["settings"].get("concurrency").is_none());
    assert_eq!(g["concurrency"], 2, "the queue's group_concurrency now");

    // Tasks in groups, listed and counted.
    for group in ["client-acme", "client-acme", "client-beta"] {
        ok(rota_at(&s)
            .args([
                "task", "add", "reports", "--kind", "report", "--group", group,
            ])
            .write_stdin("{}"));
    }
    let table = ok(rota_at(&s).args(["queue", "groups", "reports"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("GROUP") && lines[0].contains("HELD BY"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("client-acme") && lines[2].starts_with("client-beta"),
        "{table}"
    );
    let page = json(&ok(rota_at(&s).args([
        "queue", "groups", "reports", "--limit", "1", "--output", "json",
    ])));
    assert_eq!(page["groups"][0]["ready"], 2);
    assert_eq!(page["next"], "client-acme");
    let next = ok(rota_at(&s).args(["queue", "groups", "reports", "--after", "client-acme"]));
    assert!(
        next.contains("client-beta") && !next.contains("client-acme"),
        "{next}"
    );

    let stats = ok(rota_at(&s).args(["queue", "stats", "reports"]));
    assert!(
        stats.contains("group limits  concurrency 2, rate none"),
        "{stats}"
    );
    assert!(stats.contains("groups        2"), "{stats}");
    let stats = json(&ok(
        rota_at(&s).args(["queue", "stats", "reports", "--output", "json"])
    ));
    assert_eq!(stats["flow"]["busiest_groups"][0]["group"], "client-acme");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rates_and_limits_say_how_to_write_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    for (args, says) in [
        (vec!["queue", "set", "q", "--rate", "100"], "LIMIT/PERIOD"),
        (
            vec!["queue", "set", "q", "--rate", "100/1w"],
            "units ms, s, m, h, d",
        ),
        (
            vec!["queue", "set", "q", "--group-rate", "0/1s"],
            "rate.limit is 0",
        ),
        (vec!["queue", "set", "q", "--concurrency", "0"], "from 1"),
        (vec!["queue", "group", "q", "g"], "nothing to set"),
        (
            vec!["queue", "group", "q", "g", "--weight", "5000"],
            "weight is 5000",
        ),
    ] {
        let out = rota_at(&s).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
