//! The one-task-per-request cycle (`--mode single`) and claim latency on an empty queue and
//! behind a backlog (`--mode backlog`).

use super::*;

/// `--clients` loops of enqueue one, claim one, complete one; client `w` on queue `w % n`.
pub(super) async fn single_mode(
    args: &BenchArgs,
    client: &Client,
    queues: &[String],
) -> Result<(f64, f64, f64)> {
    let pb = bar(args, args.cycles, "single");
    let started = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..args.clients {
        let (client, queue, started, pb) = (
            client.clone(),
            queues[w % queues.len()].clone(),
            started.clone(),
            pb.clone(),
        );
        let completed = completed.clone();
        let total = args.cycles;
        handles.push(tokio::spawn(async move {
            let mut hist = histogram();
            let task = NewTask::new("noop", &serde_json::json!({}));
            let opts = ClaimOptions {
                worker: format!("bench-{w}"),
                max: 1,
                wait_ms: Some(1_000),
                lease_ms: Some(300_000),
                ..Default::default()
            };
            while started.fetch_add(1, Ordering::Relaxed) < total {
                client.enqueue(&queue, &task).await?;
                let t = Instant::now();
                let claimed = client.claim(&queue, &opts).await?;
                if !claimed.is_empty() {
                    hist.record(t.elapsed().as_micros() as u64)?;
                }
                for c in claimed {
                    let lease = c
                        .lease
                        .as_ref()
                        .map(|l| l.token.as_str())
                        .unwrap_or_default();
                    client.complete(c.id, lease, None).await?;
                    completed.fetch_add(1, Ordering::Relaxed);
                    pb.inc(1);
                }
            }
            anyhow::Ok(hist)
        }));
    }
    let mut hist = histogram();
    for h in handles {
        hist.add(h.await??)?;
    }
    pb.finish_and_clear();
    // Tasks that made the whole cycle; a claim that came back empty leaves its task behind.
    let rate = completed.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let ms = |q| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok((rate, ms(0.5), ms(0.99)))
}

/// Times `samples` claims of one task each (completing each), one at a time.
async fn claim_latency(client: &Client, queue: &str, samples: u64) -> Result<f64> {
    let mut hist = histogram();
    let opts = ClaimOptions {
        worker: "bench-latency".into(),
        max: 1,
        lease_ms: Some(300_000),
        ..Default::default()
    };
    for _ in 0..samples {
        let t = Instant::now();
        let claimed = client.claim(queue, &opts).await?;
        hist.record(t.elapsed().as_micros() as u64)?;
        let c = claimed.first().context("the queue ran out of tasks")?;
        let lease = c
            .lease
            .as_ref()
            .map(|l| l.token.as_str())
            .unwrap_or_default();
        client.complete(c.id, lease, None).await?;
    }
    Ok(hist.value_at_quantile(0.5) as f64 / 1000.0)
}

pub(super) async fn backlog_mode(
    args: &BenchArgs,
    client: &Client,
    server: &Server,
    tag: u32,
) -> Result<(f64, f64, Option<f64>)> {
    let small = format!("bench-latency-small-{tag}");
    let big = format!("bench-latency-big-{tag}");
    let one = std::slice::from_ref(&small);
    enqueue_all(args, client, one, args.samples, 1_000, "small").await?;
    let empty = claim_latency(client, &small, args.samples).await?;
    enqueue_all(
        args,
        client,
        std::slice::from_ref(&big),
        args.backlog + args.samples,
        5_000,
        "backlog",
    )
    .await?;
    let full = claim_latency(client, &big, args.samples).await?;
    Ok((empty, full, server.rss_mib()))
}
