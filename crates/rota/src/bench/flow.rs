//! `--mode flow`: what flow control costs and how fair it is (docs/flow-control.md).
//!
//! - **Limits not reached**: `--tasks` drained from a queue with no limits, then from one with a
//!   concurrency and a rate far above what the drain reaches; the ratio of the drains.
//! - **Many groups**: `--flow-groups` groups of `--flow-per-group` ready tasks each, with
//!   `group_concurrency: 2`, drained; the ratio to an ungrouped queue of as many tasks, and the
//!   claim p50 beside it.
//! - **A big group and small ones**: `--flow-big` ready tasks of one group, then (while
//!   consumers drain) 100 groups of 10 tasks; how much of the big group had started when the
//!   last small task started.
//!
//! Every drain uses `--consumers` claimers taking up to `--batch` tasks per claim.

use super::{bar, complete_all, histogram, BenchArgs, Figure};
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use rota_client::{ClaimOptions, Client, NewTask, QueueSettingsPatch, Rate};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct FlowArgs {
    /// Groups in the flow mode's many-groups drain.
    #[arg(long, default_value_t = 10_000)]
    flow_groups: usize,
    /// Ready tasks per group in the many-groups drain.
    #[arg(long, default_value_t = 100)]
    flow_per_group: usize,
    /// Ready tasks of the big group in the flow mode's fairness figure.
    #[arg(long, default_value_t = 1_000_000)]
    flow_big: u64,
}

/// Small groups and tasks per small group in the fairness figure.
const SMALL_GROUPS: usize = 100;
const SMALL_TASKS: usize = 10;

/// `admin` sets the queues' limits (the bench's own key only enqueues and works).
pub async fn run(
    args: &BenchArgs,
    client: &Client,
    admin: &Client,
    tag: u32,
) -> Result<Vec<Figure>> {
    let f = &args.flow;
    let mut out = Vec::new();

    // Limits configured but never reached.
    let plain = format!("bench-flow-plain-{tag}");
    let limited = format!("bench-flow-limited-{tag}");
    admin
        .update_queue(
            &limited,
            &QueueSettingsPatch {
                concurrency: Some(Some(1_000_000)),
                rate: Some(Some(Rate {
                    limit: 1_000_000,
                    period_ms: 1_000,
                    burst: 1,
                })),
                ..Default::default()
            },
        )
        .await?;
    let n = args.tasks;
    enqueue(args, client, &plain, n, |_| None).await?;
    let (unlimited, plain_hist) = drain(args, client, &plain, n, None).await?;
    enqueue(args, client, &limited, n, |_| None).await?;
    let (with_limits, _) = drain(args, client, &limited, n, None).await?;
    out.push(("flow: drain, no limits".into(), unlimited, "tasks/s"));
    out.push((
        "flow: drain, limits not reached".into(),
        with_limits,
        "tasks/s",
    ));
    out.push((
        "flow: limits not reached / none".into(),
        with_limits / unlimited,
        "x",
    ));

    // Many groups, two running per group.
    let groups = f.flow_groups.max(1);
    let total = (groups * f.flow_per_group.max(1)) as u64;
    let flat = format!("bench-flow-flat-{tag}");
    let grouped = format!("bench-flow-groups-{tag}");
    admin
        .update_queue(
            &grouped,
            &QueueSettingsPatch {
                group_concurrency: Some(Some(2)),
                ..Default::default()
            },
        )
        .await?;
    enqueue(args, client, &flat, total, |_| None).await?;
    let (flat_rate, flat_hist) = drain(args, client, &flat, total, None).await?;
    enqueue(args, client, &grouped, total, |i| {
        Some(format!("g{:05}", i as usize % groups))
    })
    .await?;
    let (group_rate, group_hist) = drain(args, client, &grouped, total, None).await?;
    let p50 = |h: &Histogram<u64>| h.value_at_quantile(0.5) as f64 / 1000.0;
    out.push((
        format!("flow: drain, {total} tasks, no groups"),
        flat_rate,
        "tasks/s",
    ));
    out.push((
        format!("flow: drain, {groups} groups, group_concurrency 2"),
        group_rate,
        "tasks/s",
    ));
    out.push((
        "flow: groups / no groups (drain)".into(),
        group_rate / flat_rate,
        "x",
    ));
    out.push(("flow: claim p50, no groups".into(), p50(&flat_hist), "ms"));
    out.push(("flow: claim p50, groups".into(), p50(&group_hist), "ms"));
    out.push((
        "flow: claim p50 groups / no groups".into(),
        p50(&group_hist) / p50(&flat_hist).max(0.001),
        "x",
    ));
    let _ = plain_hist;

    // A big group, then small ones while it drains.
    let fair = format!("bench-flow-fair-{tag}");
    admin
        .update_queue(
            &fair,
            &QueueSettingsPatch {
                group_concurrency: Some(Some(1_000_000)),
                ..Default::default()
            },
        )
        .await?;
    enqueue(args, client, &fair, f.flow_big, |_| Some("big".into())).await?;
    let watch = Watch::default();
    let watch = Arc::new(watch);
    let drained = {
        let (args, client, fair, watch) =
            (args.clone(), client.clone(), fair.clone(), watch.clone());
        let small = (SMALL_GROUPS * SMALL_TASKS) as u64;
        tokio::spawn(
            async move { drain(&args, &client, &fair, u64::MAX, Some((watch, small))).await },
        )
    };
    // Let the drain get going on the big group first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let small: Vec<NewTask> = (0..SMALL_GROUPS * SMALL_TASKS)
        .map(|i| {
            NewTask::new("noop", &serde_json::json!({}))
                .group(format!("small{:03}", i % SMALL_GROUPS))
        })
        .collect();
    watch
        .small_enqueued_big
        .store(watch.big.load(Ordering::Relaxed), Ordering::Relaxed);
    client.enqueue_batch(&fair, &small).await?;
    drained.await??;
    let at_end = watch.big_at_small_done.load(Ordering::Relaxed);
    let before = watch.small_enqueued_big.load(Ordering::Relaxed);
    out.push((
        format!(
            "flow: big-group tasks started while {} small ones were",
            small.len()
        ),
        at_end.saturating_sub(before) as f64,
        "tasks",
    ));
    out.push((
        "flow: of the big group, started by then".into(),
        at_end as f64 * 100.0 / f.flow_big as f64,
        "%",
    ));
    Ok(out)
}

