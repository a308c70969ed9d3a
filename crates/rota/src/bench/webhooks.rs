//! `rota bench --mode webhooks`: webhook delivery throughput and latency to a fast local
//! receiver. A webhook on `task.enqueued` of the bench queue; the receiver answers 204 at once
//! and notes when each delivery arrived. Throughput: `--tasks` (at most 50,000) enqueued in
//! batches at once, delivered as fast as the server can. Latency: tasks enqueued in fives every
//! 10 ms (500/s, below that rate), from the event's time (set by the write that commits it) to
//! arrival, on this machine's one clock. The server must allow private targets (`rota bench`
//! starts it so).

use super::{histogram, noop_tasks, BenchArgs, Figure};
use anyhow::{bail, Result};
use axum::http::StatusCode;
use rota_client::{Client, NewWebhook};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<(Instant, i64)>>>);

async fn receive(
    axum::extract::State(a): axum::extract::State<Arrivals>,
    body: axum::body::Bytes,
) -> StatusCode {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let at = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["at"].as_str().map(str::to_owned))
        .and_then(|t| rota_core::Timestamp::parse_rfc3339(&t).ok())
        .map_or(now_ms, |t| t.0);
    a.0.lock().unwrap().push((Instant::now(), now_ms - at));
    StatusCode::NO_CONTENT
}

pub async fn run(
    args: &BenchArgs,
    client: &Client,
    admin: &Client,
    tag: u32,
) -> Result<Vec<Figure>> {
    let arrivals = Arrivals::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(arrivals.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", l.local_addr()?);
    let receiver = tokio::spawn(async move { axum::serve(l, app).await });
    let queue = format!("bench-hooks-{tag}");
    let hook = admin
        .create_webhook(&NewWebhook {
            url,
            events: vec!["task.enqueued".into()],
            queues: vec![queue.clone()],
            description: Some("rota bench".into()),
        })
        .await?;
    // Throughput: a burst.
    let n = args.tasks.min(50_000);
    let started = Instant::now();
    let batch = args.batch.clamp(1, 500) as u64;
    let mut sent = 0;
    while sent < n {
        let k = batch.min(n - sent);
        client
            .enqueue_batch(&queue, &noop_tasks(k as usize))
            .await?;
        sent += k;
    }
    wait_for(&arrivals, n as usize).await?;
    let last = arrivals
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| *t)
        .max()
        .unwrap_or(started);
    let rate = n as f64 / last.duration_since(started).as_secs_f64();

    // Latency: paced below capacity.
    arrivals.0.lock().unwrap().clear();
    let paced = args.samples.clamp(100, 5_000) as usize / 5 * 5;
    let mut next = tokio::time::Instant::now();
    for _ in 0..paced / 5 {
        tokio::time::sleep_until(next).await;
        next += Duration::from_millis(10);
        client.enqueue_batch(&queue, &noop_tasks(5)).await?;
    }
    wait_for(&arrivals, paced).await?;
    let mut hist = histogram();
    for (_, ms) in arrivals.0.lock().unwrap().iter() {
        hist.record(((*ms).max(0) as u64) * 1000)?;
    }
    admin.delete_webhook(&hook.id).await?;
    receiver.abort();
    let ms = |q| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(vec![
        (
            "webhooks: deliveries/s (enqueue to last receipt)".into(),
            rate,
            "deliveries/s",
        ),
        (
            "webhooks: commit to receipt p50 at 500/s".into(),
            ms(0.5),
            "ms",
        ),
        (
            "webhooks: commit to receipt p99 at 500/s".into(),
            ms(0.99),
            "ms",
        ),
    ])
}

async fn wait_for(arrivals: &Arrivals, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.0.lock().unwrap().len() < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} deliveries arrived within 120 s",
                arrivals.0.lock().unwrap().len()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
