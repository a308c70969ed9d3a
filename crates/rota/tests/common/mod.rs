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
    pub client: Client,
    pub url: String,
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
        .stdout(Stdio::null())
        .spawn()
        .expect("the rota binary starts");
    let url = format!("http://127.0.0.1:{port}");
    let client = Client::new(&url).unwrap();
    let t = Instant::now();
    while !client.healthy().await {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "server did not come up"
        );
        tokio::task::yield_now().await;
    }
    Server { child, client, url }
}
