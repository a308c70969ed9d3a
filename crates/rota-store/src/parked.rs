//! Claims parked with the engine. A long-polling claim that found nothing may leave its
//! request with an engine that supports it ([`crate::Store::park_claim`]); the write that
//! makes the queue's tasks ready then claims them for it inside its own transaction, so one
//! commit covers the enqueue and the start, and the waiting claim is answered as that commit
//! lands instead of waking, asking the writer again and waiting for a second commit.
//!
//! A parked claim is in one of four states. The waiter parks it (`Waiting`); a writer about to
//! claim for it takes it (`Taken`), so the waiter can no longer walk away from tasks leased in
//! its name; after the transaction the writer fills it (`Served`, or `Waiting` again when it
//! claimed nothing or rolled back); the waiter withdraws it (`Gone`), receiving what was
//! served, and a writer skips and forgets it from then on.

use crate::ClaimRequest;
use rota_core::{QueueKey, Task};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

enum State {
    Waiting,
    Taken,
    Served(QueueKey, Vec<Task>),
    Gone,
}

/// One waiting claim's request, and what a writer served it.
pub struct ParkedClaim {
    req: ClaimRequest,
    state: Mutex<State>,
    /// Notified (with a stored permit) when the claim is served or given back.
    filled: Notify,
}

