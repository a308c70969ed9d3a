//! One maintenance pass (promote due tasks, return expired leases, delete finished tasks past
//! retention), readiness checks, leadership and the list of live servers.
//!
//! A pass is safe on any server at any time (rows are taken `FOR UPDATE SKIP LOCKED`, so two
//! passes never handle one task twice); the server runs it only on the elected leader so the
//! work is not done twice over.

use crate::outcomes::FailedAttempt;
use crate::rows::{task_from_row, TASK_COLUMNS, TASK_COLUMN_COUNT};
use crate::{db, describe, PostgresStore};
use rota_core::{lifecycle, Backoff, Timestamp};
use rota_store::{Health, MaintenanceReport, StoreResult};
use std::collections::HashMap;
use std::time::Duration;

/// Rows one maintenance step touches per pass; more are left to the next pass.
pub const CHUNK: i64 = 5_000;

/// A server not seen for this long is no longer counted as alive.
const SERVER_TTL_S: f64 = 3.0;

impl PostgresStore {
    pub(crate) async fn maintenance_pass(&self) -> StoreResult<MaintenanceReport> {
        let now = self.now();
        let mut report = MaintenanceReport::default();
        let mut client = self.conn().await?;
        // Promote due scheduled tasks, telling every server which queues got ready tasks.
        let rows = client
            .query(
                "WITH due AS (SELECT id FROM rota_tasks WHERE state = 0 AND run_at <= $1 \
                   ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
                 up AS (UPDATE rota_tasks t SET state = 1, updated_at = $1 FROM due \
                   WHERE t.id = due.id RETURNING t.queue_id), \
                 qs AS (SELECT DISTINCT q.tenant || '/' || q.name AS k FROM up \
                   JOIN rota_queues q ON q.id = up.queue_id) \
                 SELECT (SELECT count(*) FROM up), array(SELECT k FROM qs)",
                &[&now.0, &CHUNK],
            )
            .await
            .map_err(db)?;
        let promoted: i64 = rows[0].get(0);
        let ready: Vec<String> = rows[0].get(1);
        for k in &ready {
            if let Some((tenant, name)) = k.split_once('/') {
                self.shared
                    .signals
                    .notify(&rota_core::QueueKey::new(tenant, name));
                self.shared.notifier.ready(tenant, name);
            }
        }
        report.promoted = promoted as u64;
        let mut more = promoted == CHUNK;
        // Return expired leases: each is a failed attempt, by rota-core's rule.
        let tx = client.transaction().await.map_err(db)?;
        let expired = tx
            .query(
                &format!(
                    "SELECT {TASK_COLUMNS}, q.tenant, q.backoff_base_ms, q.backoff_max_ms, \
                     q.retention_ms FROM rota_tasks t JOIN rota_queues q ON q.id = t.queue_id \
                     WHERE t.state = 2 AND t.lease_expires_at <= $1 \
                     ORDER BY t.lease_expires_at LIMIT $2 FOR UPDATE OF t SKIP LOCKED"
                ),
                &[&now.0, &CHUNK],
            )
            .await
            .map_err(db)?;
        more |= expired.len() as i64 == CHUNK;
        let mut attempts = Vec::with_capacity(expired.len());
        let mut workers = Vec::with_capacity(expired.len());
        for r in &expired {
            let (_, task) = task_from_row(r)?;
            let worker = task
                .lease
                .as_ref()
                .map(|l| l.worker.clone())
                .unwrap_or_default();
            let u = |v: i64| v.max(0) as u64;
            workers.push(worker.clone());
            attempts.push(FailedAttempt {
                message: lifecycle::expired_lease_message(&worker),
                how: (None, false, false),
                tenant: r.get(TASK_COLUMN_COUNT),
                backoff: Backoff {
                    base_ms: u(r.get(TASK_COLUMN_COUNT + 1)),
                    max_ms: u(r.get(TASK_COLUMN_COUNT + 2)),
                },
                retention_ms: u(r.get(TASK_COLUMN_COUNT + 3)),
                task,
            });
        }
        report.expired = attempts.len() as u64;
        let stored = self.store_failures(&tx, attempts, now).await?;
        let logged: Vec<_> = stored
            .iter()
            .zip(&workers)
            .flat_map(|((tenant, t), w)| {
                let events = rota_core::events::lease_expired(t, w, now);
                events.into_iter().map(|e| (tenant.clone(), e))
            })
            .collect();
        crate::events::append(&tx, &logged, 0).await?;
        tx.commit().await.map_err(db)?;
        self.announce_ended(&stored);
        self.release(crate::outcomes::dead_ids(&stored), Vec::new())
            .await;
        // Waiters whose release a stopped server did not finish.
        more |= self.release_missed().await? == crate::deps::SWEEP as u64;
        if !logged.is_empty() {
            self.announce_events(logged.iter().map(|(t, _)| t.as_str()));
        }
        // Delete finished tasks past their queue's retention.
        let deleted: i64 = client
            .query_one(
                "WITH d AS (DELETE FROM rota_tasks WHERE id IN (SELECT id FROM rota_tasks \
                 WHERE purge_at <= $1 AND NOT has_dependents LIMIT $2) RETURNING 1) \
                 SELECT count(*) FROM d",
                &[&now.0, &CHUNK],
            )
            .await
            .map_err(db)?
            .get(0);
        report.deleted = deleted as u64;
        // Workflows whose tasks have all ended: their workflow.* events.
        more |= self.end_workflows(now).await?;
        // Workflow records whose tasks retention has all removed.
        let cutoff = now.plus_ms(-rota_core::workflow::RECORD_GRACE_MS);
        let records = rota_core::workflow::RECORDS_PER_PASS as i64;
        client
            .execute(
                "DELETE FROM rota_workflows WHERE id IN (SELECT w.id FROM rota_workflows w \
                 WHERE w.created_at < $1 AND NOT EXISTS \
                 (SELECT 1 FROM rota_tasks t WHERE t.workflow = w.id) LIMIT $2)",
                &[&cutoff.0, &records],
            )
            .await
            .map_err(db)?;
        more |= deleted == CHUNK;
        // Group rows that say nothing: no settings of their own, a rate state in the past
        // (which a claim reads as it reads no row).
        let pruned = client
            .execute(
                "DELETE FROM rota_task_groups WHERE (queue_id, name) IN (SELECT queue_id, name \
                 FROM rota_task_groups WHERE settings IS NULL AND rate_tat_us < $1 LIMIT $2)",
                &[&now.0.saturating_mul(1_000), &CHUNK],
            )
            .await
            .map_err(db)?;
        more |= pruned == CHUNK as u64;
        // Events past their tenant's retention.
        let (marks, default_ms) = (&self.shared.trim_marks, self.options.event_retention_ms);
        more |= crate::events::trim(&client, marks, default_ms, now, CHUNK as usize).await?;
        // Audit entries past their retention.
        let ms = i64::try_from(self.options.audit_retention_ms).unwrap_or(i64::MAX);
        more |= crate::audit::trim(&client, now.plus_ms(-ms), CHUNK).await?;
        // Finished deliveries past their retention.
        let kept = now.plus_ms(-rota_core::webhooks::KEEP_FINISHED_MS);
        let dropped = client
            .execute(
                "DELETE FROM rota_deliveries WHERE id = ANY(ARRAY(SELECT id FROM rota_deliveries \
                 WHERE dstate IN ('delivered', 'dead') AND updated_at < $1 LIMIT $2))",
                &[&kept.0, &CHUNK],
            )
            .await
            .map_err(db)?;
        more |= dropped == CHUNK as u64;
        report.next_due = if more {
            Some(now)
        } else {
            let r = client
                .query_one(
                    "SELECT (SELECT min(run_at) FROM rota_tasks WHERE state = 0), \
                     (SELECT min(lease_expires_at) FROM rota_tasks WHERE state = 2), \
                     (SELECT min(purge_at) FROM rota_tasks WHERE purge_at IS NOT NULL)",
                    &[],
                )
                .await
                .map_err(db)?;
            [r.get::<_, Option<i64>>(0), r.get(1), r.get(2)]
                .into_iter()
                .flatten()
                .min()
                .map(Timestamp)
        };
        self.shared.next_due.store(
            report.next_due.map_or(i64::MAX, |t| t.0),
            std::sync::atomic::Ordering::Release,
        );
        Ok(report)
    }

