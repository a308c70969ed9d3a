//! The CLI as people and scripts use it: the real binary against a real server, every
//! subcommand in table and JSON form, and its errors.

mod common;

use assert_cmd::Command;
use common::cli::{fails, json, ok, rota, rota_at};
use rota_client::{ClaimOptions, Client, NewTask};
use rota_core::TaskState;
use serde_json::Value;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn task_commands_in_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let added = ok(rota_at(&s).args([
        "task",
        "add",
        "mail",
        "--kind",
        "email.send",
        "--payload",
        r#"{"to": "ada"}"#,
        "--priority",
        "5",
    ]));
    let id = added.split_whitespace().next().unwrap().to_owned();
    assert!(added.contains("ready in queue mail"), "{added}");
    let from_stdin = json(&ok(rota_at(&s)
        .args([
            "task", "add", "mail", "--kind", "k2", "--delay", "1h", "--output", "json",
        ])
        .write_stdin(r#"{"n": 2}"#)));
    assert_eq!(from_stdin["task"]["payload"], serde_json::json!({"n": 2}));
    assert_eq!(from_stdin["task"]["state"], "scheduled");
    let file = dir.path().join("p.json");
    std::fs::write(&file, "[1, 2, 3]").unwrap();
    ok(rota_at(&s)
        .args([
            "task",
            "add",
            "mail",
            "--kind",
            "k3",
            "--unique-key",
            "u1",
            "--payload-file",
        ])
        .arg(&file));
    let dup = ok(rota_at(&s).args(["task", "add", "mail", "--kind", "k3", "--unique-key", "u1"]));
    assert!(dup.contains("already holds that unique key"), "{dup}");
    // A debounce: the waiting holder of u1 takes the new payload in place.
    let replaced = json(&ok(rota_at(&s).args([
        "task",
        "add",
        "mail",
        "--kind",
        "k3",
        "--unique-key",
        "u1",
        "--on-duplicate",
        "replace",
        "--payload",
        "[4]",
        "--output",
        "json",
    ])));
    assert_eq!(replaced["replaced"], true, "{replaced}");
    assert_eq!(replaced["duplicate"], true);
    assert_eq!(replaced["task"]["payload"], serde_json::json!([4]));
    let table = ok(rota_at(&s).args([
        "task",
        "add",
        "mail",
        "--kind",
        "k3",
        "--unique-key",
        "u1",
        "--on-duplicate",
        "replace",
        "--payload",
        "[1, 2, 3]",
    ]));
    assert!(table.contains("replaced in place (ready"), "{table}");
    let err = fails(rota_at(&s).args([
        "task",
        "add",
        "mail",
        "--kind",
        "k3",
        "--on-duplicate",
        "replace",
    ]));
    assert!(err.contains("--unique-key"), "{err}");

    let shown = ok(rota_at(&s).args(["task", "get", &id]));
    assert!(shown.contains("state       ready"), "{shown}");
    assert!(shown.contains(r#"payload     {"to": "ada"}"#), "{shown}");
    let shown = json(&ok(
        rota_at(&s).args(["task", "get", &id, "--output", "json"])
    ));
    assert_eq!(shown["priority"], 5);

    let list = ok(rota_at(&s).args(["task", "list", "mail"]));
    let header = list.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("KIND") && header.contains("STATE"),
        "{list}"
    );
    assert_eq!(list.lines().count(), 4, "header and three tasks: {list}");
    let scheduled = json(&ok(rota_at(&s).args([
        "task",
        "list",
        "mail",
        "--state",
        "scheduled",
        "--output",
        "json",
    ])));
    assert_eq!(scheduled["tasks"].as_array().unwrap().len(), 1);
    // Pages: the table says how to go on, JSON carries the API's next_cursor.
    let first = ok(rota_at(&s).args(["task", "list", "mail", "--limit", "2"]));
    assert_eq!(first.lines().count(), 4, "header, two tasks, more: {first}");
    let page =
        json(&ok(rota_at(&s).args([
            "task", "list", "mail", "--limit", "2", "--output", "json",
        ])));
    let cursor = page["next_cursor"].as_str().unwrap();
    assert!(first.contains(&format!("--cursor {cursor}")), "{first}");
    let rest = json(&ok(rota_at(&s).args([
        "task", "list", "mail", "--limit", "2", "--cursor", cursor, "--output", "json",
    ])));
    assert_eq!(rest["tasks"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null(), "{rest}");

    let cancelled = json(&ok(
        rota_at(&s).args(["task", "cancel", &id, "--output", "json"])
    ));
    assert_eq!(cancelled["state"], "cancelled");
    let retried = ok(rota_at(&s).args(["task", "retry", &id]));
    assert!(retried.contains("state       ready"), "{retried}");
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_and_dead_commands() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let tasks: Vec<NewTask> = (0..3).map(|i| NewTask::new("x", &i)).collect();
    s.client.enqueue_batch("ops", &tasks).await.unwrap();
    // Two dead tasks.
    let opts = ClaimOptions {
        worker: "w".into(),
        max: 2,
        ..Default::default()
    };
    let dead_ids: Vec<String> = {
        let claimed = s.client.claim("ops", &opts).await.unwrap();
        for t in &claimed {
            let lease = &t.lease.as_ref().unwrap().token;
            s.client
                .fail(t.id, lease, "broken", None, true)
                .await
                .unwrap();
        }
        claimed.iter().map(|t| t.id.to_string()).collect()
    };

    let list = ok(rota_at(&s).args(["queue", "list"]));
    assert!(list.starts_with("QUEUE"), "{list}");
    let row = list.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..7], ["ops", "1", "0", "0", "0", "2", "0"], "{list}");
    let stats = json(&ok(
        rota_at(&s).args(["queue", "stats", "ops", "--output", "json"])
    ));
    assert_eq!(stats["counts"]["dead"], 2);
    let paused = ok(rota_at(&s).args(["queue", "pause", "ops"]));
    assert!(paused.contains("state         paused"), "{paused}");
    assert!(ok(rota_at(&s).args(["queue", "resume", "ops"])).contains("state         active"));
    let set = json(&ok(rota_at(&s).args([
        "queue",
        "set",
        "ops",
        "--max-attempts",
        "3",
        "--backoff",
        "2s:1m",
        "--lease",
        "45s",
        "--output",
        "json",
    ])));
    assert_eq!(set["settings"]["max_attempts"], 3);
    assert_eq!(
        set["settings"]["backoff"],
        serde_json::json!({"base_ms": 2000, "max_ms": 60000})
    );
    assert_eq!(set["settings"]["lease_ms"], 45000);
    let nothing = fails(rota_at(&s).args(["queue", "set", "ops"]));
    assert!(nothing.contains("nothing to set"), "{nothing}");

    let dead = ok(rota_at(&s).args(["dead", "list", "ops"]));
    assert_eq!(dead.lines().count(), 3, "{dead}");
    assert!(dead.contains("broken"), "{dead}");
    let one = ok(rota_at(&s).args(["dead", "requeue", "ops", &dead_ids[0]]));
    assert!(one.contains("requeued 1 task in ops"), "{one}");
    let all =
        json(&ok(rota_at(&s).args([
            "dead", "requeue", "ops", "--all", "--output", "json",
        ])));
    assert_eq!(all["requeued"], serde_json::json!([dead_ids[1]]));
    assert_eq!(s.client.queue("ops").await.unwrap().counts.ready, 3);

    // Purge: make one dead again, then purge it.
    let t = s
        .client
        .claim("ops", &ClaimOptions { max: 1, ..opts })
        .await
        .unwrap()
        .remove(0);
    s.client
        .fail(t.id, &t.lease.unwrap().token, "again", None, true)
        .await
        .unwrap();
    let purged = ok(rota_at(&s).args(["queue", "purge", "ops", "--state", "dead"]));
    assert_eq!(purged.trim(), "deleted 1 dead tasks from ops");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    // Port 1: nothing listens there, and no test server can take it (a free port found now
    // could be handed to another test's server before this command connects).
    let down = "http://127.0.0.1:1";
    assert!(fails(rota(down).args(["queue", "list"])).contains("cannot reach the Rota server"));
    let missing = fails(rota_at(&s).args(["task", "get", "01a20c27-4e6d-7000-8000-000000000000"]));
    assert!(
        missing.contains("not found") && missing.contains("does not exist"),
        "{missing}"
    );
    let bad_id = fails(rota_at(&s).args(["task", "get", "nope"]));
    assert!(bad_id.contains("not a Rota task id"), "{bad_id}");
    let bad_json =
        fails(rota_at(&s).args(["task", "add", "q", "--kind", "k", "--payload", "{oops"]));
    assert!(bad_json.contains("not valid JSON"), "{bad_json}");
    let bad_queue = fails(
        rota_at(&s)
            .args(["task", "add", "bad name", "--kind", "k"])
            .write_stdin("{}"),
    );
    assert!(bad_queue.contains("queue name"), "{bad_queue}");
    let ghost = fails(rota_at(&s).args(["queue", "pause", "ghost"]));
    assert!(ghost.contains("queue `ghost` does not exist"), "{ghost}");
    let bad_backoff = rota_at(&s)
        .args(["queue", "set", "q", "--backoff", "5s"])
        .output()
        .unwrap();
    assert!(!bad_backoff.status.success());
    assert!(String::from_utf8_lossy(&bad_backoff.stderr).contains("BASE:MAX"));
}

#[test]
fn help_has_examples_and_completions_print() {
    for args in [
        vec!["task", "add", "--help"],
        vec!["queue", "set", "--help"],
        vec!["worker", "--help"],
    ] {
        let out = ok(Command::cargo_bin("rota").unwrap().args(&args));
        assert!(out.contains("Example"), "{args:?}: {out}");
    }
    let bash = ok(Command::cargo_bin("rota")
        .unwrap()
        .args(["completions", "bash"]));
    assert!(bash.contains("_rota()"), "{}", &bash[..bash.len().min(200)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_runs_a_script_for_every_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let script = dir.path().join("work.sh");
    std::fs::write(
        &script,
        r#"#!/bin/sh
payload=$(cat)
case "$ROTA_TASK_KIND" in
  ok) echo "{\"echo\": $payload, \"id\": \"$ROTA_TASK_ID\", \"queue\": \"$ROTA_TASK_QUEUE\", \"attempt\": $ROTA_TASK_ATTEMPT}" ;;
  fail) echo "boom: bad input" >&2; exit 3 ;;
  retry) echo "database busy" >&2; exit 75 ;;
  hang) sleep 30 ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut ids = std::collections::HashMap::new();
    for kind in ["ok", "fail", "retry", "hang"] {
        let t = NewTask::new(kind, &serde_json::json!({"kind": kind})).max_attempts(1);
        ids.insert(kind, s.client.enqueue("scripts", &t).await.unwrap().task.id);
    }
    let worker = std::process::Command::new(env!("CARGO_BIN_EXE_rota"))
        .args([
            "worker",
            "scripts",
            "--concurrency",
            "4",
            "--timeout",
            "1s",
            "--",
        ])
        .arg(&script)
        .env("ROTA_URL", &s.url)
        .env("ROTA_DATA_DIR", &s.dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client: Client = s.client.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Three end (max_attempts 1); the exit-75 task keeps coming back, as temporary failures
    // do not spend attempts: wait for it to have failed twice.
    loop {
        let q = client.queue("scripts").await.unwrap();
        let retried = client.get(ids["retry"]).await.unwrap();
        if q.counts.succeeded + q.counts.dead == 3 && retried.errors.len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tasks did not finish: {:?}",
            q.counts
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let get = |k: &str| {
        let (c, id) = (client.clone(), ids[k]);
        async move { c.get(id).await.unwrap() }
    };
    let done = get("ok").await;
    assert_eq!(done.state, TaskState::Succeeded);
    let result: Value = serde_json::from_str(done.result.unwrap().get()).unwrap();
    assert_eq!(result["echo"], serde_json::json!({"kind": "ok"}));
    assert_eq!(result["id"], done.id.to_string());
    assert_eq!(
        (result["queue"].clone(), result["attempt"].clone()),
        ("scripts".into(), 1.into())
    );
    let failed = get("fail").await;
    assert_eq!(failed.errors[0].message, "exit 3: boom: bad input");
    let retry = get("retry").await;
    assert_eq!(
        retry.errors[0].message,
        "temporary failure (exit 75): database busy"
    );
    assert_ne!(
        retry.state,
        TaskState::Dead,
        "a temporary failure never spends the only attempt"
    );
    assert!(
        retry.errors.iter().all(|e| e.attempt == 1),
        "{:?}",
        retry.errors
    );
    let hung = get("hang").await;
    assert!(
        hung.errors[0].message.contains("timed out"),
        "{:?}",
        hung.errors
    );
    // SIGTERM: the worker stops cleanly and reports.
    std::process::Command::new("kill")
        .arg(worker.id().to_string())
        .status()
        .unwrap();
    let out = worker.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("1 succeeded, "), "{report}");
    // A line per outcome, naming the task.
    let ok_id = ids["ok"].to_string();
    assert!(
        report.contains(&format!("task {ok_id} (ok, attempt 1) succeeded in")),
        "{report}"
    );
    assert!(
        report.contains("(fail, attempt 1) failed in") && report.contains("exit 3: boom"),
        "{report}"
    );
}

/// Whether process `pid` has ended (gone, or a zombie nobody has reaped yet).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => true,
    }
}

