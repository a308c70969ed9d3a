//! The `rota` binary: `rota serve` runs the server, `rota bench` measures it.

mod bench;
mod config;

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
    let outcome = match cli.command {
        Command::Serve(args) => tokio::runtime::Runtime::new()
            .context("cannot start the async runtime")
            .and_then(|rt| rt.block_on(serve(args))),
        Command::Bench(args) => bench::run(args),
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
    let served = rota_server::run(
        listener,
        store.clone(),
        cfg.server,
        clock,
        shutdown_signal(),
    )
    .await;
    rota_store::Store::close(&*store).await;
    drop(lock);
    tracing::info!("stopped");
    served.context("the server failed")
}

async fn shutdown_signal() {
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
    tracing::info!("shutting down: finishing in-flight requests");
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
