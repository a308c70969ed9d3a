//! Access control: who the token is, tenants (admin), API keys and roles.

use crate::{Client, Result};
use reqwest::Method;
use rota_core::auth::{
    ClientLimits, CreatedKey, KeyInfo, NewKey, RoleInfo, RotateKey, Rule, TenantPatch,
    TenantRecord, WhoAmI,
};
use serde::Deserialize;

impl Client {
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.call(Method::GET, "/v1/whoami", None::<&()>, Self::TIMEOUT)
            .await
    }

    pub async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        #[derive(Deserialize)]
        struct L {
            tenants: Vec<TenantRecord>,
        }
        let l: L = self
            .call(Method::GET, "/v1/admin/tenants", None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(l.tenants)
    }

    /// Creates a tenant; `event_retention_ms` `None` keeps its events as long as the server's
    /// `events.retention_ms`.
    pub async fn create_tenant(
        &self,
        name: &str,
        limits: ClientLimits,
        event_retention_ms: Option<u64>,
    ) -> Result<TenantRecord> {
        let body = serde_json::json!({
            "name": name, "limits": limits, "event_retention_ms": event_retention_ms
        });
        self.call(
            Method::POST,
            "/v1/admin/tenants",
            Some(&body),
            Self::TIMEOUT,
        )
        .await
    }

    /// Changes a tenant: only the fields the patch has.
    pub async fn update_tenant(&self, name: &str, patch: &TenantPatch) -> Result<TenantRecord> {
        self.call(
            Method::PATCH,
            &format!("/v1/admin/tenants/{name}"),
            Some(patch),
            Self::TIMEOUT,
        )
        .await
    }

    /// Deletes the tenant with its queues, tasks, keys and roles.
    pub async fn delete_tenant(&self, name: &str) -> Result<()> {
        self.call_raw(
            Method::DELETE,
            &format!("/v1/admin/tenants/{name}"),
            None::<&()>,
            Self::TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Creates a key in the acting tenant; the answer holds its token, shown this once.
    pub async fn create_key(&self, spec: &NewKey) -> Result<CreatedKey> {
        self.call(Method::POST, "/v1/keys", Some(spec), Self::TIMEOUT)
            .await
    }

    pub async fn keys(&self) -> Result<Vec<KeyInfo>> {
        #[derive(Deserialize)]
        struct L {
            keys: Vec<KeyInfo>,
        }
        let l: L = self
            .call(Method::GET, "/v1/keys", None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(l.keys)
    }

    /// Gives key `id` a new secret; the answer holds its new token, shown this once. The old
    /// secret is accepted for `grace_ms` more (the server's default, a day, when `None`).
    pub async fn rotate_key(&self, id: &str, grace_ms: Option<u64>) -> Result<CreatedKey> {
        let body = RotateKey { grace_ms };
        self.call(
            Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            Some(&body),
            Self::TIMEOUT,
        )
        .await
    }

    pub async fn revoke_key(&self, id: &str) -> Result<KeyInfo> {
        self.call(
            Method::DELETE,
            &format!("/v1/keys/{id}"),
            None::<&()>,
            Self::TIMEOUT,
        )
        .await
    }

    pub async fn roles(&self) -> Result<Vec<RoleInfo>> {
        #[derive(Deserialize)]
        struct L {
            roles: Vec<RoleInfo>,
        }
        let l: L = self
            .call(Method::GET, "/v1/roles", None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(l.roles)
    }

    /// One role, built-in or custom, with its rules.
    pub async fn role(&self, name: &str) -> Result<RoleInfo> {
        self.call(
            Method::GET,
            &format!("/v1/roles/{name}"),
            None::<&()>,
            Self::TIMEOUT,
        )
        .await
    }

    /// Creates or replaces a custom role; it applies to the next request of every key holding it.
    pub async fn put_role(&self, name: &str, rules: &[Rule]) -> Result<RoleInfo> {
        let body = serde_json::json!({ "rules": rules });
        self.call(
            Method::PUT,
            &format!("/v1/roles/{name}"),
            Some(&body),
            Self::TIMEOUT,
        )
        .await
    }

    pub async fn delete_role(&self, name: &str) -> Result<()> {
        self.call_raw(
            Method::DELETE,
            &format!("/v1/roles/{name}"),
            None::<&()>,
            Self::TIMEOUT,
        )
        .await
        .map(drop)
    }
}
