//! Backup and restore of the embedded store's file.
//!
//! A backup copies every page of the database through SQLite's online backup in one step, so it
//! reads one snapshot: every commit acknowledged before it began is in the copy, and the server
//! keeps serving meanwhile (in WAL mode a reader never blocks the writer). The copy is written
//! beside its destination, checked, switched to a single file (no WAL), synced, then renamed
//! into place, so a file at the destination is always a whole backup.

use crate::DB_FILE;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// What a backup or restore copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub bytes: u64,
    pub schema_version: i64,
}

fn err<'a>(what: &'a str, path: &'a Path) -> impl Fn(rusqlite::Error) -> String + 'a {
    move |e| format!("{what} {}: {e}", path.display())
}

/// Copies the store at `db` (which a server may be using) to the file `to`.
pub fn backup(db: &Path, to: &Path) -> Result<Copied, String> {
    if !db.exists() {
        return Err(format!("{} holds no store", db.display()));
    }
    if to.exists() {
        return Err(format!(
            "{} exists; back up to a new file (an older backup is never overwritten)",
            to.display()
        ));
    }
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(err("cannot open", db))?;
    // A busy writer holds its lock for milliseconds; wait for it rather than fail.
    src.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(err("cannot read", db))?;
    copy_into(&src, to)
}

/// Restores the backup `from` into `data_dir`, which must be empty or not exist yet.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Copied, String> {
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(err("cannot open", from))?;
    check(&src, from)?;
    if data_dir.exists() {
        let mut entries = std::fs::read_dir(data_dir)
            .map_err(|e| format!("cannot read {}: {e}", data_dir.display()))?;
        if entries.next().is_some() {
            return Err(format!(
                "{} is not empty; restore into a new or empty directory (nothing was changed)",
                data_dir.display()
            ));
        }
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", data_dir.display()))?;
    }
    copy_into(&src, &data_dir.join(DB_FILE))
}

/// Whether `conn` holds a Rota store this build can open: intact, with a known schema.
fn check(conn: &Connection, path: &Path) -> Result<i64, String> {
    let not_rota = |why: String| format!("{} is not a Rota backup: {why}", path.display());
    let ok: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| not_rota(e.to_string()))?;
    if ok != "ok" {
        return Err(not_rota(format!("it is damaged ({ok})")));
    }
    let has_tasks: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tasks'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n == 1)
        .map_err(|e| not_rota(e.to_string()))?;
    let version = crate::schema::version(conn).map_err(|e| not_rota(e.to_string()))?;
    if !has_tasks || version == 0 {
        return Err(not_rota("it has no task table".into()));
    }
    if version > crate::schema::CURRENT_VERSION {
        return Err(format!(
            "{} has schema version {version}, newer than this Rota understands ({}); restore it \
             with a newer Rota",
            path.display(),
            crate::schema::CURRENT_VERSION
        ));
    }
    Ok(version)
}

/// Copies every page of `src` in one step (one snapshot) to a file beside `to`, checks it,
/// makes it a single file, syncs it and renames it to `to`.
fn copy_into(src: &Connection, to: &Path) -> Result<Copied, String> {
    let mut partial: PathBuf = to.as_os_str().to_owned().into();
    partial.as_mut_os_string().push(".partial");
    let _ = std::fs::remove_file(&partial);
    crate::load::make_private(&partial)?;
    let copied = (|| {
        let mut dst = Connection::open(&partial).map_err(err("cannot create", &partial))?;
        {
            let b = rusqlite::backup::Backup::new(src, &mut dst)
                .map_err(err("cannot back up into", &partial))?;
            // -1: every page in one step, under one read snapshot of the source.
            b.step(-1).map_err(err("cannot copy into", &partial))?;
        }
        let version = check(&dst, &partial)?;
        let mode: String = dst
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .map_err(err("cannot finish", &partial))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(format!("cannot make {} a single file", partial.display()));
        }
        drop(dst);
        let file = std::fs::File::open(&partial)
            .map_err(|e| format!("cannot open {}: {e}", partial.display()))?;
        file.sync_all()
            .map_err(|e| format!("cannot sync {}: {e}", partial.display()))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Copied {
            bytes,
            schema_version: version,
        })
    })();
    match copied {
        Ok(c) => {
            std::fs::rename(&partial, to).map_err(|e| {
                format!("cannot move {} to {}: {e}", partial.display(), to.display())
            })?;
            // The rename itself survives a crash once the directory is synced.
            if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(c)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}
