//! Rows to rota-core types and back.

use rota_core::flow::Rate;
use rota_core::{
    AttemptError, Backoff, Json, Lease, OnDependencyFailure, QueueInfo, QueueSettings, StateCounts,
    Task, TaskId, TaskState, Timestamp,
};
use rota_store::{StoreError, StoreResult};
use serde_json::value::RawValue;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// The task columns every task-returning statement selects, in this order, followed by the
/// queue's name (`t` is `rota_tasks`, `q` is `rota_queues`).
pub const TASK_COLUMNS: &str = "t.id, t.queue_id, t.kind, t.payload, t.priority, t.state, \
     t.run_at, t.attempt, t.max_attempts, t.created_at, t.updated_at, t.finished_at, \
     t.lease_worker, t.lease_token, t.lease_expires_at, t.progress, t.result, t.errors, \
     t.unique_key, t.tags, q.name, t.callback_url, t.grp, t.depends_on, t.dep_policy, \
     t.workflow, t.started_at, t.traceparent, t.tracestate";

/// How many columns [`TASK_COLUMNS`] has: a statement that selects more reads them from here.
pub const TASK_COLUMN_COUNT: usize = 29;

/// How many columns [`QUEUE_COLUMNS`] has: a statement that selects more reads them from here.
pub const QUEUE_COLUMN_COUNT: usize = 17;

/// The queue columns every queue-returning statement selects, in this order.
pub const QUEUE_COLUMNS: &str = "q.id, q.tenant, q.name, q.max_attempts, q.backoff_base_ms, \
     q.backoff_max_ms, q.lease_ms, q.retention_ms, q.paused, q.created_at, q.last_claim_at, \
     q.callback_url, q.concurrency, q.rate, q.group_concurrency, q.group_rate, \
     q.rate_tat_us";

pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("unreadable row: {what}"))
}

pub fn state_from_sql(v: i16) -> StoreResult<TaskState> {
    TaskState::ALL
        .get(usize::try_from(v).unwrap_or(usize::MAX))
        .copied()
        .ok_or_else(|| corrupt(format!("task state {v}")))
}

pub fn state_to_sql(s: TaskState) -> i16 {
    s.index() as i16
}

pub fn token_to_string(token: i64) -> String {
    format!("{:016x}", token as u64)
}

/// A lease token as the client sent it; `None` when it cannot be one of ours.
pub fn token_from_str(s: &str) -> Option<i64> {
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok().map(|v| v as i64)
}

fn raw(s: Option<String>) -> StoreResult<Option<Json>> {
    s.map(|s| RawValue::from_string(s).map_err(corrupt))
        .transpose()
}

pub fn errors_to_sql(errors: &[AttemptError]) -> Option<String> {
    (!errors.is_empty()).then(|| serde_json::to_string(errors).expect("errors serialize"))
}

pub fn tags_to_sql(tags: &[String]) -> Option<String> {
    (!tags.is_empty()).then(|| serde_json::to_string(tags).expect("tags serialize"))
}

