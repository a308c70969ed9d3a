//! Schedules: a task enqueued on every tick of a cron expression or an interval.

use crate::{Client, Result};
use reqwest::Method;
use rota_core::{TaskId, Timestamp};
use serde::{Deserialize, Serialize};

/// A schedule's definition (`PUT /v1/schedules/{name}`); `None` fields take the defaults.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScheduleDef {
    pub queue: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// `allow` or `skip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
    /// `none`, `latest` or `all`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRunInfo {
    pub tick: Timestamp,
    pub fired_at: Timestamp,
    pub task_id: Option<TaskId>,
    #[serde(default)]
    pub trigger: Option<String>,
    #[serde(default)]
    pub skipped: Option<String>,
    /// The task's state now (one schedule's GET only).
    #[serde(default)]
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    pub name: String,
    pub queue: String,
    pub kind: String,
    pub payload: Option<serde_json::Value>,
    pub priority: i32,
    pub max_attempts: Option<u32>,
    pub cron: Option<String>,
    pub every_ms: Option<u64>,
    pub timezone: String,
    pub overlap: String,
    pub catch_up: String,
    pub jitter_ms: u64,
    pub paused: bool,
    pub next_run_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub runs: Vec<ScheduleRunInfo>,
}

impl Client {
    /// Creates or replaces schedule `name`.
    pub async fn put_schedule(&self, name: &str, def: &ScheduleDef) -> Result<ScheduleInfo> {
        let path = format!("/v1/schedules/{name}");
        self.call(Method::PUT, &path, Some(def), Self::TIMEOUT)
            .await
    }

    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        #[derive(Deserialize)]
        struct L {
            schedules: Vec<ScheduleInfo>,
        }
        let l: L = self
            .call(Method::GET, "/v1/schedules", None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(l.schedules)
    }

    /// One schedule, with each run's task outcome.
    pub async fn schedule(&self, name: &str) -> Result<ScheduleInfo> {
        let path = format!("/v1/schedules/{name}");
        self.call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await
    }

    pub async fn delete_schedule(&self, name: &str) -> Result<()> {
        let path = format!("/v1/schedules/{name}");
        let _: serde_json::Value = self
            .call(Method::DELETE, &path, None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(())
    }

    /// `trigger` (enqueue now), `pause` or `resume`.
    pub async fn schedule_action(&self, name: &str, action: &str) -> Result<ScheduleInfo> {
        let path = format!("/v1/schedules/{name}/{action}");
        self.call(Method::POST, &path, None::<&()>, Self::TIMEOUT)
            .await
    }
}
