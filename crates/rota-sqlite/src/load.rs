//! What opening a store reads and checks: file permissions, the catalog of queues with their
//! counts, tenant names, and access-control records.

use crate::catalog::{Catalog, QueueEntry};
use crate::rows;
use rota_core::auth::KeyRecord;
use rota_core::{QueueKey, QueueSettings, StateCounts, TaskId, Timestamp};
use rota_store::AuthData;
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashSet;
use std::path::Path;

/// The store's files are readable by their owner only (0600): the file is created so before
/// SQLite opens it, and SQLite gives its `-wal` and `-shm` files the same mode. Files left by
/// an older Rota are narrowed.
pub fn make_private(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = Path::new(&name);
            if file.exists() {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| format!("cannot make {} private: {e}", file.display()))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

pub fn load_tenant_names(conn: &Connection) -> rusqlite::Result<HashSet<String>> {
    let mut stmt = conn.prepare("SELECT name FROM tenants")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

pub fn load_catalog(conn: &Connection) -> rusqlite::Result<(Catalog, Option<TaskId>)> {
    let mut catalog = Catalog::default();
    let mut stmt =
        conn.prepare("SELECT id, tenant, name, settings, created_at, last_claim_at FROM queues")?;
    let rows = stmt.query_map([], |r| {
        let settings: String = r.get(3)?;
        Ok(QueueEntry {
            id: r.get(0)?,
            key: QueueKey::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
            settings: serde_json::from_str(&settings).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "unreadable queue settings; using defaults");
                QueueSettings::default()
            }),
            created_at: Timestamp(r.get(4)?),
            last_claim_at: r.get::<_, Option<i64>>(5)?.map(Timestamp),
            counts: StateCounts::default(),
        })
    })?;
    for q in rows {
        catalog.insert(q?);
    }
    let mut stmt =
        conn.prepare("SELECT queue_id, state, COUNT(*) FROM tasks GROUP BY queue_id, state")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (qid, state, n) = row?;
        if let Some(q) = catalog.by_id_mut(qid) {
            *q.counts.get_mut(rows::state_from_sql(&state)?) = n as u64;
        }
    }
    let last: Option<i64> = conn.query_row("SELECT MAX(id) FROM tasks", [], |r| r.get(0))?;
    Ok((catalog, last.map(TaskId::from_i64)))
}

/// The greatest delivery id and event cursor ever used (trimmed rows included).
pub fn load_sequences(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let seq = |table: &str| {
        conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
    };
    Ok((seq("deliveries")?, seq("events")?))
}

pub fn load_auth(conn: &Connection) -> Result<AuthData, String> {
    fn docs<T: serde::de::DeserializeOwned>(
        conn: &Connection,
        sql: &str,
    ) -> Result<Vec<T>, String> {
        let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| e.to_string())?;
        rows.map(|doc| {
            let doc = doc.map_err(|e| e.to_string())?;
            serde_json::from_str(&doc)
                .map_err(|e| format!("a stored auth record is unreadable: {e}"))
        })
        .collect()
    }
    Ok(AuthData {
        tenants: docs(conn, "SELECT doc FROM tenants ORDER BY name")?,
        keys: docs(conn, "SELECT doc FROM api_keys ORDER BY tenant, id")?,
        roles: docs(conn, "SELECT doc FROM roles ORDER BY tenant, name")?,
        hooks: docs(conn, "SELECT doc FROM hooks ORDER BY tenant, id")?,
        maintenance: docs(conn, "SELECT doc FROM settings WHERE name = 'maintenance'")?.pop(),
    })
}

/// One API key by id (see `Store::find_key`).
pub fn find_key(conn: &Connection, id: &str) -> Result<Option<KeyRecord>, String> {
    let doc: Option<String> = conn
        .prepare_cached("SELECT doc FROM api_keys WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(|e| e.to_string())?;
    doc.map(|d| {
        serde_json::from_str(&d).map_err(|e| format!("a stored auth record is unreadable: {e}"))
    })
    .transpose()
}
