//! What the client sends and receives besides rota-core's own types.

use crate::{Error, ErrorDetail, Result};
use rota_core::flow::Rate;
use rota_core::{
    Backoff, Json, OnDependencyFailure, OnDuplicate, Task, TaskId, TaskState, Timestamp,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// A task to enqueue.
#[derive(Debug, Clone, Serialize)]
pub struct NewTask {
    pub kind: String,
    pub payload: Json,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// What happens when `unique_key` is held by a live task; `None` is the server's default,
    /// `keep`. See [`NewTask::debounce`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_duplicate: Option<OnDuplicate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Where the task's final outcome is POSTed, signed with the tenant's callback secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// The flow-control group whose limits and turn the task takes (a customer, a token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Tasks that must succeed before this one may run (see `docs/workflows.md`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<TaskId>,
    /// What a dependency ending dead or cancelled does to this task; `None` is the server's
    /// default, `cancel`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_dependency_failure: Option<OnDependencyFailure>,
    /// The W3C trace context the task continues (see `docs/telemetry.md`); `None`: the
    /// request's (with the `otel` feature, the current span's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl NewTask {
    /// A task of `kind` whose payload is `payload` serialized as JSON.
    pub fn new(kind: impl Into<String>, payload: &impl Serialize) -> Self {
        let payload = serde_json::value::to_raw_value(payload).expect("payload serializes");
        NewTask {
            kind: kind.into(),
            payload,
            priority: None,
            run_at: None,
            delay_ms: None,
            max_attempts: None,
            unique_key: None,
            on_duplicate: None,
            tags: Vec::new(),
            callback_url: None,
            group: None,
            depends_on: Vec::new(),
            on_dependency_failure: None,
            traceparent: None,
            tracestate: None,
        }
    }

    /// Continues the W3C trace `traceparent` (with its `tracestate`), whatever the request
    /// carries.
    pub fn trace(mut self, traceparent: impl Into<String>, tracestate: Option<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self.tracestate = tracestate;
        self
    }

    /// Waits for `id` to succeed before it may run (see `docs/workflows.md`).
    pub fn after(mut self, id: TaskId) -> Self {
        self.depends_on.push(id);
        self
    }

    /// Puts the task in a flow-control group (see `docs/flow-control.md`).
    pub fn group(mut self, g: impl Into<String>) -> Self {
        self.group = Some(g.into());
        self
    }

    /// POST the task's final outcome to `url`, signed with the tenant's callback secret.
    pub fn callback(mut self, url: impl Into<String>) -> Self {
        self.callback_url = Some(url.into());
        self
    }
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = Some(p);
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay_ms = Some(d.as_millis() as u64);
        self
    }
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    pub fn unique_key(mut self, k: impl Into<String>) -> Self {
        self.unique_key = Some(k.into());
        self
    }
    /// Debounce on `k`: while the live task holding the key still waits to run, this task
    /// replaces it in place (same id, its delay started again); a running one is kept
    /// (`on_duplicate: replace`).
    pub fn debounce(mut self, k: impl Into<String>) -> Self {
        self.unique_key = Some(k.into());
        self.on_duplicate = Some(OnDuplicate::Replace);
        self
    }
}

/// A claimed task with what it carries: how its dependencies ended and their results (the
/// first 100, see `docs/workflows.md`), and for a batch's callback how the batch's members
/// ended.
#[derive(Debug, Clone)]
pub struct Job {
    pub task: Task,
    pub dependencies: Vec<rota_core::workflow::DependencyResult>,
    pub batch: Option<rota_core::workflow::BatchSummary>,
    /// Set once the task spawned tasks ([`crate::Client::spawn`]): its lease is given up, so
    /// the worker runtime reports nothing for this run.
    pub(crate) handed_off: Arc<AtomicBool>,
}

impl Job {
    /// A claimed task with what its claim carried.
    pub fn new(
        task: Task,
        dependencies: Vec<rota_core::workflow::DependencyResult>,
        batch: Option<rota_core::workflow::BatchSummary>,
    ) -> Job {
        Job {
            task,
            dependencies,
            batch,
            handed_off: Arc::default(),
        }
    }

    /// Whether this run spawned tasks (the task now waits for them and runs again after).
    pub fn spawned(&self) -> bool {
        self.handed_off.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A task to add with its queue: a member of a batch, or a task a running task spawns.
#[derive(Debug, Clone, Serialize)]
pub struct AddedTask {
    pub queue: String,
    #[serde(flatten)]
    pub task: NewTask,
}

impl AddedTask {
    pub fn new(queue: impl Into<String>, task: NewTask) -> Self {
        AddedTask {
            queue: queue.into(),
            task,
        }
    }
}

/// What a spawn answers: the spawner as it stands (waiting for the tasks) and the tasks.
#[derive(Debug, Clone, Deserialize)]
pub struct Spawned {
    pub task: Task,
    pub tasks: Vec<Task>,
}

/// A task as enqueue answers it.
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub task: Task,
    /// The `unique_key` matched a live task, which is returned instead.
    pub duplicate: bool,
    /// That live task was waiting and took this task's fields (`on_duplicate: replace`).
    pub replaced: bool,
}

/// The `duplicate` and `replaced` flags of an enqueue answer. Read as a second view of the
/// same bytes because `#[serde(flatten)]` cannot carry the task's verbatim JSON fields.
#[derive(Deserialize)]
pub(crate) struct DuplicateFlag {
    pub(crate) duplicate: bool,
    /// Absent from servers older than debounce.
    #[serde(default)]
    pub(crate) replaced: bool,
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ClaimOptions {
    pub worker: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    pub max: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompleteItem {
    pub id: TaskId,
    pub lease: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Json>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailItem {
    pub id: TaskId,
    pub lease: String,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dead: bool,
    /// The attempt does not count toward `max_attempts`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

/// One item's outcome in a batch complete or fail.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemOutcome {
    pub id: String,
    pub ok: bool,
    pub state: Option<TaskState>,
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueSettingsPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Where the outcome of the queue's tasks that name none is POSTed; `""` clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// At most this many of the queue's tasks running at once; `Some(None)` lifts the limit,
    /// as for the other limits below.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Option<u32>>,
    /// At most `limit` of the queue's tasks started in any window of `period_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Option<Rate>>,
    /// `concurrency` for each group of the queue, unless the group has its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_concurrency: Option<Option<u32>>,
    /// `rate` for each group of the queue, unless the group has its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_rate: Option<Option<Rate>>,
}

/// One page of a queue's tasks, as `GET /v1/queues/{queue}/tasks` answers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub state: Option<TaskState>,
    pub kind: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Only the live task (scheduled, ready or running) holding this unique key.
    pub unique_key: Option<String>,
}
