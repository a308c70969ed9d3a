//! A real server on port 0 over a real SQLite file, driven by a manual clock.
#![allow(dead_code)] // each test binary uses a different part

pub mod receivers;

use rota_core::{ManualClock, Timestamp};
use rota_server::ServerConfig;
use rota_sqlite::{SqliteOptions, SqliteStore};
use rota_store::Store;
use serde_json::Value;
use std::sync::Arc;

pub const T0: i64 = 1_800_000_000_000;
/// The admin credential every test server accepts (as `ROTA_ADMIN_TOKEN` would set it).
pub const ADMIN: &str = "test-admin-token-not-secret-0123456789abcdef";

pub struct TestServer {
    pub url: String,
    /// A client that sends the admin token with every request.
    pub http: reqwest::Client,
    /// A client that sends only what each request says.
    raw: reqwest::Client,
    pub store: Arc<SqliteStore>,
    pub clock: ManualClock,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// Asserts an error answer of the one error shape, with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &str {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["error"]["code"], code, "body: {}", self.body);
        let msg = self.body["error"]["message"].as_str().expect("a message");
        assert!(!msg.is_empty());
        msg
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with_config(ServerConfig::default()).await
    }

    pub async fn with_config(mut config: ServerConfig) -> TestServer {
        if config.auth.admin_token.is_none() {
            config.auth.admin_token = Some(rota_server::auth::Secret(ADMIN.into()));
        }
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(Timestamp(T0));
        let store = Arc::new(
            SqliteStore::open(
                &dir.path().join("rota.db"),
                Arc::new(clock.clone()),
                SqliteOptions {
                    max_queues_per_tenant: config.limits.max_queues_per_tenant,
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rota_server::run(
            listener,
            store.clone(),
            config,
            Arc::new(clock.clone()),
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            url,
            http: admin_client(),
            raw: reqwest::Client::new(),
            store,
            clock,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Sends as the admin.
    pub async fn send(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.send_as(Some(ADMIN), method, path, body).await
    }

    /// Sends with `token` as the bearer token, or with no credentials.
    pub async fn send_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Answer {
        self.send_full(token, &[], method, path, body).await.0
    }

    /// Sends with extra headers and returns the response headers too.
    pub async fn send_full(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (Answer, reqwest::header::HeaderMap) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.raw.request(m, format!("{}{}", self.url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (Answer { status, body }, headers)
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send("POST", path, Some(&body.to_string())).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    /// The state of task `id`, read through the API.
    pub async fn state_of(&self, id: &str) -> String {
        let got = self.get(&format!("/v1/tasks/{id}")).await;
        got.body["state"].as_str().unwrap().to_owned()
    }

    /// Enqueues one task and returns it.
    pub async fn enqueue(&self, queue: &str, task: Value) -> Value {
        let a = self.post(&format!("/v1/queues/{queue}/tasks"), task).await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body
    }

    /// Creates tenant `name` as the admin.
    pub async fn create_tenant(&self, name: &str) {
        let a = self
            .post("/v1/admin/tenants", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
    }

    /// Enqueues one task in `tenant`'s `queue` as the admin acting there, and returns it.
    pub async fn enqueue_in(&self, tenant: &str, queue: &str, task: Value) -> Value {
        let (a, _) = self
            .send_full(
                Some(ADMIN),
                &[("rota-tenant", tenant)],
                "POST",
                &format!("/v1/queues/{queue}/tasks"),
                Some(&task.to_string()),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body
    }

    pub async fn claim(&self, queue: &str, body: Value) -> Vec<Value> {
        let a = self.post(&format!("/v1/queues/{queue}/claim"), body).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["tasks"].as_array().unwrap().clone()
    }

    /// The store's file, for tests that change rows behind the server's back.
    pub fn db_path(&self) -> std::path::PathBuf {
        self._dir.path().join("rota.db")
    }

    /// Runs one maintenance pass now (promotion, lease expiry, retention).
    pub async fn maintain(&self) {
        self.store.run_maintenance().await.unwrap();
    }

    pub async fn count(&self, queue: &str) -> u64 {
        let a = self.get(&format!("/v1/queues/{queue}")).await;
        if a.status == 404 {
            return 0;
        }
        let c = &a.body["counts"];
        [
            "scheduled",
            "ready",
            "running",
            "succeeded",
            "dead",
            "cancelled",
        ]
        .iter()
        .map(|s| c[*s].as_u64().unwrap())
        .sum()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        self.store.close().await;
    }
}

pub fn lease(task: &Value) -> String {
    task["lease"]["token"].as_str().expect("a lease").to_owned()
}

pub fn id(task: &Value) -> String {
    task["id"].as_str().expect("an id").to_owned()
}

fn admin_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {ADMIN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}
