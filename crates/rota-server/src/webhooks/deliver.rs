//! The deliverer (elected as `webhooks`): takes due deliveries, sends each as a signed POST,
//! and records what came of it. Attempts in flight are bounded per webhook (or per tenant and
//! callback origin), per tenant and in total ([`super::slots`]), and none starts while file
//! descriptors run low; each attempt has its own timeout. Due work is read leaving out what
//! cannot start, so a slow endpoint never hides another's deliveries. Woken by every commit
//! that logs events (which is when deliveries appear), by a finished attempt, or when a retry
//! falls due.
//!
//! A webhook's delivery is sent only if the webhook's owner may read its event at that moment
//! ([`crate::service::may_read_event`]); otherwise it ends dead with the reason, unsent.
//!
//! An attempt is taken before it is sent: its `next_at` moves to when the attempt is given up
//! (the timeout and a margin). A server killed mid-attempt leaves it so; once that time passes
//! the delivery is due again and is sent once more. Receivers deduplicate by
//! `Rota-Delivery-Id`.

use super::slots::{InFlight, Slot};
use super::{signature_header, target, Signed, WebhooksConfig};
use crate::api::events::EventBody;
use crate::auth::Auth;
use rota_core::webhooks::{Attempt, Delivery, Webhook};
use rota_core::{Clock, Timestamp};
use rota_store::DynStore;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// The metric with the attempts in flight now.
pub const IN_FLIGHT_GAUGE: &str = "rota_webhook_attempts_in_flight";

pub struct Deliverer {
    store: DynStore,
    clock: Arc<dyn Clock>,
    config: WebhooksConfig,
    auth: Arc<Auth>,
    http: reqwest::Client,
    in_flight: Mutex<InFlight>,
    /// Notified when an attempt finishes (a slot is free).
    freed: Notify,
    /// Whether the last pass found descriptors low (logged once per episode).
    fds_low: AtomicBool,
    /// Deliveries carry their task's trace context (and, tracing on, have spans).
    telemetry: crate::telemetry::Telemetry,
}

impl Deliverer {
    pub fn new(
        store: DynStore,
        clock: Arc<dyn Clock>,
        config: WebhooksConfig,
        auth: Arc<Auth>,
        telemetry: crate::telemetry::Telemetry,
    ) -> Arc<Self> {
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(config.timeout_ms))
            .user_agent(concat!("Rota-Webhooks/", env!("CARGO_PKG_VERSION")));
        http = if config.proxy.is_empty() {
            // The environment's HTTP_PROXY/ALL_PROXY would connect for us, out of the
            // resolver's sight: only a proxy named in the config is used.
            http.no_proxy()
                .dns_resolver(Arc::new(target::GuardedResolver {
                    allow_private: config.allow_private,
                }))
        } else {
            // The proxy is the one destination (it may well be private); where it connects
            // is its to guard. Targets are still checked by name when written and by literal
            // address and port when sent.
            http.proxy(reqwest::Proxy::all(&config.proxy).expect("validated at start"))
        };
        Arc::new(Deliverer {
            store,
            clock,
            config,
            auth,
            http: http.build().expect("the HTTP client builds"),
            in_flight: Mutex::new(InFlight::default()),
            freed: Notify::new(),
            fds_low: AtomicBool::new(false),
            telemetry,
        })
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Starts attempts on due deliveries within every bound; `true` when it started some and
    /// more may be due, so the caller looks again at once. A pass that can start nothing
    /// answers `false`: the caller waits for a freed slot, a commit or a retry falling due.
    async fn pass(
        self: &Arc<Self>,
        attempts: &mut tokio::task::JoinSet<()>,
    ) -> rota_store::StoreResult<bool> {
        let now = self.clock.now();
        let skip = {
            let slots = self.slots();
            // Set every pass (at least once a second), so an idle leader shows 0 rather than
            // the gauge dropping out of /metrics.
            self.gauge(&slots);
            if slots.total() >= self.config.max_in_flight {
                return Ok(false);
            }
            slots.skip(&self.config)
        };
        let due = self.store.due_deliveries(now, PER_PASS, skip).await?;
        if due.is_empty() {
            return Ok(false);
        }
        let more = due.len() == PER_PASS;
        // Descriptors: each attempt holds a socket; keep `fd_reserve` free for the rest
        // (counted only when there is work, as counting reads /proc).
        let mut room = crate::fds::room(self.config.fd_reserve).unwrap_or(usize::MAX);
        let low = room == 0;
        if low && !self.fds_low.swap(true, Ordering::Relaxed) {
            tracing::warn!(reserve = self.config.fd_reserve,
                "file descriptors are low (webhooks.fd_reserve); no webhook attempt starts until some close");
        } else if !low && self.fds_low.swap(false, Ordering::Relaxed) {
            tracing::info!("file descriptors are available again; webhook attempts resume");
        }
        if low {
            return Ok(false);
        }
        // Counted as started now, so the bounds hold across this pass; those not taken below
        // are uncounted again.
        let mut picked: Vec<(i64, Slot)> = Vec::new();
        {
            let mut slots = self.slots();
            for d in &due {
                if room == 0 {
                    break;
                }
                let slot = Slot::of(&d.tenant, &d.webhook_id, d.url.as_deref());
                if slots.fits(&slot, &self.config) {
                    slots.start(slot.clone());
                    picked.push((d.id, slot));
                    room -= 1;
                }
            }
            self.gauge(&slots);
        }
        if picked.is_empty() {
            return Ok(false);
        }
        let until = reserved_until(now, &self.config);
        let ids = picked.iter().map(|(id, _)| *id).collect();
        let taken = match self.store.take_deliveries(ids, now, until).await {
            Ok(t) => t,
            Err(e) => {
                self.finish(picked.iter().map(|(_, s)| s));
                return Err(e);
            }
        };
        let taken_ids: std::collections::HashSet<i64> = taken.iter().map(|(d, _)| d.id).collect();
        self.finish(
            picked
                .iter()
                .filter(|(id, _)| !taken_ids.contains(id))
                .map(|(_, s)| s),
        );
        for (d, w) in taken {
            let me = self.clone();
            attempts.spawn(async move { me.attempt(d, w).await });
        }
        Ok(more)
    }