/// A cancel reaches `rota worker`'s command: its whole process group gets SIGTERM (a shell's
/// own children stop too), and SIGKILL after `--kill-grace` when SIGTERM is ignored; the
/// cancelled tasks are not retried.
#[tokio::test(flavor = "multi_thread")]
async fn worker_stops_a_cancelled_commands_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let script = dir.path().join("work.sh");
    std::fs::write(
        &script,
        r#"#!/bin/sh
[ "$ROTA_TASK_KIND" = stubborn ] && trap '' TERM
sleep 100 &
echo "$$ $!" > "$PIDS_DIR/$ROTA_TASK_KIND.tmp"
mv "$PIDS_DIR/$ROTA_TASK_KIND.tmp" "$PIDS_DIR/$ROTA_TASK_KIND"
sleep 100
wait
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pids_dir = dir.path().join("pids");
    std::fs::create_dir(&pids_dir).unwrap();
    let mut ids = std::collections::HashMap::new();
    for kind in ["plain", "stubborn"] {
        let t = NewTask::new(kind, &());
        ids.insert(
            kind,
            s.client.enqueue("stoppable", &t).await.unwrap().task.id,
        );
    }
    let kill_grace = Duration::from_secs(2);
    let worker = std::process::Command::new(env!("CARGO_BIN_EXE_rota"))
        .args([
            "worker",
            "stoppable",
            "--concurrency",
            "2",
            "--heartbeat-every",
            "200ms",
            "--kill-grace",
            "2s",
            "--",
        ])
        .arg(&script)
        .env("ROTA_URL", &s.url)
        .env("ROTA_DATA_DIR", &s.dir)
        .env("PIDS_DIR", &pids_dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The shell's pid and its background child's, once both commands run.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pids = |kind: &str| -> Option<Vec<u32>> {
        let text = std::fs::read_to_string(pids_dir.join(kind)).ok()?;
        Some(
            text.split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect(),
        )
    };
    let (plain, stubborn) = loop {
        if let (Some(p), Some(s)) = (pids("plain"), pids("stubborn")) {
            break (p, s);
        }
        assert!(Instant::now() < deadline, "the commands did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(plain.iter().chain(&stubborn).all(|p| !ended(*p)));
    let cancelled_at = Instant::now();
    for id in ids.values() {
        s.client.cancel(*id).await.unwrap();
    }
    let wait_ended = |pids: Vec<u32>| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pids.iter().all(|p| ended(*p)) {
            assert!(Instant::now() < deadline, "{pids:?} still run");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancelled_at.elapsed()
    };
    let plain_took = wait_ended(plain).await;
    assert!(
        plain_took < kill_grace,
        "SIGTERM stopped the shell and its child, in {plain_took:?}"
    );
    let stubborn_took = wait_ended(stubborn).await;
    assert!(
        stubborn_took >= kill_grace,
        "SIGKILL only after the grace: {stubborn_took:?}"
    );
    for id in ids.values() {
        let t = s.client.get(*id).await.unwrap();
        assert_eq!(t.state, TaskState::Cancelled);
        assert_eq!(t.attempt, 1, "not run again");
        assert!(t.errors.is_empty(), "no failure reported: {:?}", t.errors);
    }
    std::process::Command::new("kill")
        .arg(worker.id().to_string())
        .status()
        .unwrap();
    let out = worker.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains(", 2 cancelled,"), "{report}");
}

/// The measurement behind BENCHMARKS.md's "Flow control: cancel to stop": for each heartbeat
/// interval, 25 tasks in a row run `sh -c 'sleep 100 & sleep 100; wait'` under `rota worker`,
/// each cancelled once its shell runs; the figure is the cancel's answer to the moment the
/// shell and its child have both ended (seen through /proc every millisecond).
/// `cargo test -p rota --test cli -- --ignored cancel_to_stop --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: 25 cancels per heartbeat interval"]
async fn cancel_to_stop_latency() {
    const RUNS: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let pids_dir = dir.path().join("pids");
    std::fs::create_dir(&pids_dir).unwrap();
    for every in ["1s", "200ms"] {
        let queue = format!("measure-{every}");
        let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_rota"))
            .args(["worker", &queue, "--heartbeat-every", every, "--", "sh", "-c"])
            .arg(r#"sleep 100 & echo "$$ $!" > "$PIDS_DIR/$ROTA_TASK_ID.tmp"; mv "$PIDS_DIR/$ROTA_TASK_ID.tmp" "$PIDS_DIR/$ROTA_TASK_ID"; sleep 100; wait"#)
            .env("ROTA_URL", &s.url)
            .env("ROTA_DATA_DIR", &s.dir)
            .env("PIDS_DIR", &pids_dir)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut took = Vec::new();
        for _ in 0..RUNS {
            let id = s
                .client
                .enqueue(&queue, &NewTask::new("sleep", &()))
                .await
                .unwrap()
                .task
                .id;
            let file = pids_dir.join(id.to_string());
            let deadline = Instant::now() + Duration::from_secs(30);
            let pids: Vec<u32> = loop {
                if let Ok(text) = std::fs::read_to_string(&file) {
                    break text
                        .split_whitespace()
                        .map(|p| p.parse().unwrap())
                        .collect();
                }
                assert!(Instant::now() < deadline, "the command did not start");
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            // Cancels land anywhere within the heartbeat interval, as they would in real use.
            let pause = pause_within(every);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            s.client.cancel(id).await.unwrap();
            let cancelled = Instant::now();
            while !pids.iter().all(|p| ended(*p)) {
                assert!(
                    cancelled.elapsed() < Duration::from_secs(30),
                    "{pids:?} still run"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            took.push(cancelled.elapsed());
        }
        took.sort();
        println!(
            "heartbeat every {every}: {RUNS} cancels, cancel to stop median {:.0} ms, max {:.0} ms (min {:.0} ms)",
            took[RUNS / 2].as_secs_f64() * 1e3,
            took[RUNS - 1].as_secs_f64() * 1e3,
            took[0].as_secs_f64() * 1e3,
        );
        let _ = worker.kill();
        let _ = worker.wait();
    }
}

/// A pause between 0 and the interval, from the clock's nanoseconds (no RNG crate needed).
fn pause_within(every: &str) -> u64 {
    let span = interval_ms(every);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos % span
}

fn interval_ms(every: &str) -> u64 {
    match every.strip_suffix("ms") {
        Some(ms) => ms.parse().unwrap(),
        None => every.trim_end_matches('s').parse::<u64>().unwrap() * 1000,
    }
}

/// A command that cannot be started is refused before anything is claimed, and one that
/// disappears while the worker runs stops the worker with the reason, its task handed back
/// with its attempt unspent (before, each task of the queue failed, an attempt at a time).
#[tokio::test(flavor = "multi_thread")]
async fn worker_with_a_command_that_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let t = NewTask::new("job", &serde_json::json!({})).max_attempts(5);
    let id = s.client.enqueue("jobs", &t).await.unwrap().task.id;
    let missing = dir.path().join("missing.sh");
    let out = rota_at(&s)
        .args(["worker", "jobs", "--"])
        .arg(&missing)
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("missing.sh` cannot be run"), "{err}");
    let task = s.client.get(id).await.unwrap();
    assert_eq!((task.state, task.attempt), (TaskState::Ready, 0));

    // Startable when the worker starts, gone when the task comes.
    let script = dir.path().join("gone.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_rota"))
        .args(["worker", "later", "--"])
        .arg(&script)
        .env("ROTA_URL", &s.url)
        .env("ROTA_DATA_DIR", &s.dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(worker.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.contains("running"), "{first}");
    std::fs::remove_file(&script).unwrap();
    let id = s.client.enqueue("later", &t).await.unwrap().task.id;
    let status = worker.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("cannot start"), "{err}");
    let task = s.client.get(id).await.unwrap();
    assert_ne!(task.state, TaskState::Dead, "{task:?}");
    assert!(
        task.errors
            .iter()
            .all(|e| e.message.contains("cannot start")),
        "{:?}",
        task.errors
    );
}

/// Output into a pipe whose reader has gone ends the command quietly, as `head` expects.
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rota"))
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {err}",
        out.status
    );
}

/// Tenants, keys and roles from the CLI, as the README shows them: the admin token comes from
/// the data dir; a producer key then works from `ROTA_TOKEN`, is refused what it may not do,
/// and stops working once revoked.
#[tokio::test(flavor = "multi_thread")]
async fn tenants_keys_and_roles_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let created = ok(rota_at(&s).args(["tenant", "create", "acme", "--rate", "600"]));
    assert!(created.contains("tenant acme (600 req/min"), "{created}");
    let listed = ok(rota_at(&s).args(["tenant", "list"]));
    assert!(
        listed.contains("acme") && listed.contains("default"),
        "{listed}"
    );
    let key: Value = serde_json::from_str(&ok(rota_at(&s).args([
        "key", "create", "--tenant", "acme", "--role", "producer", "--name", "checkout",
        "--output", "json",
    ])))
    .unwrap();
    let token = key["token"].as_str().unwrap().to_owned();
    let id = key["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("rota_{id}_")));
    let as_producer = || {
        let mut c = rota(&s.url);
        c.env("ROTA_TOKEN", &token);
        c
    };
    let me = ok(as_producer().arg("whoami"));
    assert!(
        me.contains(&format!("key {id} in tenant acme")) && me.contains("producer"),
        "{me}"
    );
    ok(as_producer().args([
        "task",
        "add",
        "emails",
        "--kind",
        "email.send",
        "--payload",
        "{}",
    ]));
    let refused = fails(as_producer().args(["queue", "purge", "emails", "--state", "dead"]));
    assert!(
        refused.contains("lacks permission `queues:purge` on `queues/emails`"),
        "{refused}"
    );
    // The admin sees acme's queue only when acting there.
    let default_queues = ok(rota_at(&s).args(["queue", "list"]));
    assert!(!default_queues.contains("emails"), "{default_queues}");
    let acme_queues = ok(rota_at(&s).args(["queue", "list", "--tenant", "acme"]));
    assert!(acme_queues.contains("emails"), "{acme_queues}");
    // Custom roles.
    let put = ok(rota_at(&s).args([
        "role",
        "put",
        "mail-ops",
        "queues/emails-*:tasks:*:allow",
        "queues/emails-vip:tasks:claim:deny",
        "--tenant",
        "acme",
    ]));
    assert!(put.contains("queues/emails-vip:tasks:claim:deny"), "{put}");
    let roles = ok(rota_at(&s).args(["role", "list", "--tenant", "acme"]));
    assert!(
        roles.contains("mail-ops") && roles.contains("built-in"),
        "{roles}"
    );
    // A rule that does not parse is refused by the argument parser, with its usage hint.
    let bad_rule = rota_at(&s)
        .args(["role", "put", "x", "queues/*:tasks:claim:maybe"])
        .output()
        .unwrap();
    assert!(!bad_rule.status.success());
    let err = String::from_utf8_lossy(&bad_rule.stderr);
    assert!(
        err.contains("effect `maybe` must be allow or deny"),
        "{err}"
    );
    // Keys list, revoke.
    let keys = ok(rota_at(&s).args(["key", "list", "--tenant", "acme"]));
    assert!(
        keys.contains(&id) && keys.contains("active") && keys.contains("checkout"),
        "{keys}"
    );
    // Without --tenant the admin acts in `default`, where the key is not: say so.
    let elsewhere = fails(rota_at(&s).args(["key", "revoke", &id]));
    assert!(elsewhere.contains("add --tenant <name>"), "{elsewhere}");
    ok(rota_at(&s).args(["key", "revoke", &id, "--tenant", "acme"]));
    let revoked = fails(as_producer().args(["queue", "list"]));
    assert!(
        revoked.contains("unauthorized") && revoked.contains("revoked"),
        "{revoked}"
    );
    assert!(
        !revoked.contains(&token[22..]),
        "the error never echoes the token"
    );
    // Deleting a tenant asks for confirmation.
    let unconfirmed = fails(rota_at(&s).args(["tenant", "delete", "acme"]));
    assert!(unconfirmed.contains("--yes"), "{unconfirmed}");
    ok(rota_at(&s).args(["tenant", "delete", "acme", "--yes"]));
    // Without a token, a remote-looking server gets none, and says how to authenticate.
    let no_token = fails(
        rota(&s.url.replace("127.0.0.1", "localhost"))
            .env("ROTA_DATA_DIR", "/nonexistent")
            .args(["queue", "list"]),
    );
    assert!(no_token.contains("Authorization: Bearer"), "{no_token}");
}
