//! The nouns of Rota: tasks, their states, leases, queues and queue settings.

use crate::flow::Rate;
use crate::{Backoff, TaskId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;
use std::str::FromStr;

/// A JSON document kept verbatim (payloads, results, progress): Rota stores and returns the bytes
/// it was given without parsing them into a tree.
pub type Json = Box<RawValue>;

pub fn json_null() -> Json {
    RawValue::from_string("null".to_owned()).expect("null is JSON")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for `run_at`.
    Scheduled,
    /// Claimable now.
    Ready,
    /// Leased to a worker.
    Running,
    Succeeded,
    /// Attempts spent, or failed as dead: the dead-letter queue.
    Dead,
    Cancelled,
    /// Waiting for its dependencies (`depends_on`) to succeed; see docs/workflows.md. Last, so
    /// the other states keep the places engines store them by.
    Waiting,
}

impl TaskState {
    /// Every state, each at its [`TaskState::index`] (engines may store a state as its place).
    pub const ALL: [TaskState; 7] = [
        TaskState::Scheduled,
        TaskState::Ready,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Dead,
        TaskState::Cancelled,
        TaskState::Waiting,
    ];
    /// How many states there are (the length of arrays indexed by [`TaskState::index`]).
    pub const COUNT: usize = 7;
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Scheduled => "scheduled",
            TaskState::Ready => "ready",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Dead => "dead",
            TaskState::Cancelled => "cancelled",
            TaskState::Waiting => "waiting",
        }
    }
    /// Final states never change again except by an explicit retry (dead, cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Dead | TaskState::Cancelled
        )
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TaskState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
                format!("`{s}` is not a task state (one of {})", all.join(", "))
            })
    }
}

/// Who holds a running task, and the fencing token they must present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lease {
    pub worker: String,
    /// The fencing token to present on heartbeat, complete and fail. Shown only to a caller
    /// that may complete the task; absent for others.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptError {
    pub attempt: u32,
    pub message: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
}

/// A task as stored and as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "019ab8f0-2c4e-7000-8000-000000000000"))]
    pub id: TaskId,
    pub queue: String,
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub payload: Json,
    pub priority: i32,
    pub state: TaskState,
    pub attempt: u32,
    pub max_attempts: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub run_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// When its latest attempt was claimed; absent until it first is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<Timestamp>,
    pub lease: Option<Lease>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub progress: Option<Json>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub result: Option<Json>,
    pub errors: Vec<AttemptError>,
    pub unique_key: Option<String>,
    pub tags: Vec<String>,
    /// Where the task's final outcome is POSTed (see docs/webhooks.md, "Task results").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// The flow-control group (a customer, a token, an upstream) whose limits and turn the
    /// task takes; see docs/flow-control.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The tasks this one waits for (docs/workflows.md); empty for a task that waits for none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub depends_on: Vec<TaskId>,
    /// What a dependency that ends dead or cancelled does to this task.
    #[serde(default, skip_serializing_if = "OnDependencyFailure::is_default")]
    pub on_dependency_failure: OnDependencyFailure,
    /// The workflow the task belongs to, when it was submitted as one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// The W3C trace context the task continues (docs/telemetry.md): the enqueue's, or in a
    /// claim the attempt's, so a worker's spans join the producer's trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The vendors' part of the trace context, carried beside `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// A validated task to enqueue. `run_at` is absolute; `max_attempts` of `None` takes the queue's.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: String,
    pub payload: Json,
    pub priority: i32,
    pub run_at: Option<Timestamp>,
    pub max_attempts: Option<u32>,
    pub unique_key: Option<String>,
    /// What happens when `unique_key` is held by a live task; only read with a unique key.
    pub on_duplicate: OnDuplicate,
    pub tags: Vec<String>,
    pub callback_url: Option<String>,
    pub group: Option<String>,
    /// Tasks (of the same tenant, in any queue) that must succeed before this one may run.
    pub depends_on: Vec<TaskId>,
    pub on_dependency_failure: OnDependencyFailure,
    /// The workflow the task is submitted in (set by the workflow submission, not by clients).
    pub workflow: Option<String>,
    /// The W3C trace context it continues ([`crate::trace`]).
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// What a task does when one of its dependencies ends dead or cancelled (docs/workflows.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnDependencyFailure {
    /// The task is cancelled, with a reason naming the dependency (and so are its own
    /// dependents that cancel too).
    #[default]
    Cancel,
    /// The dependency counts as done: the task runs once every dependency is final.
    Run,
}

impl OnDependencyFailure {
    pub fn is_default(&self) -> bool {
        *self == OnDependencyFailure::Cancel
    }
    pub fn as_str(self) -> &'static str {
        match self {
            OnDependencyFailure::Cancel => "cancel",
            OnDependencyFailure::Run => "run",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cancel" => Some(OnDependencyFailure::Cancel),
            "run" => Some(OnDependencyFailure::Run),
            _ => None,
        }
    }
}

/// What an enqueue does when its `unique_key` is held by a live task (docs/tasks.md, "Unique
/// keys").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnDuplicate {
    /// The live task stays as it is and is answered instead (deduplication).
    #[default]
    Keep,
    /// A holder still waiting to run (`scheduled` or `ready`) takes the new task's fields in
    /// place, keeping its id ([`replaceable`]): a debounce. A running holder is kept as with
    /// `keep`.
    Replace,
}

/// Whether a live holder of a unique key in `state` may be replaced: only while it waits to
/// run. A running task's worker has the old payload already, so replacing it would leave the
/// answer and the work disagreeing.
pub fn replaceable(state: TaskState) -> bool {
    matches!(state, TaskState::Scheduled | TaskState::Ready)
}

