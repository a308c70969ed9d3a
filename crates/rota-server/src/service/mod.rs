//! The operations of Rota, whichever front door asks: each takes the authenticated [`Caller`]
//! and domain values, checks the request against the limits and the caller's permissions,
//! calls the store and counts the outcome, and answers a domain value or an [`ApiError`] whose
//! [`ErrorKind`](crate::error::ErrorKind) each door maps its own way (HTTP in `error.rs`).
//!
//! Doors only translate: the HTTP handlers in `api/` turn JSON into these calls and the answers
//! into JSON. No rule lives in a door, so a second door cannot drift from the first.
//!
//! Architecture Invariant: nothing here knows about HTTP (no status codes, headers or axum
//! types).

mod claims;
mod events;
mod flow;
mod groups;
mod hooks;
mod queues;
mod schedules;
mod spawn;
mod streams;
mod tasks;
mod webhooks;
mod workers;
mod workflows;

pub use claims::Claim;
pub use events::{may_read_event, EventQuery};
pub use flow::{flow_stats, MAX_FLOW_SCAN_GROUPS};
pub use hooks::{HookInput, HookPatch};
pub use schedules::ScheduleView;
pub use streams::EventFollow;
pub use tasks::check_task;
pub use webhooks::{redact_unless_writer, WebhookInput, WebhookPatch, MAX_WEBHOOK_DESCRIPTION};
pub use workflows::WorkflowTaskSpec;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ServerConfig;
use rota_core::auth::{actions, queue_resource};
use rota_core::{Clock, Json, Limits, Task, TaskId};
use rota_store::DynStore;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The highest `max_attempts` a task or queue may ask for.
pub const MAX_ATTEMPTS_CEILING: u32 = 10_000;

/// The operations, over one store.
#[derive(Clone)]
pub struct Service {
    pub(crate) store: DynStore,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Cancelled when the server begins shutting down: long-polls return at once.
    shutdown: CancellationToken,
    /// Worker processes connected through the Faktory door.
    workers: Arc<crate::faktory::workers::Registry>,
    /// Open event streams on this server, per tenant and in all.
    streams: Arc<std::sync::Mutex<streams::OpenStreams>>,
    /// Notified when a schedule changes, so the scheduler plans again.
    schedules_changed: Arc<tokio::sync::Notify>,
    /// What this server saw of requests, for `rota doctor`.
    pub(crate) observed: Arc<crate::doctor::observed::Observed>,
    /// Which workflows are batches, and their callbacks (fixed once a workflow is stored).
    batch_callbacks: Arc<workflows::CallbackCache>,
    /// Traces of requests and tasks (off by default).
    telemetry: crate::telemetry::Telemetry,
    /// Inbound webhooks' counters and recent requests on this server.
    pub(crate) hooks: Arc<crate::hooks::Hooks>,
}

impl Service {
    pub fn new(
        store: DynStore,
        config: Arc<ServerConfig>,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
        workers: Arc<crate::faktory::workers::Registry>,
    ) -> Service {
        Service {
            store,
            config,
            clock,
            shutdown,
            workers,
            streams: Default::default(),
            schedules_changed: Default::default(),
            observed: Default::default(),
            batch_callbacks: Default::default(),
            telemetry: Default::default(),
            hooks: Default::default(),
        }
    }

    /// The service recording traces through `telemetry`.
    pub fn with_telemetry(mut self, telemetry: crate::telemetry::Telemetry) -> Service {
        self.telemetry = telemetry;
        self
    }

    pub fn telemetry(&self) -> &crate::telemetry::Telemetry {
        &self.telemetry
    }

    /// What this server saw of requests (claims, refusals), for `rota doctor`.
    pub fn observed(&self) -> &crate::doctor::observed::Observed {
        &self.observed
    }

