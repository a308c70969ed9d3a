//! One maintenance pass: promote due scheduled tasks, return expired leases, delete finished
//! tasks past their retention. Each step reads only what is due (partial indexes on `run_at`,
//! `lease_expires_at` and `purge_at`), at most [`CHUNK`] rows, so a pass costs what is due and
//! not what is stored. A row that cannot be read is set aside and logged instead of stopping
//! the pass for every tenant.

use super::ctx::{Ctx, Res};
use super::Batch;
use crate::rows::{state_from_sql, task_from_row, TASK_COLUMNS};
use rota_core::{events, TaskState, Timestamp};
use rota_store::MaintenanceReport;
use rusqlite::params;

/// Rows one maintenance step touches per pass; more are left to the next pass.
pub const CHUNK: usize = 5_000;

impl Ctx<'_> {
    pub fn maintenance(&mut self, b: &mut Batch) -> Res<MaintenanceReport> {
        let now = b.now;
        let mut report = MaintenanceReport::default();
        let mut more = false;
        // Promote due scheduled tasks.
        let promoted: Vec<i64> = {
            let mut stmt = self.tx().prepare_cached(&format!(
                "UPDATE tasks SET state = 'ready', updated_at = ?1 WHERE id IN \
                 (SELECT id FROM tasks WHERE state = 'scheduled' AND run_at <= ?1 \
                 LIMIT {CHUNK}) RETURNING queue_id"
            ))?;
            let rows = stmt.query_map(params![now.0], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        more |= promoted.len() == CHUNK;
        for qid in &promoted {
            b.delta
                .moved(*qid, Some(TaskState::Scheduled), Some(TaskState::Ready));
            b.ready.insert(*qid);
        }
        report.promoted = promoted.len() as u64;
        // Return expired leases: each is a failed attempt.
        let expired: Vec<i64> = {
            let mut stmt = self.tx().prepare_cached(&format!(
                "SELECT id FROM tasks WHERE state = 'running' AND lease_expires_at <= ?1 \
                 LIMIT {CHUNK}"
            ))?;
            let rows = stmt.query_map(params![now.0], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        more |= expired.len() == CHUNK;
        for id in expired {
            let row = self
                .tx()
                .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
                .query_row([id], task_from_row);
            match row {
                Ok(row) => {
                    let worker = row.task.lease.as_ref().map(|l| l.worker.clone());
                    let worker = worker.unwrap_or_default();
                    let msg = rota_core::lifecycle::expired_lease_message(&worker);
                    let qid = row.queue_id;
                    let t = self.record_failure(b, row, msg, (None, false, false))?;
                    for e in events::lease_expired(&t, &worker, now) {
                        b.log(qid, e, &t);
                    }
                    report.expired += 1;
                }
                Err(e) => self.set_aside(b, id, &e)?,
            }
        }
        // Delete finished tasks past their queue's retention.
        let deleted: Vec<(i64, String)> = {
            let mut stmt = self.tx().prepare_cached(&format!(
                "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE purge_at <= ?1 \
                 LIMIT {CHUNK}) RETURNING queue_id, state"
            ))?;
            let rows = stmt.query_map(params![now.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        more |= deleted.len() == CHUNK;
        for (qid, state) in &deleted {
            // An unreadable state was never counted; nothing to take back.
            if let Ok(s) = state_from_sql(state) {
                b.delta.moved(*qid, Some(s), None);
            }
        }
        report.deleted = deleted.len() as u64;
        // Group rows that say nothing: no settings of their own, and a rate state in the past
        // (a TAT before now allows what a fresh one does).
        more |= self
            .tx()
            .prepare_cached(&format!(
                "DELETE FROM task_groups WHERE (queue_id, name) IN (SELECT queue_id, name \
                 FROM task_groups WHERE settings IS NULL AND rate_tat_us <= ?1 LIMIT {CHUNK})"
            ))?
            .execute(params![now.0.saturating_mul(1_000)])?
            == CHUNK;
        // Events past their tenant's retention.
        let mut marks = self
            .shared
            .trim_marks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let default_ms = self.shared.event_retention_ms;
        more |= crate::events::trim(self.tx(), &mut marks, default_ms, now, CHUNK)?;
        drop(marks);
        // Audit entries past their retention.
        let ms = i64::try_from(self.shared.audit_retention_ms).unwrap_or(i64::MAX);
        more |= crate::audit::trim(self.tx(), now.plus_ms(-ms), CHUNK)?;
        // Finished deliveries past their retention.
        let kept = now.plus_ms(-rota_core::webhooks::KEEP_FINISHED_MS);
        more |= self
            .tx()
            .prepare_cached(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
                 WHERE dstate IN ('delivered', 'dead') AND updated_at < ?1 LIMIT ?2)",
            )?
            .execute(rusqlite::params![kept.0, CHUNK as i64])?
            == CHUNK;
        report.next_due = if more {
            Some(now)
        } else {
            let tx = self.tx();
            let mut next = None::<i64>;
            for sql in [
                "SELECT MIN(run_at) FROM tasks WHERE state = 'scheduled'",
                "SELECT MIN(lease_expires_at) FROM tasks WHERE state = 'running'",
                "SELECT MIN(purge_at) FROM tasks WHERE purge_at IS NOT NULL",
            ] {
                let t: Option<i64> = tx.prepare_cached(sql)?.query_row([], |r| r.get(0))?;
                next = match (next, t) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
            }
            next.map(Timestamp)
        };
        b.maintenance_next_due = Some(report.next_due);
        Ok(Ok(report))
    }

    /// A running task whose row cannot be read: it is made dead as it stands (nothing else of
    /// the row is touched, so it can be inspected with `sqlite3`), and logged.
    fn set_aside(&mut self, b: &mut Batch, id: i64, e: &rusqlite::Error) -> rusqlite::Result<()> {
        let qid: i64 = self.tx().query_row(
            "UPDATE tasks SET state = 'dead', finished_at = ?1, updated_at = ?1, \
             lease_worker = NULL, lease_token = NULL, lease_expires_at = NULL \
             WHERE id = ?2 RETURNING queue_id",
            params![b.now.0, id],
            |r| r.get(0),
        )?;
        tracing::error!(
            task = %rota_core::TaskId::from_i64(id),
            error = %e,
            "a running task's row is unreadable; it was made dead so maintenance can go on"
        );
        b.delta
            .moved(qid, Some(TaskState::Running), Some(TaskState::Dead));
        // Its dependents hear of it as of any ending.
        b.ended
            .push((rota_core::TaskId::from_i64(id), TaskState::Dead));
        Ok(())
    }
}