/// A task row selected with [`TASK_COLUMNS`] starting at column 0, with its queue id.
pub fn task_from_row(r: &Row) -> StoreResult<(i64, Task)> {
    let get = |e: tokio_postgres::Error| corrupt(e);
    let lease_worker: Option<String> = r.try_get(12).map_err(get)?;
    let lease_token: Option<i64> = r.try_get(13).map_err(get)?;
    let lease_expires_at: Option<i64> = r.try_get(14).map_err(get)?;
    let lease = match (lease_worker, lease_token, lease_expires_at) {
        (Some(worker), Some(token), Some(at)) => Some(Lease {
            worker,
            token: token_to_string(token),
            expires_at: Timestamp(at),
        }),
        _ => None,
    };
    let errors: Option<String> = r.try_get(17).map_err(get)?;
    let errors = match errors {
        Some(s) => serde_json::from_str(&s).map_err(corrupt)?,
        None => Vec::new(),
    };
    let tags: Option<String> = r.try_get(19).map_err(get)?;
    let tags = match tags {
        Some(s) => serde_json::from_str(&s).map_err(corrupt)?,
        None => Vec::new(),
    };
    let payload: String = r.try_get(3).map_err(get)?;
    let attempt: i32 = r.try_get(7).map_err(get)?;
    let max_attempts: i32 = r.try_get(8).map_err(get)?;
    let task = Task {
        id: TaskId::from_i64(r.try_get(0).map_err(get)?),
        queue: r.try_get(20).map_err(get)?,
        kind: r.try_get(2).map_err(get)?,
        payload: RawValue::from_string(payload).map_err(corrupt)?,
        priority: r.try_get(4).map_err(get)?,
        state: state_from_sql(r.try_get(5).map_err(get)?)?,
        attempt: attempt.max(0) as u32,
        max_attempts: max_attempts.max(0) as u32,
        run_at: Timestamp(r.try_get(6).map_err(get)?),
        created_at: Timestamp(r.try_get(9).map_err(get)?),
        updated_at: Timestamp(r.try_get(10).map_err(get)?),
        finished_at: r.try_get::<_, Option<i64>>(11).map_err(get)?.map(Timestamp),
        started_at: r.try_get::<_, Option<i64>>(26).map_err(get)?.map(Timestamp),
        lease,
        progress: raw(r.try_get(15).map_err(get)?)?,
        result: raw(r.try_get(16).map_err(get)?)?,
        errors,
        unique_key: r.try_get(18).map_err(get)?,
        tags,
        callback_url: r.try_get(21).map_err(get)?,
        group: r.try_get(22).map_err(get)?,
        depends_on: match r.try_get::<_, Option<String>>(23).map_err(get)? {
            Some(s) => serde_json::from_str(&s).map_err(corrupt)?,
            None => Vec::new(),
        },
        on_dependency_failure: match r.try_get::<_, Option<i16>>(24).map_err(get)? {
            Some(1) => OnDependencyFailure::Run,
            _ => OnDependencyFailure::Cancel,
        },
        workflow: r
            .try_get::<_, Option<i64>>(25)
            .map_err(get)?
            .map(|w| TaskId::from_i64(w).to_string()),
        traceparent: r.try_get(27).map_err(get)?,
        tracestate: r.try_get(28).map_err(get)?,
    };
    Ok((r.try_get(1).map_err(get)?, task))
}

/// A queue's row selected with [`QUEUE_COLUMNS`] starting at column `at`.
pub struct QueueRow {
    pub id: i64,
    pub tenant: String,
    pub name: String,
    pub settings: QueueSettings,
    pub created_at: Timestamp,
    pub last_claim_at: Option<Timestamp>,
    /// The queue rate's state (GCRA's TAT, µs).
    pub rate_tat_us: i64,
}

pub fn queue_from_row(r: &Row, at: usize) -> StoreResult<QueueRow> {
    let get = |e: tokio_postgres::Error| corrupt(e);
    let u = |v: i64| v.max(0) as u64;
    let max_attempts: i32 = r.try_get(at + 3).map_err(get)?;
    Ok(QueueRow {
        id: r.try_get(at).map_err(get)?,
        tenant: r.try_get(at + 1).map_err(get)?,
        name: r.try_get(at + 2).map_err(get)?,
        settings: QueueSettings {
            max_attempts: max_attempts.max(0) as u32,
            backoff: Backoff {
                base_ms: u(r.try_get(at + 4).map_err(get)?),
                max_ms: u(r.try_get(at + 5).map_err(get)?),
            },
            lease_ms: u(r.try_get(at + 6).map_err(get)?),
            retention_ms: u(r.try_get(at + 7).map_err(get)?),
            paused: r.try_get(at + 8).map_err(get)?,
            callback_url: r.try_get(at + 11).map_err(get)?,
            concurrency: limit_from_sql(r.try_get(at + 12).map_err(get)?),
            rate: rate_from_sql(r.try_get(at + 13).map_err(get)?)?,
            group_concurrency: limit_from_sql(r.try_get(at + 14).map_err(get)?),
            group_rate: rate_from_sql(r.try_get(at + 15).map_err(get)?)?,
        },
        created_at: Timestamp(r.try_get(at + 9).map_err(get)?),
        last_claim_at: r
            .try_get::<_, Option<i64>>(at + 10)
            .map_err(get)?
            .map(Timestamp),
        rate_tat_us: r.try_get(at + 16).map_err(get)?,
    })
}

