//! A typed async client for Rota's HTTP API, and a worker runtime ([`worker::Worker`]). Server
//! errors come back as [`Error`] variants a caller can branch on; connections are pooled and
//! reused.

mod access;
mod audit;
mod doctor;
mod error;
mod events;
mod groups;
mod hooks;
mod maintenance;
mod oauth;
mod processes;
mod queues;
mod schedules;
pub mod trace;
mod types;
mod webhooks;
pub mod worker;
mod workflows;

pub use audit::{AuditEntry, AuditPage, AuditQuery};
pub use doctor::{DoctorFinding, DoctorReport};
use error::ErrorBody;
pub use error::{Error, ErrorDetail, Result};
pub use events::{EventOptions, EventPage, EventRecord};
pub use hooks::{HookInfo, HookRequestInfo, HookUpdate, NewHook};
pub use maintenance::Maintenance;
pub use oauth::AccessToken;
pub use processes::WorkerProcess;
pub use rota_core::hooks::Verify;
pub use rota_core::workflow::{
    BatchSummary, DependencyResult, Workflow, WorkflowKind, WorkflowState, WorkflowTask,
};
pub use rota_core::OnDependencyFailure;
pub use schedules::{ScheduleDef, ScheduleInfo, ScheduleRunInfo};
pub use types::*;
use types::{decode, DuplicateFlag};
pub use webhooks::{DeliveryInfo, NewWebhook, WebhookInfo};
pub use workflows::{WorkflowPage, WorkflowTaskDef};

use reqwest::Method;
use rota_core::{Json, QueueInfo, QueueStats, Task, TaskId, TaskState};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub use rota_core::flow::{GroupInfo, GroupPage, GroupSettings, Hold, Rate};
pub use rota_core::flow_stats::{FlowStats, Held};

pub use rota_core::auth::{
    ClientLimits, CreatedKey, Effect, KeyInfo, NewKey, RoleInfo, Rule, TenantPatch, TenantRecord,
    WhoAmI,
};
pub use rota_core::OnDuplicate;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    tenant: Option<String>,
    /// OAuth client credentials, for a client that fetches its own access tokens.
    credentials: Option<std::sync::Arc<oauth::Credentials>>,
}

#[derive(Deserialize)]
struct Tasks<T> {
    tasks: Vec<T>,
}

