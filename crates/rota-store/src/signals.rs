//! Per-queue wake-ups for long-polling claims, shared by engines.
//!
//! An entry exists only while someone holds its `Notify` (a waiting claim): entries nobody holds
//! are pruned as the map grows, so claims on ever-new queue names cannot grow it without bound.

use rota_core::QueueKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
pub struct ReadySignals {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<QueueKey, Arc<Notify>>,
    /// Prune when the map is twice this size: amortised O(1) per `get`.
    pruned_at: usize,
}

/// Below this many entries the map is never pruned.
const PRUNE_FLOOR: usize = 1_024;

impl ReadySignals {
    pub fn get(&self, queue: &QueueKey) -> Arc<Notify> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.map.len() >= PRUNE_FLOOR.max(inner.pruned_at * 2) {
            inner.map.retain(|_, n| Arc::strong_count(n) > 1);
            inner.pruned_at = inner.map.len();
        }
        inner.map.entry(queue.clone()).or_default().clone()
    }

    /// Wakes every claim waiting on `queue`. Cheap when nobody waits.
    pub fn notify(&self, queue: &QueueKey) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = inner.map.get(queue) {
            n.notify_waiters();
        }
    }

    pub fn notify_all(&self) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for n in inner.map.values() {
            n.notify_waiters();
        }
    }

    /// Entries held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_nobody_holds_are_pruned() {
        let s = ReadySignals::default();
        let kept = s.get(&QueueKey::new("t", "kept"));
        for i in 0..200_000 {
            drop(s.get(&QueueKey::new("t", format!("q{i}"))));
        }
        assert!(s.len() < 3 * PRUNE_FLOOR, "{} entries", s.len());
        // A held entry survives pruning and still wakes its waiter.
        let again = s.get(&QueueKey::new("t", "kept"));
        assert!(Arc::ptr_eq(&kept, &again));
    }
}
