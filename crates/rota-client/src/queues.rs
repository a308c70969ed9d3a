//! Queues: their settings and counts, and purging them.

use crate::{Client, QueueInfo, QueueSettingsPatch, QueueStats, Result, TaskState};
use reqwest::Method;
use serde::Deserialize;

impl Client {
    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        #[derive(Deserialize)]
        struct Queues {
            queues: Vec<QueueInfo>,
        }
        let out: Queues = self
            .call(Method::GET, "/v1/queues", None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(out.queues)
    }

    pub async fn queue(&self, queue: &str) -> Result<QueueInfo> {
        self.call(
            Method::GET,
            &format!("/v1/queues/{queue}"),
            None::<&()>,
            Self::TIMEOUT,
        )
        .await
    }

    /// One queue with what its flow-control limits hold back now (`flow`).
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats> {
        self.call(
            Method::GET,
            &format!("/v1/queues/{queue}"),
            None::<&()>,
            Self::TIMEOUT,
        )
        .await
    }

    pub async fn update_queue(&self, queue: &str, patch: &QueueSettingsPatch) -> Result<QueueInfo> {
        self.call(
            Method::PATCH,
            &format!("/v1/queues/{queue}"),
            Some(patch),
            Self::TIMEOUT,
        )
        .await
    }

    pub async fn purge(&self, queue: &str, state: TaskState) -> Result<u64> {
        #[derive(Deserialize)]
        struct Purged {
            deleted: u64,
        }
        let out: Purged = self
            .call(
                Method::DELETE,
                &format!("/v1/queues/{queue}/tasks?state={state}"),
                None::<&()>,
                Self::TIMEOUT,
            )
            .await?;
        Ok(out.deleted)
    }
}
