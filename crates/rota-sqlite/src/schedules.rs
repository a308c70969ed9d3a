//! Schedules: reading them (any reader connection) and the row format the writer shares.

use crate::db_err;
use crate::shard::Shard;
use rota_core::Timestamp;
use rota_store::{DueSchedules, ScheduleRecord, StoreError, StoreResult};
use rusqlite::{params, Row};

pub(crate) const SCHEDULE_COLUMNS: &str =
    "tenant, name, doc, next_run_at, runs, created_at, updated_at";

fn json<T: serde::de::DeserializeOwned>(r: &Row, i: usize) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(crate) fn schedule_from_row(r: &Row) -> rusqlite::Result<ScheduleRecord> {
    Ok(ScheduleRecord {
        tenant: r.get(0)?,
        name: r.get(1)?,
        spec: json(r, 2)?,
        next_run_at: r.get::<_, Option<i64>>(3)?.map(Timestamp),
        runs: json(r, 4)?,
        created_at: Timestamp(r.get(5)?),
        updated_at: Timestamp(r.get(6)?),
    })
}

impl Shard {
    pub(crate) async fn read_schedules(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> StoreResult<Vec<ScheduleRecord>> {
        let (tenant, name) = (tenant.to_owned(), name.map(str::to_owned));
        self.read(move |conn, _| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant = ?1 \
                     AND (?2 IS NULL OR name = ?2) ORDER BY name"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![tenant, name], schedule_from_row)
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)?;
            match name {
                Some(n) if rows.is_empty() => Err(StoreError::ScheduleNotFound(n)),
                _ => Ok(rows),
            }
        })
        .await
    }

    pub(crate) async fn read_due_schedules(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<DueSchedules> {
        self.read(move |conn, _| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules \
                     WHERE next_run_at IS NOT NULL AND next_run_at <= ?1 \
                     ORDER BY next_run_at LIMIT {limit}"
                ))
                .map_err(db_err)?;
            let due = stmt
                .query_map(params![now.0], schedule_from_row)
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)?;
            let next: Option<i64> = conn
                .prepare_cached("SELECT min(next_run_at) FROM schedules WHERE next_run_at > ?1")
                .and_then(|mut s| s.query_row(params![now.0], |r| r.get(0)))
                .map_err(db_err)?;
            Ok(DueSchedules {
                due,
                next: next.map(Timestamp),
            })
        })
        .await
    }
}
