//! The stored records of access control (tenants, API keys, custom roles) and the shapes the
//! API shows them in.

use super::{builtin_rules, Rule};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// Per-client flow control. `None` means "use the configured default"; 0 means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientLimits {
    /// Requests per sliding minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = Int64, maximum = 4_294_967_295_u64))]
    pub requests_per_minute: Option<u32>,
    /// Requests in flight at once (a waiting long-poll claim counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = Int64, maximum = 4_294_967_295_u64))]
    pub max_in_flight: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantRecord {
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[serde(default)]
    pub limits: ClientLimits,
    /// How long the tenant's events are kept; absent: the server's `events.retention_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_retention_ms: Option<u64>,
}

/// The shortest and longest retention a tenant's events may have.
pub const EVENT_RETENTION_RANGE_MS: (u64, u64) = (60_000, 3_650 * 86_400_000);

/// A change to a tenant: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// Replaces the tenant's limits; a field left out falls back to the configured default.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::objects::optional_object"
    )]
    pub limits: Option<ClientLimits>,
    /// How long its events are kept, in milliseconds; `null` goes back to the server's
    /// `events.retention_ms`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::objects::present"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<u64>, minimum = 60_000, maximum = 315_360_000_000_u64)
    )]
    pub event_retention_ms: Option<Option<u64>>,
}

impl TenantPatch {
    /// What is wrong with the change, naming the field.
    pub fn check(&self) -> Result<(), String> {
        if let Some(Some(ms)) = self.event_retention_ms {
            check_event_retention(ms)?;
        }
        Ok(())
    }

    pub fn apply(&self, t: &mut TenantRecord) {
        if let Some(l) = self.limits {
            t.limits = l;
        }
        if let Some(r) = self.event_retention_ms {
            t.event_retention_ms = r;
        }
    }
}

/// Checks a tenant's event retention against [`EVENT_RETENTION_RANGE_MS`].
pub fn check_event_retention(ms: u64) -> Result<(), String> {
    let (lo, hi) = EVENT_RETENTION_RANGE_MS;
    if (lo..=hi).contains(&ms) {
        Ok(())
    } else {
        Err(format!(
            "event_retention_ms is {ms}; use {lo} (a minute) to {hi} (ten years), or null for \
             the server's events.retention_ms"
        ))
    }
}

/// The name of [`TenantRecord::event_retention_ms`] in a stored tenant's JSON, for engines
/// that read it in SQL.
pub const EVENT_RETENTION_FIELD: &str = "event_retention_ms";

/// An API key as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The public part of the token, `rota_<id>_<secret>`.
    pub id: String,
    pub tenant: String,
    /// A label for people.
    #[serde(default)]
    pub name: Option<String>,
    /// SHA-256 of the whole token, lowercase hex.
    pub hash: String,
    pub roles: Vec<String>,
    /// Queue name patterns (`*` wildcards) the key is limited to; empty means every queue.
    #[serde(default)]
    pub queues: Vec<String>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    #[serde(default)]
    pub limits: ClientLimits,
    /// Dashboard sessions of this key issued at or before this time are refused: signing out
    /// (or out everywhere) moves it to now. Kept with the key so every server sharing the
    /// store refuses them; it only ever moves forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_valid_from: Option<Timestamp>,
    /// When the key's secret was last replaced (`POST /v1/keys/{id}/rotate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<Timestamp>,
    /// The secret before the last rotation, as `hash` is stored, and until when it is still
    /// accepted (the rotation's grace). Both or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_until: Option<Timestamp>,
    /// The last expiry notice logged for the key (`key.expiring`, then `key.expired`), so
    /// each is logged once (see `rota_store::AuthChange::KeyEvent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_notice: Option<String>,
}

/// The field of a stored key that holds its last expiry notice.
pub const EXPIRY_NOTICE_FIELD: &str = "expiry_notice";

/// The longest a rotated key's old secret may stay valid.
pub const MAX_ROTATION_GRACE_MS: u64 = 72 * 3_600_000;
/// How long the old secret stays valid when a rotation names no grace.
pub const DEFAULT_ROTATION_GRACE_MS: u64 = 24 * 3_600_000;

/// A key's rotation (`POST /v1/keys/{id}/rotate`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old secret is still accepted beside the new one, 0 (refused at once) to
    /// 259,200,000 (72 hours). Default 86,400,000 (a day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 259_200_000))]
    pub grace_ms: Option<u64>,
}

