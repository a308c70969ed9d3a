//! `rota bench --mode soak`: a queue's churn at full drain speed for a long time, to show that
//! storage stays bounded. Producers keep the backlog near `--soak-backlog` ready tasks while
//! consumers drain with batch claims and completions; finished tasks are kept for
//! `--soak-retention-secs`. Every `--soak-sample-secs` it prints the drain rate and, on
//! PostgreSQL (`--database-url`), the task table's live and dead rows and its size on disk.

use super::{complete_all, noop_tasks, BenchArgs, Figure};
use anyhow::Result;
use rota_client::{ClaimOptions, Client, QueueSettingsPatch};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// How long the soak mode runs.
    #[arg(long, default_value_t = 600)]
    soak_secs: u64,
    /// Seconds between the soak mode's samples.
    #[arg(long, default_value_t = 30)]
    soak_sample_secs: u64,
    /// How long the soak queue keeps finished tasks.
    #[arg(long, default_value_t = 60)]
    soak_retention_secs: u64,
    /// Ready tasks the soak mode's producers keep queued.
    #[arg(long, default_value_t = 20_000)]
    soak_backlog: u64,
}

/// One sample of the task table (PostgreSQL only).
struct TableStats {
    live: i64,
    dead: i64,
    bytes: i64,
}

async fn table_stats(db: &tokio_postgres::Client) -> Result<TableStats> {
    let r = db
        .query_one(
            "SELECT n_live_tup, n_dead_tup, pg_total_relation_size(relid) \
             FROM pg_stat_user_tables WHERE relname = 'rota_tasks'",
            &[],
        )
        .await?;
    Ok(TableStats {
        live: r.get(0),
        dead: r.get(1),
        bytes: r.get(2),
    })
}

pub async fn run(
    args: &BenchArgs,
    client: &Client,
    settings: &Client,
    tag: u32,
) -> Result<Vec<Figure>> {
    let soak = &args.soak;
    let queue = format!("bench-soak-{tag}");
    client.enqueue_batch(&queue, &noop_tasks(1)).await?;
    settings
        .update_queue(
            &queue,
            &QueueSettingsPatch {
                retention_ms: Some(soak.soak_retention_secs * 1000),
                ..Default::default()
            },
        )
        .await?;
    let db = match &args.database_url {
        Some(url) => Some(
            rota_postgres::connect_one(url, &rota_postgres::PostgresOptions::default())
                .await
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (enqueued, done) = (Arc::new(AtomicU64::new(1)), Arc::new(AtomicU64::new(0)));
    let mut workers = Vec::new();
    for _ in 0..args.producers {
        let (client, queue, stop) = (client.clone(), queue.clone(), stop.clone());
        let (enqueued, done, batch) = (enqueued.clone(), done.clone(), args.batch);
        let backlog = soak.soak_backlog;
        workers.push(tokio::spawn(async move {
            let tasks = noop_tasks(batch);
            while !stop.load(Ordering::Relaxed) {
                let queued = enqueued.load(Ordering::Relaxed) - done.load(Ordering::Relaxed);
                if queued >= backlog {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                client.enqueue_batch(&queue, &tasks).await?;
                enqueued.fetch_add(batch as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for w in 0..args.consumers {
        let (client, queue, stop, done) =
            (client.clone(), queue.clone(), stop.clone(), done.clone());
        let opts = ClaimOptions {
            worker: format!("soak-{w}"),
            max: args.batch,
            wait_ms: Some(100),
            lease_ms: Some(300_000),
            ..Default::default()
        };
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let tasks = client.claim(&queue, &opts).await?;
                if !tasks.is_empty() {
                    let n = complete_all(&client, &tasks).await?;
                    done.fetch_add(n, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    eprintln!(
        "{:>6} {:>12} {:>12} {:>12} {:>10}",
        "secs", "drained/s", "live rows", "dead rows", "table MiB"
    );
    let start = Instant::now();
    let (mut last_done, mut last_at) = (0, start);
    let (mut rates, mut samples) = (Vec::new(), Vec::new());
    while start.elapsed() < Duration::from_secs(soak.soak_secs) {
        tokio::time::sleep(Duration::from_secs(soak.soak_sample_secs)).await;
        if let Some(failed) = workers.iter().position(|w| w.is_finished()) {
            stop.store(true, Ordering::Relaxed);
            return Err(workers.swap_remove(failed).await?.unwrap_err());
        }
        let now_done = done.load(Ordering::Relaxed);
        let rate = (now_done - last_done) as f64 / last_at.elapsed().as_secs_f64();
        (last_done, last_at) = (now_done, Instant::now());
        rates.push(rate);
        let stats = match &db {
            Some(db) => Some(table_stats(db).await?),
            None => None,
        };
        let cell = |f: &dyn Fn(&TableStats) -> String| stats.as_ref().map_or("-".into(), f);
        eprintln!(
            "{:>6} {:>12.0} {:>12} {:>12} {:>10}",
            start.elapsed().as_secs(),
            rate,
            cell(&|s| s.live.to_string()),
            cell(&|s| s.dead.to_string()),
            cell(&|s| format!("{:.0}", s.bytes as f64 / 1048576.0)),
        );
        samples.extend(stats);
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await??;
    }
    rates.sort_by(f64::total_cmp);
    let mut out: Vec<Figure> = vec![(
        "soak: drain, median of samples".into(),
        rates.get(rates.len() / 2).copied().unwrap_or(0.0),
        "tasks/s",
    )];
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let max_dead = samples.iter().map(|s| s.dead).max().unwrap_or(0);
        let max_bytes = samples.iter().map(|s| s.bytes).max().unwrap_or(0);
        let mib = |b: i64| b as f64 / 1048576.0;
        out.push(("soak: dead rows, most seen".into(), max_dead as f64, "rows"));
        out.push((
            "soak: task table, first sample".into(),
            mib(first.bytes),
            "MiB",
        ));
        out.push(("soak: task table, largest".into(), mib(max_bytes), "MiB"));
        out.push((
            "soak: task table, last sample".into(),
            mib(last.bytes),
            "MiB",
        ));
    }
    Ok(out)
}
