//! The audit log as the store keeps it.
//!
//! An administrative change and its entry commit together: the server runs the store call
//! inside [`scope`] with the entry, and the engine's write for that call takes it ([`take`])
//! and writes it in the same transaction (SQLite: the same batch of the same shard's writer;
//! PostgreSQL: the same transaction). A call that fails writes no entry. The entry travels
//! beside the call rather than as an argument so that the store's ~40 methods keep their
//! shapes for the many callers that change nothing administrative (workers, maintenance,
//! tests); the conformance suite checks that every audited method of every engine takes it.
//! Inside a scope only the first write takes the entry, so a change made of several writes
//! is logged once. An engine whose one change may be tried in several places (a sharded
//! engine looking for the shard that holds a row) takes the entry itself and hands a copy to
//! each try ([`scope_opt`]): only a try that succeeds writes it, and reads drop copies
//! ([`merge`]).

use crate::StoreResult;
use async_trait::async_trait;
use rota_core::audit::{AuditEntry, AuditFilter};
use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static PENDING: RefCell<Option<AuditEntry>>;
}

/// Runs `fut` (a store call that makes an administrative change) with `entry` waiting for the
/// engine to write it in that change's transaction.
pub async fn scope<F: Future>(entry: AuditEntry, fut: F) -> F::Output {
    scope_opt(Some(entry), fut).await
}

/// [`scope`] with an entry that may be absent (one an engine took to hand on).
pub async fn scope_opt<F: Future>(entry: Option<AuditEntry>, fut: F) -> F::Output {
    PENDING.scope(RefCell::new(entry), fut).await
}

/// Changes the waiting entry (a layer between the scope and the store that learns the target,
/// such as the id of a key it makes). Nothing happens outside a scope.
pub fn amend(f: impl FnOnce(&mut AuditEntry)) {
    let _ = PENDING.try_with(|p| {
        if let Some(e) = p.borrow_mut().as_mut() {
            f(e)
        }
    });
}

/// The waiting entry, for the engine's write that will commit it; `None` outside a scope or
/// once taken.
pub fn take() -> Option<AuditEntry> {
    PENDING.try_with(|p| p.borrow_mut().take()).ok().flatten()
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Whether more entries pass the filter after the last one.
    pub more: bool,
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Entries that pass `filter`, newest first, at most `filter.limit` (capped at
    /// [`rota_core::audit::MAX_AUDIT_PAGE`]).
    async fn audit(&self, filter: AuditFilter) -> StoreResult<AuditPage>;
    /// Writes an entry for a change that is no store write of its own (a backup, a restore),
    /// durably, in a transaction of its own.
    async fn record_audit(&self, entry: AuditEntry) -> StoreResult<()>;
}

/// Merges pages read from several places (an engine's shards) into one, newest first, each
/// entry once.
pub fn merge(pages: Vec<AuditPage>, limit: usize) -> AuditPage {
    let more = pages.iter().any(|p| p.more);
    let mut entries: Vec<AuditEntry> = pages.into_iter().flat_map(|p| p.entries).collect();
    entries.sort_by_key(|e| std::cmp::Reverse((e.at, e.key())));
    entries.dedup_by(|a, b| (a.at, a.key()) == (b.at, b.key()));
    let more = more || entries.len() > limit;
    entries.truncate(limit);
    AuditPage { entries, more }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            id: AuditEntry::id_of(1),
            at: rota_core::Timestamp(1),
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

    #[tokio::test]
    async fn only_the_first_write_in_a_scope_takes_the_entry() {
        assert!(take().is_none());
        let (first, second) = scope(entry("queue.update"), async {
            amend(|e| e.target = "queues/r".into());
            (take(), take())
        })
        .await;
        assert_eq!(first.unwrap().target, "queues/r");
        assert!(second.is_none());
    }
}
