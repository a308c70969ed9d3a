//! Running the real `rota` binary as a client of a test server.

use assert_cmd::Command;
use serde_json::Value;

pub fn rota(url: &str) -> Command {
    let mut c = Command::cargo_bin("rota").unwrap();
    c.env("ROTA_URL", url)
        .env_remove("ROTA_TOKEN")
        .env_remove("ROTA_ADMIN_TOKEN")
        .env_remove("ROTA_TENANT");
    c
}

/// The CLI against a server on this machine: it finds the admin token `rota serve` saved in the
/// data dir, as after the README's first start.
pub fn rota_at(s: &super::Server) -> Command {
    let mut c = rota(&s.url);
    c.env("ROTA_DATA_DIR", &s.dir);
    c
}

/// Runs the command, asserts success, returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the command, asserts failure with one `error:` line, returns it.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

pub fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}
