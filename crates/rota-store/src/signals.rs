//! Per-queue wake-ups for long-polling claims, shared by engines.

use rota_core::QueueKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
pub struct ReadySignals {
    map: Mutex<HashMap<QueueKey, Arc<Notify>>>,
}

impl ReadySignals {
    pub fn get(&self, queue: &QueueKey) -> Arc<Notify> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(queue.clone()).or_default().clone()
    }

    /// Wakes every claim waiting on `queue`. Cheap when nobody waits.
    pub fn notify(&self, queue: &QueueKey) {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get(queue) {
            n.notify_waiters();
        }
    }

    pub fn notify_all(&self) {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for n in map.values() {
            n.notify_waiters();
        }
    }
}
