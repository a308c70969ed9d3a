//! Reads of queues and task lists on a read connection.

use crate::catalog::{Catalog, QueueEntry};
use crate::db_err;
use crate::rows::{task_from_row, TASK_COLUMNS};
use crate::shard::Shard;
use rota_core::{QueueInfo, QueueKey, Task, Timestamp};
use rota_store::{ListFilter, Page, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension};

impl Shard {
    /// The chosen queues (a snapshot of the catalog) with their stats, each with its tenant.
    pub(crate) async fn queue_infos(
        &self,
        choose: impl FnOnce(&Catalog) -> Vec<QueueEntry> + Send + 'static,
    ) -> StoreResult<Vec<(String, QueueInfo)>> {
        self.read(move |conn, shared| {
            let now = shared.clock.now();
            let entries = choose(&shared.catalog.read().unwrap_or_else(|e| e.into_inner()));
            entries
                .iter()
                .map(|q| {
                    let info = queue_info(conn, q, now, shared.shard).map_err(db_err)?;
                    Ok((q.key.tenant.clone(), info))
                })
                .collect()
        })
        .await
    }

    /// The live tasks holding a unique key in any of the tenant's queues: one probe of the
    /// unique-key index per queue, with the catalog unlocked meanwhile.
    pub(crate) async fn unique_holders(
        &self,
        tenant: &str,
        unique_key: &str,
    ) -> StoreResult<Vec<Task>> {
        let (tenant, key) = (tenant.to_owned(), unique_key.to_owned());
        self.read(move |conn, shared| {
            let queues: Vec<i64> = {
                let cat = shared.catalog.read().unwrap_or_else(|e| e.into_inner());
                cat.for_tenant(&tenant).iter().map(|q| q.id).collect()
            };
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE queue_id = ?1 AND unique_key = ?2 \
                     AND state IN ('scheduled', 'ready', 'running', 'waiting')"
                ))
                .map_err(db_err)?;
            let mut rows = Vec::new();
            for id in queues {
                let row = stmt
                    .query_row(rusqlite::params![id, key], task_from_row)
                    .optional()
                    .map_err(db_err)?;
                rows.extend(row);
            }
            let cat = shared.catalog.read().unwrap_or_else(|e| e.into_inner());
            Ok(rows
                .into_iter()
                .filter_map(|r| r.into_task_for(&cat, &tenant))
                .collect())
        })
        .await
    }

    /// A page of a queue's tasks, newest first.
    pub(crate) async fn list_tasks(
        &self,
        queue: &QueueKey,
        filter: ListFilter,
    ) -> StoreResult<Page> {
        let queue = queue.clone();
        self.read(move |conn, shared| {
            let qid = {
                let cat = shared.catalog.read().unwrap_or_else(|e| e.into_inner());
                cat.by_key(&queue)
                    .map(|q| q.id)
                    .ok_or_else(|| StoreError::QueueNotFound(queue.name.clone()))?
            };
            let mut sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE queue_id = ?");
            let mut args: Vec<rusqlite::types::Value> = vec![qid.into()];
            if let Some(state) = filter.state {
                sql.push_str(" AND state = ?");
                args.push(state.as_str().to_owned().into());
            }
            if let Some(kind) = filter.kind {
                sql.push_str(" AND kind = ?");
                args.push(kind.into());
            }
            if let Some(key) = filter.unique_key {
                // The states as literals, so the planner may use the partial index.
                sql.push_str(
                    " AND unique_key = ? AND state IN ('scheduled', 'ready', 'running', 'waiting')",
                );
                args.push(key.into());
            }
            if let Some(before) = filter.before {
                sql.push_str(" AND id < ?");
                args.push(before.as_i64().into());
            }
            let limit = filter.limit.max(1);
            // A literal, not `LIMIT ?`: see the claim query in writer.rs.
            sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), task_from_row)
                .map_err(db_err)?;
            let cat = shared.catalog.read().unwrap_or_else(|e| e.into_inner());
            let mut tasks = Vec::with_capacity(limit);
            for row in rows {
                let row = row.map_err(db_err)?;
                if let Some(t) = row.into_task_for(&cat, &queue.tenant) {
                    tasks.push(t);
                }
            }
            let next_cursor = if tasks.len() > limit {
                tasks.truncate(limit);
                tasks.last().map(|t| t.id)
            } else {
                None
            };
            Ok(Page { tasks, next_cursor })
        })
        .await
    }
}

/// The queue as the API shows it, read in `shard` at `now`.
pub(crate) fn queue_info(
    conn: &Connection,
    q: &QueueEntry,
    now: Timestamp,
    shard: usize,
) -> rusqlite::Result<QueueInfo> {
    let oldest_ready: Option<i64> = if q.counts.ready > 0 {
        conn.prepare_cached(
            "SELECT run_at FROM tasks WHERE queue_id = ?1 AND state = 'ready' ORDER BY id LIMIT 1",
        )?
        .query_row([q.id], |r| r.get(0))
        .optional()?
    } else {
        None
    };
    let next_start_at = match q.settings.rate {
        Some(rate) if q.counts.ready > 0 => {
            let tat: i64 = conn
                .prepare_cached("SELECT rate_tat_us FROM queues WHERE id = ?1")?
                .query_row([q.id], |r| r.get(0))?;
            rate.take(tat, now).is_none().then(|| rate.next_at(tat))
        }
        _ => None,
    };
    Ok(QueueInfo {
        name: q.key.name.clone(),
        settings: q.settings.clone(),
        counts: q.counts,
        oldest_ready_age_ms: oldest_ready.map(|t| now.0.saturating_sub(t).max(0) as u64),
        last_claim_at: q.last_claim_at,
        created_at: q.created_at,
        shard: Some(shard as u32),
        next_start_at,
    })
}
