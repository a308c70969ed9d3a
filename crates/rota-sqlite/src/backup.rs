//! Backup and restore of the embedded store's files.
//!
//! A backup copies every page of each shard file through SQLite's online backup in one step,
//! so it reads one snapshot of that file, taken after the backup began: every commit
//! acknowledged before it began is in the copy, and the server keeps serving meanwhile (in WAL
//! mode a reader never blocks the writer). The shards' snapshots are taken one after another,
//! which is enough: a task lives in one shard, and what every shard keeps a copy of is brought
//! in line with shard 0's when the store opens. Each copy is written beside its destination,
//! checked, switched to a single file (no WAL), synced, then renamed into place, so a file at a
//! destination is always a whole backup of its shard. Shard `k` of a backup `b.db` is
//! `b-shard{k}.db` beside it (see [`crate::shard_path`]).

use crate::{existing_shards, shard_path, DB_FILE};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// What a backup or restore copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub bytes: u64,
    pub schema_version: i64,
    /// Files copied: `rota.db` and its shards.
    pub files: usize,
}

fn err<'a>(what: &'a str, path: &'a Path) -> impl Fn(rusqlite::Error) -> String + 'a {
    move |e| format!("{what} {}: {e}", path.display())
}

/// Copies the store whose shard 0 is `db` (which a server may be using) to the file `to` and
/// its shard files beside it. `bytes` sums them all; `files` says how many.
pub fn backup(db: &Path, to: &Path) -> Result<Copied, String> {
    if !db.exists() {
        return Err(format!("{} holds no store", db.display()));
    }
    let shards = existing_shards(db);
    let targets: Vec<PathBuf> = (0..shards.len()).map(|i| shard_path(to, i)).collect();
    if let Some(t) = targets.iter().find(|t| t.exists()) {
        return Err(format!(
            "{} exists; back up to a new file (an older backup is never overwritten)",
            t.display()
        ));
    }
    copy_all(&shards, &targets, |path| {
        let src = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err("cannot open", path))?;
        // A busy writer holds its lock for milliseconds; wait for it rather than fail.
        src.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err("cannot read", path))?;
        Ok(src)
    })
}

/// Copies each of `from` to the same place in `to`; on a failure, removes the copies made.
fn copy_all(
    from: &[PathBuf],
    to: &[PathBuf],
    open: impl Fn(&Path) -> Result<Connection, String>,
) -> Result<Copied, String> {
    let mut total = Copied {
        bytes: 0,
        schema_version: 0,
        files: 0,
    };
    for (src, dst) in from.iter().zip(to) {
        match open(src).and_then(|c| copy_into(&c, dst)) {
            Ok(c) => {
                total.bytes += c.bytes;
                total.schema_version = c.schema_version;
                total.files += 1;
            }
            Err(e) => {
                for made in &to[..total.files] {
                    let _ = std::fs::remove_file(made);
                }
                return Err(e);
            }
        }
    }
    Ok(total)
}

/// Restores the backup `from` (and its shard files beside it) into `data_dir`, which must be
/// empty or not exist yet.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Copied, String> {
    let shards = existing_shards(from);
    for path in &shards {
        let src = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err("cannot open", path))?;
        check(&src, path)?;
    }
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
    let home = data_dir.join(DB_FILE);
    let targets: Vec<PathBuf> = (0..shards.len()).map(|i| shard_path(&home, i)).collect();
    copy_all(&shards, &targets, |path| {
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err("cannot open", path))
    })
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
            files: 1,
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