#[derive(Deserialize)]
struct Items {
    items: Vec<ItemOutcome>,
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:7070`).
    pub fn new(base_url: &str) -> Result<Self> {
        Self::with_token(base_url, None)
    }

    /// A client configured from the environment, as the `rota` CLI is: `ROTA_URL` (default
    /// `http://127.0.0.1:7070`), `ROTA_TOKEN` and `ROTA_TENANT`. An empty `ROTA_TOKEN` is refused
    /// here rather than sent, since the server could only answer that no credential came.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok();
        let url = var("ROTA_URL").unwrap_or_else(|| "http://127.0.0.1:7070".into());
        let token = var("ROTA_TOKEN");
        if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(Error::Invalid {
                message: "ROTA_TOKEN is set but empty; set it to an API key's token \
                          (e.g. ROTA_TOKEN=$(cat rota-data/admin-token))"
                    .into(),
            });
        }
        Ok(Self::with_token(&url, token.as_deref())?.with_tenant(var("ROTA_TENANT").as_deref()))
    }

    /// A client that sends `token` as `Authorization: Bearer <token>` on every request.
    pub fn with_token(base_url: &str, token: Option<&str>) -> Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| Error::Invalid {
                    message: "the token contains characters not allowed in a header".into(),
                })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()
            .map_err(Error::Transport)?;
        Ok(Client {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            tenant: None,
            credentials: None,
        })
    }

    /// Acts in `tenant` (sent as `Rota-Tenant`); only an admin credential may name a tenant
    /// other than its own.
    pub fn with_tenant(mut self, tenant: Option<&str>) -> Self {
        self.tenant = tenant.map(str::to_owned);
        self
    }

    /// The tenant named with [`Client::with_tenant`], if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        timeout: Duration,
    ) -> Result<T> {
        decode(&self.call_raw(method, path, body, timeout).await?)
    }

    /// The body of a successful answer; an error answer becomes its [`Error`].
    async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        // Only reads are retried: a write whose answer was lost may have happened, and sending
        // it again would do it twice.
        let attempts = if method == Method::GET {
            Self::READ_ATTEMPTS
        } else {
            1
        };
        let url = format!("{}{}", self.base, path);
        let mut token = self.bearer(None).await?;
        let mut refused_once = false;
        let mut attempt = 1;
        let resp = loop {
            let mut req = self.http.request(method.clone(), &url).timeout(timeout);
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            if let Some(t) = &self.tenant {
                req = req.header("rota-tenant", t);
            }
            if let Some((parent, state)) = trace::current() {
                req = req.header("traceparent", parent);
                if let Some(s) = state {
                    req = req.header("tracestate", s);
                }
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            match req.send().await {
                // An access token refused (expired early, its key rotated): one new token and
                // one more try; a refused request was not applied, so a write may be sent again.
                Ok(resp)
                    if resp.status() == reqwest::StatusCode::UNAUTHORIZED
                        && self.credentials.is_some()
                        && !refused_once =>
                {
                    refused_once = true;
                    token = self.bearer(token.as_deref()).await?;
                }
                Ok(resp) => break resp,
                Err(e) if attempt < attempts && (e.is_connect() || e.is_timeout()) => {
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(Error::Transport(e)),
            }
        };
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(Error::Transport)?;
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => Err(Error::from_answer(status, b.error)),
                Err(_) => Err(Error::Api {
                    status: status.as_u16(),
                    code: "unknown".into(),
                    message: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
                }),
            }
        }
    }

    /// Tries a read gets when the server cannot be reached (200 and 400 ms apart).
    const READ_ATTEMPTS: u32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(30);

    pub async fn enqueue(&self, queue: &str, task: &NewTask) -> Result<Enqueued> {
        let bytes = self
            .call_raw(
                Method::POST,
                &format!("/v1/queues/{queue}/tasks"),
                Some(task),
                Self::TIMEOUT,
            )
            .await?;
        let flags = decode::<DuplicateFlag>(&bytes)?;
        Ok(Enqueued {
            task: decode(&bytes)?,
            duplicate: flags.duplicate,
            replaced: flags.replaced,
        })
    }

    pub async fn enqueue_batch(&self, queue: &str, tasks: &[NewTask]) -> Result<Vec<Enqueued>> {
        #[derive(Serialize)]
        struct Batch<'a> {
            tasks: &'a [NewTask],
        }
        let bytes = self
            .call_raw(
                Method::POST,
                &format!("/v1/queues/{queue}/tasks"),
                Some(&Batch { tasks }),
                Self::TIMEOUT,
            )
            .await?;
        let out: Tasks<Task> = decode(&bytes)?;
        let flags: Tasks<DuplicateFlag> = decode(&bytes)?;
        Ok(out
            .tasks
            .into_iter()
            .zip(flags.tasks)
            .map(|(task, f)| Enqueued {
                task,
                duplicate: f.duplicate,
                replaced: f.replaced,
            })
            .collect())
    }

    /// Claims up to `opts.max` tasks, waiting up to `opts.wait_ms` for one to be ready.
    pub async fn claim(&self, queue: &str, opts: &ClaimOptions) -> Result<Vec<Task>> {
        let timeout = Self::TIMEOUT + Duration::from_millis(opts.wait_ms.unwrap_or(0));
        let out: Tasks<Task> = self
            .call(
                Method::POST,
                &format!("/v1/queues/{queue}/claim"),
                Some(opts),
                timeout,
            )
            .await?;
        Ok(out.tasks)
    }

    /// [`Client::claim`], each task with what it carries (see `docs/workflows.md`,
    /// "Results" and "Batches"): how its dependencies ended and their results (empty for a
    /// task that waited for none), and for a batch's callback how the members ended.
    pub async fn claim_jobs(&self, queue: &str, opts: &ClaimOptions) -> Result<Vec<Job>> {
        // Two views of the same bytes: `#[serde(flatten)]` cannot carry a task's verbatim
        // JSON fields.
        #[derive(Deserialize)]
        struct Carried {
            #[serde(default)]
            dependencies: Vec<DependencyResult>,
            #[serde(default)]
            batch: Option<BatchSummary>,
        }
        let timeout = Self::TIMEOUT + Duration::from_millis(opts.wait_ms.unwrap_or(0));
        let bytes = self
            .call_raw(
                Method::POST,
                &format!("/v1/queues/{queue}/claim"),
                Some(opts),
                timeout,
            )
            .await?;
        let tasks: Tasks<Task> = decode(&bytes)?;
        let carried: Tasks<Carried> = decode(&bytes)?;
        Ok(tasks
            .tasks
            .into_iter()
            .zip(carried.tasks)
            .map(|(task, c)| Job::new(task, c.dependencies, c.batch))
            .collect())
    }

    pub async fn heartbeat(
        &self,
        id: TaskId,
        lease: &str,
        lease_ms: Option<u64>,
        progress: Option<Json>,
    ) -> Result<Task> {
        #[derive(Serialize)]
        struct Body<'a> {
            lease: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            lease_ms: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            progress: Option<Json>,
        }
        let body = Body {
            lease,
            lease_ms,
            progress,
        };
        self.call(
            Method::POST,
            &format!("/v1/tasks/{id}/heartbeat"),
            Some(&body),
            Self::TIMEOUT,
        )
        .await
    }

    pub async fn complete(&self, id: TaskId, lease: &str, result: Option<Json>) -> Result<Task> {
        #[derive(Serialize)]
        struct Body<'a> {
            lease: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            result: Option<Json>,
        }
        self.call(
            Method::POST,
            &format!("/v1/tasks/{id}/complete"),
            Some(&Body { lease, result }),
            Self::TIMEOUT,
        )
        .await
    }

    pub async fn fail(
        &self,
        id: TaskId,
        lease: &str,
        error: &str,
        retry_in_ms: Option<u64>,
        dead: bool,
    ) -> Result<Task> {
        // The single-task body: the id is in the path, not the body.
        #[derive(Serialize)]
        struct Body<'a> {
            lease: &'a str,
            error: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            retry_in_ms: Option<u64>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            dead: bool,
        }
        let body = Body {
            lease,
            error,
            retry_in_ms,
            dead,
        };
        self.call(
            Method::POST,
            &format!("/v1/tasks/{id}/fail"),
            Some(&body),
            Self::TIMEOUT,
        )
        .await
    }

    pub async fn complete_batch(&self, items: &[CompleteItem]) -> Result<Vec<ItemOutcome>> {
        #[derive(Serialize)]
        struct Body<'a> {
            items: &'a [CompleteItem],
        }
        let out: Items = self
            .call(
                Method::POST,
                "/v1/tasks/complete",
                Some(&Body { items }),
                Self::TIMEOUT,
            )
            .await?;
        Ok(out.items)
    }

    pub async fn fail_batch(&self, items: &[FailItem]) -> Result<Vec<ItemOutcome>> {
        #[derive(Serialize)]
        struct Body<'a> {
            items: &'a [FailItem],
        }
        let out: Items = self
            .call(
                Method::POST,
                "/v1/tasks/fail",
                Some(&Body { items }),
                Self::TIMEOUT,
            )
            .await?;
        Ok(out.items)
    }

    pub async fn get(&self, id: TaskId) -> Result<Task> {
        self.call(
            Method::GET,
            &format!("/v1/tasks/{id}"),
            None::<&()>,
            Self::TIMEOUT,
        )
        .await
    }

    /// The task once it is final (succeeded, dead or cancelled), or as it is after `wait`
    /// (at most the server's `limits.max_wait_ms`). Check `task.state` to tell which.
    pub async fn wait_for(&self, id: TaskId, wait: Duration) -> Result<Task> {
        let ms = wait.as_millis() as u64;
        self.call(
            Method::GET,
            &format!("/v1/tasks/{id}?wait_ms={ms}"),
            None::<&()>,
            Self::TIMEOUT + wait,
        )
        .await
    }

    pub async fn cancel(&self, id: TaskId) -> Result<Task> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{id}/cancel"),
            None::<&()>,
            Self::TIMEOUT,
        )
        .await
    }

    pub async fn retry(&self, id: TaskId) -> Result<Task> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{id}/retry"),
            None::<&()>,
            Self::TIMEOUT,
        )
        .await
    }

    /// Runs a scheduled task (or a retry waiting for its backoff) now.
    pub async fn run_now(&self, id: TaskId) -> Result<Task> {
        let path = format!("/v1/tasks/{id}/run-now");
        self.call(Method::POST, &path, None::<&()>, Self::TIMEOUT)
            .await
    }

    /// Sends a scheduled or ready task to the dead letters, recording `reason`.
    pub async fn kill(&self, id: TaskId, reason: Option<&str>) -> Result<Task> {
        let body = serde_json::json!({ "reason": reason });
        let path = format!("/v1/tasks/{id}/kill");
        self.call(Method::POST, &path, Some(&body), Self::TIMEOUT)
            .await
    }

    /// Deletes a task that is not running; answers the task as it was.
    pub async fn delete_task(&self, id: TaskId) -> Result<Task> {
        let path = format!("/v1/tasks/{id}");
        self.call(Method::DELETE, &path, None::<&()>, Self::TIMEOUT)
            .await
    }

    pub async fn list(&self, queue: &str, opts: &ListOptions) -> Result<TaskPage> {
        let mut q = vec![];
        if let Some(s) = opts.state {
            q.push(format!("state={s}"));
        }
        if let Some(k) = &opts.kind {
            q.push(format!("kind={}", processes::escape(k)));
        }
        if let Some(k) = &opts.unique_key {
            q.push(format!("unique_key={}", processes::escape(k)));
        }
        if let Some(l) = opts.limit {
            q.push(format!("limit={l}"));
        }
        if let Some(c) = &opts.cursor {
            q.push(format!("cursor={c}"));
        }
        let path = format!("/v1/queues/{queue}/tasks?{}", q.join("&"));
        self.call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await
    }

    /// True when `/healthz` answers. A probe: asks once, never retries.
    pub async fn healthy(&self) -> bool {
        let req = self
            .http
            .get(format!("{}/healthz", self.base))
            .timeout(Duration::from_secs(2));
        matches!(req.send().await, Ok(r) if r.status().is_success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A port nothing listens on: reads are retried, writes are not.
    #[tokio::test]
    async fn only_reads_are_retried_when_the_server_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let t = Instant::now();
        assert!(matches!(c.queues().await, Err(Error::Transport(_))));
        let read = t.elapsed();
        let t = Instant::now();
        let write = c.enqueue("q", &NewTask::new("k", &1)).await;
        assert!(matches!(write, Err(Error::Transport(_))));
        let wrote = t.elapsed();
        assert!(read >= Duration::from_millis(600), "three tries: {read:?}");
        assert!(wrote < Duration::from_millis(200), "one try: {wrote:?}");
        assert!(!c.healthy().await);
    }
}