/// What the fairness drain saw: big-group tasks started, small ones started, and the big
/// group's count when the small ones were enqueued and when the last of them started.
#[derive(Default)]
pub(super) struct Watch {
    big: AtomicU64,
    small: AtomicU64,
    small_enqueued_big: AtomicU64,
    big_at_small_done: AtomicU64,
    done: AtomicBool,
}

/// Enqueues `n` no-op tasks into `queue` in batches of `--batch`, task `i` in `group(i)`.
pub(super) async fn enqueue(
    args: &BenchArgs,
    client: &Client,
    queue: &str,
    n: u64,
    group: impl Fn(u64) -> Option<String>,
) -> Result<()> {
    let pb = bar(args, n, "enqueue");
    let batch = args.batch.max(1) as u64;
    let mut from = 0;
    let mut inflight = tokio::task::JoinSet::new();
    while from < n {
        let to = (from + batch).min(n);
        let tasks: Vec<NewTask> = (from..to)
            .map(|i| {
                let t = NewTask::new("noop", &serde_json::json!({}));
                match group(i) {
                    Some(g) => t.group(g),
                    None => t,
                }
            })
            .collect();
        let (client, queue, pb) = (client.clone(), queue.to_owned(), pb.clone());
        inflight.spawn(async move {
            client.enqueue_batch(&queue, &tasks).await?;
            pb.inc(tasks.len() as u64);
            anyhow::Ok(())
        });
        while inflight.len() >= args.producers.max(1) {
            inflight.join_next().await.context("a producer")???;
        }
        from = to;
    }
    while let Some(r) = inflight.join_next().await {
        r??;
    }
    pb.finish_and_clear();
    Ok(())
}

/// Drains `n` tasks (or, with a watch, until the small groups' tasks have all started) with
/// `--consumers` claimers; the rate and the claim latency histogram (µs).
pub(super) async fn drain(
    args: &BenchArgs,
    client: &Client,
    queue: &str,
    n: u64,
    watch: Option<(Arc<Watch>, u64)>,
) -> Result<(f64, Histogram<u64>)> {
    let pb = bar(args, if n == u64::MAX { 0 } else { n }, "drain");
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..args.consumers.max(1) {
        let (client, queue, done, pb, watch) = (
            client.clone(),
            queue.to_owned(),
            done.clone(),
            pb.clone(),
            watch.clone(),
        );
        let max = args.batch;
        handles.push(tokio::spawn(async move {
            let mut hist = histogram();
            let opts = ClaimOptions {
                worker: format!("bench-flow-{w}"),
                max,
                wait_ms: Some(100),
                lease_ms: Some(300_000),
                ..Default::default()
            };
            loop {
                if let Some((w, _)) = &watch {
                    if w.done.load(Ordering::Relaxed) {
                        break;
                    }
                } else if done.load(Ordering::Relaxed) >= n {
                    break;
                }
                let t = Instant::now();
                let tasks = client.claim(&queue, &opts).await?;
                if tasks.is_empty() {
                    continue;
                }
                hist.record(t.elapsed().as_micros() as u64)?;
                if let Some((w, small_total)) = &watch {
                    for t in &tasks {
                        if t.group.as_deref() == Some("big") {
                            w.big.fetch_add(1, Ordering::Relaxed);
                        } else if w.small.fetch_add(1, Ordering::Relaxed) + 1 == *small_total {
                            w.big_at_small_done
                                .store(w.big.load(Ordering::Relaxed), Ordering::Relaxed);
                            w.done.store(true, Ordering::Relaxed);
                        }
                    }
                }
                let k = complete_all(&client, &tasks).await?;
                done.fetch_add(k, Ordering::Relaxed);
                pb.inc(k);
            }
            anyhow::Ok(hist)
        }));
    }
    let mut hist = histogram();
    for h in handles {
        hist.add(h.await??)?;
    }
    pb.finish_and_clear();
    let total = done.load(Ordering::Relaxed);
    Ok((total as f64 / start.elapsed().as_secs_f64(), hist))
}
