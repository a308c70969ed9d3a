//! `rota serve` as a user runs it: bad configuration stops it with the key that is wrong, a
//! second server on the same data directory is refused, SIGTERM stops it cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rota() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rota"));
    c.env("ROTA_LOG", "warn").stdin(Stdio::null());
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Flags, environment, and the text the error must contain.
type Case = (
    Vec<&'static str>,
    Vec<(&'static str, &'static str)>,
    &'static str,
);

#[test]
fn bad_configuration_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Case> = vec![
        (vec!["--listen", "nowhere"], vec![], "listen"),
        (
            vec![],
            vec![("ROTA_LIMITS_MAX_BATCH", "0")],
            "limits.max_batch",
        ),
        (
            vec![],
            vec![("ROTA_LIMITS_MAX_CLAIM", "many")],
            "ROTA_LIMITS_MAX_CLAIM",
        ),
        (
            vec!["--config", "/nonexistent/rota.toml"],
            vec![],
            "/nonexistent/rota.toml",
        ),
    ];
    for (args, env, needle) in cases {
        let out = rota()
            .arg("serve")
            .args(["--data-dir"])
            .arg(dir.path())
            .args(&args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} {env:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?} {env:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "one clear line: {stderr}");
    }
}

#[test]
fn one_server_per_data_dir_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut first = rota()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready once it answers.
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        std::thread::yield_now();
    }
    let second = rota()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another rota server is using"), "{stderr}");

    let term = Command::new("kill")
        .arg(first.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let status = first.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM ends with a clean exit, got {status}"
    );
    assert!(dir.path().join("rota.db").exists());
}
