//! At open, before any writer starts: the copies every shard keeps are brought in line with
//! shard 0's, and a schedule found in two shards keeps only its newer copy. Writes to several
//! shards go to shard 0 first, so this finishes what a crash between two of them left undone.
//! It runs only once `identity::check` found no shard newer than shard 0, and it deletes a
//! tenant's rows only where shard 0 holds its tombstone: a tenant shard 0 merely lacks is kept
//! and its record copied back to shard 0, since deleting on absence once let an older
//! `rota.db` delete a newer tenant's tasks.

use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{HashMap, HashSet};

/// Brings shards 1.. in line with shard 0 (`conns[0]`).
pub(super) fn copies(conns: &mut [Connection]) -> rusqlite::Result<()> {
    let Some((home, others)) = conns.split_first_mut() else {
        return Ok(());
    };
    if others.is_empty() {
        return Ok(());
    }
    let tenants: Vec<(String, String)> = rows(home, "SELECT name, doc FROM tenants")?;
    let hooks: Vec<(String, String, String)> = {
        let mut stmt = home.prepare("SELECT tenant, id, doc FROM webhooks")?;
        let it = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        it.collect::<rusqlite::Result<_>>()?
    };
    let names: HashSet<&str> = tenants.iter().map(|t| t.0.as_str()).collect();
    let buried: HashSet<String> = rows(home, "SELECT name, '' FROM tenant_tombstones")?
        .into_iter()
        .map(|t| t.0)
        .collect();
    let mut found: Vec<(String, String)> = Vec::new();
    for conn in others.iter() {
        let theirs = rows(conn, "SELECT name, doc FROM tenants")?;
        found.extend(
            theirs
                .into_iter()
                .filter(|t| !names.contains(t.0.as_str()) && !buried.contains(&t.0)),
        );
    }
    if !found.is_empty() {
        // Neither made through shard 0 nor deleted there: keep the rows and make the tenant
        // whole again (an admin can delete it, which now leaves a tombstone).
        let tx = home.transaction()?;
        for (name, doc) in &found {
            tracing::warn!(
                tenant = %name,
                "a shard holds a tenant rota.db neither has nor deleted; keeping its rows and \
                 copying it back into rota.db"
            );
            tx.execute(
                "INSERT OR IGNORE INTO tenants (name, doc) VALUES (?1, ?2)",
                params![name, doc],
            )?;
        }
        tx.commit()?;
        return copies(conns);
    }
    for conn in others.iter_mut() {
        // Most opens find every copy as it should be: then nothing is written.
        let theirs: HashSet<(String, String)> = rows(conn, "SELECT name, doc FROM tenants")?
            .into_iter()
            .collect();
        let stray: Vec<(String, String)> = rows(
            conn,
            "SELECT name, '' FROM tenants UNION SELECT DISTINCT tenant, '' FROM queues",
        )?;
        let gone: Vec<&String> = stray
            .iter()
            .map(|t| &t.0)
            .filter(|n| !names.contains(n.as_str()) && buried.contains(n.as_str()))
            .collect();
        let missing: Vec<&(String, String)> =
            tenants.iter().filter(|t| !theirs.contains(*t)).collect();
        let their_hooks: Vec<(String, String, String)> = {
            let mut stmt = conn.prepare("SELECT tenant, id, doc FROM webhooks")?;
            let it = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            it.collect::<rusqlite::Result<_>>()?
        };
        let hooks_differ = {
            let a: HashSet<&(String, String, String)> = hooks.iter().collect();
            let b: HashSet<&(String, String, String)> = their_hooks.iter().collect();
            a != b
        };
        if gone.is_empty() && missing.is_empty() && !hooks_differ {
            continue;
        }
        let tx = conn.transaction()?;
        for name in gone {
            tracing::info!(tenant = %name, "removing a deleted tenant's rows from a shard");
            crate::writer::delete_tenant_rows(&tx, name)?;
        }
        for (name, doc) in missing {
            tx.execute(
                "INSERT OR REPLACE INTO tenants (name, doc) VALUES (?1, ?2)",
                params![name, doc],
            )?;
        }
        if hooks_differ {
            tx.execute("DELETE FROM webhooks", [])?;
            for (tenant, id, doc) in &hooks {
                tx.execute(
                    "INSERT INTO webhooks (tenant, id, doc) VALUES (?1, ?2, ?3)",
                    params![tenant, id, doc],
                )?;
            }
        }
        tx.commit()?;
    }
    schedules(conns)
}

fn rows(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(sql)?;
    let it = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    it.collect()
}

/// A schedule moves to its target queue's shard by being put there and then deleted where it
/// was; of two copies, the newer one stays.
fn schedules(conns: &mut [Connection]) -> rusqlite::Result<()> {
    let mut newest: HashMap<(String, String), (i64, usize)> = HashMap::new();
    let mut seen: Vec<Vec<(String, String, i64)>> = Vec::with_capacity(conns.len());
    for (i, conn) in conns.iter().enumerate() {
        let mut stmt = conn.prepare("SELECT tenant, name, updated_at FROM schedules")?;
        let it = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let found: Vec<(String, String, i64)> = it.collect::<rusqlite::Result<_>>()?;
        for (t, n, at) in &found {
            let e = newest.entry((t.clone(), n.clone())).or_insert((*at, i));
            if *at > e.0 {
                *e = (*at, i);
            }
        }
        seen.push(found);
    }
    for (i, conn) in conns.iter_mut().enumerate() {
        for (t, n, _) in &seen[i] {
            if newest[&(t.clone(), n.clone())].1 != i {
                tracing::info!(tenant = %t, schedule = %n, "removing a moved schedule's old copy");
                conn.execute(
                    "DELETE FROM schedules WHERE tenant = ?1 AND name = ?2",
                    params![t, n],
                )?;
            }
        }
    }
    Ok(())
}

/// Where ids that name their shard begin: recorded in shard 0 the first time a version with
/// shards opens it (past its greatest task id then), and read back on every later open. Every
/// task id below it was given when `rota.db` was the only file.
pub(super) fn striped_from(home: &Connection) -> rusqlite::Result<u64> {
    let found: Option<String> = home
        .query_row(
            "SELECT doc FROM settings WHERE name = 'ids_striped_from'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(doc) = found.and_then(|d| d.parse::<u64>().ok()) {
        return Ok(doc);
    }
    let last: Option<i64> = home.query_row("SELECT MAX(id) FROM tasks", [], |r| r.get(0))?;
    let from = last.map_or(0, |l| l as u64 + 1);
    home.execute(
        "INSERT OR REPLACE INTO settings (name, doc) VALUES ('ids_striped_from', ?1)",
        [from.to_string()],
    )?;
    Ok(from)
}
