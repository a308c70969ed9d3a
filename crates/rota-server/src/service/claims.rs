//! Claims: leasing ready tasks, waiting for them (long-polling) without polling: woken by
//! the store's ready signal, or served inside the write that readied them where the engine
//! parks claims (see `rota_store::ParkedClaim`).

use super::*;
use crate::metrics as m;
use rota_core::{QueueKey, Timestamp};
use rota_store::{ClaimRequest, ParkedClaim, Store};
use std::future::Future;
use std::time::Duration;

/// A claim: lease up to `max` ready tasks, waiting up to `wait_ms` for one.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Who claims: shown in the lease and in lease-expiry errors.
    pub worker: String,
    /// Only these kinds; empty is any (or, for a credential limited to some kinds, those).
    pub kinds: Vec<String>,
    pub max: usize,
    pub wait_ms: u64,
    /// Lease length; `None` is the queue's `lease_ms`.
    pub lease_ms: Option<u64>,
}

impl Service {
    /// Leases ready tasks; with `wait_ms`, waits for one to become ready (woken by the store's
    /// ready signal, not by polling) and answers empty when the wait or the server ends.
    pub async fn claim(&self, caller: &Caller, queue: &str, req: Claim) -> ApiResult<Vec<Task>> {
        Ok(self
            .claim_first(caller, &[queue], req)
            .await?
            .map(|(_, tasks)| tasks)
            .unwrap_or_default())
    }

    /// [`Service::claim`] over several queues, tried in the order given: the index of the
    /// queue the tasks came from, or `None` when none had any within the wait.
    pub async fn claim_first(
        &self,
        caller: &Caller,
        queues: &[&str],
        mut req: Claim,
    ) -> ApiResult<Option<(usize, Vec<Task>)>> {
        let keys = queues
            .iter()
            .map(|q| caller.queue(q, actions::TASKS_CLAIM))
            .collect::<ApiResult<Vec<_>>>()?;
        if keys.is_empty() {
            return Err(ApiError::invalid("name at least one queue to claim from"));
        }
        let limits = self.limits();
        check_name("worker", &req.worker, limits)?;
        if req.kinds.len() > limits.max_claim_kinds {
            return Err(ApiError::invalid(format!(
                "kinds has {} entries; the limit is {} (limits.max_claim_kinds)",
                req.kinds.len(),
                limits.max_claim_kinds
            )));
        }
        for k in &req.kinds {
            check_name("kinds[]", k, limits)?;
        }
        // A credential limited to some kinds claims only those (its own list is not held to the
        // request limit on `kinds`: the operator's identity provider set it).
        match &caller.principal.kinds {
            Some(allowed) if req.kinds.is_empty() => req.kinds = allowed.clone(),
            _ => caller.require_kinds(req.kinds.iter().map(String::as_str))?,
        }
        if req.max == 0 || req.max > limits.max_claim {
            return Err(ApiError::invalid(format!(
                "max is {}; use 1 to {} (limits.max_claim)",
                req.max, limits.max_claim
            )));
        }
        check_wait_ms(req.wait_ms, limits)?;
        check_lease_ms("lease_ms", req.lease_ms, limits)?;
        let kinds = req.kinds.clone();
        let (began, worker) = (std::time::SystemTime::now(), req.worker.clone());
        let mut got = self.claim_waiting(&keys, req).await?;
        let n = got.as_ref().map_or(0, |(_, t)| t.len());
        let i = got.as_ref().map_or(0, |(i, _)| *i);
        m::tasks_claimed(&caller.tenant, queues[i], n);
        if let Some((_, tasks)) = &mut got {
            m::tasks_started(&caller.tenant, tasks);
            self.telemetry
                .claimed(&caller.tenant, tasks, &worker, began);
        }
        let seen = crate::doctor::observed::ClaimSeen {
            at: self.clock.now(),
            kinds,
            got: n,
            by: caller.principal.label.clone(),
        };
        self.observed.claimed(&caller.tenant, queues, seen);
        Ok(got)
    }

    async fn claim_waiting(
        &self,
        keys: &[QueueKey],
        req: Claim,
    ) -> ApiResult<Option<(usize, Vec<Task>)>> {
        let wait_ms = req.wait_ms;
        let req = ClaimRequest {
            worker: req.worker,
            kinds: req.kinds,
            max: req.max,
            lease_ms: req.lease_ms,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        let signals: Vec<_> = keys.iter().map(|k| self.store.ready_signal(k)).collect();
        loop {
            // Register for the wake-ups before looking, so a task enqueued between the look
            // and the wait still wakes this claim.
            let mut woken: Vec<_> = signals.iter().map(|s| Box::pin(s.notified())).collect();
            for w in &mut woken {
                w.as_mut().enable();
            }
            // A rate that held tasks back says when the next may start: the wait looks
            // again then, without polling.
            let mut next_start: Option<Timestamp> = None;
            for (i, key) in keys.iter().enumerate() {
                let got = self.store.claim_batch(key, req.clone()).await?;
                if !got.tasks.is_empty() {
                    return Ok(Some((i, got.tasks)));
                }
                if let Some(at) = got.next_start_at {
                    next_start = Some(next_start.map_or(at, |n: Timestamp| n.min(at)));
                }
            }
            if wait_ms == 0 {
                return Ok(None);
            }
            let rate_wait = next_start.map(|at| {
                let ms = (at.0 - self.clock.now().0).max(1) as u64;
                tokio::time::Instant::now() + Duration::from_millis(ms)
            });
            // Parked, the claim is served inside the write that readies one of its queues
            // (one commit for both) on an engine that parks; the wake-ups above stay for
            // the others and for a claim a writer could not serve.
            let parked = Parking::new(&*self.store, keys, &req);
            let any = std::future::poll_fn(|cx| {
                for w in &mut woken {
                    if w.as_mut().poll(cx).is_ready() {
                        return std::task::Poll::Ready(());
                    }
                }
                std::task::Poll::Pending
            });
            let end = tokio::select! {
                _ = any => false,
                _ = parked.served() => false,
                _ = tokio::time::sleep_until(rate_wait.unwrap_or(deadline)), if rate_wait.is_some_and(|r| r < deadline) => false,
                _ = tokio::time::sleep_until(deadline) => true,
                _ = self.shutdown.cancelled() => true,
            };
            if let Some((queue, tasks)) = parked.withdraw().await {
                let i = keys.iter().position(|k| *k == queue).unwrap_or(0);
                return Ok(Some((i, tasks)));
            }
            if end {
                return Ok(None);
            }
        }
    }
}

/// A waiting claim parked on each of its queues (when the engine parks claims), withdrawn
/// when the wait ends and abandoned if the request goes away first.
struct Parking(Option<Arc<ParkedClaim>>);

impl Parking {
    fn new(store: &dyn Store, keys: &[QueueKey], req: &ClaimRequest) -> Self {
        let claim = ParkedClaim::new(req.clone());
        let mut parked = false;
        for key in keys {
            parked |= store.park_claim(key, &claim);
        }
        Parking(parked.then_some(claim))
    }

    async fn served(&self) {
        match &self.0 {
            Some(c) => c.served().await,
            None => std::future::pending().await,
        }
    }

    async fn withdraw(mut self) -> Option<(QueueKey, Vec<Task>)> {
        let claim = self.0.take()?;
        claim.withdraw().await
    }
}

impl Drop for Parking {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.abandon();
        }
    }
}
