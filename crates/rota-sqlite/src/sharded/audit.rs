//! The audit log across shards: each entry lies in the shard that committed its change (see
//! `crate::audit`); a read merges every shard's newest entries.

use super::SqliteStore;
use crate::writer::Op;
use async_trait::async_trait;
use rota_core::audit::{AuditEntry, AuditFilter, MAX_AUDIT_PAGE};
use rota_store::audit::{merge, AuditLog, AuditPage};
use rota_store::StoreResult;

#[async_trait]
impl AuditLog for SqliteStore {
    async fn audit(&self, mut filter: AuditFilter) -> StoreResult<AuditPage> {
        filter.limit = filter.limit.clamp(1, MAX_AUDIT_PAGE);
        let limit = filter.limit;
        let pages = self
            .each(|s| {
                let f = filter.clone();
                s.read(move |conn, _| crate::audit::read(conn, &f).map_err(crate::db_err))
            })
            .await;
        Ok(merge(pages.into_iter().collect::<StoreResult<_>>()?, limit))
    }

    async fn record_audit(&self, entry: AuditEntry) -> StoreResult<()> {
        self.shards[0]
            .send(|r| Op::Audit(Box::new(entry), r))
            .await?
    }
}
