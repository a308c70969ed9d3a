//! Webhooks: endpoints that receive the tenant's events as signed POSTs, and their deliveries.

use crate::{Client, EventRecord, Result};
use reqwest::Method;
use rota_core::Timestamp;
use serde::{Deserialize, Serialize};

/// A new webhook.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewWebhook {
    pub url: String,
    /// Event types or patterns (`task.dead`, `task.*`).
    pub events: Vec<String>,
    /// Queue patterns; empty is every queue.
    pub queues: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookInfo {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub queues: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<Timestamp>,
    pub previous_secret_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Only when created or rotated.
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryInfo {
    pub id: i64,
    pub webhook_id: String,
    /// `pending`, `failed`, `dead` or `delivered`.
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub latency_ms: Option<u64>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub event: EventRecord,
}

impl Client {
    /// Creates a webhook; the answer carries its secret, shown this once.
    pub async fn create_webhook(&self, w: &NewWebhook) -> Result<WebhookInfo> {
        self.call(Method::POST, "/v1/webhooks", Some(w), Self::TIMEOUT)
            .await
    }

    pub async fn webhooks(&self) -> Result<Vec<WebhookInfo>> {
        #[derive(Deserialize)]
        struct L {
            webhooks: Vec<WebhookInfo>,
        }
        let l: L = self
            .call(Method::GET, "/v1/webhooks", None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(l.webhooks)
    }

    pub async fn webhook(&self, id: &str) -> Result<WebhookInfo> {
        let path = format!("/v1/webhooks/{id}");
        self.call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await
    }

    /// Changes a webhook: a JSON object with any of `url`, `events`, `queues`, `description`,
    /// `enabled`.
    pub async fn update_webhook(&self, id: &str, patch: &serde_json::Value) -> Result<WebhookInfo> {
        let path = format!("/v1/webhooks/{id}");
        self.call(Method::PATCH, &path, Some(patch), Self::TIMEOUT)
            .await
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        let path = format!("/v1/webhooks/{id}");
        let _: serde_json::Value = self
            .call(Method::DELETE, &path, None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(())
    }

    /// A new secret (in the answer); the old one keeps signing for `grace_ms` (default a day).
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        grace_ms: Option<u64>,
    ) -> Result<WebhookInfo> {
        let path = format!("/v1/webhooks/{id}/rotate-secret");
        let body = serde_json::json!({ "grace_ms": grace_ms });
        self.call(Method::POST, &path, Some(&body), Self::TIMEOUT)
            .await
    }

    /// A webhook's deliveries, newest first, optionally in one state.
    pub async fn deliveries(
        &self,
        id: &str,
        state: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<DeliveryInfo>> {
        #[derive(Deserialize)]
        struct L {
            deliveries: Vec<DeliveryInfo>,
        }
        let mut q = vec![];
        if let Some(s) = state {
            q.push(format!("state={s}"));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let path = format!("/v1/webhooks/{id}/deliveries?{}", q.join("&"));
        let l: L = self
            .call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(l.deliveries)
    }

    /// Creates the tenant's callback secret, which signs task results sent to their
    /// `callback_url`, or rotates it (the old one signs on for `grace_ms`, default a day).
    /// Answers the new secret.
    pub async fn rotate_callback_secret(&self, grace_ms: Option<u64>) -> Result<String> {
        #[derive(Deserialize)]
        struct S {
            secret: String,
        }
        let body = serde_json::json!({ "grace_ms": grace_ms });
        let s: S = self
            .call(
                Method::POST,
                "/v1/callbacks/rotate-secret",
                Some(&body),
                Self::TIMEOUT,
            )
            .await?;
        Ok(s.secret)
    }

    /// Sends a delivery again (a dead one included).
    pub async fn retry_delivery(&self, id: &str, delivery: i64) -> Result<DeliveryInfo> {
        let path = format!("/v1/webhooks/{id}/deliveries/{delivery}/retry");
        self.call(Method::POST, &path, None::<&()>, Self::TIMEOUT)
            .await
    }
}
