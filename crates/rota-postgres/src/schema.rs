//! The database schema and its versioned migrations.
//!
//! `rota_migrations` has one row per applied migration. A migration's row is written (with
//! `finished_at` empty) and committed before the migration runs, and completed in the
//! migration's own transaction; a row left without `finished_at` is a migration that started
//! and did not finish: the schema is "dirty", and the server says so and refuses to guess.
//! Migrations run under a session advisory lock, so servers starting together apply each one
//! exactly once while the others wait.

use tokio_postgres::Client;

/// Advisory lock key for migrations ("rota" in ASCII).
const MIGRATION_LOCK: i64 = 0x726f_7461_0001;
/// Advisory lock key for the first admin key.
pub const BOOTSTRAP_LOCK: i64 = 0x726f_7461_0002;

pub use crate::migrations::MIGRATIONS;

pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Where the database's schema stands against this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The highest migration recorded as finished (0 for an empty database).
    pub version: i64,
    /// A migration that started and did not finish, if any: `(version, name)`.
    pub dirty: Option<(i64, String)>,
    /// What this binary expects.
    pub expected: i64,
}

impl SchemaStatus {
    /// `Ok` when the schema is exactly what this binary expects; else what is wrong and the
    /// way out.
    pub fn check(&self) -> Result<(), String> {
        if let Some((v, name)) = &self.dirty {
            return Err(format!(
                "schema migration {v} ({name}) started and did not finish (a dirty migration). \
                 Its changes were rolled back if it ran in one transaction; check the database, \
                 then run `rota migrate up --force-clean {v}` to clear the mark and apply it again"
            ));
        }
        if self.version > self.expected {
            return Err(format!(
                "the database has schema version {}, newer than this Rota understands ({}); \
                 upgrade Rota",
                self.version, self.expected
            ));
        }
        if self.version < self.expected {
            return Err(format!(
                "the database has schema version {} and this Rota expects {} (migrations not at \
                 head); run `rota migrate up` or start `rota serve` without --no-migrate",
                self.version, self.expected
            ));
        }
        Ok(())
    }
}

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS rota_migrations (
    version     BIGINT PRIMARY KEY,
    name        TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
)";

/// Reads the schema's state without changing anything.
pub async fn status(client: &Client) -> Result<SchemaStatus, tokio_postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('rota_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    let mut st = SchemaStatus {
        version: 0,
        dirty: None,
        expected: CURRENT_VERSION,
    };
    if !exists {
        return Ok(st);
    }
    for row in client
        .query(
            "SELECT version, name, finished_at IS NOT NULL FROM rota_migrations ORDER BY version",
            &[],
        )
        .await?
    {
        let (v, name, done): (i64, String, bool) = (row.get(0), row.get(1), row.get(2));
        if done {
            st.version = st.version.max(v);
        } else if st.dirty.is_none() {
            st.dirty = Some((v, name));
        }
    }
    Ok(st)
}

/// Applies every migration the database lacks, under the migration lock; returns the
/// versions applied. Refuses a newer or dirty schema.
pub async fn migrate(client: &mut Client) -> Result<Vec<i64>, String> {
    let pg = |e: tokio_postgres::Error| format!("migrating the schema: {e}");
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    let result = apply(client).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn apply(client: &mut Client) -> Result<Vec<i64>, String> {
    let pg = |e: tokio_postgres::Error| format!("migrating the schema: {e}");
    client.batch_execute(CREATE_LEDGER).await.map_err(pg)?;
    let st = status(client).await.map_err(pg)?;
    if st.dirty.is_some() || st.version > st.expected {
        st.check()?;
    }
    let mut applied = Vec::new();
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(st.version as usize) {
        let v = i as i64 + 1;
        client
            .execute(
                "INSERT INTO rota_migrations (version, name) VALUES ($1, $2)",
                &[&v, name],
            )
            .await
            .map_err(pg)?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| format!("migration {v} ({name}) failed: {e}"))?;
        tx.execute(
            "UPDATE rota_migrations SET finished_at = now() WHERE version = $1",
            &[&v],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        tracing::info!(version = v, name, "applied schema migration");
        applied.push(v);
    }
    Ok(applied)
}

/// Clears the mark of a migration that started and did not finish, so `migrate` applies it
/// again. Only for a migration that is in fact not applied (each runs in one transaction, so
/// a failed one left nothing behind).
pub async fn clear_dirty(client: &Client, version: i64) -> Result<bool, String> {
    let n = client
        .execute(
            "DELETE FROM rota_migrations WHERE version = $1 AND finished_at IS NULL",
            &[&version],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(n == 1)
}
