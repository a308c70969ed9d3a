//! Mapping between `tasks` rows and [`Task`] values.

use crate::catalog::Catalog;
use rota_core::{
    AttemptError, Json, Lease, OnDependencyFailure, Task, TaskId, TaskState, Timestamp,
};
use rusqlite::Row;
use serde_json::value::RawValue;

/// The columns [`task_from_row`] reads, in order.
pub const TASK_COLUMNS: &str = "id, queue_id, kind, payload, priority, state, run_at, attempt, \
     max_attempts, created_at, updated_at, finished_at, lease_worker, lease_token, \
     lease_expires_at, progress, result, errors, unique_key, tags, callback_url, grp, \
     depends_on, dep_policy, workflow, started_at, traceparent, tracestate";

/// A task row before its queue id is resolved to a name.
pub struct TaskRow {
    pub queue_id: i64,
    pub task: Task,
}

fn json(s: Option<String>) -> rusqlite::Result<Option<Json>> {
    s.map(|s| {
        RawValue::from_string(s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

fn parse_json_list<T: serde::de::DeserializeOwned>(s: Option<String>) -> rusqlite::Result<Vec<T>> {
    match s {
        None => Ok(Vec::new()),
        Some(s) => serde_json::from_str(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        }),
    }
}

pub fn state_from_sql(s: &str) -> rusqlite::Result<TaskState> {
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

pub fn token_to_string(token: i64) -> String {
    format!("{:016x}", token as u64)
}

pub fn task_from_row(row: &Row<'_>) -> rusqlite::Result<TaskRow> {
    let state: String = row.get(5)?;
    let lease_worker: Option<String> = row.get(12)?;
    let lease_token: Option<i64> = row.get(13)?;
    let lease_expires_at: Option<i64> = row.get(14)?;
    let lease = match (lease_worker, lease_token, lease_expires_at) {
        (Some(worker), Some(token), Some(exp)) => Some(Lease {
            worker,
            token: token_to_string(token),
            expires_at: Timestamp(exp),
        }),
        _ => None,
    };
    let task = Task {
        id: TaskId::from_i64(row.get(0)?),
        queue: String::new(),
        kind: row.get(2)?,
        payload: json(Some(row.get(3)?))?.expect("payload is NOT NULL"),
        priority: row.get(4)?,
        state: state_from_sql(&state)?,
        run_at: Timestamp(row.get(6)?),
        attempt: row.get(7)?,
        max_attempts: row.get(8)?,
        created_at: Timestamp(row.get(9)?),
        updated_at: Timestamp(row.get(10)?),
        finished_at: row.get::<_, Option<i64>>(11)?.map(Timestamp),
        started_at: row.get::<_, Option<i64>>(25)?.map(Timestamp),
        lease,
        progress: json(row.get(15)?)?,
        result: json(row.get(16)?)?,
        errors: parse_json_list::<AttemptError>(row.get(17)?)?,
        unique_key: row.get(18)?,
        tags: parse_json_list::<String>(row.get(19)?)?,
        callback_url: row.get(20)?,
        group: row.get(21)?,
        depends_on: parse_json_list::<TaskId>(row.get(22)?)?,
        on_dependency_failure: match row.get::<_, Option<String>>(23)?.as_deref() {
            Some("run") => OnDependencyFailure::Run,
            _ => OnDependencyFailure::Cancel,
        },
        workflow: row
            .get::<_, Option<i64>>(24)?
            .map(|w| TaskId::from_i64(w).to_string()),
        traceparent: row.get(26)?,
        tracestate: row.get(27)?,
    };
    Ok(TaskRow {
        queue_id: row.get(1)?,
        task,
    })
}

impl TaskRow {
    /// The task with its queue name, if its queue belongs to `tenant`.
    pub fn into_task_for(self, catalog: &Catalog, tenant: &str) -> Option<Task> {
        let q = catalog.by_id(self.queue_id)?;
        if q.key.tenant != tenant {
            return None;
        }
        let mut t = self.task;
        t.queue = q.key.name.clone();
        Some(t)
    }
}

pub fn errors_to_sql(errors: &[AttemptError]) -> Option<String> {
    if errors.is_empty() {
        None
    } else {
        Some(serde_json::to_string(errors).expect("errors serialize"))
    }
}

pub fn tags_to_sql(tags: &[String]) -> Option<String> {
    if tags.is_empty() {
        None
    } else {
        Some(serde_json::to_string(tags).expect("tags serialize"))
    }
}

pub fn ids_to_sql(ids: &[TaskId]) -> Option<String> {
    if ids.is_empty() {
        None
    } else {
        Some(serde_json::to_string(ids).expect("ids serialize"))
    }
}

pub fn dep_policy_to_sql(p: OnDependencyFailure) -> Option<&'static str> {
    match p {
        OnDependencyFailure::Cancel => None,
        OnDependencyFailure::Run => Some("run"),
    }
}
