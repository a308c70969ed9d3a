//! The audit log in the embedded engine: each shard's `audit` table holds the entries of the
//! changes its writer committed (an entry is written in its change's batch, see
//! `rota_store::audit`), and a read merges the shards newest first.

use rota_core::audit::{AuditEntry, AuditFilter};
use rota_core::Timestamp;
use rota_store::audit::AuditPage;
use rusqlite::types::Value;
use rusqlite::{params, Connection, Transaction};

/// Writes `e` in the writer's transaction `tx`.
pub(crate) fn write(tx: &Transaction<'_>, e: &AuditEntry) -> rusqlite::Result<()> {
    let doc = serde_json::to_string(e).expect("an audit entry serializes");
    tx.prepare_cached(
        "INSERT OR IGNORE INTO audit (at, id, tenant, actor, action, target, doc) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.at.0,
        e.key(),
        e.tenant,
        e.actor,
        e.action,
        e.target,
        doc
    ])?;
    Ok(())
}

/// One shard's entries that pass `f`, newest first, at most `f.limit` (and whether more pass).
pub(crate) fn read(conn: &Connection, f: &AuditFilter) -> rusqlite::Result<AuditPage> {
    let mut sql = String::from("SELECT doc FROM audit WHERE 1=1");
    let mut args: Vec<Value> = Vec::new();
    let mut arg = |sql: &mut String, cond: &str, v: Value| {
        args.push(v);
        sql.push_str(&cond.replace('?', &format!("?{}", args.len())));
    };
    if let Some(t) = &f.tenant {
        arg(&mut sql, " AND tenant = ?", Value::Text(t.clone()));
    }
    if let Some(a) = &f.actor {
        arg(&mut sql, " AND actor = ?", Value::Text(a.clone()));
    }
    match (&f.action, f.action_prefix()) {
        // The action's start (LIKE would read `_` as a wildcard).
        (_, Some(prefix)) => {
            let len = prefix.chars().count() as i64;
            arg(&mut sql, " AND substr(action, 1, ?)", Value::Integer(len));
            arg(&mut sql, " = ?", Value::Text(prefix.to_owned()));
        }
        (Some(a), None) => arg(&mut sql, " AND action = ?", Value::Text(a.clone())),
        (None, None) => {}
    }
    if let Some(t) = &f.target {
        arg(&mut sql, " AND target = ?", Value::Text(t.clone()));
    }
    if let Some(s) = f.since {
        arg(&mut sql, " AND at >= ?", Value::Integer(s.0));
    }
    if let Some(u) = f.until {
        arg(&mut sql, " AND at < ?", Value::Integer(u.0));
    }
    if let Some(c) = f.after {
        arg(&mut sql, " AND (at, id) < (?", Value::Integer(c.at.0));
        arg(&mut sql, ", ?)", Value::Integer(c.key));
    }
    let limit = f.limit.min(rota_core::audit::MAX_AUDIT_PAGE);
    let sql = format!("{sql} ORDER BY at DESC, id DESC LIMIT {}", limit + 1);
    let mut stmt = conn.prepare_cached(&sql)?;
    let docs = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        r.get::<_, String>(0)
    })?;
    let mut entries = Vec::new();
    for doc in docs {
        let doc = doc?;
        match serde_json::from_str::<AuditEntry>(&doc) {
            Ok(e) => entries.push(e),
            Err(e) => tracing::error!(error = %e, "an audit entry is unreadable; it is skipped"),
        }
    }
    let more = entries.len() > limit;
    entries.truncate(limit);
    Ok(AuditPage { entries, more })
}

/// Deletes up to `chunk` entries older than `cutoff`; true when there may be more.
pub(crate) fn trim(
    tx: &Transaction<'_>,
    cutoff: Timestamp,
    chunk: usize,
) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached(
            "DELETE FROM audit WHERE (at, id) IN \
             (SELECT at, id FROM audit WHERE at < ?1 ORDER BY at LIMIT ?2)",
        )?
        .execute(params![cutoff.0, chunk as i64])?;
    Ok(n == chunk)
}
