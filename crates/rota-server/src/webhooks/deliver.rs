//! The deliverer (elected as `webhooks`): takes due deliveries, sends each as a signed POST,
//! and records what came of it. Each webhook has its own bound on attempts in flight and each
//! attempt its own timeout, so a slow or failing endpoint never holds up the others. Woken by
//! every commit that logs events (which is when deliveries appear), by a finished attempt, or
//! when a retry falls due.
//!
//! An attempt is taken before it is sent: its `next_at` moves to when the attempt is given up
//! (the timeout and a margin). A server killed mid-attempt leaves it so; once that time passes
//! the delivery is due again and is sent once more. Receivers deduplicate by
//! `Rota-Delivery-Id`.

use super::{signature_header, target, WebhooksConfig};
use crate::api::events::EventBody;
use rota_core::webhooks::{Attempt, Delivery, Webhook};
use rota_core::{Clock, Timestamp};
use rota_store::DynStore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Deliveries looked at per pass.
const PER_PASS: usize = 512;
/// Added to the timeout for how long a taken attempt is reserved.
const MARGIN_MS: i64 = 2_000;
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// The shortest gap between passes: under a stream of commits (each wakes the deliverer)
/// passes are coalesced, so a server with no webhooks pays at most this many reads.
const MIN_GAP: Duration = Duration::from_millis(5);

pub struct Deliverer {
    store: DynStore,
    clock: Arc<dyn Clock>,
    config: WebhooksConfig,
    http: reqwest::Client,
    /// Attempts in flight per webhook.
    in_flight: Mutex<HashMap<String, usize>>,
    /// Notified when an attempt finishes (a slot is free).
    freed: Notify,
}

