//! The bounds on webhook attempts in flight, through a real server with receivers that hang:
//! all tenants together stay within `webhooks.max_in_flight`, each tenant within its share,
//! and the share leaves room for another tenant's deliveries. Alone in its test process: it
//! reads the process-wide `rota_webhook_attempts_in_flight` gauge.

mod helpers;

use helpers::receivers::*;
use helpers::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn gauge(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with("rota_webhook_attempts_in_flight "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// Hanging receivers hold every attempt open: a tenant gets at most its share, all tenants
/// together at most the global bound, and the share leaves room for another tenant, whose
/// delivery goes out at once. The gauge shows the attempts in flight.
#[tokio::test]
async fn attempts_in_flight_stay_within_the_global_bound_and_each_tenants_share() {
    let mut c = rota_server::ServerConfig::default();
    c.webhooks.allow_private = true;
    c.webhooks.timeout_ms = 60_000;
    c.webhooks.max_in_flight = 6;
    c.webhooks.max_in_flight_per_tenant = 4;
    let s = TestServer::with_config(c).await;
    let (hang_a, hang_b) = (hanging().await, hanging().await);
    for t in ["a", "b"] {
        s.create_tenant(t).await;
    }
    // Tenant a: two hanging webhooks (8 attempts' worth each by the per-endpoint bound).
    webhook(&s, "a", &hang_a.url, None).await;
    webhook(&s, "a", &format!("{}/2", hang_a.url), None).await;
    enqueue_many(&s, "a", "jobs", 20).await;
    eventually(10, "tenant a's share in flight", async || {
        (hang_a.held.load(Ordering::SeqCst) == 4).then_some(())
    })
    .await;
    // Room is left for another tenant: its delivery goes out while a's hang.
    let (got, fast) = receiver().await;
    webhook(&s, "default", &fast, None).await;
    s.enqueue("emails", json!({"kind": "send"})).await;
    eventually(5, "the other tenant's delivery", async || {
        (!got.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    // Tenant b's hanging webhook gets what the global bound leaves: 2.
    webhook(&s, "b", &hang_b.url, None).await;
    enqueue_many(&s, "b", "jobs", 20).await;
    eventually(10, "tenant b's attempts", async || {
        (hang_b.held.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    let m = s.get("/metrics").await.body;
    let text = m
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| m.to_string());
    assert_eq!(gauge(&text), Some(6.0), "{text}");
    // Later passes (woken by more commits) start nothing more.
    enqueue_many(&s, "a", "jobs", 5).await;
    enqueue_many(&s, "b", "jobs", 5).await;
    s.enqueue("emails", json!({"kind": "send"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hang_a.held.load(Ordering::SeqCst), 4);
    assert_eq!(hang_b.held.load(Ordering::SeqCst), 2);
}
