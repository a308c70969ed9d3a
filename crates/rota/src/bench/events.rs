//! `rota bench --mode events`: an event-stream client following a full-speed batch drain. It
//! opens `GET /v1/events/stream` on the bench queue, runs the batch mode (enqueue, then claim
//! and complete), and reports how many events it received, their rate, and how long after the
//! drain ended the last one arrived (how far behind the follower was).

use super::server::Server;
use super::{batch_mode, BenchArgs, Figure};
use anyhow::{bail, Result};
use rota_client::Client;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub async fn run(
    args: &BenchArgs,
    client: &Client,
    server: &Server,
    tag: u32,
) -> Result<Vec<Figure>> {
    let queue = format!("bench-events-{tag}");
    let mut req =
        reqwest::Client::new().get(format!("{}/v1/events/stream?queue={queue}", server.url()));
    if let Some(t) = server.token() {
        req = req.bearer_auth(t);
    }
    let mut resp = req.send().await?;
    if !resp.status().is_success() {
        bail!("the event stream answered {}", resp.status());
    }
    let seen = Arc::new(AtomicU64::new(0));
    let last = Arc::new(Mutex::new(Instant::now()));
    let reader = {
        let (seen, last) = (seen.clone(), last.clone());
        tokio::spawn(async move {
            let mut carry = String::new();
            while let Ok(Some(chunk)) = resp.chunk().await {
                carry.push_str(&String::from_utf8_lossy(&chunk));
                // Count the complete frames; keep an unfinished one for the next chunk.
                let Some(end) = carry.rfind("\n\n") else {
                    continue;
                };
                let n = carry[..end + 2]
                    .lines()
                    .filter(|l| l.starts_with("event: "))
                    .count() as u64;
                carry.drain(..end + 2);
                if n > 0 {
                    seen.fetch_add(n, Ordering::Relaxed);
                    *last.lock().unwrap() = Instant::now();
                }
            }
        })
    };
    let started = Instant::now();
    let drain = batch_mode(args, client, std::slice::from_ref(&queue), server)
        .await?
        .drain;
    let drained = Instant::now();
    // Three events per task: enqueued, claimed, succeeded.
    let expected = args.tasks * 3;
    let deadline = drained + Duration::from_secs(120);
    while seen.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    reader.abort();
    let got = seen.load(Ordering::Relaxed);
    let last = *last.lock().unwrap();
    Ok(vec![
        (
            "events: drain with a stream following".into(),
            drain,
            "tasks/s",
        ),
        (
            "events: streamed events received".into(),
            got as f64,
            "events",
        ),
        (
            "events: stream rate, start to last event".into(),
            got as f64 / last.duration_since(started).as_secs_f64(),
            "events/s",
        ),
        (
            "events: last event after the drain ended".into(),
            last.saturating_duration_since(drained).as_secs_f64() * 1000.0,
            "ms",
        ),
    ])
}
