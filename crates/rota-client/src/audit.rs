//! The audit log: every administrative change, who made it, from where, and what it changed
//! (docs/audit.md).

use crate::{processes, Client, Result};
use reqwest::Method;
use rota_core::Timestamp;
use serde::Deserialize;

pub use rota_core::audit::AuditEntry;

/// Which entries [`Client::audit`] reads; every field left `None` leaves that out.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// One tenant's entries (an admin sees every tenant's without it).
    pub tenant: Option<String>,
    /// `key:<id>`, `jwt:<subject>`, …
    pub actor: Option<String>,
    /// An action (`key.create`), or every action of an object (`key.`).
    pub action: Option<String>,
    /// `queues/<name>`, `keys/<id>`, …
    pub target: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// At most 500; the server's default, 100, when `None`.
    pub limit: Option<usize>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as [`AuditQuery::cursor`] for the next (older) page; `None` on the last.
    pub next_cursor: Option<String>,
}

impl Client {
    /// One page of the audit log.
    pub async fn audit(&self, q: &AuditQuery) -> Result<AuditPage> {
        let mut parts = vec![];
        let text = [
            ("tenant", &q.tenant),
            ("actor", &q.actor),
            ("action", &q.action),
            ("target", &q.target),
            ("cursor", &q.cursor),
        ];
        for (name, v) in text {
            if let Some(v) = v {
                parts.push(format!("{name}={}", processes::escape(v)));
            }
        }
        for (name, t) in [("since", q.since), ("until", q.until)] {
            if let Some(t) = t {
                parts.push(format!("{name}={}", processes::escape(&t.to_string())));
            }
        }
        if let Some(l) = q.limit {
            parts.push(format!("limit={l}"));
        }
        let path = format!("/v1/audit?{}", parts.join("&"));
        self.call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await
    }
}