impl ParkedClaim {
    pub fn new(req: ClaimRequest) -> Arc<Self> {
        Arc::new(ParkedClaim {
            req,
            state: Mutex::new(State::Waiting),
            filled: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn request(&self) -> &ClaimRequest {
        &self.req
    }

    /// The writer's: takes the claim to serve it in the transaction now open. `false` when it
    /// was withdrawn, or another writer (of another queue it waits on) has it.
    pub fn take(&self) -> bool {
        let mut s = self.lock();
        match *s {
            State::Waiting => {
                *s = State::Taken;
                true
            }
            _ => false,
        }
    }

    /// The writer's, after its transaction: the tasks it committed in this claim's name, or
    /// none (it found none, or rolled back), which leaves the claim waiting again.
    pub fn fill(&self, queue: &QueueKey, tasks: Vec<Task>) {
        {
            let mut s = self.lock();
            if !matches!(*s, State::Taken) {
                return;
            }
            *s = if tasks.is_empty() {
                State::Waiting
            } else {
                State::Served(queue.clone(), tasks)
            };
        }
        self.filled.notify_one();
    }

    /// Resolves once a writer has served the claim (or given a taken one back); a waiter
    /// selects on it beside its other wake-ups, then calls [`ParkedClaim::withdraw`].
    pub async fn served(&self) {
        self.filled.notified().await
    }

    fn is_gone(&self) -> bool {
        matches!(*self.lock(), State::Gone)
    }

    /// The waiter's: ends the parking and answers what was served, if anything. A claim a
    /// writer has taken is waited out (one transaction), so tasks leased in its name are never
    /// left behind by a waiter that gave up at the same moment.
    pub async fn withdraw(&self) -> Option<(QueueKey, Vec<Task>)> {
        loop {
            let wait = self.filled.notified();
            tokio::pin!(wait);
            wait.as_mut().enable();
            {
                let mut s = self.lock();
                match std::mem::replace(&mut *s, State::Gone) {
                    State::Served(q, tasks) => return Some((q, tasks)),
                    State::Waiting | State::Gone => return None,
                    State::Taken => *s = State::Taken,
                }
            }
            wait.await;
        }
    }

    /// Withdraws without waiting: what a dropped waiter does. A claim already taken keeps its
    /// tasks, which go back to the queue when their lease runs out, as for any claim whose
    /// caller went away mid-answer.
    pub fn abandon(&self) {
        let mut s = self.lock();
        if matches!(*s, State::Waiting | State::Served(..)) {
            *s = State::Gone;
        }
    }
}

/// The claims parked on one engine's (or shard's) queues, oldest first per queue.
#[derive(Default)]
pub struct ParkedClaims {
    map: Mutex<Parked>,
    /// Claims parked, withdrawn ones included until they are pruned: `0` lets a writer skip
    /// the lock.
    held: AtomicUsize,
}

#[derive(Default)]
struct Parked {
    by_queue: HashMap<QueueKey, Vec<Arc<ParkedClaim>>>,
    /// Prune every queue's withdrawn claims when this many are held (amortised O(1)).
    prune_at: usize,
}

/// Below this many held claims nothing is pruned but the parking queue's own.
const PRUNE_FLOOR: usize = 1_024;

impl ParkedClaims {
    fn lock(&self) -> MutexGuard<'_, Parked> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks `claim` on `queue`. Withdrawn claims are forgotten as new ones park, so the
    /// claims held are bounded by the claims waiting (and every waiting claim is a request
    /// held open within the server's connection limits).
    pub fn park(&self, queue: &QueueKey, claim: &Arc<ParkedClaim>) {
        let mut p = self.lock();
        let held = self.held.load(Ordering::Relaxed);
        if held >= PRUNE_FLOOR.max(p.prune_at) {
            p.by_queue.retain(|_, v| {
                v.retain(|c| !c.is_gone());
                !v.is_empty()
            });
            let now: usize = p.by_queue.values().map(Vec::len).sum();
            p.prune_at = now * 2;
            self.held.store(now, Ordering::Relaxed);
        }
        let v = p.by_queue.entry(queue.clone()).or_default();
        let before = v.len();
        v.retain(|c| !c.is_gone());
        v.push(claim.clone());
        let after = v.len();
        if after >= before {
            self.held.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.held.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// Whether any claim may be parked (a cheap check before [`ParkedClaims::waiting`]).
    pub fn any(&self) -> bool {
        self.held.load(Ordering::Relaxed) > 0
    }

    /// The claims still waiting on `queue`, oldest first; the withdrawn ones are forgotten.
    pub fn waiting(&self, queue: &QueueKey) -> Vec<Arc<ParkedClaim>> {
        let mut p = self.lock();
        let Some(v) = p.by_queue.get_mut(queue) else {
            return Vec::new();
        };
        let before = v.len();
        v.retain(|c| !c.is_gone());
        let left = v.clone();
        self.held.fetch_sub(before - left.len(), Ordering::Relaxed);
        if left.is_empty() {
            p.by_queue.remove(queue);
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ClaimRequest {
        ClaimRequest {
            worker: "w".into(),
            kinds: vec![],
            max: 1,
            lease_ms: None,
        }
    }

    fn task() -> Task {
        let new = crate::conformance::task("k");
        let id = rota_core::TaskId(1 << 20);
        rota_core::lifecycle::enqueued(id, "q", &new, 1, rota_core::Timestamp(0))
    }

    fn key(q: &str) -> QueueKey {
        QueueKey::new("t", q)
    }

    #[tokio::test]
    async fn a_served_claim_hands_its_tasks_to_the_waiter_once() {
        let c = ParkedClaim::new(req());
        assert!(c.take());
        assert!(!c.take(), "a taken claim is not taken twice");
        c.fill(&key("q"), vec![task()]);
        c.served().await;
        let (q, tasks) = c.withdraw().await.expect("served");
        assert_eq!((q, tasks.len()), (key("q"), 1));
        assert!(c.withdraw().await.is_none());
        assert!(!c.take(), "a withdrawn claim is never taken");
    }

    #[tokio::test]
    async fn a_claim_given_back_empty_waits_again() {
        let c = ParkedClaim::new(req());
        assert!(c.take());
        c.fill(&key("q"), vec![]);
        assert!(c.take(), "nothing served: it may be taken again");
    }

    #[tokio::test]
    async fn withdrawing_a_taken_claim_waits_for_its_transaction() {
        let c = ParkedClaim::new(req());
        assert!(c.take());
        let writer = {
            let c = c.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                c.fill(&key("q"), vec![task()]);
            })
        };
        let got = c.withdraw().await;
        writer.await.unwrap();
        assert_eq!(got.map(|(_, t)| t.len()), Some(1));
    }

    #[test]
    fn an_abandoned_claim_is_skipped_and_forgotten() {
        let parked = ParkedClaims::default();
        let (a, b) = (ParkedClaim::new(req()), ParkedClaim::new(req()));
        parked.park(&key("q"), &a);
        parked.park(&key("q"), &b);
        assert!(parked.any());
        a.abandon();
        let left = parked.waiting(&key("q"));
        assert_eq!(left.len(), 1);
        assert!(Arc::ptr_eq(&left[0], &b));
        b.abandon();
        assert!(parked.waiting(&key("q")).is_empty());
        assert!(!parked.any(), "nothing held once every claim is gone");
        assert!(parked.waiting(&key("other")).is_empty());
    }

    #[test]
    fn withdrawn_claims_of_queues_never_served_are_pruned() {
        let parked = ParkedClaims::default();
        for i in 0..10 * PRUNE_FLOOR {
            let c = ParkedClaim::new(req());
            parked.park(&key(&format!("q{i}")), &c);
            c.abandon();
        }
        assert!(parked.held.load(Ordering::Relaxed) <= 2 * PRUNE_FLOOR);
        assert!(parked.lock().by_queue.len() <= 2 * PRUNE_FLOOR);
    }
}
