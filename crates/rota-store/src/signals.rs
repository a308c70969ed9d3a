//! Wake-ups shared by engines: per queue for long-polling claims ([`ReadySignals`]), and per
//! tenant for readers of the event log ([`EventSignals`]).
//!
//! An entry exists only while someone holds its `Notify` (a waiting claim, an open stream):
//! entries nobody holds are pruned as the map grows, so waits on ever-new names cannot grow it
//! without bound.

use rota_core::QueueKey;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// One `Notify` per key, made when someone first waits on the key.
pub struct KeyedSignals<K> {
    inner: Mutex<Inner<K>>,
}

struct Inner<K> {
    map: HashMap<K, Arc<Notify>>,
    /// Prune when the map is twice this size: amortised O(1) per `get`.
    pruned_at: usize,
}

/// Below this many entries the map is never pruned.
const PRUNE_FLOOR: usize = 1_024;

/// Per-queue wake-ups for long-polling claims.
pub type ReadySignals = KeyedSignals<QueueKey>;

impl<K> Default for KeyedSignals<K> {
    fn default() -> Self {
        KeyedSignals {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                pruned_at: 0,
            }),
        }
    }
}

impl<K: Hash + Eq + Clone> KeyedSignals<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get<Q>(&self, key: &Q) -> Arc<Notify>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut inner = self.lock();
        if inner.map.len() >= PRUNE_FLOOR.max(inner.pruned_at * 2) {
            inner.map.retain(|_, n| Arc::strong_count(n) > 1);
            inner.pruned_at = inner.map.len();
        }
        if let Some(n) = inner.map.get(key) {
            return n.clone();
        }
        inner.map.entry(key.to_owned()).or_default().clone()
    }

    /// Wakes every waiter on `key`. Cheap when nobody waits.
    pub fn notify<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(n) = self.lock().map.get(key) {
            n.notify_waiters();
        }
    }

    pub fn notify_all(&self) {
        for n in self.lock().map.values() {
            n.notify_waiters();
        }
    }

    /// Entries held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Wake-ups for readers of the event log. A commit wakes the readers of the tenants whose
/// events it logged, not every reader: an idle stream of one tenant is never woken (and never
/// reads) because another tenant is busy. [`EventSignals::any`] wakes on every commit that
/// logged events, for the one reader of every tenant's events (the webhook deliverer).
#[derive(Default)]
pub struct EventSignals {
    tenants: KeyedSignals<String>,
    any: Arc<Notify>,
}

impl EventSignals {
    /// Notified after a commit that logged events of `tenant`.
    pub fn tenant(&self, tenant: &str) -> Arc<Notify> {
        self.tenants.get(tenant)
    }

    /// Notified after every commit that logged events.
    pub fn any(&self) -> Arc<Notify> {
        self.any.clone()
    }

    /// A commit logged events of these tenants. The tenants are woken before [`Self::any`],
    /// so a waiter on `any` knows every tenant of the commit was woken before it.
    pub fn notify<'a>(&self, tenants: impl IntoIterator<Item = &'a str>) {
        for t in tenants {
            self.tenants.notify(t);
        }
        self.any.notify_waiters();
    }

    /// Wakes every reader: the commits that logged events are not known (a lost change feed,
    /// a notice from a server that names no tenant).
    pub fn notify_all(&self) {
        self.tenants.notify_all();
        self.any.notify_waiters();
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

    #[test]
    fn a_commit_wakes_the_readers_of_its_tenants_only() {
        let s = EventSignals::default();
        let (a, b, any) = (s.tenant("a"), s.tenant("b"), s.any());
        let (wa, wb, wany) = (a.notified(), b.notified(), any.notified());
        tokio::pin!(wa, wb, wany);
        for w in [wa.as_mut(), wb.as_mut(), wany.as_mut()] {
            w.enable();
        }
        s.notify(["b"]);
        assert!(woken(wb.as_mut()) && woken(wany.as_mut()));
        assert!(!woken(wa.as_mut()), "b's commit woke a");
        s.notify_all();
        assert!(woken(wa.as_mut()));
    }

    fn woken(f: std::pin::Pin<&mut impl std::future::Future>) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        f.poll(&mut cx).is_ready()
    }
}
