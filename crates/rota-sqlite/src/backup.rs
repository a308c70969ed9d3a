//! Backup and restore of the embedded store's files.
//!
//! A backup is one directory laid out like a data directory (`rota.db`, `rota-shard1.db`, …)
//! plus `manifest.json`, written last, which names every file: a directory without it is an
//! unfinished backup. Each shard file is copied through SQLite's online backup in one step, so
//! it reads one snapshot of that file, taken after the backup began: every commit acknowledged
//! before it began is in the copy, and the server keeps serving meanwhile (in WAL mode a reader
//! never blocks the writer). Shards 1.. are copied before shard 0: writes to the rows every
//! shard keeps a copy of (tenants, webhooks) reach shard 0 first, so the copy of shard 0 is
//! the newest, which is the state a crash between two shards' commits leaves and opening
//! finishes (its tombstones name tenants deleted meanwhile; a shard newer than shard 0 would
//! be refused). A task lives in one shard, so nothing else spans files. Each copy is written
//! beside its destination, checked, switched to a single file (no WAL), synced, then renamed
//! into place. Restore also takes a single file from an older `rota backup FILE` (with its
//! `FILE-shardN.db` files beside it).

use crate::{existing_shards, shard_path, DB_FILE};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file in a backup directory that names its files; written last.
pub const MANIFEST: &str = "manifest.json";

/// What a backup or restore copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub bytes: u64,
    pub schema_version: i64,
    /// Files copied: `rota.db` and its shards.
    pub files: usize,
}

/// `manifest.json`: what a finished backup holds.
#[derive(Serialize, Deserialize)]
struct Manifest {
    /// The manifest's format (1).
    rota_backup: u32,
    schema_version: i64,
    /// The shard files, shard 0 first.
    files: Vec<String>,
    bytes: u64,
}

fn err<'a>(what: &'a str, path: &'a Path) -> impl Fn(rusqlite::Error) -> String + 'a {
    move |e| format!("{what} {}: {e}", path.display())
}

/// Makes `dir` (0700) if it does not exist; refuses one that holds anything.
fn empty_dir(dir: &Path, what: &str) -> Result<(), String> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| {
            format!(
                "{} exists and is not a directory we can read ({e}); {what}",
                dir.display()
            )
        })?;
        if entries.next().is_some() {
            return Err(format!(
                "{} is not empty; {what} (nothing was changed)",
                dir.display()
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
    }
    Ok(())
}

/// Copies the store whose shard 0 is `db` (which a server may be using) into the new or empty
/// directory `to`: its shard files, then `manifest.json`. `bytes` sums the shard files.
pub fn backup(db: &Path, to: &Path) -> Result<Copied, String> {
    if !db.exists() {
        return Err(format!("{} holds no store", db.display()));
    }
    let shards = existing_shards(db);
    empty_dir(
        to,
        "back up to a new directory (an older backup is never overwritten)",
    )?;
    let home = to.join(DB_FILE);
    let targets: Vec<PathBuf> = (0..shards.len()).map(|i| shard_path(&home, i)).collect();
    // Shard 0 last: see the module's comment.
    let order: Vec<usize> = (1..shards.len()).chain([0]).collect();
    let copied = copy_all(&shards, &targets, &order, |path| {
        let src = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err("cannot open", path))?;
        // A busy writer holds its lock for milliseconds; wait for it rather than fail.
        src.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err("cannot read", path))?;
        Ok(src)
    })
    .inspect_err(|_| {
        let _ = std::fs::remove_dir(to); // only when empty: what was there before stays
    })?;
    let manifest = Manifest {
        rota_backup: 1,
        schema_version: copied.schema_version,
        files: targets.iter().map(|t| file_name(t)).collect(),
        bytes: copied.bytes,
    };
    let text = serde_json::to_string_pretty(&manifest).expect("a manifest serializes");
    if let Err(e) = write_synced(&to.join(MANIFEST), text.as_bytes()) {
        for made in &targets {
            let _ = std::fs::remove_file(made);
        }
        return Err(e);
    }
    Ok(copied)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes `bytes` beside `to`, syncs, renames into place and syncs the directory.
