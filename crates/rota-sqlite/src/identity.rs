//! Which store a shard file belongs to, and how new its copies of the tenants and webhooks are.
//!
//! Every shard keeps two rows in `settings`: `store_id` (random, made with the store, the same
//! in each of its files) and `copies_generation` (a count of the writes to the rows every
//! shard keeps a copy of: tenant and webhook changes). Those writes go to shard 0 first, each
//! bumping the count in its own transaction, so shard 0's count is never below another
//! shard's. At open, before anything is written, a shard file from another store or one newer
//! than shard 0 (an older `rota.db` put back on its own) is refused: bringing its copies in
//! line with shard 0's would undo newer changes, so the files are left as they are.

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

const STORE_ID: &str = "store_id";
const GENERATION: &str = "copies_generation";

/// What a shard file says about itself; `None` for a file from before store ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub store_id: Option<String>,
    pub generation: i64,
}

/// Counts one more write to the copies, in the transaction that makes it.
pub(crate) fn bump_generation(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO settings (name, doc) VALUES ('copies_generation', '1') \
         ON CONFLICT (name) DO UPDATE SET doc = CAST(CAST(doc AS INTEGER) + 1 AS TEXT)",
    )?
    .execute([])?;
    Ok(())
}

/// Reads a file's identity; a file without a `settings` table (an old schema) has none.
pub(crate) fn read(conn: &Connection) -> rusqlite::Result<Identity> {
    let has_settings: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'settings'",
        [],
        |r| r.get(0),
    )?;
    if has_settings == 0 {
        return Ok(Identity {
            store_id: None,
            generation: 0,
        });
    }
    let get = |name: &str| -> rusqlite::Result<Option<String>> {
        conn.query_row("SELECT doc FROM settings WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()
    };
    Ok(Identity {
        store_id: get(STORE_ID)?,
        generation: get(GENERATION)?.and_then(|g| g.parse().ok()).unwrap_or(0),
    })
}

/// Reads the identity of each file of `paths` that exists, writing nothing (the connection
/// may replay a crashed process's WAL, which changes no data; a read-only one could not).
pub(crate) fn read_files(paths: &[PathBuf]) -> Result<Vec<Option<Identity>>, String> {
    paths
        .iter()
        .map(|p| {
            if !p.exists() {
                return Ok(None);
            }
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(p, flags)
                .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
            read(&conn)
                .map(Some)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))
        })
        .collect()
}

/// Refuses shard files that do not belong beside shard 0 (`found[0]`), naming what to do.
pub(crate) fn check(paths: &[PathBuf], found: &[Option<Identity>]) -> Result<(), String> {
    let Some(Some(home)) = found.first() else {
        return Ok(()); // a new store: nothing to compare
    };
    let name = |p: &Path| p.display().to_string();
    for (path, theirs) in paths.iter().zip(found).skip(1) {
        let Some(theirs) = theirs else { continue };
        match (&home.store_id, &theirs.store_id) {
            (Some(ours), Some(other)) if ours != other => {
                return Err(format!(
                    "{} belongs to another store (store id {other}; {} has {ours}); put back the \
                     shard file that belongs with {}, or restore a whole backup (rota restore \
                     brings back every file of one). Nothing was changed",
                    name(path),
                    name(&paths[0]),
                    name(&paths[0]),
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{} is from before store ids but {} has one: {} is older than its shard \
                     files; restore a whole backup (rota restore brings back every file of one) \
                     or put back the {} that belongs with these shard files. Nothing was changed",
                    name(&paths[0]),
                    name(path),
                    name(&paths[0]),
                    name(&paths[0]),
                ));
            }
            _ => {}
        }
        if theirs.generation > home.generation {
            return Err(format!(
                "{} is newer than {} (its copies of the tenants and webhooks are at generation \
                 {}, {}'s at {}): {} looks like an older copy put back on its own, and opening \
                 would undo the newer changes. Restore a whole backup (rota restore brings back \
                 every file of one) or put back the {} that belongs with these shard files. \
                 Nothing was changed",
                name(path),
                name(&paths[0]),
                theirs.generation,
                name(&paths[0]),
                home.generation,
                name(&paths[0]),
                name(&paths[0]),
            ));
        }
    }
    Ok(())
}

/// After the copies are in line: shard 0 gets a store id if it has none (a store made now or
/// by an older Rota), written there first so a crash leaves no shard with an id shard 0 lacks;
/// then every other shard takes shard 0's id and generation.
pub(crate) fn stamp(conns: &mut [Connection]) -> rusqlite::Result<()> {
    let Some((home, others)) = conns.split_first_mut() else {
        return Ok(());
    };
    let mine = read(home)?;
    let id = match mine.store_id {
        Some(id) => id,
        None => {
            let id: String = rand::random::<[u8; 16]>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            write(home, &id, mine.generation)?;
            id
        }
    };
    for conn in others {
        let theirs = read(conn)?;
        if theirs.store_id.as_deref() != Some(&id) || theirs.generation != mine.generation {
            write(conn, &id, mine.generation)?;
        }
    }
    Ok(())
}

fn write(conn: &mut Connection, id: &str, generation: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT OR REPLACE INTO settings (name, doc) VALUES (?1, ?2)",
        params![STORE_ID, id],
    )?;
    tx.execute(
        "INSERT OR REPLACE INTO settings (name, doc) VALUES (?1, ?2)",
        params![GENERATION, generation.to_string()],
    )?;
    tx.commit()
}
