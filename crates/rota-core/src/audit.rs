//! The audit log: one entry per administrative change (a tenant, key, role, hook, queue
//! setting, group, purge, an operator's change to a task, a webhook, a schedule, maintenance
//! mode, a backup or restore), saying who made it, where from, what and to what. Engines write
//! an entry in the change's own transaction (`rota_store::audit`); this is its shape and its
//! rules.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// How long the audit log keeps an entry unless configured otherwise: a year.
pub const DEFAULT_AUDIT_RETENTION_MS: u64 = 365 * 24 * 3_600_000;

/// Most entries one read of the audit log returns.
pub const MAX_AUDIT_PAGE: usize = 500;

/// Longest `before` or `after` an entry keeps (bytes of JSON). A bigger value (a role with many
/// rules, say) is kept as `{"truncated": true, "bytes": n}`: the entry still says what changed.
pub const MAX_AUDIT_VALUE_BYTES: usize = 16 * 1024;

/// One administrative change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Unique, and with `at` the entry's place in the log (newest first); 16 hex digits.
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// The tenant the change was made in (for a server-wide change such as maintenance mode,
    /// the tenant of whoever made it).
    pub tenant: String,
    /// Who: `key:<key id>`, `jwt:<subject>`, `session:<key id>` (the dashboard), or
    /// `system:<what>` for the server itself (`rota restore`, say).
    pub actor: String,
    /// What, as `<object>.<verb>`: `key.create`, `queue.update`, `task.cancel`, … (the list is
    /// in docs/audit.md).
    pub action: String,
    /// What it was done to: `keys/<id>`, `queues/<name>`, `tasks/<id>`, `webhooks/<id>`, …
    pub target: String,
    /// The changed fields as they were, where it matters (settings, roles, limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub before: Option<serde_json::Value>,
    /// What was asked: the new settings, the role's rules, the change to a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub after: Option<serde_json::Value>,
    /// The request's `X-Request-Id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The address the request came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl AuditEntry {
    /// `id` as the integer an engine keys the entry by.
    pub fn key(&self) -> i64 {
        i64::from_str_radix(&self.id, 16).unwrap_or(0)
    }

    /// The id an engine's integer key is shown as.
    pub fn id_of(key: i64) -> String {
        format!("{key:016x}")
    }

    /// `value` as an entry keeps it: whole, or, past [`MAX_AUDIT_VALUE_BYTES`], a note of its
    /// size.
    pub fn bounded(value: serde_json::Value) -> serde_json::Value {
        let bytes = value.to_string().len();
        if bytes <= MAX_AUDIT_VALUE_BYTES {
            value
        } else {
            serde_json::json!({"truncated": true, "bytes": bytes})
        }
    }
}

/// Where a newest-first read of the log goes on from: the last entry it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCursor {
    pub at: Timestamp,
    pub key: i64,
}

impl AuditCursor {
    pub fn of(e: &AuditEntry) -> AuditCursor {
        AuditCursor {
            at: e.at,
            key: e.key(),
        }
    }

    /// `<at ms>.<id>`, opaque to clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at.0, AuditEntry::id_of(self.key))
    }

    /// The form [`AuditCursor::parse`] takes, exactly: up to 15 digits of milliseconds, a
    /// dot, and 16 lowercase hex digits of a positive 64-bit integer.
    pub const PATTERN: &'static str = "^[0-9]{1,15}\\.[0-7][0-9a-f]{15}$";

    pub fn parse(s: &str) -> Result<AuditCursor, String> {
        let bad = || format!("cursor `{s}` is not one this server gave");
        let (at, id) = s.split_once('.').ok_or_else(bad)?;
        let digits = |t: &str, n: usize| {
            !t.is_empty() && t.len() <= n && t.bytes().all(|b| b.is_ascii_digit())
        };
        let hex = id.len() == 16
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && id.as_bytes()[0] <= b'7';
        if !digits(at, 15) || !hex {
            return Err(bad());
        }
        let at = at.parse::<i64>().map_err(|_| bad())?;
        let key = i64::from_str_radix(id, 16).map_err(|_| bad())?;
        Ok(AuditCursor {
            at: Timestamp(at),
            key,
        })
    }

    /// Whether `e` comes after this cursor in newest-first order.
    pub fn before(&self, e: &AuditEntry) -> bool {
        (e.at, e.key()) < (self.at, self.key)
    }
}

