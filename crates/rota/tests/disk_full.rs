//! A full disk, made real: the server runs with a file-size limit (RLIMIT_FSIZE, with SIGXFSZ
//! ignored, so a write past it fails the way a full disk does). Writes then answer 503 with a
//! stable message, `/readyz` says writes do not commit, `rota doctor` names it, and everything
//! acknowledged before is still there after a restart without the limit.
#![cfg(unix)]

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT_BYTES: u64 = 3 << 20;

/// The limited server, killed when dropped, so a failing assertion leaves no server behind.
struct Limited(std::process::Child);

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_limited(data: &std::path::Path, port: u16) -> Limited {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rota"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data)
    .env("ROTA_LOG", "error")
    .env_remove("ROTA_ADMIN_TOKEN")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: LIMIT_BYTES,
                rlim_max: LIMIT_BYTES,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Limited(cmd.spawn().unwrap())
}

#[tokio::test]
async fn a_full_disk_answers_503_makes_readyz_fail_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = common::start(&data).await;
    let token = first.admin_token.clone();
    drop(first);

    let port = common::free_port();
    let child = start_limited(&data, port);
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let t = Instant::now();
    while http.get(format!("{url}/healthz")).send().await.is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready before the disk fills");

    let payload = "x".repeat(200_000);
    let mut acked = Vec::new();
    let mut refusal = None;
    for i in 0..200 {
        let body = serde_json::json!({"kind": "fill", "payload": {"i": i, "pad": payload}});
        let resp = http
            .post(format!("{url}/v1/queues/fill/tasks"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let answer: serde_json::Value = resp.json().await.unwrap();
        if status == 201 {
            acked.push(answer["id"].as_str().unwrap().to_owned());
        } else {
            refusal = Some((status, answer));
            break;
        }
    }
    let (status, answer) = refusal.expect("the file-size limit was reached");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "storage_unavailable");
    let msg = answer["error"]["message"].as_str().unwrap();
    assert!(!msg.to_lowercase().contains("disk is full"), "{msg}");
    assert!(!msg.contains("SQL"), "{msg}");
    assert!(!acked.is_empty());

    let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    // The check of the shard holding the queue (`storage.writes`, or `storage.shardN.writes`).
    let checks = body["checks"].as_object().unwrap();
    assert!(
        checks
            .iter()
            .any(|(k, v)| k.starts_with("storage.") && k.ends_with(".writes") && v != "ok"),
        "{body}"
    );
    // `rota doctor` names it.
    let report: serde_json::Value = http
        .get(format!("{url}/v1/doctor"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failing = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "storage_failing")
        .unwrap_or_else(|| panic!("no storage finding: {report}"));
    assert!(
        failing["subject"].as_str().unwrap().starts_with("storage"),
        "{failing}"
    );
    assert_eq!(report["ok"], false);

    drop(child);
    let again = common::start(&data).await;
    for id in &acked {
        let task = again.client.get(id.parse().unwrap()).await.unwrap();
        assert_eq!(task.kind, "fill");
    }
}
