//! A real server on port 0 over a real SQLite file, with the system clock.
#![allow(dead_code)] // each test binary uses a different part

use rota_client::Client;
use rota_core::SystemClock;
use rota_sqlite::{SqliteOptions, SqliteStore};
use std::sync::Arc;

/// The admin credential the test servers accept.
pub const ADMIN: &str = "client-tests-admin-token-0123456789abcdef";

pub struct Server {
    pub client: Client,
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn server() -> Server {
    server_with(rota_server::ServerConfig::default()).await
}

/// [`server`] with `config` (its admin token set to [`ADMIN`]).
pub async fn server_with(mut config: rota_server::ServerConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &dir.path().join("rota.db"),
            Arc::new(SystemClock),
            SqliteOptions::default(),
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    config.auth.admin_token = Some(rota_server::auth::Secret(ADMIN.into()));
    tokio::spawn(async move {
        let _ = rota_server::run(
            listener,
            store.clone(),
            config,
            Arc::new(SystemClock),
            async move {
                let _ = stopped.await;
            },
        )
        .await;
        rota_store::Store::close(&*store).await;
    });
    Server {
        client: Client::with_token(&url, Some(ADMIN)).unwrap(),
        url,
        stop: Some(stop),
        _dir: dir,
    }
}