/// Which entries a read returns, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// `None`: every tenant (an admin's read).
    pub tenant: Option<String>,
    pub actor: Option<String>,
    /// An action (`key.create`), or every action of an object (`key.`, ending in a dot).
    pub action: Option<String>,
    pub target: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Only entries before this time.
    pub until: Option<Timestamp>,
    /// Only entries after this cursor (older than the last entry of the previous page).
    pub after: Option<AuditCursor>,
    pub limit: usize,
}

impl AuditFilter {
    /// Whether `e` passes every condition but the limit (engines filter in SQL; this is the
    /// same rule, for merging and tests).
    pub fn keeps(&self, e: &AuditEntry) -> bool {
        let action = match &self.action {
            None => true,
            Some(a) if a.ends_with('.') => e.action.starts_with(a.as_str()),
            Some(a) => &e.action == a,
        };
        self.tenant.as_ref().is_none_or(|t| &e.tenant == t)
            && self.actor.as_ref().is_none_or(|a| &e.actor == a)
            && action
            && self.target.as_ref().is_none_or(|t| &e.target == t)
            && self.since.is_none_or(|s| e.at >= s)
            && self.until.is_none_or(|u| e.at < u)
            && self.after.is_none_or(|c| c.before(e))
    }

    /// The action filter as a SQL `LIKE` pattern's prefix, or the exact action.
    pub fn action_prefix(&self) -> Option<&str> {
        self.action.as_deref().filter(|a| a.ends_with('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, key: i64, action: &str) -> AuditEntry {
        AuditEntry {
            id: AuditEntry::id_of(key),
            at: Timestamp(at),
            tenant: "t".into(),
            actor: "key:k".into(),
            action: action.into(),
            target: "queues/q".into(),
            before: None,
            after: None,
            request_id: None,
            source: None,
        }
    }

    #[test]
    fn cursors_round_trip_and_order_newest_first() {
        let e = entry(1_000, 0x7fff_0000_0000_0001, "queue.update");
        let c = AuditCursor::parse(&AuditCursor::of(&e).encode()).unwrap();
        assert_eq!(c, AuditCursor::of(&e));
        assert!(c.before(&entry(999, i64::MAX, "x")));
        assert!(c.before(&entry(1_000, 5, "x")));
        assert!(!c.before(&e));
        assert!(!c.before(&entry(1_001, 0, "x")));
        assert!(AuditCursor::parse("12").is_err());
        assert!(AuditCursor::parse("12.zz").is_err());
    }

    #[test]
    fn an_action_ending_in_a_dot_is_every_action_of_its_object() {
        let f = AuditFilter {
            action: Some("key.".into()),
            ..Default::default()
        };
        assert!(f.keeps(&entry(1, 1, "key.create")));
        assert!(!f.keeps(&entry(1, 1, "keys.create")));
        let exact = AuditFilter {
            action: Some("key.create".into()),
            ..Default::default()
        };
        assert!(!exact.keeps(&entry(1, 1, "key.createx")));
    }

    #[test]
    fn big_values_are_kept_as_their_size() {
        let small = serde_json::json!({"a": 1});
        assert_eq!(AuditEntry::bounded(small.clone()), small);
        let big = serde_json::json!({"a": "x".repeat(MAX_AUDIT_VALUE_BYTES)});
        assert_eq!(AuditEntry::bounded(big)["truncated"], true);
    }
}
