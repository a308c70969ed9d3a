//! The `rota` binary: `rota serve` runs the server, `rota bench` measures it, and the other
//! commands drive a server through its HTTP API.
// Doc comments on the clap types are `--help` text, where `<id>` and `[limits]` mean what they
// say; they are not rustdoc markup.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod access;
mod bench;
mod cli;
mod config;
mod output;
mod worker_cmd;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rota_core::{Clock, SystemClock};
use rota_sqlite::{SqliteOptions, SqliteStore};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "rota",
    version,
    about = "A durable, multi-tenant task queue server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The server to talk to [default: http://127.0.0.1:7070].
    #[arg(long, global = true, env = "ROTA_URL")]
    url: Option<String>,
    /// API token (an API key or a JWT), sent as a bearer token. Unset, the CLI uses
    /// ROTA_ADMIN_TOKEN, or for a server on this machine the admin token `rota serve` saved in
    /// $ROTA_DATA_DIR/admin-token (default ./rota-data/admin-token).
    #[arg(long, global = true, env = "ROTA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Act in this tenant (an admin only; other credentials act in their own).
    #[arg(long, global = true, env = "ROTA_TENANT")]
    tenant: Option<String>,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value = "table")]
    output: output::Format,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server on the embedded store.
    ///
    /// Example: rota serve --listen 127.0.0.1:7070 --data-dir ./rota-data
    Serve(ServeArgs),
    /// Measure throughput and claim latency (starts its own server unless --url is given).
    ///
    /// Example: rota bench --tasks 200000
    Bench(bench::BenchArgs),
    #[command(flatten)]
    Api(ApiCommand),
    /// Print a shell completion script. Example: rota completions bash > /etc/bash_completion.d/rota
    Completions { shell: clap_complete::Shell },
}

/// The commands that talk to a server through its HTTP API.
#[derive(Subcommand)]
enum ApiCommand {
    /// Add, show, list, cancel and retry tasks.
    #[command(subcommand)]
    Task(cli::TaskCmd),
    /// Queue counts, settings, pause, resume, purge.
    #[command(subcommand)]
    Queue(cli::QueueCmd),
    /// The dead-letter queue: list and requeue.
    #[command(subcommand)]
    Dead(cli::DeadCmd),
    /// Tenants (admin only): create, list, set limits, delete.
    #[command(subcommand)]
    Tenant(access::TenantCmd),
    /// API keys of a tenant: create, list, revoke.
    #[command(subcommand)]
    Key(access::KeyCmd),
    /// Roles: list, and create, replace or delete custom ones.
    #[command(subcommand)]
    Role(access::RoleCmd),
    /// Show who the token is: tenant, roles, limits on queues and kinds.
    Whoami,
    /// Run a command for each task of a queue.
    ///
    /// Example: rota worker emails --kinds email.send --concurrency 4 -- ./send-email.sh
    Worker(worker_cmd::WorkerArgs),
}

impl ApiCommand {
    async fn run(self, client: rota_client::Client, fmt: output::Format) -> Result<()> {
        match self {
            ApiCommand::Task(cmd) => cli::task(&client, cmd, fmt).await,
            ApiCommand::Queue(cmd) => cli::queue(&client, cmd, fmt).await,
            ApiCommand::Dead(cmd) => cli::dead(&client, cmd, fmt).await,
            ApiCommand::Worker(args) => worker_cmd::run(client, args).await,
            ApiCommand::Tenant(cmd) => access::tenant(&client, cmd, fmt).await,
            ApiCommand::Key(cmd) => access::key(&client, cmd, fmt).await,
            ApiCommand::Role(cmd) => access::role(&client, cmd, fmt).await,
            ApiCommand::Whoami => access::whoami(&client, fmt).await,
        }
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ROTA_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Directory holding the store (created on first start).
    #[arg(long, env = "ROTA_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML config file: listen, data_dir, maintenance_interval_ms, [limits], [auth].
    #[arg(long, env = "ROTA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// After starting, enqueue, claim and complete one task against this server and print each
    /// step: a quick look at the main job.
    #[arg(long)]
    demo: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROTA_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = || tokio::runtime::Runtime::new().context("cannot start the async runtime");
    let (url, token, tenant, fmt) = (cli.url, cli.token, cli.tenant, cli.output);
    let outcome = match cli.command {
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(serve(args))),
        Command::Bench(args) => bench::run(args, url, token),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rota", &mut std::io::stdout());
            Ok(())
        }
        Command::Api(command) => cli::client(url.as_deref(), token.as_deref(), tenant.as_deref())
            .and_then(|client| runtime()?.block_on(command.run(client, fmt))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let cfg = config::load(
        config::Overrides {
            listen: args.listen,
            data_dir: args.data_dir,
            config: args.config,
        },
        &|k| std::env::var(k).ok(),
    )?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
    // One server per data dir: the embedded store has a single writer.
    let lock_path = cfg.data_dir.join("rota.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another rota server is using {}; stop it or choose another --data-dir",
            cfg.data_dir.display()
        )
    })?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let db = config::db_path(&cfg.data_dir);
    let store = Arc::new(
        SqliteStore::open(
            &db,
            clock.clone(),
            SqliteOptions {
                max_queues_per_tenant: cfg.server.limits.max_queues_per_tenant,
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("cannot open the store: {e}"))?,
    );
    let auth = rota_server::auth::Auth::load(store.clone(), clock.clone(), cfg.server.auth.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start access control: {e}"))?;
    let admin_token = bootstrap(&auth, &cfg).await?;
    let stop = shutdown_signal();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = %db.display(), auth = auth.enabled(), "rota is serving on http://{addr}");
    if args.demo {
        let token_file = access::admin_token_path(&cfg.data_dir);
        tokio::spawn(demo(format!("http://{addr}"), admin_token, token_file));
    }
    let served =
        rota_server::run_with_auth(listener, store.clone(), cfg.server, clock, auth, async {
            stop.await;
            tracing::info!("shutting down: finishing in-flight requests");
        })
        .await;
    rota_store::Store::close(&*store).await;
    drop(lock);
    tracing::info!("stopped");
    served.context("the server failed")
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
    if !auth.has_no_keys() {
        return Ok(std::fs::read_to_string(&path)
            .ok()
            .map(|t| t.trim().to_owned()));
    }
    let (key, token) = auth
        .create_bootstrap_key()
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the first admin key: {}", e.message))?;
    write_secret(&path, &token)?;
    println!(
        "rota: created the first admin key `{}`. Its token is shown this once and saved in {} (mode 0600):\n\n    {token}\n",
        key.id,
        path.display()
    );
    tracing::info!(key = %key.id, file = %path.display(), "created the first admin key");
    Ok(Some(token))
}

/// Writes a file only its owner can read.
fn write_secret(path: &std::path::Path, secret: &str) -> Result<()> {
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
        println!("demo: try it yourself: rota queue stats demo");
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
