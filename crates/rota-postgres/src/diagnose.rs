//! `Store::diagnose`: the tenant's newest events summed per queue (through the primary key,
//! newest first), ready kinds by a skip scan of the ready-kind index, far-scheduled tasks from
//! the scheduled index.

use crate::rows::state_to_sql;
use crate::{db, PostgresStore};
use rota_core::events::EventType;
use rota_core::{TaskState, Timestamp};
use rota_store::{add_minutes, top_errors, Diagnosis, StoreResult, DIAGNOSE_SCAN, READY_KINDS};

impl PostgresStore {
    pub(crate) async fn diagnosis(
        &self,
        tenant: &str,
        since: Timestamp,
        far: Timestamp,
    ) -> StoreResult<Diagnosis> {
        let client = self.conn().await?;
        let mut d = Diagnosis::default();
        // A row may be a run of events (`n` of them): counted as its events, scanned as one.
        let recent = "WITH recent AS (SELECT queue, type, error, at, COALESCE(n, 1) AS n \
                      FROM rota_events WHERE tenant = $1 AND at >= $2 ORDER BY cursor DESC \
                      LIMIT $3)";
        let scan = DIAGNOSE_SCAN + 1;
        let rows = client
            .query(
                &format!(
                    "{recent} SELECT queue, type, sum(n)::bigint, count(*) FROM recent \
                     GROUP BY 1, 2"
                ),
                &[&tenant, &since.0, &scan],
            )
            .await
            .map_err(db)?;
        let mut seen = 0i64;
        for r in rows {
            let (queue, ty, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
            seen += r.get::<_, i64>(3);
            if let Some(t) = EventType::parse(&ty) {
                *d.queues
                    .entry(queue)
                    .or_default()
                    .events
                    .entry(t)
                    .or_default() += n as u64;
            }
        }
        d.truncated = seen > DIAGNOSE_SCAN;
        let errors = client
            .query(
                &format!(
                    "{recent} SELECT queue, error, count(*) FROM recent \
                     WHERE type IN ('task.failed', 'task.dead') AND error IS NOT NULL \
                     GROUP BY 1, 2"
                ),
                &[&tenant, &since.0, &DIAGNOSE_SCAN],
            )
            .await
            .map_err(db)?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2).max(0) as u64))
            .collect();
        top_errors(errors, &mut d);
        let minutes = client
            .query(
                &format!(
                    "{recent} SELECT queue, at / 60000, type, sum(n)::bigint FROM recent \
                     WHERE type IN ('task.succeeded', 'task.failed', 'task.dead') GROUP BY 1, 2, 3"
                ),
                &[&tenant, &since.0, &DIAGNOSE_SCAN],
            )
            .await
            .map_err(db)?
            .into_iter()
            .filter_map(|r| {
                let t = EventType::parse(r.get(2))?;
                Some((r.get(0), r.get(1), t, r.get::<_, i64>(3).max(0) as u64))
            })
            .collect();
        add_minutes(minutes, &mut d);
        let queues = client
            .query(
                "SELECT id, name FROM rota_queues WHERE tenant = $1",
                &[&tenant],
            )
            .await
            .map_err(db)?;
        let next_kind = client
            .prepare(
                "SELECT kind FROM rota_tasks WHERE queue_id = $1 AND state = $2 AND kind > $3 \
                 ORDER BY kind LIMIT 1",
            )
            .await
            .map_err(db)?;
        let ready = state_to_sql(TaskState::Ready);
        for q in queues {
            let (id, name): (i64, String) = (q.get(0), q.get(1));
            let mut kinds: Vec<String> = Vec::new();
            let mut after = String::new();
            while kinds.len() < READY_KINDS {
                let next = client
                    .query_opt(&next_kind, &[&id, &ready, &after])
                    .await
                    .map_err(db)?;
                let Some(row) = next else { break };
                after = row.get(0);
                kinds.push(after.clone());
            }
            if !kinds.is_empty() {
                d.queues.entry(name).or_default().ready_kinds = kinds;
            }
        }
        let far_rows = client
            .query(
                "SELECT q.name, count(*), max(t.run_at) FROM rota_tasks t \
                 JOIN rota_queues q ON q.id = t.queue_id WHERE t.state = $1 AND t.run_at > $2 \
                 AND q.tenant = $3 GROUP BY q.name",
                &[&state_to_sql(TaskState::Scheduled), &far.0, &tenant],
            )
            .await
            .map_err(db)?;
        for r in far_rows {
            let q = d.queues.entry(r.get(0)).or_default();
            q.far_scheduled = r.get::<_, i64>(1).max(0) as u64;
            q.latest_run_at = Some(Timestamp(r.get(2)));
        }
        Ok(d)
    }
}
