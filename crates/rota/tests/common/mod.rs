//! The real `rota serve` binary on a free port, for tests that drive it from outside.
#![allow(dead_code)] // each test binary uses a different part

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
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_rota"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .env("ROTA_LOG", "warn")
        .env_remove("ROTA_ADMIN_TOKEN")
        .env_remove("ROTA_AUTH_ENABLED")
        .stdout(Stdio::null())
        .spawn()
        .expect("the rota binary starts");
    let url = format!("http://127.0.0.1:{port}");
    let probe = Client::new(&url).unwrap();
    let t = Instant::now();
    while !probe.healthy().await {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "server did not come up"
        );
        tokio::task::yield_now().await;
    }
    let token_file = dir.join("admin-token");
    let admin_token = std::fs::read_to_string(&token_file)
        .expect("the first start writes the admin token")
        .trim()
        .to_owned();
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
