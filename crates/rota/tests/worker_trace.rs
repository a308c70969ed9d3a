//! `rota worker -- <command>` hands a task's W3C trace context to its command as `TRACEPARENT`
//! and `TRACESTATE`, and `rota enqueue` run by the command reads them, so the task it enqueues
//! joins the same trace (docs/telemetry.md). Tracing is off here: the context passes through
//! unchanged.

mod common;

use rota_client::NewTask;
use rota_core::TaskState;
use serde_json::Value;
use std::time::{Duration, Instant};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "multi_thread")]
async fn a_commands_environment_carries_the_tasks_trace_context() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let script = dir.path().join("work.sh");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
cat >/dev/null
"{rota}" task add children --kind child --payload 1 >/dev/null || exit 1
echo "{{\"traceparent\": \"$TRACEPARENT\", \"tracestate\": \"$TRACESTATE\"}}"
"#,
            rota = env!("CARGO_BIN_EXE_rota")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let task = NewTask::new("traced", &1).trace(PARENT, Some("rojo=1".into()));
    let id = s.client.enqueue("scripts", &task).await.unwrap().task.id;
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_rota"))
        .args(["worker", "scripts", "--"])
        .arg(&script)
        .env("ROTA_URL", &s.url)
        .env("ROTA_DATA_DIR", &s.dir)
        // A stray context in the worker's own environment is not what the command gets.
        .env(
            "TRACEPARENT",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let t = s.client.get(id).await.unwrap();
        if t.state.is_final() {
            break t;
        }
        assert!(Instant::now() < deadline, "the task did not finish: {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.errors);
    let result: Value = serde_json::from_str(done.result.unwrap().get()).unwrap();
    assert_eq!(result["traceparent"], PARENT);
    assert_eq!(result["tracestate"], "rojo=1");
    let children = s
        .client
        .list("children", &Default::default())
        .await
        .unwrap()
        .tasks;
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].traceparent.as_deref(), Some(PARENT));
    assert_eq!(children[0].tracestate.as_deref(), Some("rojo=1"));
}
