//! `rota serve`: configuration, the data directory (its lock, its permissions, the first
//! admin key), the listener, graceful shutdown and `--demo`; and `rota recover-admin`.

use crate::{access, config};
use anyhow::{Context, Result};
use rota_core::{Clock, SystemClock};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7070, or `listen` in the config file].
    #[arg(long, env = "ROTA_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Also speak the Faktory Work Protocol here (e.g. 127.0.0.1:7419), so Faktory's client
    /// libraries work against Rota; their password is a Rota API key (docs/faktory.md)
    /// [default: off, or `[faktory] listen` in the config file].
    #[arg(long, env = "ROTA_FAKTORY_LISTEN", value_name = "ADDR")]
    faktory_listen: Option<String>,
    /// Directory holding the store, created on first start with mode 0700
    /// [default: ./rota-data, or `data_dir` in the config file].
    #[arg(long, env = "ROTA_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML config file: listen, data_dir, maintenance_interval_ms, [limits], [auth]
    /// [default: none]. docs/configuration.md lists every key and its default.
    #[arg(long, env = "ROTA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Keep the data in PostgreSQL (postgres://user:pass@host:5432/db, `sslmode=require` for
    /// TLS) instead of the embedded file; several servers may share one database
    /// [default: `[storage]` in the config file, else the embedded store].
    #[arg(long, env = "ROTA_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// Do not apply missing PostgreSQL migrations at start (apply them with `rota migrate
    /// up`); a schema not at this binary's version is then refused.
    #[arg(long)]
    no_migrate: bool,
    /// After starting, enqueue, claim and complete one task against this server and print each
    /// step: a quick look at the main job.
    #[arg(long)]
    demo: bool,
}

pub async fn serve(args: ServeArgs) -> Result<()> {
    let cfg = config::load(
        config::Overrides {
            listen: args.listen,
            faktory_listen: args.faktory_listen,
            data_dir: args.data_dir,
            config: args.config,
            database_url: args.database_url,
        },
        &|k| std::env::var(k).ok(),
    )?;
    // Every connection and webhook attempt holds a descriptor; the usual soft limit (1024) is
    // far below what the hard limit allows.
    match rota_server::fds::raise_limit() {
        Some((before, after)) if after > before => {
            tracing::info!(
                before,
                after,
                "raised the limit on open files to its hard limit"
            )
        }
        Some((before, _)) => tracing::info!(limit = before, "the limit on open files"),
        None => {}
    }
    // Signal handlers before the port opens, so a SIGTERM sent as soon as it answers is not
    // lost; the port before the store, so a busy port leaves no new store and key behind.
    let stop = shutdown_signal();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set another address with --listen or ROTA_LISTEN)",
                cfg.listen
            )
        })?;
    let faktory = match cfg.faktory_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen for Faktory clients on {addr} (set another address with \
                 --faktory-listen or ROTA_FAKTORY_LISTEN)"
            )
        })?),
        None => None,
    };
    let embedded = matches!(cfg.storage, crate::storage::Storage::Embedded { .. });
    // The embedded store's writers are in this process: one server per data directory. On PostgreSQL the
    // directory only keeps this server's admin token and address.
    let lock = if embedded {
        Some(lock_data_dir(&cfg.data_dir)?)
    } else {
        make_private_dir(&cfg.data_dir)?;
        None
    };
    let mut cfg = cfg;
    session_secret(&mut cfg, embedded)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = crate::storage::open(
        &cfg.storage,
        &cfg.data_dir,
        &cfg.server,
        clock.clone(),
        !args.no_migrate,
    )
    .await?;
    let auth = rota_server::auth::Auth::load(store.clone(), clock.clone(), cfg.server.auth.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start access control: {e}"))?;
    let admin_token = bootstrap(&auth, &cfg).await?;
    let addr = listener.local_addr()?;
    // The CLI sends this data dir's admin token only to the server listening here.
    std::fs::write(access::listen_path(&cfg.data_dir), format!("{addr}\n"))
        .context("cannot record the listen address in the data dir")?;
    let store_name = match &cfg.storage {
        crate::storage::Storage::Embedded { shards } => format!(
            "{} ({shards} shards)",
            config::db_path(&cfg.data_dir).display()
        ),
        crate::storage::Storage::Postgres { url, .. } => crate::storage::redact(url),
    };
    tracing::info!(%addr, store = %store_name, auth = auth.enabled(), "rota is serving on http://{addr} (the dashboard is at /)");
    if args.demo {
        let token_file = access::admin_token_path(&cfg.data_dir);
        tokio::spawn(demo(format!("http://{addr}"), admin_token, token_file));
    }
    if let Some(f) = &faktory {
        tracing::info!(addr = %f.local_addr()?, "speaking the Faktory protocol");
    }
    let doors = rota_server::Doors {
        http: listener,
        faktory,
    };
    let served = rota_server::run_doors(doors, store.clone(), cfg.server, clock, auth, async {
        stop.await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
    .await;
    rota_store::Store::close(&*store).await;
    drop(lock);
    tracing::info!("stopped");
    served.context("the server failed")
}

/// Creates the data directory (mode 0700; an existing one is narrowed to it) and takes its
/// lock: one server per data directory, since the embedded store has a single writer.
pub(crate) fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    make_private_dir(dir)?;
    let lock_path = dir.join("rota.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another rota server is using {}; stop it or choose another --data-dir",
            dir.display()
        )
    })?;
    Ok(lock)
}