fn write_synced(to: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut partial: PathBuf = to.as_os_str().to_owned().into();
    partial.as_mut_os_string().push(".partial");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&partial)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&partial, to)?;
        sync_parent(to);
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot write {}: {e}", to.display())
    })
}

/// A rename survives a crash once its directory is synced.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Copies each of `from` to the same place in `to`, in `order`; on a failure, removes the
/// copies made.
fn copy_all(
    from: &[PathBuf],
    to: &[PathBuf],
    order: &[usize],
    open: impl Fn(&Path) -> Result<Connection, String>,
) -> Result<Copied, String> {
    let mut total = Copied {
        bytes: 0,
        schema_version: 0,
        files: 0,
    };
    for (done, &i) in order.iter().enumerate() {
        match open(&from[i]).and_then(|c| copy_into(&c, &to[i])) {
            Ok(c) => {
                total.bytes += c.bytes;
                total.schema_version = c.schema_version;
                total.files += 1;
            }
            Err(e) => {
                for &made in &order[..done] {
                    let _ = std::fs::remove_file(&to[made]);
                }
                return Err(e);
            }
        }
    }
    Ok(total)
}

/// The shard files of the backup `from`: a directory `rota backup` wrote (every file its
/// manifest names must be there, and no other shard file), or an older single-file backup
/// with its `-shardN.db` files beside it.
fn backup_files(from: &Path) -> Result<Vec<PathBuf>, String> {
    if !from.is_dir() {
        if !from.exists() {
            return Err(format!("{} does not exist", from.display()));
        }
        return Ok(existing_shards(from));
    }
    let path = from.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{} is not a finished Rota backup: cannot read its {MANIFEST} ({e}); a backup that \
             was cut short has none, so use another",
            from.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| format!("{} is unreadable: {e}", path.display()))?;
    let files = existing_shards(&from.join(DB_FILE));
    let found: Vec<String> = files.iter().map(|f| file_name(f)).collect();
    if let Some(lost) = manifest.files.iter().find(|f| !from.join(f).exists()) {
        return Err(format!(
            "{} is incomplete: {lost} is missing (its {MANIFEST} names {}); restore the whole \
             backup directory",
            from.display(),
            manifest.files.join(", ")
        ));
    }
    if found != manifest.files {
        return Err(format!(
            "{} holds {} but its {MANIFEST} names {}; restore the backup directory as \
             `rota backup` wrote it",
            from.display(),
            found.join(", "),
            manifest.files.join(", ")
        ));
    }
    Ok(files)
}

/// Restores the backup `from` (a backup directory, or an older single-file backup) into
/// `data_dir`, which must be empty or not exist yet.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Copied, String> {
    let shards = backup_files(from)?;
    for path in &shards {
        let src = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err("cannot open", path))?;
        check(&src, path)?;
    }
    empty_dir(data_dir, "restore into a new or empty directory")?;
    let home = data_dir.join(DB_FILE);
    let targets: Vec<PathBuf> = (0..shards.len()).map(|i| shard_path(&home, i)).collect();
    let order: Vec<usize> = (0..shards.len()).collect();
    copy_all(&shards, &targets, &order, |path| {
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
            sync_parent(to);
            Ok(c)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Writes `entry` into the audit log of the store whose shard 0 is `db` (which a server may be
/// using: the write waits up to 5 s for its writer), in a transaction of its own, bringing
/// that file's schema up to date first (a restored backup of an older schema).
pub fn record(db: &Path, entry: &rota_core::audit::AuditEntry) -> Result<(), String> {
    let mut conn = Connection::open(db).map_err(err("cannot open", db))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err("cannot open", db))?;
    crate::schema::migrate(&mut conn)?;
    let tx = conn.transaction().map_err(err("cannot write to", db))?;
    crate::audit::write(&tx, entry).map_err(err("cannot write to", db))?;
    tx.commit().map_err(err("cannot write to", db))
}
