//! The HTTP API: request and response shapes, their validation, and the handlers.

pub mod admin;
pub mod batch;
pub mod queues;
pub mod system;
pub mod tasks;

use crate::error::{ApiError, ErrorDetail};
use rota_core::{Json, Limits, NewTask, Task, TaskState, Timestamp};
use serde::{Deserialize, Serialize};

/// A task to enqueue. The same object, with only `tasks` set, enqueues a batch.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    /// The command name workers filter on. Default `default`.
    pub kind: Option<String>,
    /// Any JSON; stored and returned verbatim. Default `null`.
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<Json>,
    /// Higher runs first; FIFO within a priority. Default 0.
    pub priority: Option<i32>,
    /// Not before this time (RFC 3339). Exclusive with `delay_ms`.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub run_at: Option<Timestamp>,
    /// Not before this many milliseconds from now. Exclusive with `run_at`.
    pub delay_ms: Option<u64>,
    /// Attempts before the task is dead. Default: the queue's `max_attempts`.
    pub max_attempts: Option<u32>,
    /// While a task with this key is not final, enqueueing the key again returns that task.
    pub unique_key: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// A batch: `{"tasks": [task, ...]}`, with no other field set.
    #[schema(no_recursion)]
    pub tasks: Option<Vec<TaskInput>>,
}

pub const MAX_ATTEMPTS_CEILING: u32 = 10_000;

fn check_name(field: &str, value: &str, limits: &Limits) -> Result<(), ApiError> {
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

pub fn check_json_size(field: &str, value: &Json, limits: &Limits) -> Result<(), ApiError> {
    let n = value.get().len();
    if n > limits.max_payload_bytes {
        return Err(ApiError::too_large(format!(
            "{field} is {n} bytes; the limit is {} bytes (limits.max_payload_bytes)",
            limits.max_payload_bytes
        )));
    }
    Ok(())
}

impl TaskInput {
    fn is_single_task(&self) -> bool {
        self.kind.is_some()
            || self.payload.is_some()
            || self.priority.is_some()
            || self.run_at.is_some()
            || self.delay_ms.is_some()
            || self.max_attempts.is_some()
            || self.unique_key.is_some()
            || !self.tags.is_empty()
    }

    /// Splits the body into the tasks it asks for: one, or the `tasks` batch.
    pub fn into_batch(self, limits: &Limits) -> Result<(Vec<TaskInput>, bool), ApiError> {
        match self.tasks {
            Some(_) if self.is_single_task() => Err(ApiError::invalid(
                "send either one task or {\"tasks\": [...]}, not task fields beside `tasks`",
            )),
            Some(tasks) => {
                if tasks.is_empty() {
                    return Err(ApiError::invalid(
                        "`tasks` is empty; send at least one task",
                    ));
                }
                if tasks.len() > limits.max_batch {
                    return Err(ApiError::too_large(format!(
                        "{} tasks in one request; the limit is {} (limits.max_batch)",
                        tasks.len(),
                        limits.max_batch
                    )));
                }
                Ok((tasks, true))
            }
            None => Ok((vec![self], false)),
        }
    }

    /// Validates one task; `at` names it in messages (`tasks[3]` or `task`).
    pub fn validate(self, at: &str, now: Timestamp, limits: &Limits) -> Result<NewTask, ApiError> {
        if self.tasks.is_some() {
            return Err(ApiError::invalid(format!(
                "{at}.tasks: batches do not nest"
            )));
        }
        let kind = self.kind.unwrap_or_else(|| "default".to_owned());
        check_name(&format!("{at}.kind"), &kind, limits)?;
        let payload = self.payload.unwrap_or_else(rota_core::json_null);
        check_json_size(&format!("{at}.payload"), &payload, limits)?;
        let run_at = match (self.run_at, self.delay_ms) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(format!(
                    "{at}: set run_at or delay_ms, not both"
                )))
            }
            (Some(t), None) => {
                limits
                    .check_time(&format!("{at}.run_at"), t, now)
                    .map_err(ApiError::invalid)?;
                Some(t)
            }
            (None, Some(d)) => {
                limits
                    .check_delay(&format!("{at}.delay_ms"), d)
                    .map_err(ApiError::invalid)?;
                Some(now.plus_ms(d as i64))
            }
            (None, None) => None,
        };
        if let Some(m) = self.max_attempts {
            if m == 0 || m > MAX_ATTEMPTS_CEILING {
                return Err(ApiError::invalid(format!(
                    "{at}.max_attempts is {m}; use 1 to {MAX_ATTEMPTS_CEILING}"
                )));
            }
        }
        if let Some(k) = &self.unique_key {
            check_name(&format!("{at}.unique_key"), k, limits)?;
        }
        if self.tags.len() > limits.max_tags {
            return Err(ApiError::invalid(format!(
                "{at}.tags has {} tags; the limit is {} (limits.max_tags)",
                self.tags.len(),
                limits.max_tags
            )));
        }
        for t in &self.tags {
            check_name(&format!("{at}.tags[]"), t, limits)?;
        }
        Ok(NewTask {
            kind,
            payload,
            priority: self.priority.unwrap_or(0),
            run_at,
            max_attempts: self.max_attempts,
            unique_key: self.unique_key,
            tags: self.tags,
        })
    }
}

/// A task as enqueue answers it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnqueuedTask {
    #[serde(flatten)]
    pub task: Task,
    /// True when `unique_key` matched a live task, which is returned instead.
    pub duplicate: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EnqueuedBatch {
    pub tasks: Vec<EnqueuedTask>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One outcome per item of a batch complete or fail.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ItemOutcome {
    pub id: String,
    pub ok: bool,
    /// The task's state after the call, when `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchOutcome {
    pub items: Vec<ItemOutcome>,
}
