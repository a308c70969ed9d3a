//! `rota bench`: throughput and claim latency through the HTTP API, with the client library.
//!
//! Unless `--url` is given it starts `rota serve` (this binary's, or `--server-bin`'s, to compare
//! builds) as a child process on a temporary data dir (so the server's RSS can be read and the
//! figures include real durable commits), then runs:
//! - `batch`: producers enqueue N no-op tasks in batches; then consumers drain them with batch
//!   claim and batch complete.
//! - `single`: many clients each loop enqueue one → claim one → complete one.
//! - `backlog`: claim latency (one task per claim) on a nearly empty queue, then on a queue with
//!   `--backlog` ready tasks; and the server's RSS.
//! - `fairness` (not part of `all`): see [`fairness`].
//! - `flow` (not part of `all`): what flow control costs and how fair groups are, see [`flow`].
//! - `soak` and `servers` (not part of `all`): see [`soak`] and [`servers`].
//! - `webhooks` and `events` (not part of `all`): see [`webhooks`] and [`events`].
//! - `workflows` (not part of `all`): a fan-out's acceptance and its join's latency, and chains
//!   drained beside independent tasks, see [`workflows`].

mod events;
mod fairness;
mod flow;
mod latency;
mod server;
mod servers;
mod single;
mod soak;
mod traces;
mod webhooks;
mod workflows;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rota_client::{ClaimOptions, Client, CompleteItem, NewTask};
use server::{Server, Target};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Which measurements to run.
    #[arg(long, value_enum, default_value = "all")]
    mode: Mode,
    /// Tasks enqueued and drained in the batch mode.
    #[arg(long, default_value_t = 200_000)]
    tasks: u64,
    /// Concurrent clients enqueueing in the batch mode.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Concurrent clients claiming and completing in the batch mode.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Tasks per enqueue request and per claim in the batch mode.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Concurrent clients in the single mode.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Full cycles (enqueue, claim, complete) in the single mode.
    #[arg(long, default_value_t = 40_000)]
    cycles: u64,
    /// Ready tasks queued for the backlog latency figure.
    #[arg(long, default_value_t = 1_000_000)]
    backlog: u64,
    /// Claims timed for each latency figure (and enqueues, in the fairness mode).
    #[arg(long, default_value_t = 2_000)]
    samples: u64,
    /// Flooding clients in the fairness mode, each keeping one batch in flight.
    #[arg(long, default_value_t = 32)]
    flood_clients: usize,
    /// Tasks per flooding request in the fairness mode.
    #[arg(long, default_value_t = 2_000)]
    flood_batch: usize,
    /// Repeat the whole run this many times and report the median of each figure.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Hide progress bars.
    #[arg(long)]
    quiet: bool,
    /// Access control on the server it starts: `on` (a producer+worker API key of its own
    /// tenant, as in production), `off`, or `compare` (both in each run, with the ratios).
    #[arg(long, value_enum, default_value = "on")]
    auth: AuthMode,
    /// Queues the batch and single modes spread their tasks and workers over (the embedded
    /// store places queues on its shards).
    #[arg(long, default_value_t = 1)]
    queues: usize,
    /// The `rota` binary whose server it starts [default: this one], to compare builds back to
    /// back with one bench client.
    #[arg(long, env = "ROTA_BENCH_SERVER", value_name = "PATH")]
    server_bin: Option<std::path::PathBuf>,
    /// Run the servers it starts on this PostgreSQL database instead of the embedded store
    /// (each run uses a tenant of its own, so the database may hold earlier runs).
    #[arg(long, env = "ROTA_BENCH_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// The servers it starts trace every request and task (sampling 1.0) to an OTLP receiver
    /// in the bench, to measure what tracing costs (docs/telemetry.md).
    #[arg(long)]
    traces: bool,
    #[command(flatten)]
    soak: soak::SoakArgs,
    #[command(flatten)]
    latency: latency::LatencyArgs,
    #[command(flatten)]
    flow: flow::FlowArgs,
    #[command(flatten)]
    workflows: workflows::WorkflowArgs,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMode {
    On,
    Off,
    Compare,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Batch,
    Single,
    Backlog,
    /// One tenant floods with large batches; another's enqueue latency, alone and beside it.
    Fairness,
    /// Drains with limits never reached, with many groups, and a big group beside small ones
    /// (see [`flow`]).
    Flow,
    /// Minutes of churn at full drain speed, sampling the task table's size (see [`soak`]).
    Soak,
    /// The drain through one server, then two on one database (see [`servers`]).
    Servers,
    /// Webhook deliveries to a local receiver: rate and commit-to-receipt latency.
    Webhooks,
    /// An event-stream client following the batch drain (see [`events`]).
    Events,
    /// Enqueue→start latency at a paced rate, to long-polling workers (see [`latency`]).
    Latency,
    /// Workflows: a fan-out accepted, its join released, chains drained (see [`workflows`]).
    Workflows,
}