impl Deliverer {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, config: WebhooksConfig) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(config.timeout_ms))
            .user_agent(concat!("Rota-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(target::GuardedResolver {
                allow_private: config.allow_private,
            }))
            .build()
            .expect("the HTTP client builds");
        Arc::new(Deliverer {
            store,
            clock,
            config,
            http,
            in_flight: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        })
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let signal = self.store.event_signal();
        let mut attempts = tokio::task::JoinSet::new();
        let mut last = Instant::now() - MIN_GAP;
        loop {
            if let Some(rest) = MIN_GAP.checked_sub(last.elapsed()) {
                tokio::time::sleep(rest).await;
            }
            last = Instant::now();
            let woken = signal.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let wait = match self.pass(&mut attempts).await {
                Ok(true) => Duration::ZERO,
                Ok(false) => MAX_SLEEP,
                Err(e) => {
                    tracing::error!(error = %e, "the deliverer could not read due deliveries; retrying");
                    MAX_SLEEP
                }
            };
            while attempts.try_join_next().is_some() {}
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = woken => {}
                _ = freed => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Attempts in flight finish (each within its timeout) so their outcomes are kept.
        while attempts.join_next().await.is_some() {}
    }

    /// Starts attempts on due deliveries with free slots; `true` when more were due than
    /// could start, so the caller looks again at once.
    async fn pass(
        self: &Arc<Self>,
        attempts: &mut tokio::task::JoinSet<()>,
    ) -> rota_store::StoreResult<bool> {
        let now = self.clock.now();
        let due = self.store.due_deliveries(now, PER_PASS).await?;
        let full = due.len() == PER_PASS;
        let pick: Vec<i64> = {
            let slots = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let mut picked = HashMap::<String, usize>::new();
            due.iter()
                .filter(|d| {
                    let key = slot(&d.webhook_id, d.url.as_deref());
                    let busy = slots.get(&key).copied().unwrap_or(0);
                    let n = picked.entry(key).or_default();
                    if busy + *n < self.config.concurrency_per_endpoint {
                        *n += 1;
                        true
                    } else {
                        false
                    }
                })
                .map(|d| d.id)
                .collect()
        };
        if pick.is_empty() {
            return Ok(full);
        }
        let until = reserved_until(now, &self.config);
        let taken = self.store.take_deliveries(pick, now, until).await?;
        for (d, w) in taken {
            *self
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(slot(&w.id, d.url.as_deref()))
                .or_default() += 1;
            let me = self.clone();
            attempts.spawn(async move { me.attempt(d, w).await });
        }
        Ok(full)
    }

    async fn attempt(self: Arc<Self>, d: Delivery, w: Webhook) {
        let outcome = self.send(&d, &w).await;
        // The slot frees as soon as the endpoint answered: the outcome is recorded beside the
        // next attempts (the delivery stays reserved until then, so it is not sent twice).
        {
            let key = slot(&w.id, d.url.as_deref());
            let mut slots = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = slots.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    slots.remove(&key);
                }
            }
        }
        self.freed.notify_one();
        if !outcome.delivered() {
            tracing::info!(webhook = %w.id, delivery = d.id, attempt = d.attempts,
                error = outcome.error.as_deref().unwrap_or(""), "webhook delivery failed");
        }
        metrics::counter!("rota_webhook_attempts_total",
            "outcome" => if outcome.delivered() { "delivered" } else { "failed" })
        .increment(1);
        match self
            .store
            .record_attempts(vec![(d.id, outcome)], self.clock.now())
            .await
        {
            Ok(disabled) => {
                for w in disabled {
                    tracing::warn!(tenant = %w.tenant, webhook = %w.id,
                        reason = w.disabled_reason.as_deref().unwrap_or(""), "webhook disabled");
                }
            }
            // The attempt's reservation runs out and it is sent again.
            Err(e) => {
                tracing::error!(error = %e, delivery = d.id, "cannot record a webhook attempt")
            }
        }
    }

    /// One signed POST of the delivery's event.
    async fn send(&self, d: &Delivery, w: &Webhook) -> Attempt {
        let started = Instant::now();
        let failed = |error: String| Attempt {
            status: None,
            error: Some(error),
            latency_ms: started.elapsed().as_millis() as u64,
        };
        let url = d.url.as_deref().unwrap_or(&w.url);
        // A literal address is not resolved, so the resolver's guard does not see it.
        if !self.config.allow_private {
            if let Some(e) = target::literal_private(url) {
                return failed(e);
            }
        }
        let body = match d.url {
            // A task result: the task as it is now (final, unless retried since).
            Some(_) => match self.store.get(&d.tenant, d.event.task_id).await {
                Ok(task) => serde_json::to_vec(&task).expect("tasks serialize"),
                Err(rota_store::StoreError::TaskNotFound(_)) => {
                    serde_json::to_vec(&EventBody::from(d.event.clone())).expect("events serialize")
                }
                Err(e) => return failed(format!("cannot read the task: {e}")),
            },
            None => {
                serde_json::to_vec(&EventBody::from(d.event.clone())).expect("events serialize")
            }
        };
        let now = self.clock.now();
        let ts = now.0.div_euclid(1000);
        let signature = signature_header(&w.signing_secrets(now), ts, &body);
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("rota-webhook-id", &w.id)
            .header("rota-delivery-id", d.id.to_string())
            .header("rota-timestamp", ts.to_string())
            .header("rota-signature", signature)
            .body(body)
            .send()
            .await;
        let latency_ms = started.elapsed().as_millis() as u64;
        match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let ok = resp.status().is_success();
                Attempt {
                    status: Some(status),
                    error: (!ok).then(|| {
                        if resp.status().is_redirection() {
                            format!("answered {status} (redirects are not followed)")
                        } else {
                            format!("answered {status}")
                        }
                    }),
                    latency_ms,
                }
            }
            Err(e) if e.is_timeout() => failed(format!(
                "no answer within {} ms (webhooks.timeout_ms)",
                self.config.timeout_ms
            )),
            Err(e) => failed(describe(&e)),
        }
    }
}

/// What a delivery's attempt counts against: its webhook, or for a task result the callback
/// URL's origin, so one slow receiver of results delays no other.
fn slot(webhook_id: &str, url: Option<&str>) -> String {
    match url.and_then(|u| reqwest::Url::parse(u).ok()) {
        Some(u) => format!("callback {}", u.origin().ascii_serialization()),
        None => webhook_id.to_owned(),
    }
}

/// The innermost cause of a transport error: "connection refused", a resolver refusal.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    msg
}

/// When a delivery taken at `now` is given up if no outcome is recorded.
pub fn reserved_until(now: Timestamp, config: &WebhooksConfig) -> Timestamp {
    now.plus_ms(config.timeout_ms as i64 + MARGIN_MS)
}