/// Creates the directory with mode 0700, or narrows an existing one to it.
fn make_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("cannot make {} private (mode 0700)", dir.display()))?;
    Ok(())
}

#[derive(clap::Args)]
pub struct RecoverArgs {
    /// The data directory of the stopped server [default: ./rota-data, or `data_dir` in the
    /// config file].
    #[arg(long, env = "ROTA_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The server's TOML config file, read as `rota serve` reads it [default: none].
    #[arg(long, env = "ROTA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `rota recover-admin`: the way back when every admin key was revoked or lost. It needs the
/// data directory's lock, so it runs only while the server is stopped, by whoever can read
/// the directory (who could read the store itself anyway). It reads the configuration as
/// `serve` does and opens the shard files that are there, never making new ones.
pub async fn recover_admin(args: RecoverArgs) -> Result<()> {
    let cfg = config::load(
        config::Overrides {
            listen: None,
            faktory_listen: None,
            data_dir: args.data_dir,
            config: args.config,
            database_url: None,
        },
        &|k| std::env::var(k).ok(),
    )?;
    let crate::storage::Storage::Embedded { shards } = cfg.storage else {
        anyhow::bail!(
            "the configuration names PostgreSQL; rota recover-admin works on an embedded data \
             directory, offline (on PostgreSQL, create a key with the admin token of any \
             server: ROTA_ADMIN_TOKEN)"
        );
    };
    let db = config::db_path(&cfg.data_dir);
    if !db.exists() {
        anyhow::bail!(
            "{} holds no store; `rota serve --data-dir {}` creates one with an admin key",
            cfg.data_dir.display(),
            cfg.data_dir.display()
        );
    }
    let lock = lock_data_dir(&cfg.data_dir)?;
    // Only the files there: fewer than storage.shards would otherwise get new, empty ones.
    let storage = crate::storage::Storage::Embedded {
        shards: shards.min(rota_sqlite::existing_shards(&db).len()),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store =
        crate::storage::open(&storage, &cfg.data_dir, &cfg.server, clock.clone(), false).await?;
    let auth = rota_server::auth::Auth::load(store.clone(), clock, Default::default())
        .await
        .map_err(|e| anyhow::anyhow!("cannot load access control: {e}"))?;
    let made = auth.create_admin_key("recovered admin").await;
    rota_store::Store::close(&*store).await;
    let (key, token) =
        made.map_err(|e| anyhow::anyhow!("cannot create an admin key: {}", e.message))?;
    let path = access::admin_token_path(&cfg.data_dir);
    write_secret(&path, &token)?;
    drop(lock);
    println!(
        "rota: created admin key `{}`. Its token is shown this once and saved in {} (mode 0600):\n\n    {token}\n",
        key.id,
        path.display()
    );
    Ok(())
}

/// On the first start of a store with no API key (and no `ROTA_ADMIN_TOKEN`), creates an
/// admin key, writes its token to `<data-dir>/admin-token` (mode 0600) and prints it once on
/// stdout (never to the log). Returns the admin token this process knows, for `--demo`.
async fn bootstrap(
    auth: &rota_server::auth::Auth,
    cfg: &config::ServeConfig,
) -> Result<Option<String>> {
    if !auth.enabled() {
        tracing::warn!(
            "access control is disabled: every request acts as admin of tenant `default`"
        );
        return Ok(None);
    }
    if let Some(t) = &cfg.server.auth.admin_token {
        return Ok(Some(t.0.clone()));
    }
    let path = access::admin_token_path(&cfg.data_dir);
    let existing = || {
        std::fs::read_to_string(&path)
            .ok()
            .map(|t| t.trim().to_owned())
    };
    if !auth.has_no_keys() {
        return Ok(existing());
    }
    // Several servers may start on one empty database: exactly one creates the key.
    let made = auth
        .create_first_admin_key("bootstrap admin")
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the first admin key: {}", e.message))?;
    let Some((key, token)) = made else {
        tracing::info!(
            "another server created the first admin key; its token is in that server's data dir"
        );
        return Ok(existing());
    };
    write_secret(&path, &token)?;
    println!(
        "rota: created the first admin key `{}`. Its token is shown this once and saved in {} (mode 0600):\n\n    {token}\n",
        key.id,
        path.display()
    );
    tracing::info!(key = %key.id, file = %path.display(), "created the first admin key");
    Ok(Some(token))
}

/// The secret that signs dashboard sessions and event tickets, unless configured: the one in
/// `<data-dir>/session-secret` (mode 0600), made on the first start. It is not in the store, so
/// a copy of the database or a backup signs nobody in. On PostgreSQL every server needs the
/// same secret (`[auth] session_secret` or `ROTA_SESSION_SECRET`); without it each server uses
/// its own file, and a session or ticket works only on the server that issued it.
fn session_secret(cfg: &mut config::ServeConfig, embedded: bool) -> Result<()> {
    let auth = &mut cfg.server.auth;
    if auth.session_secret.is_some() || !auth.enabled {
        return Ok(());
    }
    let path = cfg.data_dir.join(SESSION_SECRET_FILE);
    let secret = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = rota_server::auth::token::random_secret();
            write_secret(&path, &s)?;
            tracing::info!(file = %path.display(), "made the secret that signs dashboard sessions");
            s
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    auth.session_secret = Some(rota_server::auth::Secret(secret));
    if let Err(e) = auth.validate() {
        anyhow::bail!(
            "{} holds no usable secret ({e}); delete it to make a new one (every dashboard \
             session then ends)",
            path.display()
        );
    }
    if !embedded {
        tracing::warn!(
            file = %path.display(),
            "no auth.session_secret (ROTA_SESSION_SECRET) is set: dashboard sessions and event \
             tickets are signed with this server's own secret and work only on this server; \
             give every server sharing the database the same secret"
        );
    }
    Ok(())
}

/// Where `rota serve` keeps the session secret it made.
pub const SESSION_SECRET_FILE: &str = "session-secret";

/// Writes a file only its owner can read.
fn write_secret(path: &Path, secret: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    writeln!(f, "{secret}")?;
    f.sync_all()?;
    // The file's name is durable only once its directory is.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when it
/// is first awaited, so a signal sent right after the server is reachable is not lost.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
        async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Enqueue → claim → complete one task through the HTTP API, printing each step.
async fn demo(url: String, token: Option<String>, token_file: PathBuf) {
    use rota_client::{ClaimOptions, Client, NewTask};
    let run = async {
        let c = Client::with_token(&url, token.as_deref())?;
        let task = NewTask::new("email.send", &serde_json::json!({"to": "ada@example.com"}));
        let e = c.enqueue("demo", &task).await?;
        println!(
            "demo: enqueued {} ({}) in queue `demo`: {}",
            e.task.id, e.task.kind, e.task.state
        );
        let opts = ClaimOptions {
            worker: "demo-worker".into(),
            max: 1,
            wait_ms: Some(1_000),
            ..Default::default()
        };
        let claimed = c.claim("demo", &opts).await?;
        let t = claimed.first().context("the demo task was not claimable")?;
        let lease = t.lease.as_ref().context("a claimed task has a lease")?;
        println!(
            "demo: claimed it as `demo-worker`, lease {} until {}",
            lease.token, lease.expires_at
        );
        let result = serde_json::value::to_raw_value(&serde_json::json!({"sent": true}))?;
        let done = c.complete(t.id, &lease.token, Some(result)).await?;
        println!(
            "demo: completed it: state {}, attempt {}",
            done.state, done.attempt
        );
        // The binary as it was started: `rota` may not be on PATH yet.
        let exe = std::env::args().next().unwrap_or_else(|| "rota".into());
        println!("demo: try it yourself: {exe} queue stats demo");
        println!(
            "demo: or: curl -s -H \"Authorization: Bearer $(cat {})\" {url}/v1/queues/demo",
            token_file.display()
        );
        anyhow::Ok(())
    };
    if let Err(e) = run.await {
        eprintln!("demo failed: {e:#}");
    }
}
