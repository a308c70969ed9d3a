//! Which engine holds the data (the embedded file by default, PostgreSQL when a database URL
//! is given), opening it, and `rota migrate` for operators who apply PostgreSQL migrations
//! themselves.

use anyhow::{bail, Context, Result};
use rota_core::Clock;
use rota_postgres::{PostgresOptions, PostgresStore};
use rota_sqlite::{SqliteOptions, SqliteStore};
use rota_store::DynStore;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `[storage]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// `embedded` (the default) or `postgres`.
    pub engine: Option<String>,
    /// `postgres://user:pass@host:5432/db` (for `postgres`).
    pub url: Option<String>,
    /// Connections each server keeps to PostgreSQL [default: 16].
    pub pool_size: Option<usize>,
    /// PEM file of CA certificates to trust for TLS to the database.
    pub ca_file: Option<PathBuf>,
    /// Shard files the embedded engine spreads new queues over, each with its own writer
    /// [default: the number of cores, at most 16].
    pub shards: Option<usize>,
}

/// The embedded engine's default shard count: one writer per core, up to 16.
pub fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(16))
}

#[derive(Clone, PartialEq, Eq)]
pub enum Storage {
    /// SQLite files in the data directory: `rota.db` and its shards.
    Embedded { shards: usize },
    Postgres {
        url: String,
        pool_size: usize,
        ca_file: Option<PathBuf>,
    },
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Embedded { shards } => {
                f.debug_struct("Embedded").field("shards", shards).finish()
            }
            Storage::Postgres { url, pool_size, .. } => f
                .debug_struct("Postgres")
                .field("url", &redact(url))
                .field("pool_size", pool_size)
                .finish(),
        }
    }
}

/// The URL with its password replaced, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The storage from `--database-url`/`ROTA_DATABASE_URL` over `[storage]`.
pub fn resolve(url_flag: Option<String>, file: Option<StorageFile>) -> Result<Storage> {
    let file = file.unwrap_or_default();
    let url = url_flag.filter(|u| !u.is_empty()).or(file.url);
    let engine = match file.engine.as_deref() {
        None if url.is_some() => "postgres",
        None => "embedded",
        Some(e) => e,
    };
    match engine {
        "embedded" | "sqlite" => {
            if url.is_some() {
                bail!("storage.engine is `{engine}` but a database URL is set; drop one of them");
            }
            let shards = file.shards.unwrap_or_else(default_shards);
            let most = rota_core::id::ID_STRIPES as usize;
            if !(1..=most).contains(&shards) {
                bail!("storage.shards must be 1 to {most}, not {shards}");
            }
            Ok(Storage::Embedded { shards })
        }
        "postgres" | "postgresql" => {
            let url = url.context(
                "storage.engine is postgres but no URL is set: use --database-url, \
                 ROTA_DATABASE_URL or storage.url",
            )?;
            let options = PostgresOptions::default();
            rota_postgres::parse_url(&url, &options).map_err(anyhow::Error::msg)?;
            if file.shards.is_some() {
                bail!("storage.shards is for the embedded engine; PostgreSQL is not sharded");
            }
            let pool_size = file.pool_size.unwrap_or(options.pool_size);
            if !(1..=1_000).contains(&pool_size) {
                bail!("storage.pool_size must be 1 to 1000, not {pool_size}");
            }
            Ok(Storage::Postgres {
                url,
                pool_size,
                ca_file: file.ca_file,
            })
        }
        other => bail!("storage.engine `{other}` is not one of embedded, postgres"),
    }
}

/// Opens the store; `migrate` applies missing PostgreSQL migrations first.
pub async fn open(
    storage: &Storage,
    data_dir: &Path,
    server: &rota_server::ServerConfig,
    clock: Arc<dyn Clock>,
    migrate: bool,
) -> Result<DynStore> {
    let limits = &server.limits;
    match storage {
        Storage::Embedded { shards } => {
            let options = SqliteOptions {
                max_queues_per_tenant: limits.max_queues_per_tenant,
                event_retention_ms: server.events.retention_ms,
                audit_retention_ms: server.audit.retention_ms,
                shards: *shards,
                ..Default::default()
            };
            let store = SqliteStore::open(&crate::config::db_path(data_dir), clock, options)
                .map_err(|e| anyhow::anyhow!("cannot open the store: {e}"))?;
            Ok(Arc::new(store))
        }
        Storage::Postgres {
            url,
            pool_size,
            ca_file,
        } => {
            let options = PostgresOptions {
                pool_size: *pool_size,
                max_queues_per_tenant: limits.max_queues_per_tenant,
                migrate,
                ca_file: ca_file.clone(),
                event_retention_ms: server.events.retention_ms,
                audit_retention_ms: server.audit.retention_ms,
                ..Default::default()
            };
            let store = PostgresStore::open(url, clock, options)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot open the PostgreSQL store at {}: {e}", redact(url))
                })?;
            Ok(Arc::new(store))
        }
    }
}

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    action: MigrateAction,
    /// The PostgreSQL database.
    #[arg(long, env = "ROTA_DATABASE_URL", value_name = "URL", global = true)]
    database_url: Option<String>,
}

