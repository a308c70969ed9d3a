//! The audit log from the server's side: who makes a change and from where ([`Origin`],
//! [`Caller::audit`]), running a change with its entry waiting for the store ([`audited`]),
//! and reading the log ([`read`]). Engines write each entry in its change's transaction
//! (`rota_store::audit`).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use rota_core::audit::{AuditEntry, AuditFilter};
use rota_core::auth::actions;
use rota_store::audit::AuditPage;
use rota_store::DynStore;
use std::future::Future;
use std::net::SocketAddr;

/// `[audit]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How long the audit log keeps an entry (default a year).
    pub retention_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_ms: rota_core::audit::DEFAULT_AUDIT_RETENTION_MS,
        }
    }
}

impl AuditConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(3_600_000..=10 * 365 * 86_400_000).contains(&self.retention_ms) {
            return Err("audit.retention_ms must be at least an hour and at most ten years".into());
        }
        Ok(())
    }
}

/// The resource `audit:read` is asked on.
pub const RESOURCE: &str = "audit";

/// Where a request came from: its `X-Request-Id` and the address it was sent from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    pub source: Option<String>,
}

impl Origin {
    pub fn of(headers: &axum::http::HeaderMap, peer: Option<SocketAddr>) -> Origin {
        Origin {
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(128).collect()),
            source: peer.map(|p| p.ip().to_string()),
        }
    }
}

impl Caller {
    /// Who the caller is in the audit log: `key:<id>`, `jwt:<subject>`, or how the server
    /// names a caller that is neither (`admin token`, `anonymous (auth disabled)`).
    pub fn actor(&self) -> String {
        let p = &self.principal;
        if let Some(id) = &p.key_id {
            return format!("key:{id}");
        }
        match p.label.strip_prefix(crate::auth::JWT_LABEL) {
            Some(subject) => format!("jwt:{subject}"),
            None => p.label.clone(),
        }
    }

    /// An entry for a change the caller makes now in its tenant: `action` on `target`.
    pub fn audit(&self, action: &str, target: impl Into<String>) -> AuditEntry {
        AuditEntry {
            id: new_id(),
            at: self.now(),
            tenant: self.tenant.clone(),
            actor: self.actor(),
            action: action.to_owned(),
            target: target.into(),
            before: None,
            after: None,
            request_id: self.origin.request_id.clone(),
            source: self.origin.source.clone(),
        }
    }
}

/// A fresh entry id: a counter of this process in the top 24 of 63 bits, so entries made
/// here in one millisecond keep their order (the log is read by time, then id), and 39 random
/// bits below it, so ids from several servers do not meet.
pub fn new_id() -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xFF_FFFF;
    let low = rand::random::<u64>() & ((1 << 39) - 1);
    AuditEntry::id_of(((seq << 39) | low).max(1) as i64)
}

/// Adds what the change was asked to be, and what it replaced.
pub fn with(
    mut entry: AuditEntry,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> AuditEntry {
    entry.before = before.map(AuditEntry::bounded);
    entry.after = after.map(AuditEntry::bounded);
    entry
}

/// `value` as JSON, for an entry's `before` or `after`.
pub fn json<T: serde::Serialize>(value: &T) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}

/// Runs `change` (which makes one store write) with `entry` waiting to be written in its
/// transaction.
pub async fn audited<F: Future>(entry: AuditEntry, change: F) -> F::Output {
    rota_store::audit::scope(entry, change).await
}

/// The entries `caller` may read that pass `filter`: an admin's of every tenant (or of the
/// one it names), anyone else's of its own tenant only.
pub async fn read(
    store: &DynStore,
    caller: &Caller,
    mut filter: AuditFilter,
) -> ApiResult<AuditPage> {
    caller.require(actions::AUDIT_READ, RESOURCE)?;
    if !caller.principal.is_admin() {
        match &filter.tenant {
            Some(t) if t != &caller.tenant => {
                return Err(ApiError::new(
                    crate::error::ErrorKind::Forbidden,
                    "forbidden",
                    format!(
                        "only an admin reads the audit log of another tenant than its own (`{}`)",
                        caller.tenant
                    ),
                ))
            }
            _ => filter.tenant = Some(caller.tenant.clone()),
        }
    }
    Ok(store.audit(filter).await?)
}
