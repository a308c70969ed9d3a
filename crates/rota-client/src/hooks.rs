//! Inbound webhooks ("hooks"): a public URL, `POST /hooks/{id}`, that turns a provider's
//! signed request (GitHub, GitLab, Stripe, or Rota's own signature) into a task of one queue
//! and kind; and their recent requests.

use crate::{Client, Result};
use reqwest::Method;
use rota_core::hooks::Verify;
use rota_core::{TaskId, Timestamp};
use serde::{Deserialize, Serialize};

/// A new hook.
#[derive(Debug, Clone, Serialize)]
pub struct NewHook {
    /// Unique in the tenant.
    pub name: String,
    /// Where its tasks go, and their kind.
    pub queue: String,
    pub kind: String,
    /// How its requests are proven.
    pub verify: Verify,
    /// The secret as the provider knows it; `None`: the server makes one (in the answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A change to a hook: only the fields given change.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HookUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `false` refuses its requests (403) until it is `true` again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookInfo {
    pub id: String,
    pub name: String,
    /// Where the provider sends (`POST`, no bearer token).
    pub url: String,
    pub queue: String,
    pub kind: String,
    pub verify: Verify,
    pub enabled: bool,
    pub description: Option<String>,
    /// The credential its requests enqueue as (its last writer).
    pub owner: Option<String>,
    /// Until when the previous secret is still accepted (after a rotation).
    pub previous_secret_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Only when created or rotated: the secret, shown this once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// One request a hook answered (on the server asked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRequestInfo {
    pub at: Timestamp,
    /// `received`, `duplicate` (a redelivery: the earlier task was found) or `rejected`.
    pub outcome: String,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The provider's delivery id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// The address it came from.
    pub address: String,
}

impl Client {
    /// Creates a hook; the answer carries its URL and its secret, shown this once.
    pub async fn create_hook(&self, h: &NewHook) -> Result<HookInfo> {
        self.call(Method::POST, "/v1/hooks", Some(h), Self::TIMEOUT)
            .await
    }

    /// The tenant's hooks the credential may read, by name.
    pub async fn hooks(&self) -> Result<Vec<HookInfo>> {
        #[derive(Deserialize)]
        struct L {
            hooks: Vec<HookInfo>,
        }
        let l: L = self
            .call(Method::GET, "/v1/hooks", None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(l.hooks)
    }

    pub async fn hook(&self, id: &str) -> Result<HookInfo> {
        let path = format!("/v1/hooks/{id}");
        self.call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await
    }

    /// Changes a hook; the writer becomes its owner (whose permissions its requests use).
    pub async fn update_hook(&self, id: &str, change: &HookUpdate) -> Result<HookInfo> {
        let path = format!("/v1/hooks/{id}");
        self.call(Method::PATCH, &path, Some(change), Self::TIMEOUT)
            .await
    }

    pub async fn delete_hook(&self, id: &str) -> Result<()> {
        let path = format!("/v1/hooks/{id}");
        let _: serde_json::Value = self
            .call(Method::DELETE, &path, None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(())
    }

    /// A new secret (`secret`, or one made; in the answer); the old one is still accepted for
    /// `grace_ms` (the server's default, a day, when `None`; `Some(0)` refuses it at once).
    pub async fn rotate_hook_secret(
        &self,
        id: &str,
        grace_ms: Option<u64>,
        secret: Option<&str>,
    ) -> Result<HookInfo> {
        #[derive(Serialize)]
        struct B<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            grace_ms: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            secret: Option<&'a str>,
        }
        let path = format!("/v1/hooks/{id}/rotate-secret");
        self.call(
            Method::POST,
            &path,
            Some(&B { grace_ms, secret }),
            Self::TIMEOUT,
        )
        .await
    }

    /// The hook's recent requests on the server asked (its last 50), newest first.
    pub async fn hook_requests(&self, id: &str) -> Result<Vec<HookRequestInfo>> {
        #[derive(Deserialize)]
        struct L {
            requests: Vec<HookRequestInfo>,
        }
        let path = format!("/v1/hooks/{id}/requests");
        let l: L = self
            .call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(l.requests)
    }
}
