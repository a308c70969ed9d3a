//! Structured logs and request ids, from the outside: `ROTA_LOG_FORMAT=json` makes one JSON
//! object per line, and every line of a request names the request's id, which is the client's
//! `X-Request-Id` or one the server made, returned on the response.

mod common;

use serde_json::Value;
use std::process::{Command, Stdio};

const ADMIN: &str = "rota_adminlogs_0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn json_logs_name_the_request_id_on_every_line_of_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rota"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("ROTA_LOG", "info")
        .env("ROTA_LOG_FORMAT", "json")
        .env("ROTA_ADMIN_TOKEN", ADMIN)
        .env_remove("ROTA_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    common::wait_healthy(&url).await;
    let http = reqwest::Client::new();
    let made = http
        .post(format!("{url}/v1/admin/tenants"))
        .bearer_auth(ADMIN)
        .header("x-request-id", "req-42")
        .json(&serde_json::json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    assert_eq!(made.headers()["x-request-id"], "req-42");
    // Without one, the server makes one and returns it.
    let other = http
        .get(format!("{url}/v1/queues"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let id = other.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 24, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");

    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    let created = lines
        .iter()
        .find(|l| l["fields"]["message"] == "tenant created")
        .unwrap_or_else(|| panic!("no `tenant created` line in {text}"));
    assert_eq!(created["span"]["id"], "req-42", "{created}");
    assert_eq!(created["span"]["path"], "/v1/admin/tenants");
    assert_eq!(created["level"], "INFO");
}

#[test]
fn an_unknown_log_format_is_refused_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_rota"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ROTA_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ROTA_LOG_FORMAT is `yaml`; use text or json"),
        "{err}"
    );
}
