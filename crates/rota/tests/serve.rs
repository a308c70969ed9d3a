//! `rota serve` as a user runs it: bad configuration stops it with the key that is wrong, a
//! second server on the same data directory is refused, SIGTERM stops it cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rota() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rota"));
    c.env("ROTA_LOG", "warn").stdin(Stdio::null());
    c
}

/// Whether the server at `addr` answers `/healthz` (the port opens before the store is ready,
/// so a connection alone does not say the server serves).
fn healthy(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    if c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
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
    while !healthy(&format!("127.0.0.1:{port}")) {
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
    // A clean stop checkpoints every shard: no -wal or -shm file is left behind.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-wal") || n.ends_with("-shm"))
        .collect();
    assert!(left.is_empty(), "left after a clean stop: {left:?}");
}

/// The first start creates an admin key: its token is printed once on stdout and saved in
/// `<data-dir>/admin-token`; a restart prints nothing new. Even with debug logging, no token
/// (the admin's, a created key's, or a wrong one sent in) reaches the log.
#[tokio::test]
async fn first_start_creates_one_admin_key_and_no_token_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let port = free_port();
        let child = rota()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path())
            .env("ROTA_LOG", "debug")
            .env_remove("ROTA_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (child, format!("http://127.0.0.1:{port}"))
    };
    let wait_up = |url: &str| {
        let addr = url.trim_start_matches("http://").to_owned();
        let t = Instant::now();
        while !healthy(&addr) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let stop = |child: std::process::Child| {
        let term = Command::new("kill")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(term.success());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (child, url) = start();
    wait_up(&url);
    let admin_token = std::fs::read_to_string(dir.path().join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let admin = rota_client::Client::with_token(&url, Some(&admin_token)).unwrap();
    admin
        .create_tenant("acme", Default::default(), None)
        .await
        .unwrap();
    let key = admin
        .clone()
        .with_tenant(Some("acme"))
        .create_key(&rota_client::NewKey {
            roles: vec!["producer".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let producer = rota_client::Client::with_token(&url, Some(&key.token)).unwrap();
    producer
        .enqueue("q", &rota_client::NewTask::new("k", &serde_json::json!({})))
        .await
        .unwrap();
    let refused = producer.claim("q", &Default::default()).await.unwrap_err();
    assert!(
        matches!(refused, rota_client::Error::Forbidden { .. }),
        "{refused}"
    );
    let wrong = format!("rota_{}_{}", &key.key.id, "f".repeat(64));
    let bad = rota_client::Client::with_token(&url, Some(&wrong)).unwrap();
    assert!(matches!(
        bad.queues().await,
        Err(rota_client::Error::Unauthorized { .. })
    ));
    let (stdout, log) = stop(child);
    assert_eq!(stdout.matches(&admin_token).count(), 1, "{stdout}");
    assert!(stdout.contains("admin-token"), "{stdout}");
    assert!(log.contains("API key created"), "the log is on: {log}");
    // stderr is a pipe here, not a terminal: no colour codes in the log.
    assert!(!log.contains('\u{1b}'), "ANSI escapes in the log: {log}");
    for secret in [&admin_token, &key.token, &wrong[22..].to_owned()] {
        assert!(!log.contains(secret.as_str()), "a token is in the log");
    }
    // A restart keeps the key and prints no token.
    let (child, url) = start();
    wait_up(&url);
    let admin = rota_client::Client::with_token(&url, Some(&admin_token)).unwrap();
    assert_eq!(admin.tenants().await.unwrap().len(), 2);
    // When the producer key was last used was written at shutdown and survives the restart.
    let keys = admin.with_tenant(Some("acme")).keys().await.unwrap();
    assert!(keys[0].last_used_at.is_some(), "{keys:?}");
    let (stdout, _) = stop(child);
    assert!(!stdout.contains(&admin_token), "{stdout}");
}

/// The secret that signs dashboard sessions is made on the first start in the data directory
/// (mode 0600, not in `rota.db`), and kept: a session signed before a restart works after it.
#[tokio::test]
async fn the_session_secret_is_made_once_and_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let port = free_port();
        let child = rota()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path())
            .env_remove("ROTA_ADMIN_TOKEN")
            .env_remove("ROTA_SESSION_SECRET")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !healthy(&format!("127.0.0.1:{port}")) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        (child, format!("http://127.0.0.1:{port}"))
    };
    let stop = |mut child: std::process::Child| {
        assert!(Command::new("kill")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success());
        assert!(child.wait().unwrap().success());
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (child, url) = start();
    let file = dir.path().join("session-secret");
    let secret = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(secret.len(), 64, "32 random bytes in hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let signed_in = http
        .post(format!("{url}/login"))
        .form(&[("token", token.trim())])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    stop(child);
    let db = std::fs::read(dir.path().join("rota.db")).unwrap();
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is not in the store"
    );
    let (child, url) = start();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        secret,
        "kept"
    );
    let page = http
        .get(format!("{url}/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the session outlived the restart");
    stop(child);
}
