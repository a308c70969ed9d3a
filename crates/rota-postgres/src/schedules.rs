//! Schedules. Firing a tick is one transaction: the schedule row locked and its `next_run_at`
//! compared with what the plan was made from, the tasks inserted, the runs and the new
//! `next_run_at` written; so of several servers exactly one fires each tick.

use crate::tasks::lock_tenant;
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rota_core::{QueueKey, Timestamp};
use rota_store::{DueSchedules, Firing, ScheduleRecord, StoreError, StoreResult};
use tokio_postgres::Row;

const COLUMNS: &str = "tenant, name, doc, next_run_at, runs, created_at, updated_at";

fn json<T: serde::de::DeserializeOwned>(r: &Row, i: usize) -> StoreResult<T> {
    serde_json::from_str(r.get(i))
        .map_err(|e| StoreError::Unavailable(format!("a stored schedule is not valid: {e}")))
}

fn from_row(r: &Row) -> StoreResult<ScheduleRecord> {
    Ok(ScheduleRecord {
        tenant: r.get(0),
        name: r.get(1),
        spec: json(r, 2)?,
        next_run_at: r.get::<_, Option<i64>>(3).map(Timestamp),
        runs: json(r, 4)?,
        created_at: Timestamp(r.get(5)),
        updated_at: Timestamp(r.get(6)),
    })
}

fn doc<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("schedules serialize")
}

async fn row(
    c: &impl GenericClient,
    tenant: &str,
    name: &str,
    lock: bool,
) -> StoreResult<Option<ScheduleRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM rota_schedules WHERE tenant = $1 AND name = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    c.query_opt(&sql, &[&tenant, &name])
        .await
        .map_err(db)?
        .map(|r| from_row(&r))
        .transpose()
}

impl PostgresStore {
    pub(crate) async fn put_schedule_row(
        &self,
        rec: ScheduleRecord,
    ) -> StoreResult<(ScheduleRecord, bool)> {
        let audit = rota_store::audit::take();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_tenant(&tx, &rec.tenant, false).await?;
        let exists = tx
            .query_opt("SELECT 1 FROM rota_tenants WHERE name = $1", &[&rec.tenant])
            .await
            .map_err(db)?
            .is_some();
        if !exists {
            return Err(StoreError::TenantNotFound(rec.tenant.clone()));
        }
        let old = row(&tx, &rec.tenant, &rec.name, true).await?;
        let mut out = rec;
        if let Some(old) = &old {
            out.runs = old.runs.clone();
            out.created_at = old.created_at;
        }
        tx.execute(
            "INSERT INTO rota_schedules (tenant, name, doc, next_run_at, runs, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, name) DO UPDATE \
             SET doc = EXCLUDED.doc, next_run_at = EXCLUDED.next_run_at, \
             updated_at = EXCLUDED.updated_at",
            &[
                &out.tenant,
                &out.name,
                &doc(&out.spec),
                &out.next_run_at.map(|t| t.0),
                &doc(&out.runs),
                &out.created_at.0,
                &out.updated_at.0,
            ],
        )
        .await
        .map_err(db)?;
        crate::audit::write(&tx, audit.as_ref()).await?;
        tx.commit().await.map_err(db)?;
        Ok((out, old.is_none()))
    }

    pub(crate) async fn schedule_rows(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> StoreResult<Vec<ScheduleRecord>> {
        let client = self.conn().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM rota_schedules WHERE tenant = $1 \
                     AND ($2::text IS NULL OR name = $2) ORDER BY name"
                ),
                &[&tenant, &name],
            )
            .await
            .map_err(db)?;
        match name {
            Some(n) if rows.is_empty() => Err(StoreError::ScheduleNotFound(n.to_owned())),
            _ => rows.iter().map(from_row).collect(),
        }
    }

    pub(crate) async fn delete_schedule_row(&self, tenant: &str, name: &str) -> StoreResult<()> {
        let audit = rota_store::audit::take();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let n = tx
            .execute(
                "DELETE FROM rota_schedules WHERE tenant = $1 AND name = $2",
                &[&tenant, &name],
            )
            .await
            .map_err(db)?;
        if n == 0 {
            return Err(StoreError::ScheduleNotFound(name.to_owned()));
        }
        crate::audit::write(&tx, audit.as_ref()).await?;
        tx.commit().await.map_err(db)
    }

    pub(crate) async fn due_schedule_rows(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<DueSchedules> {
        let client = self.conn().await?;
        let due = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM rota_schedules WHERE next_run_at <= $1 \
                     ORDER BY next_run_at LIMIT $2"
                ),
                &[&now.0, &(limit as i64)],
            )
            .await
            .map_err(db)?
            .iter()
            .map(from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let next: Option<i64> = client
            .query_one(
                "SELECT min(next_run_at) FROM rota_schedules WHERE next_run_at > $1",
                &[&now.0],
            )
            .await
            .map_err(db)?
            .get(0);
        Ok(DueSchedules {
            due,
            next: next.map(Timestamp),
        })
    }

    pub(crate) async fn fire(&self, f: Firing) -> StoreResult<Option<ScheduleRecord>> {
        let audit = rota_store::audit::take();
        let now = self.now();
        let mut client = self.task_conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_tenant(&tx, &f.tenant, false).await?;
        let Some(mut rec) = row(&tx, &f.tenant, &f.name, true).await? else {
            return Err(StoreError::ScheduleNotFound(f.name.clone()));
        };
        if f.expect.is_some() && rec.next_run_at != f.expect {
            return Ok(None);
        }
        let key = QueueKey::new(f.tenant.clone(), rec.spec.queue.clone());
        let tasks: Vec<_> = f.ticks.iter().filter_map(|t| t.task.clone()).collect();
        let ids = if tasks.is_empty() {
            Vec::new()
        } else {
            self.enqueue_in(&tx, &key, &tasks, now).await?
        };
        // After the places the enqueue's events took (one per task at most).
        let logged: Vec<_> = rec
            .record_firing(&f, ids)
            .into_iter()
            .map(|e| (f.tenant.clone(), e))
            .collect();
        crate::events::append(&tx, &logged, tasks.len()).await?;
        tx.execute(
            "UPDATE rota_schedules SET next_run_at = $3, runs = $4 WHERE tenant = $1 AND name = $2",
            &[
                &f.tenant,
                &f.name,
                &rec.next_run_at.map(|t| t.0),
                &doc(&rec.runs),
            ],
        )
        .await
        .map_err(db)?;
        crate::audit::write(&tx, audit.as_ref()).await?;
        tx.commit().await.map_err(db)?;
        if !tasks.is_empty() {
            self.after_enqueue(&key, &tasks, now);
        } else if !logged.is_empty() {
            self.announce_events(logged.iter().map(|(t, _)| t.as_str()));
        }
        Ok(Some(rec))
    }
}
