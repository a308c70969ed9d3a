//! The `rota` binary: `rota serve` runs the server, `rota bench` measures it, and the other
//! commands drive a server through its HTTP API.
// Doc comments on the clap types are `--help` text, where `<id>` and `[limits]` mean what they
// say; they are not rustdoc markup.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

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
    /// API token, sent as a bearer token.
    #[arg(long, global = true, env = "ROTA_TOKEN", hide_env_values = true)]
    token: Option<String>,
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
    /// TOML config file: listen, data_dir, maintenance_interval_ms, [limits].
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
    let (url, token, fmt) = (cli.url, cli.token, cli.output);
    let outcome = match cli.command {
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(serve(args))),
        Command::Bench(args) => bench::run(args, url),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rota", &mut std::io::stdout());
            Ok(())
        }
        Command::Api(command) => cli::client(url.as_deref(), token.as_deref())
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
        SqliteStore::open(&db, clock.clone(), SqliteOptions::default())
            .map_err(|e| anyhow::anyhow!("cannot open the store: {e}"))?,
    );
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = %db.display(), "rota is serving on http://{addr}");
    if args.demo {
        tokio::spawn(demo(format!("http://{addr}")));
    }
    let served = rota_server::run(listener, store.clone(), cfg.server, clock, async {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
    .await;
    rota_store::Store::close(&*store).await;
    drop(lock);
    tracing::info!("stopped");
    served.context("the server failed")
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Enqueue → claim → complete one task through the HTTP API, printing each step.
async fn demo(url: String) {
    use rota_client::{ClaimOptions, Client, NewTask};
    let run = async {
        let c = Client::new(&url)?;
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
        println!("demo: try it yourself: curl -s {url}/v1/queues/demo | head");
        anyhow::Ok(())
    };
    if let Err(e) = run.await {
        eprintln!("demo failed: {e:#}");
    }
}
