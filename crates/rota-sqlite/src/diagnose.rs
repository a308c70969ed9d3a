//! `Store::diagnose` on a read connection: the newest events summed per queue, ready kinds by
//! a skip scan of the ready-kind index, and far-scheduled tasks from the scheduled index.

use crate::db_err;
use crate::events::type_code;
use crate::shard::Shard;
use rota_core::events::EventType;
use rota_core::Timestamp;
use rota_store::{add_minutes, top_errors, Diagnosis, StoreResult, DIAGNOSE_SCAN, READY_KINDS};
use rusqlite::{params, OptionalExtension};

impl Shard {
    pub(crate) async fn read_diagnosis(
        &self,
        tenant: &str,
        since: Timestamp,
        far: Timestamp,
    ) -> StoreResult<Diagnosis> {
        let tenant = tenant.to_owned();
        self.read(move |conn, _| {
            let mut d = Diagnosis::default();
            let newest: i64 = conn
                .query_row("SELECT COALESCE(max(cursor), 0) FROM events", [], |r| {
                    r.get(0)
                })
                .map_err(db_err)?;
            let lo = newest - DIAGNOSE_SCAN;
            if lo > 0 {
                let at: Option<i64> = conn
                    .query_row(
                        "SELECT at FROM events WHERE cursor <= ?1 ORDER BY cursor DESC LIMIT 1",
                        [lo],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db_err)?;
                d.truncated = at.is_some_and(|at| at >= since.0);
            }
            let scope = "FROM events e JOIN queues q ON q.id = e.queue_id \
                         WHERE e.cursor > ?1 AND q.tenant = ?2 AND e.at >= ?3";
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT q.name, e.type, count(*) {scope} GROUP BY q.name, e.type"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![lo, tenant, since.0], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(db_err)?;
            for row in rows {
                let (queue, code, n) = row.map_err(db_err)?;
                if let Some(t) = usize::try_from(code)
                    .ok()
                    .and_then(|i| EventType::ALL.get(i))
                {
                    let q = d.queues.entry(queue).or_default();
                    *q.events.entry(*t).or_default() += n.max(0) as u64;
                }
            }
            let (failed, dead) = (type_code(EventType::Failed), type_code(EventType::Dead));
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT q.name, e.error, count(*) {scope} AND e.type IN ({failed}, {dead}) \
                     AND e.error IS NOT NULL GROUP BY q.name, e.error"
                ))
                .map_err(db_err)?;
            let errors = stmt
                .query_map(params![lo, tenant, since.0], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
                })
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)?;
            top_errors(errors, &mut d);
            let succeeded = type_code(EventType::Succeeded);
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT q.name, e.at / 60000, e.type, count(*) {scope} \
                     AND e.type IN ({succeeded}, {failed}, {dead}) GROUP BY 1, 2, 3"
                ))
                .map_err(db_err)?;
            let minutes = stmt
                .query_map(params![lo, tenant, since.0], |r| {
                    let code: i64 = r.get(2)?;
                    let t = usize::try_from(code)
                        .ok()
                        .and_then(|i| EventType::ALL.get(i).copied())
                        .unwrap_or(EventType::Enqueued);
                    Ok((r.get(0)?, r.get(1)?, t, r.get::<_, i64>(3)?.max(0) as u64))
                })
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)?;
            add_minutes(minutes, &mut d);
            // Ready kinds: one index probe per kind.
            let queues: Vec<(i64, String)> = conn
                .prepare_cached("SELECT id, name FROM queues WHERE tenant = ?1")
                .and_then(|mut s| {
                    s.query_map([&tenant], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .map_err(db_err)?;
            let mut next_kind = conn
                .prepare_cached(
                    "SELECT kind FROM tasks WHERE queue_id = ?1 AND state = 'ready' AND kind > ?2 \
                     ORDER BY kind LIMIT 1",
                )
                .map_err(db_err)?;
            for (id, name) in queues {
                let mut kinds = Vec::new();
                let mut after = String::new();
                while kinds.len() < READY_KINDS {
                    let next: Option<String> = next_kind
                        .query_row(params![id, after], |r| r.get(0))
                        .optional()
                        .map_err(db_err)?;
                    let Some(k) = next else { break };
                    after = k.clone();
                    kinds.push(k);
                }
                if !kinds.is_empty() {
                    d.queues.entry(name).or_default().ready_kinds = kinds;
                }
            }
            let mut stmt = conn
                .prepare(
                    "SELECT q.name, count(*), max(t.run_at) FROM tasks t \
                     JOIN queues q ON q.id = t.queue_id WHERE t.state = 'scheduled' \
                     AND t.run_at > ?1 AND q.tenant = ?2 GROUP BY q.name",
                )
                .map_err(db_err)?;
            let far_rows = stmt
                .query_map(params![far.0, tenant], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(db_err)?;
            for row in far_rows {
                let (queue, n, latest) = row.map_err(db_err)?;
                let q = d.queues.entry(queue).or_default();
                q.far_scheduled = n.max(0) as u64;
                q.latest_run_at = Some(Timestamp(latest));
            }
            Ok(d)
        })
        .await
    }
}
