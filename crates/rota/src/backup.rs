//! `rota backup` and `rota restore` for the embedded store. PostgreSQL has its own tools
//! (docs/operations.md).

use crate::config;
use anyhow::{bail, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The directory to write: `rota.db`, one file per further shard and `manifest.json`.
    /// It must be new or empty; copy or move it as one thing.
    dir: PathBuf,
    /// The data directory of the server, which may be running.
    #[arg(long, env = "ROTA_DATA_DIR", value_name = "DIR", default_value = config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// A directory `rota backup` wrote (or the file an older `rota backup FILE` wrote, with
    /// its `FILE-shardN.db` files beside it).
    backup: PathBuf,
    /// Where to restore it: a new or empty directory; then `rota serve --data-dir DIR`.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

fn embedded_only(what: &str) -> Result<()> {
    if std::env::var_os("ROTA_DATABASE_URL").is_some() {
        bail!(
            "`rota {what}` copies the embedded store; ROTA_DATABASE_URL names PostgreSQL, whose \
             own tools do this (pg_dump, or base backups with point-in-time recovery: see \
             docs/operations.md)"
        );
    }
    Ok(())
}

/// A consistent copy of the store while the server runs: every task acknowledged before it
/// began is in it.
pub fn backup(args: BackupArgs) -> Result<()> {
    embedded_only("backup")?;
    let db = config::db_path(&args.data_dir);
    // Recorded first, so the backup holds its own entry.
    let target = args.dir.display().to_string();
    let entry = entry(
        "backup.create",
        &target,
        serde_json::json!({ "to": target }),
    );
    if let Err(e) = rota_sqlite::backup::record(&db, &entry) {
        eprintln!("warning: the audit log does not record this backup: {e}");
    }
    let started = std::time::Instant::now();
    let copied = rota_sqlite::backup::backup(&db, &args.dir).map_err(anyhow::Error::msg)?;
    println!(
        "backed up {} to {} ({} shard files and {}, {} bytes, schema {}) in {} ms",
        db.display(),
        args.dir.display(),
        copied.files,
        rota_sqlite::backup::MANIFEST,
        copied.bytes,
        copied.schema_version,
        started.elapsed().as_millis()
    );
    Ok(())
}

pub fn restore(args: RestoreArgs) -> Result<()> {
    embedded_only("restore")?;
    let copied =
        rota_sqlite::backup::restore(&args.backup, &args.data_dir).map_err(anyhow::Error::msg)?;
    let from = args.backup.display().to_string();
    let entry = entry(
        "backup.restore",
        &args.data_dir.display().to_string(),
        serde_json::json!({ "from": from, "schema_version": copied.schema_version }),
    );
    rota_sqlite::backup::record(&config::db_path(&args.data_dir), &entry).map_err(|e| {
        anyhow::anyhow!("restored, but the audit log could not record the restore: {e}")
    })?;
    println!(
        "restored {} into {} ({} files, {} bytes, schema {}); start it with: rota serve \
         --data-dir {}",
        args.backup.display(),
        args.data_dir.display(),
        copied.files,
        copied.bytes,
        copied.schema_version,
        args.data_dir.display()
    );
    Ok(())
}

/// An audit entry for a backup or restore made from this command line: by the user running
/// it, in the admin tenant.
fn entry(action: &str, target: &str, after: serde_json::Value) -> rota_core::audit::AuditEntry {
    use rota_core::{Clock, SystemClock};
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    rota_core::audit::AuditEntry {
        id: rota_server::audit::new_id(),
        at: SystemClock.now(),
        tenant: rota_core::DEFAULT_TENANT.into(),
        actor: format!("cli:{user}"),
        action: action.into(),
        target: format!("files/{target}"),
        before: None,
        after: Some(after),
        request_id: None,
        source: None,
    }
}
