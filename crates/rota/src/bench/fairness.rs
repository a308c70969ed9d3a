//! `rota bench --mode fairness`: how much one tenant's flood of large batches slows another
//! tenant's single enqueues.
//!
//! A quiet tenant enqueues one task at a time, paced, first alone and then while a flooding
//! tenant keeps `--flood-clients` requests of `--flood-batch` tasks each in flight. The figure
//! is the ratio of the quiet tenant's enqueue latency under the flood to its latency alone
//! (p50 and p90); the flood's own throughput is printed beside it.
//!
//! The quiet tenant's client runs on a thread and runtime of its own: on the bench's runtime it
//! would wait behind the flooding clients' own work (serializing and parsing megabytes of
//! JSON), and the figure would be the bench's scheduling rather than the server's.

use super::{histogram, noop_tasks, BenchArgs, Figure};
use anyhow::Result;
use rota_client::{Client, NewTask};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Latency of `n` single enqueues, one every `pace`, in ms: (p50, p90, p99).
async fn paced_enqueues(client: &Client, queue: &str, n: u64, pace: Duration) -> Result<[f64; 3]> {
    let mut hist = histogram();
    let task = NewTask::new("quiet", &serde_json::json!({}));
    let mut next = tokio::time::Instant::now();
    for _ in 0..n {
        tokio::time::sleep_until(next).await;
        next += pace;
        let t = Instant::now();
        client.enqueue(queue, &task).await?;
        hist.record(t.elapsed().as_micros() as u64)?;
    }
    let ms = |q| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok([ms(0.5), ms(0.9), ms(0.99)])
}

/// [`paced_enqueues`] with a client of its own on a thread and runtime of its own.
async fn on_own_thread(
    (url, token): (String, Option<String>),
    queue: String,
    n: u64,
    pace: Duration,
) -> Result<[f64; 3]> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let run = || -> Result<[f64; 3]> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let client = Client::with_token(&url, token.as_deref())?;
                paced_enqueues(&client, &queue, n, pace).await
            })
        };
        let _ = tx.send(run());
    });
    rx.await?
}

pub async fn run(
    args: &BenchArgs,
    quiet: (String, Option<String>),
    flood: &Client,
    tag: u32,
) -> Result<Vec<Figure>> {
    let pace = Duration::from_millis(5);
    let n = args.samples.min(2_000);
    let queue = format!("bench-quiet-{tag}");
    let alone = on_own_thread(quiet.clone(), queue.clone(), n, pace).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    for i in 0..args.flood_clients {
        let (flood, stop, flooded) = (flood.clone(), stop.clone(), flooded.clone());
        let (queue, batch) = (format!("bench-flood-{tag}-{}", i % 4), args.flood_batch);
        flooders.push(tokio::spawn(async move {
            let tasks = noop_tasks(batch);
            while !stop.load(Ordering::Relaxed) {
                flood.enqueue_batch(&queue, &tasks).await?;
                flooded.fetch_add(batch as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    // Let the flood reach its pace before measuring beside it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let before = flooded.load(Ordering::Relaxed);
    let under = on_own_thread(quiet, queue, n, pace).await;
    let flood_rate =
        (flooded.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.await??;
    }
    let under = under?;
    Ok(vec![
        ("fairness: quiet enqueue p50 alone".into(), alone[0], "ms"),
        ("fairness: quiet enqueue p90 alone".into(), alone[1], "ms"),
        (
            "fairness: quiet enqueue p50 under flood".into(),
            under[0],
            "ms",
        ),
        (
            "fairness: quiet enqueue p90 under flood".into(),
            under[1],
            "ms",
        ),
        (
            "fairness: quiet enqueue p99 under flood".into(),
            under[2],
            "ms",
        ),
        (
            "fairness: p50 ratio (flood / alone)".into(),
            under[0] / alone[0],
            "x",
        ),
        (
            "fairness: p90 ratio (flood / alone)".into(),
            under[1] / alone[1],
            "x",
        ),
        ("fairness: flood enqueue rate".into(), flood_rate, "tasks/s"),
    ])
}