    /// Notified whenever a schedule is written through this server.
    pub fn schedules_changed(&self) -> Arc<tokio::sync::Notify> {
        self.schedules_changed.clone()
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// 403 unless the caller may do `action` on the queue of task `id`, and handle its kind.
    /// Looks the task up only when the caller's roles do not allow `action` on every queue or
    /// its credential is limited to some kinds.
    async fn authorize_task(&self, caller: &Caller, action: &str, id: TaskId) -> ApiResult<()> {
        if caller.on_every_queue(action) && caller.principal.kinds.is_none() {
            return Ok(());
        }
        let task = self.store.get(&caller.tenant, id).await?;
        caller.require(action, &queue_resource(&task.queue))?;
        caller.require_kinds([task.kind.as_str()])
    }
}

/// A lease token proves the lease: only a caller who may complete the task sees it (a reader,
/// a producer, or a worker limited to other kinds sees the lease without its token).
fn hide_token_unless_allowed(caller: &Caller, task: &mut Task) {
    if let Some(lease) = task.lease.as_mut() {
        let may_act = caller.can(actions::TASKS_COMPLETE, &queue_resource(&task.queue))
            && caller.require_kinds([task.kind.as_str()]).is_ok();
        if !may_act {
            lease.token.clear();
        }
    }
}

pub fn check_name(field: &str, value: &str, limits: &Limits) -> ApiResult<()> {
    if value.is_empty() {
        return Err(ApiError::invalid(format!("{field} must not be empty")));
    }
    if value.len() > limits.max_name_len {
        return Err(ApiError::invalid(format!(
            "{field} is {} bytes long; the limit is {} (limits.max_name_len)",
            value.len(),
            limits.max_name_len
        )));
    }
    Ok(())
}

pub fn check_json_size(field: &str, value: &Json, limits: &Limits) -> ApiResult<()> {
    let n = value.get().len();
    if n > limits.max_payload_bytes {
        return Err(ApiError::too_large(format!(
            "{field} is {n} bytes; the limit is {} bytes (limits.max_payload_bytes)",
            limits.max_payload_bytes
        )));
    }
    Ok(())
}

pub fn check_lease_ms(field: &str, lease_ms: Option<u64>, limits: &Limits) -> ApiResult<()> {
    if let Some(l) = lease_ms {
        if l < limits.min_lease_ms || l > limits.max_lease_ms {
            return Err(ApiError::invalid(format!(
                "{field} is {l}; use {} to {} (limits.min_lease_ms, limits.max_lease_ms)",
                limits.min_lease_ms, limits.max_lease_ms
            )));
        }
    }
    Ok(())
}

/// A long-poll's `wait_ms`: at most `limits.max_wait_ms`.
pub fn check_wait_ms(wait_ms: u64, limits: &Limits) -> ApiResult<()> {
    if wait_ms > limits.max_wait_ms {
        return Err(ApiError::invalid(format!(
            "wait_ms is {wait_ms}; the limit is {} (limits.max_wait_ms)",
            limits.max_wait_ms
        )));
    }
    Ok(())
}

pub fn check_max_attempts(field: &str, max_attempts: Option<u32>) -> ApiResult<()> {
    match max_attempts {
        Some(m) if m == 0 || m > MAX_ATTEMPTS_CEILING => Err(ApiError::invalid(format!(
            "{field} is {m}; use 1 to {MAX_ATTEMPTS_CEILING}"
        ))),
        _ => Ok(()),
    }
}

/// 422 unless a request of `n` items (named `field`) holds at least one and at most
/// `limits.max_batch`.
fn check_batch_size(field: &str, what: &str, n: usize, limits: &Limits) -> ApiResult<()> {
    if n == 0 {
        return Err(ApiError::invalid(format!(
            "`{field}` is empty; send at least one {what}"
        )));
    }
    if n > limits.max_batch {
        return Err(ApiError::too_large(format!(
            "{n} {what}s in one request; the limit is {} (limits.max_batch)",
            limits.max_batch
        )));
    }
    Ok(())
}