/// The name of [`KeyRecord::sessions_valid_from`] in a stored key's JSON, for engines that
/// move it forward in SQL.
pub const SESSIONS_VALID_FROM_FIELD: &str = "sessions_valid_from";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleRecord {
    pub tenant: String,
    pub name: String,
    pub rules: Vec<Rule>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// What a key is created with (`POST /v1/keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A label for people, 1 to 128 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub name: Option<String>,
    /// Built-in (`admin`, `tenant-admin`, `producer`, `worker`, `reader`) or custom role names
    /// that exist in the tenant; 1 to 16.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 16))]
    pub roles: Vec<String>,
    /// Queue name patterns (`*` wildcards) the key is limited to; empty or absent is every
    /// queue. At most 64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 64))]
    pub queues: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Expires this many seconds from now (1 to ten years). Exclusive with `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 315_360_000))]
    pub expires_in_s: Option<u64>,
    #[serde(default, deserialize_with = "crate::objects::object")]
    pub limits: ClientLimits,
}

/// An API key as the API shows it: the record without its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub queues: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Precise to about a second.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_used_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<Timestamp>,
    pub limits: ClientLimits,
    /// When its secret was last rotated.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub rotated_at: Option<Timestamp>,
    /// Until when the secret before the last rotation is still accepted.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub previous_secret_until: Option<Timestamp>,
}

impl From<KeyRecord> for KeyInfo {
    fn from(k: KeyRecord) -> Self {
        KeyInfo {
            id: k.id,
            tenant: k.tenant,
            name: k.name,
            roles: k.roles,
            queues: k.queues,
            expires_at: k.expires_at,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            limits: k.limits,
            rotated_at: k.rotated_at,
            previous_secret_until: k.previous_until,
        }
    }
}

/// The answer to key creation: the key and, this once, its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyInfo,
    /// The bearer token. Shown this once; Rota keeps only its SHA-256.
    pub token: String,
}

/// A role as the API shows it, built-in or custom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleInfo {
    pub name: String,
    pub builtin: bool,
    pub rules: Vec<Rule>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub updated_at: Option<Timestamp>,
}

impl RoleInfo {
    /// A built-in role, or `None` if `name` is not one.
    pub fn builtin(name: &str) -> Option<RoleInfo> {
        builtin_rules(name).map(|rules| RoleInfo {
            name: name.to_owned(),
            builtin: true,
            rules: rules.to_vec(),
            updated_at: None,
        })
    }
}

impl From<RoleRecord> for RoleInfo {
    fn from(r: RoleRecord) -> Self {
        RoleInfo {
            name: r.name,
            builtin: false,
            rules: r.rules,
            updated_at: Some(r.updated_at),
        }
    }
}

/// Who a credential is (`GET /v1/whoami`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    /// How the server names this credential: `key <id>`, `jwt subject <sub>`, `admin token`.
    pub principal: String,
    /// The credential's own tenant.
    pub tenant: String,
    /// The tenant this request acted in (differs for an admin using `Rota-Tenant`).
    pub acting_tenant: String,
    pub roles: Vec<String>,
    pub queues: Vec<String>,
    pub kinds: Option<Vec<String>>,
    /// The maintenance banner, while maintenance is on or announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::Maintenance>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_patch_tells_absent_from_null() {
        let p: TenantPatch = serde_json::from_str(r#"{"event_retention_ms": null}"#).unwrap();
        assert_eq!(p.event_retention_ms, Some(None));
        let p: TenantPatch = serde_json::from_str(r#"{"limits": {}}"#).unwrap();
        assert_eq!(p.event_retention_ms, None);
        let p: TenantPatch = serde_json::from_str(r#"{"event_retention_ms": 5}"#).unwrap();
        assert!(p.check().unwrap_err().contains("event_retention_ms is 5"));
        let mut t = TenantRecord {
            name: "acme".into(),
            created_at: Timestamp(0),
            limits: ClientLimits::default(),
            event_retention_ms: None,
        };
        TenantPatch {
            limits: None,
            event_retention_ms: Some(Some(3_600_000)),
        }
        .apply(&mut t);
        // Engines read the override by this name.
        let doc = serde_json::to_value(&t).unwrap();
        assert_eq!(doc[EVENT_RETENTION_FIELD], 3_600_000);
    }
}