fn limit_from_sql(v: Option<i32>) -> Option<u32> {
    v.map(|v| v.max(0) as u32)
}

fn rate_from_sql(v: Option<String>) -> StoreResult<Option<Rate>> {
    v.map(|s| serde_json::from_str(&s).map_err(corrupt))
        .transpose()
}

fn rate_to_sql(r: &Option<Rate>) -> Option<String> {
    r.as_ref()
        .map(|r| serde_json::to_string(r).expect("rates serialize"))
}

/// Milliseconds as a BIGINT (settings are validated far below `i64::MAX`).
pub fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A queue's settings as the columns `max_attempts, backoff_base_ms, backoff_max_ms,
/// lease_ms, retention_ms, paused, callback_url, concurrency, rate, group_concurrency,
/// group_rate` hold them: the one conversion every write of them uses.
pub struct SettingsColumns {
    max_attempts: i32,
    backoff_base_ms: i64,
    backoff_max_ms: i64,
    lease_ms: i64,
    retention_ms: i64,
    paused: bool,
    callback_url: Option<String>,
    concurrency: Option<i32>,
    rate: Option<String>,
    group_concurrency: Option<i32>,
    group_rate: Option<String>,
}

/// The settings columns in [`SettingsColumns::params`]'s order.
pub const SETTINGS_COLUMNS: &str = "max_attempts, backoff_base_ms, backoff_max_ms, lease_ms, \
     retention_ms, paused, callback_url, concurrency, rate, group_concurrency, group_rate";

impl SettingsColumns {
    pub fn new(s: &QueueSettings) -> Self {
        SettingsColumns {
            max_attempts: i32::try_from(s.max_attempts).unwrap_or(i32::MAX),
            backoff_base_ms: ms(s.backoff.base_ms),
            backoff_max_ms: ms(s.backoff.max_ms),
            lease_ms: ms(s.lease_ms),
            retention_ms: ms(s.retention_ms),
            paused: s.paused,
            callback_url: s.callback_url.clone(),
            concurrency: s.concurrency.map(|c| c.min(i32::MAX as u32) as i32),
            rate: rate_to_sql(&s.rate),
            group_concurrency: s.group_concurrency.map(|c| c.min(i32::MAX as u32) as i32),
            group_rate: rate_to_sql(&s.group_rate),
        }
    }

    /// The eleven values in [`SETTINGS_COLUMNS`]' order.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.max_attempts,
            &self.backoff_base_ms,
            &self.backoff_max_ms,
            &self.lease_ms,
            &self.retention_ms,
            &self.paused,
            &self.callback_url,
            &self.concurrency,
            &self.rate,
            &self.group_concurrency,
            &self.group_rate,
        ]
    }
}

impl QueueRow {
    pub fn info(
        &self,
        counts: StateCounts,
        oldest_ready_run_at: Option<i64>,
        now: Timestamp,
    ) -> QueueInfo {
        QueueInfo {
            name: self.name.clone(),
            settings: self.settings.clone(),
            counts,
            oldest_ready_age_ms: oldest_ready_run_at.map(|t| now.0.saturating_sub(t).max(0) as u64),
            last_claim_at: self.last_claim_at,
            created_at: self.created_at,
            shard: None,
            next_start_at: self.settings.rate.and_then(|rate| {
                let held = counts.ready > 0 && rate.take(self.rate_tat_us, now).is_none();
                held.then(|| rate.next_at(self.rate_tat_us))
            }),
        }
    }
}

/// When a task that finished at `at` in a queue with `retention_ms` is deleted.
pub fn purge_at(at: Timestamp, retention_ms: u64) -> i64 {
    at.plus_ms(ms(retention_ms)).0
}

/// A task's dependencies as stored: a JSON array, NULL when none.
pub fn ids_to_sql(ids: &[TaskId]) -> Option<String> {
    (!ids.is_empty()).then(|| serde_json::to_string(ids).expect("ids serialize"))
}

/// `on_dependency_failure` as stored: 1 for run, NULL for cancel (the default).
pub fn dep_policy_to_sql(p: OnDependencyFailure) -> Option<i16> {
    match p {
        OnDependencyFailure::Cancel => None,
        OnDependencyFailure::Run => Some(1),
    }
}
