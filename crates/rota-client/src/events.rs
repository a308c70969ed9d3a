//! The event log: every task transition with a cursor that only grows, read page by page and
//! long-polled (`GET /v1/events`).

use crate::{Client, Result};
use reqwest::Method;
use rota_core::{TaskId, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One event as the server shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub cursor: i64,
    /// `task.enqueued`, `task.claimed`, `task.succeeded`, ..., `schedule.fired`,
    /// `delivery.dead`, ...
    #[serde(rename = "type")]
    pub event_type: String,
    pub at: Timestamp,
    pub queue: String,
    pub kind: String,
    /// Absent for a schedule's tick that enqueued nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    pub attempt: u32,
    /// What changed (`state`, `worker`, `error`, ...; `schedule`, `webhook_id`, ...), as the
    /// type has them.
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<EventRecord>,
    /// Pass as `after` to read on.
    pub next_cursor: i64,
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventOptions {
    /// Events after this cursor; 0 reads from the oldest retained.
    pub after: i64,
    /// Types or patterns (`task.dead`, `task.*`); empty is every type.
    pub types: Vec<String>,
    /// Queue names or patterns; empty is every queue.
    pub queues: Vec<String>,
    pub limit: Option<usize>,
    /// Wait up to this long for an event when there is none yet.
    pub wait_ms: Option<u64>,
}

impl Client {
    /// A page of the tenant's events (see [`EventOptions`]).
    pub async fn events(&self, opts: &EventOptions) -> Result<EventPage> {
        let mut q = vec![format!("after={}", opts.after)];
        if !opts.types.is_empty() {
            q.push(format!("types={}", opts.types.join(",")));
        }
        if !opts.queues.is_empty() {
            q.push(format!("queue={}", opts.queues.join(",")));
        }
        if let Some(l) = opts.limit {
            q.push(format!("limit={l}"));
        }
        if let Some(w) = opts.wait_ms {
            q.push(format!("wait_ms={w}"));
        }
        let timeout = Self::TIMEOUT + Duration::from_millis(opts.wait_ms.unwrap_or(0));
        let path = format!("/v1/events?{}", q.join("&"));
        self.call(Method::GET, &path, None::<&()>, timeout).await
    }
}