#[derive(clap::Subcommand)]
enum MigrateAction {
    /// Show the schema version, the version this binary expects, and any migration that
    /// started and did not finish.
    Status,
    /// Apply every missing migration (under a lock: safe while servers start).
    Up {
        /// Clear the mark of migration N that started and did not finish, then apply it again.
        /// Each migration runs in one transaction, so a failed one left nothing behind.
        #[arg(long, value_name = "N")]
        force_clean: Option<i64>,
    },
}

pub async fn migrate(args: MigrateArgs) -> Result<()> {
    use rota_postgres::schema;
    let url = args
        .database_url
        .context("rota migrate needs --database-url or ROTA_DATABASE_URL")?;
    let options = PostgresOptions::default();
    let mut client = rota_postgres::connect_one(&url, &options)
        .await
        .map_err(anyhow::Error::msg)?;
    match args.action {
        MigrateAction::Status => {
            let st = schema::status(&client).await?;
            println!(
                "schema version: {} (this rota expects {})",
                st.version, st.expected
            );
            if let Some((v, name)) = &st.dirty {
                println!("dirty: migration {v} ({name}) started and did not finish");
            }
            match st.check() {
                Ok(()) => println!("ok: the schema is at head"),
                Err(e) => bail!("{e}"),
            }
        }
        MigrateAction::Up { force_clean } => {
            if let Some(v) = force_clean {
                if !schema::clear_dirty(&client, v)
                    .await
                    .map_err(anyhow::Error::msg)?
                {
                    bail!(
                        "migration {v} is not marked as started and unfinished; nothing to clear"
                    );
                }
                println!("cleared the unfinished mark of migration {v}");
            }
            let applied = schema::migrate(&mut client)
                .await
                .map_err(anyhow::Error::msg)?;
            if applied.is_empty() {
                println!(
                    "ok: the schema was already at version {}",
                    schema::CURRENT_VERSION
                );
            } else {
                println!(
                    "applied migrations {applied:?}; the schema is at version {}",
                    schema::CURRENT_VERSION
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_picks_postgres_and_the_password_never_shows() {
        let s = resolve(Some("postgres://rota:s3cret@db:5432/rota".into()), None).unwrap();
        let default = PostgresOptions::default().pool_size;
        assert!(matches!(s, Storage::Postgres { pool_size, .. } if pool_size == default));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("rota:***@db"),
            "{shown}"
        );
        assert_eq!(
            resolve(None, None).unwrap(),
            Storage::Embedded {
                shards: default_shards()
            }
        );
    }

    #[test]
    fn bad_storage_settings_name_the_key() {
        let e = resolve(
            None,
            Some(StorageFile {
                engine: Some("postgres".into()),
                ..Default::default()
            }),
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("--database-url"));
        let e = resolve(
            None,
            Some(StorageFile {
                engine: Some("mysql".into()),
                ..Default::default()
            }),
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("storage.engine"));
        let e = resolve(
            Some("postgres://h/db".into()),
            Some(StorageFile {
                pool_size: Some(0),
                ..Default::default()
            }),
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("storage.pool_size"));
        for shards in [0, 65] {
            let e = resolve(
                None,
                Some(StorageFile {
                    shards: Some(shards),
                    ..Default::default()
                }),
            );
            assert!(format!("{:#}", e.unwrap_err()).contains("storage.shards must be 1 to 64"));
        }
        let e = resolve(
            Some("postgres://h/db".into()),
            Some(StorageFile {
                shards: Some(2),
                ..Default::default()
            }),
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("PostgreSQL is not sharded"));
        let e = resolve(Some("mysql://h/db".into()), None);
        assert!(format!("{:#}", e.unwrap_err()).contains("PostgreSQL URL"));
    }
}