/// A figure: name, value, unit (`x` for ratios).
type Figure = (String, f64, &'static str);

pub fn run(args: BenchArgs, url: Option<String>, token: Option<String>) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    if args.queues == 0 {
        bail!("--queues must be at least 1");
    }
    if let Some(bin) = &args.server_bin {
        server::use_binary(bin.clone());
    }
    if args.traces {
        if url.is_some() {
            bail!("--traces sets up the servers it starts; leave out --url");
        }
        rt.block_on(traces::start())?;
    }
    if url.is_some() && args.auth == AuthMode::Compare {
        bail!("--auth compare starts its own servers; leave out --url");
    }
    let modes: &[bool] = match args.auth {
        AuthMode::On => &[true],
        AuthMode::Off => &[false],
        AuthMode::Compare => &[false, true],
    };
    let mut all: Vec<Vec<(String, f64, &'static str)>> = Vec::new();
    for i in 0..args.runs {
        if args.runs > 1 {
            eprintln!("run {} of {}", i + 1, args.runs);
        }
        // Each setting goes first in every other run: a server started right after another
        // one shares the disk with its clean-up, which would favour whichever runs first.
        let mut order: Vec<(usize, bool)> = modes.iter().copied().enumerate().collect();
        if i % 2 == 1 {
            order.reverse();
        }
        let mut by_mode: Vec<Vec<(String, f64, &'static str)>> = vec![Vec::new(); modes.len()];
        for (slot, auth) in order {
            let target = match &url {
                Some(u) => Target::Given(u.clone(), token.clone()),
                None => Target::Start {
                    auth,
                    database_url: args.database_url.clone(),
                },
            };
            let mut got = rt.block_on(run_once(&args, target))?;
            if args.auth == AuthMode::Compare {
                let tag = if auth { "auth on" } else { "auth off" };
                for f in &mut got {
                    f.0 = format!("{} [{tag}]", f.0);
                }
            }
            by_mode[slot] = got;
        }
        let mut figures: Vec<(String, f64, &'static str)> = by_mode.concat();
        if args.auth == AuthMode::Compare {
            let n = figures.len() / 2;
            let ratios: Vec<(String, f64, &'static str)> = (0..n)
                .filter(|i| figures[*i].2 == "tasks/s")
                .map(|i| {
                    let name = figures[i].0.trim_end_matches(" [auth off]").to_owned();
                    (
                        format!("{name}: auth on / off"),
                        figures[n + i].1 / figures[i].1,
                        "x",
                    )
                })
                .collect();
            figures.extend(ratios);
        }
        all.push(figures);
    }
    println!();
    println!(
        "{:<44} {:>14}",
        "figure",
        if args.runs > 1 { "median" } else { "value" }
    );
    for (idx, (name, _, unit)) in all[0].iter().enumerate() {
        let mut vals: Vec<f64> = all.iter().map(|r| r[idx].1).collect();
        vals.sort_by(|a, b| a.total_cmp(b));
        let median = vals[vals.len() / 2];
        if *unit == "x" {
            println!("{name:<44} {median:>14.2} {unit}");
        } else {
            println!("{name:<44} {median:>14.1} {unit}");
        }
    }
    if let Some((exports, bytes)) = traces::received() {
        println!(
            "traces received: {exports} OTLP exports, {:.1} MiB in all",
            bytes as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}

fn bar(args: &BenchArgs, len: u64, what: &str) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("template parses")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("bounds are valid")
}

fn noop_tasks(n: usize) -> Vec<NewTask> {
    (0..n)
        .map(|_| NewTask::new("noop", &serde_json::json!({})))
        .collect()
}

async fn run_once(args: &BenchArgs, target: Target) -> Result<Vec<(String, f64, &'static str)>> {
    let (server, client) = Server::start(target).await?;
    let mut out = Vec::new();
    let tag = std::process::id();
    if matches!(args.mode, Mode::All | Mode::Batch) {
        let queues = queue_names(&format!("bench-batch-{tag}"), args.queues);
        let b = batch_mode(args, &client, &queues, &server).await?;
        out.push(("batch enqueue".into(), b.enqueue, "tasks/s"));
        out.push(("batch drain (claim + complete)".into(), b.drain, "tasks/s"));
        out.push(("batch claim latency p50".into(), b.claim_p50, "ms"));
        out.push(("batch claim latency p99".into(), b.claim_p99, "ms"));
        let [start, enqueued, drained] = b.usage;
        out.extend(per_task("batch enqueue", start, enqueued, args.tasks));
        out.extend(per_task("batch drain", enqueued, drained, args.tasks));
    }
    if matches!(args.mode, Mode::All | Mode::Single) {
        let queues = queue_names(&format!("bench-single-{tag}"), args.queues);
        let before = server.usage();
        let (rate, p50, p99) = single::single_mode(args, &client, &queues).await?;
        out.push((
            "single: enqueue+claim+complete cycles".into(),
            rate,
            "tasks/s",
        ));
        out.push(("single: claim latency p50".into(), p50, "ms"));
        out.push(("single: claim latency p99".into(), p99, "ms"));
        out.extend(per_task("single", before, server.usage(), args.cycles));
    }
    if args.mode == Mode::Fairness {
        let flood = server.tenant_client("flood").await?;
        let quiet = server.client_parts();
        out.extend(fairness::run(args, quiet, &flood, tag).await?);
    }
    if args.mode == Mode::Flow {
        let admin = server.settings_client(&client)?;
        out.extend(flow::run(args, &client, &admin, tag).await?);
    }
    if args.mode == Mode::Servers {
        out.extend(servers::run(args, &server, &client, tag).await?);
    }
    if args.mode == Mode::Events {
        out.extend(events::run(args, &client, &server, tag).await?);
    }
    if args.mode == Mode::Latency {
        out.extend(latency::run(args, &client, tag).await?);
    }
    if args.mode == Mode::Workflows {
        out.extend(workflows::run(args, &client, tag).await?);
    }
    if args.mode == Mode::Webhooks {
        let admin = server.settings_client(&client)?;
        out.extend(webhooks::run(args, &client, &admin, tag).await?);
    }
    if args.mode == Mode::Soak {
        let settings = server.settings_client(&client)?;
        out.extend(soak::run(args, &client, &settings, tag).await?);
    }
    if matches!(args.mode, Mode::All | Mode::Backlog) {
        let (empty, full, rss) = single::backlog_mode(args, &client, &server, tag).await?;
        out.push(("claim p50, nearly empty queue".into(), empty, "ms"));
        out.push((
            format!("claim p50, {} ready tasks", args.backlog),
            full,
            "ms",
        ));
        out.push((
            "claim p50 ratio (backlog / empty)".into(),
            full / empty,
            "x",
        ));
        if let Some(rss) = rss {
            out.push((
                format!("server RSS with {} ready tasks", args.backlog),
                rss,
                "MiB",
            ));
        }
    }
    Ok(out)
}

/// `n` queue names from `base` (just `base` for one).
fn queue_names(base: &str, n: usize) -> Vec<String> {
    match n {
        1 => vec![base.to_owned()],
        _ => (0..n).map(|i| format!("{base}-{i}")).collect(),
    }
}

/// Enqueues `total` tasks in batches, each batch to the next of `queues` in turn.
async fn enqueue_all(
    args: &BenchArgs,
    client: &Client,
    queues: &[String],
    total: u64,
    batch: usize,
    what: &str,
) -> Result<f64> {
    let pb = bar(args, total, what);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..args.producers {
        let (client, queues, next, pb) =
            (client.clone(), queues.to_vec(), next.clone(), pb.clone());
        handles.push(tokio::spawn(async move {
            let tasks = noop_tasks(batch);
            loop {
                let from = next.fetch_add(batch as u64, Ordering::Relaxed);
                if from >= total {
                    return anyhow::Ok(());
                }
                let n = (total - from).min(batch as u64) as usize;
                let queue = &queues[(from / batch as u64) as usize % queues.len()];
                client.enqueue_batch(queue, &tasks[..n]).await?;
                pb.inc(n as u64);
            }
        }));
    }
    for h in handles {
        h.await??;
    }
    pb.finish_and_clear();
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Where the time and the bytes of a phase went, per task (a server the bench started only).
fn per_task(
    phase: &str,
    from: Option<server::Usage>,
    to: Option<server::Usage>,
    tasks: u64,
) -> Vec<(String, f64, &'static str)> {
    let (Some(from), Some(to)) = (from, to) else {
        return Vec::new();
    };
    let (bytes, writer_us, cpu_us) = to.per(&from, tasks);
    vec![
        (format!("{phase}: bytes written per task"), bytes, "B"),
        (format!("{phase}: writer CPU per task"), writer_us, "us"),
        (format!("{phase}: server CPU per task"), cpu_us, "us"),
    ]
}

/// One batch run's figures, and the server's usage before the enqueues, between the phases
/// and after the drain.
struct Batch {
    enqueue: f64,
    drain: f64,
    claim_p50: f64,
    claim_p99: f64,
    usage: [Option<server::Usage>; 3],
}

/// Enqueues `--tasks` in batches, then drains them with `--consumers` workers.
async fn batch_mode(
    args: &BenchArgs,
    client: &Client,
    queues: &[String],
    server: &Server,
) -> Result<Batch> {
    let start = server.usage();
    let enqueue = enqueue_all(args, client, queues, args.tasks, args.batch, "enqueue").await?;
    let enqueued = server.usage();
    let (drain, hist) = drain(args, std::slice::from_ref(client), queues, args.consumers).await?;
    let ms = |q| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(Batch {
        enqueue,
        drain,
        claim_p50: ms(0.5),
        claim_p99: ms(0.99),
        usage: [start, enqueued, server.usage()],
    })
}

/// Completes claimed tasks in one batch; how many, or an error if any was refused.
async fn complete_all(client: &Client, tasks: &[rota_core::Task]) -> Result<u64> {
    let items: Vec<CompleteItem> = tasks
        .iter()
        .map(|t| CompleteItem {
            id: t.id,
            lease: t
                .lease
                .as_ref()
                .map(|l| l.token.clone())
                .unwrap_or_default(),
            result: None,
        })
        .collect();
    let outcomes = client.complete_batch(&items).await?;
    if let Some(bad) = outcomes.iter().find(|o| !o.ok) {
        bail!("completion refused: {bad:?}");
    }
    Ok(items.len() as u64)
}

/// Drains `args.tasks` from `queues` with `consumers` batch claimers, spread over `clients`
/// (one per server) and the queues (a claimer whose queue is empty moves to the next); the
/// rate and the claim latency histogram (µs).
async fn drain(
    args: &BenchArgs,
    clients: &[Client],
    queues: &[String],
    consumers: usize,
) -> Result<(f64, Histogram<u64>)> {
    let pb = bar(args, args.tasks, "drain");
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..consumers {
        let client = clients[w % clients.len()].clone();
        let (queues, done, pb) = (queues.to_vec(), done.clone(), pb.clone());
        let (total, max) = (args.tasks, args.batch);
        handles.push(tokio::spawn(async move {
            let mut hist = histogram();
            let opts = ClaimOptions {
                worker: format!("bench-{w}"),
                max,
                wait_ms: Some(100),
                lease_ms: Some(300_000),
                ..Default::default()
            };
            let mut at = w % queues.len();
            while done.load(Ordering::Relaxed) < total {
                let t = Instant::now();
                let tasks = client.claim(&queues[at], &opts).await?;
                if tasks.is_empty() {
                    // The drain's tail: a long-poll that ran out is not claim latency.
                    at = (at + 1) % queues.len();
                    continue;
                }
                hist.record(t.elapsed().as_micros() as u64)?;
                let n = complete_all(&client, &tasks).await?;
                done.fetch_add(n, Ordering::Relaxed);
                pb.inc(n);
            }
            anyhow::Ok(hist)
        }));
    }
    let mut hist = histogram();
    for h in handles {
        hist.add(h.await??)?;
    }
    pb.finish_and_clear();
    Ok((args.tasks as f64 / start.elapsed().as_secs_f64(), hist))
}
