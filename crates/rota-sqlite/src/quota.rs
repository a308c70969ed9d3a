//! Each tenant's queue count across every shard, so `limits.max_queues_per_tenant` holds for
//! the store, not per shard, even when two shards create queues for one tenant at once.
//!
//! Per tenant it keeps one count per shard: the queues that shard's catalog has, plus the ones
//! its batch in flight is creating. A writer takes a place before it creates a queue and, once
//! the batch has committed or rolled back, sets its count back to what its catalog says.

use std::collections::HashMap;
use std::sync::Mutex;

pub(crate) struct QueueQuota {
    shards: usize,
    counts: Mutex<HashMap<String, Vec<usize>>>,
}

impl QueueQuota {
    pub fn new(shards: usize) -> Self {
        QueueQuota {
            shards,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<usize>>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place for one more queue of `tenant` in `shard`; `Err(have)` at `max`.
    pub fn take(&self, tenant: &str, shard: usize, max: usize) -> Result<(), usize> {
        let mut counts = self.lock();
        let per = counts
            .entry(tenant.to_owned())
            .or_insert_with(|| vec![0; self.shards]);
        let have: usize = per.iter().sum();
        if have >= max {
            return Err(have);
        }
        per[shard] += 1;
        Ok(())
    }

    /// `shard` has `count` queues of `tenant` in its catalog and none in flight.
    pub fn settle(&self, tenant: &str, shard: usize, count: usize) {
        let mut counts = self.lock();
        let per = counts
            .entry(tenant.to_owned())
            .or_insert_with(|| vec![0; self.shards]);
        per[shard] = count;
        if per.iter().all(|c| *c == 0) {
            counts.remove(tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_every_shard_and_the_queues_in_flight() {
        let q = QueueQuota::new(2);
        q.settle("acme", 0, 2);
        assert_eq!(q.take("acme", 1, 4), Ok(()));
        assert_eq!(q.take("acme", 0, 4), Ok(()));
        assert_eq!(q.take("acme", 1, 4), Err(4), "two committed, two in flight");
        // Shard 1's batch rolled back: its place is free again.
        q.settle("acme", 1, 0);
        assert_eq!(q.take("acme", 1, 4), Ok(()));
        assert_eq!(q.take("globex", 0, 1), Ok(()));
        assert_eq!(q.take("globex", 1, 1), Err(1));
    }
}