    pub(crate) async fn health_checks(&self) -> Health {
        let mut checks = Vec::new();
        let storage = async {
            let client = self.conn().await.map_err(|e| e.to_string())?;
            client
                .execute(
                    "INSERT INTO rota_probe (id, at) VALUES (1, $1) \
                     ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at",
                    &[&self.now().0],
                )
                .await
                .map_err(|e| describe(&e))?;
            let st = crate::schema::status(&client)
                .await
                .map_err(|e| describe(&e))?;
            Ok::<_, String>(st)
        };
        let probe = tokio::time::timeout(Duration::from_secs(5), storage).await;
        match probe {
            Ok(Ok(st)) => {
                checks.push(("storage".to_owned(), Ok(())));
                checks.push(("schema".to_owned(), st.check()));
            }
            Ok(Err(e)) => checks.push(("storage".to_owned(), Err(e))),
            Err(_) => checks.push((
                "storage".to_owned(),
                Err("the database did not answer a write within 5 s".to_owned()),
            )),
        }
        let exhausted: Vec<String> = self
            .each_pool()
            .iter()
            // Event readers waiting for their own pool slow only themselves: not unready.
            .filter(|(name, s)| {
                *name != "events" && s.waiting > 0 && s.size - s.available >= s.max_size
            })
            .map(|(name, s)| {
                format!(
                    "all {} connections of the {name} pool are in use and {} requests wait",
                    s.max_size, s.waiting
                )
            })
            .collect();
        let pool = if exhausted.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}; raise [storage] pool_size (and the database's max_connections) or find \
                 what holds them",
                exhausted.join("; ")
            ))
        };
        checks.push(("pool".to_owned(), pool));
        let feed = if self
            .shared
            .listening
            .load(std::sync::atomic::Ordering::Acquire)
        {
            Ok(())
        } else {
            Err("the LISTEN connection is down; other servers' changes wake nothing here until it reconnects".to_owned())
        };
        checks.push(("change_feed".to_owned(), feed));
        Health { checks }
    }

    pub(crate) async fn try_lead(
        &self,
        service: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let client = self.conn().await?;
        let ttl_s = ttl.as_secs_f64();
        let row = client
            .query_opt(
                "INSERT INTO rota_leaders (name, holder, expires_at) \
                 VALUES ($1, $2, now() + make_interval(secs => $3)) \
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, \
                   expires_at = EXCLUDED.expires_at \
                 WHERE rota_leaders.holder = EXCLUDED.holder OR rota_leaders.expires_at < now() \
                 RETURNING holder",
                &[&service, &holder, &ttl_s],
            )
            .await
            .map_err(db)?;
        Ok(row.is_some())
    }

    pub(crate) async fn give_up(&self, service: &str, holder: &str) {
        if let Ok(client) = self.conn().await {
            let _ = client
                .execute(
                    "DELETE FROM rota_leaders WHERE name = $1 AND holder = $2",
                    &[&service, &holder],
                )
                .await;
        }
    }

    pub(crate) async fn register_server(&self, server: &str) -> StoreResult<usize> {
        let client = self.conn().await?;
        let row = client
            .query_one(
                "WITH me AS (INSERT INTO rota_servers (id, seen_at) VALUES ($1, now()) \
                   ON CONFLICT (id) DO UPDATE SET seen_at = now()), \
                 gone AS (DELETE FROM rota_servers \
                   WHERE seen_at < now() - make_interval(secs => $2::float8 * 10)) \
                 SELECT count(*) + 1 FROM rota_servers \
                   WHERE id <> $1 AND seen_at >= now() - make_interval(secs => $2)",
                &[&server, &SERVER_TTL_S],
            )
            .await
            .map_err(db)?;
        Ok(row.get::<_, i64>(0).max(1) as usize)
    }

    pub(crate) async fn exchange_demand(
        &self,
        server: &str,
        mine: Vec<(String, u64)>,
    ) -> StoreResult<HashMap<String, u64>> {
        let (clients, demand): (Vec<String>, Vec<i64>) = mine
            .into_iter()
            .map(|(c, d)| (c, i64::try_from(d).unwrap_or(i64::MAX)))
            .unzip();
        let client = self.conn().await?;
        // Rows of this server that had no demand this second, and rows of servers gone for a
        // minute, are deleted; others' rows count only while fresh.
        let rows = client
            .query(
                "WITH up AS (INSERT INTO rota_limit_demand (server, client, demand, seen_at) \
                   SELECT $1, c, d, now() FROM unnest($2::text[], $3::bigint[]) u(c, d) \
                   ON CONFLICT (server, client) DO UPDATE SET demand = EXCLUDED.demand, \
                     seen_at = EXCLUDED.seen_at), \
                 gone AS (DELETE FROM rota_limit_demand WHERE (server = $1 AND client <> ALL($2)) \
                   OR (server <> $1 AND seen_at < now() - interval '1 minute')) \
                 SELECT client, sum(demand)::bigint FROM rota_limit_demand \
                 WHERE server <> $1 AND seen_at >= now() - make_interval(secs => $4) \
                 GROUP BY client",
                &[&server, &clients, &demand, &SERVER_TTL_S],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
            .collect())
    }
}