/// A queue is named within a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    pub tenant: String,
    pub name: String,
}

impl QueueKey {
    pub fn new(tenant: impl Into<String>, name: impl Into<String>) -> Self {
        QueueKey {
            tenant: tenant.into(),
            name: name.into(),
        }
    }
}

pub const DEFAULT_TENANT: &str = "default";

/// Per-queue settings, with the defaults a queue gets on first enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueSettings {
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub lease_ms: u64,
    pub retention_ms: u64,
    pub paused: bool,
    /// Where the final outcome of the queue's tasks that name no `callback_url` is POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// At most this many of the queue's tasks running at once, over every worker and server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// At most `limit` of the queue's tasks started in any window of `period_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// `concurrency` for each group of the queue, unless the group has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_concurrency: Option<u32>,
    /// `rate` for each group of the queue, unless the group has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_rate: Option<Rate>,
}

impl QueueSettings {
    /// Whether a claim must count anything: a limit on the queue or on its groups.
    pub fn limited(&self) -> bool {
        self.concurrency.is_some()
            || self.rate.is_some()
            || self.group_concurrency.is_some()
            || self.group_rate.is_some()
    }
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            max_attempts: 25,
            backoff: Backoff::default(),
            lease_ms: 30_000,
            retention_ms: 7 * 24 * 3600 * 1000,
            paused: false,
            callback_url: None,
            concurrency: None,
            rate: None,
            group_concurrency: None,
            group_rate: None,
        }
    }
}

/// A change to queue settings: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuePatch {
    pub max_attempts: Option<u32>,
    pub backoff: Option<Backoff>,
    pub lease_ms: Option<u64>,
    pub retention_ms: Option<u64>,
    pub paused: Option<bool>,
    /// `Some(None)` clears it, as for the limits below.
    pub callback_url: Option<Option<String>>,
    pub concurrency: Option<Option<u32>>,
    pub rate: Option<Option<Rate>>,
    pub group_concurrency: Option<Option<u32>>,
    pub group_rate: Option<Option<Rate>>,
}

impl QueuePatch {
    pub fn apply(&self, s: &mut QueueSettings) {
        if let Some(v) = self.max_attempts {
            s.max_attempts = v;
        }
        if let Some(v) = self.backoff {
            s.backoff = v;
        }
        if let Some(v) = self.lease_ms {
            s.lease_ms = v;
        }
        if let Some(v) = self.retention_ms {
            s.retention_ms = v;
        }
        if let Some(v) = self.paused {
            s.paused = v;
        }
        if let Some(v) = &self.callback_url {
            s.callback_url = v.clone();
        }
        if let Some(v) = self.concurrency {
            s.concurrency = v;
        }
        if let Some(v) = self.rate {
            s.rate = v;
        }
        if let Some(v) = self.group_concurrency {
            s.group_concurrency = v;
        }
        if let Some(v) = self.group_rate {
            s.group_rate = v;
        }
    }

    /// The limits' rules (zero, too large); the message names the field.
    pub fn check_limits(&self) -> Result<(), String> {
        use crate::flow::check_concurrency;
        check_concurrency("concurrency", self.concurrency.flatten())?;
        check_concurrency("group_concurrency", self.group_concurrency.flatten())?;
        if let Some(Some(r)) = &self.rate {
            r.check("rate")?;
        }
        if let Some(Some(r)) = &self.group_rate {
            r.check("group_rate")?;
        }
        Ok(())
    }
}

/// Tasks of a queue counted by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateCounts {
    /// Waiting for dependencies (docs/workflows.md).
    #[serde(default)]
    pub waiting: u64,
    pub scheduled: u64,
    pub ready: u64,
    pub running: u64,
    pub succeeded: u64,
    pub dead: u64,
    pub cancelled: u64,
}

impl StateCounts {
    pub fn get_mut(&mut self, s: TaskState) -> &mut u64 {
        match s {
            TaskState::Scheduled => &mut self.scheduled,
            TaskState::Ready => &mut self.ready,
            TaskState::Running => &mut self.running,
            TaskState::Succeeded => &mut self.succeeded,
            TaskState::Dead => &mut self.dead,
            TaskState::Cancelled => &mut self.cancelled,
            TaskState::Waiting => &mut self.waiting,
        }
    }
    pub fn get(&self, s: TaskState) -> u64 {
        let mut c = *self;
        *c.get_mut(s)
    }
    pub fn total(&self) -> u64 {
        TaskState::ALL.iter().map(|s| self.get(*s)).sum()
    }
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &StateCounts) {
        for s in TaskState::ALL {
            *self.get_mut(s) += other.get(s);
        }
    }
    /// The states with tasks, in the order a task goes through them: `2 waiting, 1 ready`.
    pub fn summary(&self) -> String {
        use TaskState::*;
        [
            Waiting, Scheduled, Ready, Running, Succeeded, Dead, Cancelled,
        ]
        .into_iter()
        .filter(|s| self.get(*s) > 0)
        .map(|s| format!("{} {s}", self.get(s)))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// A queue as `GET /v1/queues/{queue}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueInfo {
    pub name: String,
    pub settings: QueueSettings,
    pub counts: StateCounts,
    /// How long the oldest ready task has been waiting, if any is ready.
    pub oldest_ready_age_ms: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_claim_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The embedded store's shard holding the queue (its file and writer); absent on
    /// PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// While the queue's `rate` holds ready tasks back: when the next may start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_start_at: Option<Timestamp>,
}

/// One queue as `GET /v1/queues/{queue}` shows it: the queue, and what its flow-control
/// limits hold back now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStats {
    #[serde(flatten)]
    pub queue: QueueInfo,
    pub flow: crate::flow_stats::FlowStats,
}
