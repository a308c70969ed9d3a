//! Schedule writes: put, delete, and firing ticks (the tasks enqueued, the runs recorded and
//! `next_run_at` moved in the batch's one transaction).

use super::ctx::{Ctx, Res};
use super::Batch;
use crate::schedules::{schedule_from_row, SCHEDULE_COLUMNS};
use rota_core::QueueKey;
use rota_store::{Firing, ScheduleRecord, StoreError};
use rusqlite::{params, OptionalExtension};

fn doc<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("schedules serialize")
}

impl Ctx<'_> {
    fn schedule_row(&self, tenant: &str, name: &str) -> rusqlite::Result<Option<ScheduleRecord>> {
        self.tx()
            .prepare_cached(&format!(
                "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant = ?1 AND name = ?2"
            ))?
            .query_row(params![tenant, name], schedule_from_row)
            .optional()
    }

    pub fn put_schedule(&mut self, rec: &ScheduleRecord) -> Res<(ScheduleRecord, bool)> {
        let tenant_exists = self
            .tx()
            .prepare_cached("SELECT 1 FROM tenants WHERE name = ?1")?
            .query_row(params![rec.tenant], |_| Ok(()))
            .optional()?
            .is_some();
        if !tenant_exists {
            return Ok(Err(StoreError::TenantNotFound(rec.tenant.clone())));
        }
        let old = self.schedule_row(&rec.tenant, &rec.name)?;
        let mut out = rec.clone();
        if let Some(old) = &old {
            out.runs = old.runs.clone();
            out.created_at = old.created_at;
        }
        self.tx()
            .prepare_cached(
                "INSERT OR REPLACE INTO schedules (tenant, name, doc, next_run_at, runs, \
                 created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                out.tenant,
                out.name,
                doc(&out.spec),
                out.next_run_at.map(|t| t.0),
                doc(&out.runs),
                out.created_at.0,
                out.updated_at.0
            ])?;
        Ok(Ok((out, old.is_none())))
    }

    pub fn delete_schedule(&mut self, tenant: &str, name: &str) -> Res<()> {
        let n = self
            .tx()
            .prepare_cached("DELETE FROM schedules WHERE tenant = ?1 AND name = ?2")?
            .execute(params![tenant, name])?;
        Ok(if n == 0 {
            Err(StoreError::ScheduleNotFound(name.to_owned()))
        } else {
            Ok(())
        })
    }

    pub fn fire_schedule(&mut self, b: &mut Batch, f: &Firing) -> Res<Option<ScheduleRecord>> {
        let Some(mut rec) = self.schedule_row(&f.tenant, &f.name)? else {
            return Ok(Err(StoreError::ScheduleNotFound(f.name.clone())));
        };
        if f.expect.is_some() && rec.next_run_at != f.expect {
            return Ok(Ok(None));
        }
        let key = QueueKey::new(f.tenant.clone(), rec.spec.queue.clone());
        let tasks: Vec<_> = f.ticks.iter().filter_map(|t| t.task.clone()).collect();
        let ids: Vec<_> = if tasks.is_empty() {
            Vec::new()
        } else {
            match self.enqueue(b, &key, &tasks, &super::Remote::default())? {
                Ok(done) => done.into_iter().map(|e| Some(e.task.id)).collect(),
                Err(e) => return Ok(Err(e)),
            }
        };
        let queue_id = match self.lookup_or_create(b, &key)? {
            Ok((id, _)) => id,
            Err(e) => return Ok(Err(e)),
        };
        for e in rec.record_firing(f, ids) {
            b.log_other(queue_id, e);
        }
        self.tx()
            .prepare_cached(
                "UPDATE schedules SET next_run_at = ?3, runs = ?4 WHERE tenant = ?1 AND name = ?2",
            )?
            .execute(params![
                f.tenant,
                f.name,
                rec.next_run_at.map(|t| t.0),
                doc(&rec.runs)
            ])?;
        Ok(Ok(Some(rec)))
    }
}
