//! The audit log on PostgreSQL: `rota_audit`, one row per administrative change, written in
//! the change's transaction by the method that takes the waiting entry
//! (`rota_store::audit::take`).

use crate::{db, PostgresStore};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rota_core::audit::{AuditEntry, AuditFilter, MAX_AUDIT_PAGE};
use rota_core::Timestamp;
use rota_store::audit::{AuditLog, AuditPage};
use rota_store::StoreResult;

/// Writes `entry`, if any, with `c` (the change's transaction).
pub(crate) async fn write(c: &impl GenericClient, entry: Option<&AuditEntry>) -> StoreResult<()> {
    let Some(e) = entry else { return Ok(()) };
    let doc = serde_json::to_string(e).expect("an audit entry serializes");
    c.execute(
        "INSERT INTO rota_audit (at, id, tenant, actor, action, target, doc) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        &[
            &e.at.0,
            &e.key(),
            &e.tenant,
            &e.actor,
            &e.action,
            &e.target,
            &doc,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Deletes up to `chunk` entries older than `cutoff`; true when there may be more.
pub(crate) async fn trim(
    c: &impl GenericClient,
    cutoff: Timestamp,
    chunk: i64,
) -> StoreResult<bool> {
    let n = c
        .execute(
            "DELETE FROM rota_audit WHERE (at, id) IN \
             (SELECT at, id FROM rota_audit WHERE at < $1 ORDER BY at LIMIT $2)",
            &[&cutoff.0, &chunk],
        )
        .await
        .map_err(db)?;
    Ok(n == chunk as u64)
}

#[async_trait]
impl AuditLog for PostgresStore {
    async fn audit(&self, f: AuditFilter) -> StoreResult<AuditPage> {
        let limit = f.limit.clamp(1, MAX_AUDIT_PAGE);
        let (exact, prefix) = match (f.action.as_deref(), f.action_prefix()) {
            (_, Some(p)) => (None, Some(p)),
            (a, None) => (a, None),
        };
        let (after_at, after_id) = (f.after.map(|c| c.at.0), f.after.map(|c| c.key));
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT doc FROM rota_audit \
                 WHERE ($1::text IS NULL OR tenant = $1) \
                 AND ($2::text IS NULL OR actor = $2) \
                 AND ($3::text IS NULL OR action = $3) \
                 AND ($4::text IS NULL OR left(action, length($4)) = $4) \
                 AND ($5::text IS NULL OR target = $5) \
                 AND ($6::bigint IS NULL OR at >= $6) \
                 AND ($7::bigint IS NULL OR at < $7) \
                 AND ($8::bigint IS NULL OR (at, id) < ($8, $9::bigint)) \
                 ORDER BY at DESC, id DESC LIMIT $10",
                &[
                    &f.tenant,
                    &f.actor,
                    &exact,
                    &prefix,
                    &f.target,
                    &f.since.map(|t| t.0),
                    &f.until.map(|t| t.0),
                    &after_at,
                    &after_id,
                    &(limit as i64 + 1),
                ],
            )
            .await
            .map_err(db)?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let doc: String = row.get(0);
            match serde_json::from_str::<AuditEntry>(&doc) {
                Ok(e) => entries.push(e),
                Err(e) => {
                    tracing::error!(error = %e, "an audit entry is unreadable; it is skipped")
                }
            }
        }
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok(AuditPage { entries, more })
    }

    async fn record_audit(&self, entry: AuditEntry) -> StoreResult<()> {
        write(&self.conn().await?, Some(&entry)).await
    }
}
