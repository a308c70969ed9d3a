//! The real `rota serve` binary on a free port, for tests that drive it from outside.
#![allow(dead_code)] // each test binary uses a different part

pub mod cli;

use rota_client::Client;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub child: Child,
    /// A client with the admin token the server created on its first start.
    pub client: Client,
    pub url: String,
    pub dir: std::path::PathBuf,
    pub admin_token: String,
}

impl Drop for Server {
    /// A failing test must not leave a server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rota serve` on `dir` and waits until it answers.
pub async fn start(dir: &std::path::Path) -> Server {
    start_with(dir, &[]).await
}

/// [`start`] with extra environment (`ROTA_DATABASE_URL` for PostgreSQL, say). With
/// `ROTA_ADMIN_TOKEN` among them, that is the admin token; else the first start's file is.
pub async fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let (child, url) = spawn_with(dir, env);
    wait_healthy(&url).await;
    if let Some((_, t)) = env.iter().find(|(k, _)| *k == "ROTA_ADMIN_TOKEN") {
        return Server {
            child,
            client: Client::with_token(&url, Some(t)).unwrap(),
            url,
            dir: dir.to_owned(),
            admin_token: t.to_string(),
        };
    }
    finish_start(child, url, dir)
}

/// Spawns `rota serve` without waiting for it.
pub fn spawn_with(dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, String) {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rota"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir)
    .env("ROTA_LOG", "warn")
    .env_remove("ROTA_ADMIN_TOKEN")
    .env_remove("ROTA_AUTH_ENABLED")
    .env_remove("ROTA_DATABASE_URL")
    .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("the rota binary starts");
    (child, format!("http://127.0.0.1:{port}"))
}

pub async fn wait_healthy(url: &str) {
    let probe = Client::new(url).unwrap();
    let t = Instant::now();
    while !probe.healthy().await {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The server started by [`spawn_with`], with the admin token its first start wrote.
pub fn finish_start(mut child: Child, url: String, dir: &std::path::Path) -> Server {
    let token_file = dir.join("admin-token");
    let admin_token = match std::fs::read_to_string(&token_file) {
        Ok(t) => t.trim().to_owned(),
        Err(e) => {
            let _ = child.kill(); // not left running after the test
            panic!("the first start writes the admin token: {e}");
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "only the owner may read the admin token"
        );
    }
    let client = Client::with_token(&url, Some(&admin_token)).unwrap();
    Server {
        child,
        client,
        url,
        dir: dir.to_owned(),
        admin_token,
    }
}