    /// Uncounts attempts that ended (or never started).
    fn finish<'a>(&self, done: impl Iterator<Item = &'a Slot>) {
        let mut slots = self.slots();
        for s in done {
            slots.finish(s);
        }
        self.gauge(&slots);
    }

    fn gauge(&self, slots: &InFlight) {
        metrics::gauge!(IN_FLIGHT_GAUGE).set(slots.total() as f64);
    }

    async fn attempt(self: Arc<Self>, d: Delivery, w: Webhook) {
        let outcome = self.send(&d, &w).await;
        // The slot frees as soon as the endpoint answered: the outcome is recorded beside the
        // next attempts (the delivery stays reserved until then, so it is not sent twice).
        self.finish(std::iter::once(&Slot::of(
            &d.tenant,
            &d.webhook_id,
            d.url.as_deref(),
        )));
        self.freed.notify_one();
        if !outcome.delivered() {
            tracing::info!(webhook = %w.id, delivery = d.id, attempt = d.attempts,
                error = outcome.error.as_deref().unwrap_or(""), "webhook delivery failed");
        }
        let counted = match (outcome.delivered(), outcome.give_up) {
            (true, _) => "delivered",
            (false, true) => "not_sent",
            (false, false) => "failed",
        };
        metrics::counter!("rota_webhook_attempts_total", "outcome" => counted).increment(1);
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
            give_up: false,
        };
        let url = d.url.as_deref().unwrap_or(&w.url);
        // A literal address is not resolved, so the resolver's guard does not see it; the
        // allowed ports may have changed since the URL was written.
        if let Some(e) = target::refused_literal(url, &self.config) {
            return failed(e);
        }
        if d.url.is_none() {
            if let Err(why) = self.owner_may_read(d, w) {
                return Attempt {
                    give_up: true,
                    ..failed(format!("not sent: {why}"))
                };
            }
        }
        // The task as it is now: a result callback's body (final, unless retried since), and
        // for any delivery the trace context it carries.
        let task = if d.event.task_id == rota_core::TaskId::NONE {
            None
        } else {
            match self.store.get(&d.tenant, d.event.task_id).await {
                Ok(task) => Some(task),
                Err(rota_store::StoreError::TaskNotFound(_)) => None,
                Err(e) if d.url.is_some() => return failed(format!("cannot read the task: {e}")),
                Err(_) => None,
            }
        };
        let body = match (&d.url, &task) {
            (Some(_), Some(task)) => {
                let mut task = task.clone();
                // Retried since, it may be leased again: the token proves the lease and
                // never leaves the server this way.
                if let Some(lease) = task.lease.as_mut() {
                    lease.token.clear();
                }
                serde_json::to_vec(&task).expect("tasks serialize")
            }
            _ => serde_json::to_vec(&EventBody::from(d.event.clone())).expect("events serialize"),
        };
        let trace = self.telemetry.delivering(d, task.as_ref(), url);
        let now = self.clock.now();
        let ts = now.0.div_euclid(1000);
        let signature = signature_header(
            &w.signing_secrets(now),
            &Signed {
                timestamp: ts,
                delivery_id: d.id,
                webhook_id: &w.id,
                url,
                body: &body,
            },
        );
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("rota-webhook-id", &w.id)
            .header("rota-delivery-id", d.id.to_string())
            .header("rota-timestamp", ts.to_string())
            .header("rota-signature", signature);
        if let Some((parent, state)) = &trace.headers {
            request = request.header("traceparent", parent);
            if let Some(s) = state {
                request = request.header("tracestate", s);
            }
        }
        let sent = request.body(body).send().await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let attempt = Self::outcome(sent, latency_ms, self.config.timeout_ms);
        trace.done(attempt.status, attempt.error.as_deref());
        attempt
    }

    /// What a sent request came to.
    fn outcome(
        sent: reqwest::Result<reqwest::Response>,
        latency_ms: u64,
        timeout_ms: u64,
    ) -> Attempt {
        let failed = |error: String| Attempt {
            status: None,
            error: Some(error),
            latency_ms,
            give_up: false,
        };
        match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let ok = resp.status().is_success();
                Attempt {
                    give_up: false,
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
                "no answer within {timeout_ms} ms (webhooks.timeout_ms)"
            )),
            Err(e) => failed(describe(&e)),
        }
    }
}

impl Deliverer {
    /// Whether the webhook's owner, as it is now, may read the delivery's event; why not.
    /// A webhook written before owners were recorded has none and is not checked.
    fn owner_may_read(&self, d: &Delivery, w: &Webhook) -> Result<(), String> {
        let Some(owner) = &w.owner else {
            return Ok(());
        };
        let caller = self.auth.owner_caller(owner, &w.tenant)?;
        if crate::service::may_read_event(&caller, &d.event) {
            Ok(())
        } else {
            Err(format!(
                "the webhook's owner ({}) may not read this event (queue `{}`)",
                owner.label, d.event.queue
            ))
        }
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
