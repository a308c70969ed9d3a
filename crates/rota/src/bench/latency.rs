//! `rota bench --mode latency`: enqueue→start latency at a paced rate. A producer sends one
//! task per request at `--rate` tasks/s, each carrying its send time (Unix µs) in the payload;
//! long-polling workers claim one task per request and note when each arrives. The figure is
//! receipt minus send time: the enqueue's durable commit, the wake-up of a waiting claim, the
//! claim's own commit, and both HTTP round trips. The first second is a warm-up and is not
//! counted.

use super::{histogram, BenchArgs, Figure};
use anyhow::Result;
use rota_client::{ClaimOptions, Client, NewTask};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(clap::Args, Debug, Clone)]
pub struct LatencyArgs {
    /// Tasks per second the latency mode's producer sends, one per request.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// How long the latency mode measures (after a second of warm-up).
    #[arg(long, default_value_t = 10)]
    pub latency_secs: u64,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Requests in flight at most: a slow commit delays sends instead of piling them up.
const MAX_IN_FLIGHT: usize = 256;

pub async fn run(args: &BenchArgs, client: &Client, tag: u32) -> Result<Vec<Figure>> {
    let l = &args.latency;
    let queue = format!("bench-latency-{tag}");
    let stop = Arc::new(AtomicBool::new(false));
    let hist = Arc::new(Mutex::new(histogram()));
    // Set when sending starts: the first second after it is not counted.
    let measure_from = Arc::new(AtomicU64::new(u64::MAX));
    // Workers: long-polling claims of one task each; completes go on in the background.
    let mut workers = Vec::new();
    for w in 0..args.consumers.max(1) {
        let (client, queue, stop, hist) =
            (client.clone(), queue.clone(), stop.clone(), hist.clone());
        let measure_from = measure_from.clone();
        workers.push(tokio::spawn(async move {
            let opts = ClaimOptions {
                worker: format!("latency-{w}"),
                max: 1,
                wait_ms: Some(1_000),
                lease_ms: Some(60_000),
                ..Default::default()
            };
            while !stop.load(Ordering::Relaxed) {
                let got = client.claim(&queue, &opts).await?;
                let at = now_us();
                for t in got {
                    let sent = t.payload.get().trim_matches(|c: char| !c.is_ascii_digit());
                    if let Ok(sent) = sent.parse::<u64>() {
                        if sent >= measure_from.load(Ordering::Relaxed) {
                            hist.lock()
                                .unwrap()
                                .record(at.saturating_sub(sent).max(1))?;
                        }
                    }
                    let (client, lease) = (client.clone(), t.lease.map(|l| l.token));
                    tokio::spawn(async move {
                        let _ = client
                            .complete(t.id, &lease.unwrap_or_default(), None)
                            .await;
                    });
                }
            }
            anyhow::Ok(())
        }));
    }
    // Let the workers' first claims wait before the first send.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let gap = Duration::from_nanos(1_000_000_000 / l.rate.max(1));
    let mut tick = tokio::time::interval(gap);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let total = l.rate * (l.latency_secs + 1);
    let started = std::time::Instant::now();
    measure_from.store(now_us() + 1_000_000, Ordering::Relaxed);
    for _ in 0..total {
        tick.tick().await;
        let permit = slots.clone().acquire_owned().await?;
        let (client, queue) = (client.clone(), queue.clone());
        tokio::spawn(async move {
            let t = NewTask::new("latency", &serde_json::json!({ "sent_us": now_us() }));
            let _ = client.enqueue(&queue, &t).await;
            drop(permit);
        });
    }
    let sent_rate = total as f64 / started.elapsed().as_secs_f64();
    // The last tasks' claims, then stop.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await??;
    }
    let h = hist.lock().unwrap();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    Ok(vec![
        (
            "latency: tasks sent per second".into(),
            sent_rate,
            "tasks/s",
        ),
        ("latency: tasks measured".into(), h.len() as f64, "tasks"),
        ("latency: enqueue->start p50".into(), ms(0.5), "ms"),
        ("latency: enqueue->start p99".into(), ms(0.99), "ms"),
        (
            "latency: enqueue->start max".into(),
            h.max() as f64 / 1_000.0,
            "ms",
        ),
    ])
}
