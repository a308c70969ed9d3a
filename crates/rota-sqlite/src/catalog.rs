//! The in-memory catalog of queues: ids, settings, counts by state and last claim time.
//!
//! The writer is its only mutator and publishes changes after each commit, so readers see the
//! counts of committed data. Counts are derived from the rows at open and never stored, so they
//! cost no write.

use rota_core::{QueueKey, QueueSettings, StateCounts, TaskState, Timestamp};
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

#[derive(Debug, Clone)]
pub struct QueueEntry {
    pub id: i64,
    pub key: QueueKey,
    pub settings: QueueSettings,
    pub created_at: Timestamp,
    pub last_claim_at: Option<Timestamp>,
    pub counts: StateCounts,
}

#[derive(Debug, Default)]
pub struct Catalog {
    by_key: HashMap<QueueKey, i64>,
    entries: HashMap<i64, QueueEntry>,
    /// Queues per tenant, for `limits.max_queues_per_tenant`.
    per_tenant: HashMap<String, usize>,
}

impl Catalog {
    pub fn by_key(&self, key: &QueueKey) -> Option<&QueueEntry> {
        self.by_key.get(key).and_then(|id| self.entries.get(id))
    }
    pub fn by_id(&self, id: i64) -> Option<&QueueEntry> {
        self.entries.get(&id)
    }
    pub fn by_id_mut(&mut self, id: i64) -> Option<&mut QueueEntry> {
        self.entries.get_mut(&id)
    }
    pub fn insert(&mut self, e: QueueEntry) {
        if let Some(old) = self.by_key.insert(e.key.clone(), e.id) {
            self.entries.remove(&old);
        } else {
            *self.per_tenant.entry(e.key.tenant.clone()).or_default() += 1;
        }
        self.entries.insert(e.id, e);
    }
    /// Forgets queue `id`; its key is forgotten only while it still names this queue.
    pub fn remove(&mut self, id: i64) {
        if let Some(e) = self.entries.remove(&id) {
            if self.by_key.get(&e.key) == Some(&id) {
                self.by_key.remove(&e.key);
                if let Some(n) = self.per_tenant.get_mut(&e.key.tenant) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_tenant.remove(&e.key.tenant);
                    }
                }
            }
        }
    }
    /// Each tenant with queues, and how many.
    pub fn tenant_queue_counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.per_tenant.iter().map(|(t, n)| (t.as_str(), *n))
    }
    pub fn tenant_queue_count(&self, tenant: &str) -> usize {
        self.per_tenant.get(tenant).copied().unwrap_or(0)
    }
    pub fn for_tenant(&self, tenant: &str) -> Vec<&QueueEntry> {
        let mut v: Vec<&QueueEntry> = self
            .entries
            .values()
            .filter(|e| e.key.tenant == tenant)
            .collect();
        v.sort_by(|a, b| a.key.name.cmp(&b.key.name));
        v
    }
    pub fn all(&self) -> impl Iterator<Item = &QueueEntry> {
        self.entries.values()
    }
}

/// Catalog changes made by one write batch, applied only once it commits.
#[derive(Debug, Default)]
pub struct CatalogDelta {
    pub new_queues: Vec<QueueEntry>,
    pub settings: HashMap<i64, QueueSettings>,
    pub counts: HashMap<i64, [i64; TaskState::COUNT]>,
    pub last_claim_at: HashMap<i64, Timestamp>,
    /// Queues deleted with their tenant.
    pub removed_queues: HashSet<i64>,
    pub new_tenants: HashSet<String>,
    pub removed_tenants: HashSet<String>,
    /// Queues where a task stopped running (its room may wake a claim held by a limit).
    pub freed: HashSet<i64>,
}

impl CatalogDelta {
    pub fn moved(&mut self, queue_id: i64, from: Option<TaskState>, to: Option<TaskState>) {
        let c = self.counts.entry(queue_id).or_default();
        if let Some(f) = from {
            c[f.index()] -= 1;
            if f == TaskState::Running {
                self.freed.insert(queue_id);
            }
        }
        if let Some(t) = to {
            c[t.index()] += 1;
        }
    }

    /// Publishes a committed batch's changes to the catalog and the set of tenants.
    pub fn apply_to(self, catalog: &mut Catalog, tenants: &RwLock<HashSet<String>>) {
        for id in self.removed_queues {
            catalog.remove(id);
        }
        {
            let mut t = tenants.write().unwrap_or_else(|e| e.into_inner());
            for name in self.removed_tenants {
                t.remove(&name);
            }
            t.extend(self.new_tenants);
        }
        for q in self.new_queues {
            catalog.insert(q);
        }
        for (id, s) in self.settings {
            if let Some(e) = catalog.by_id_mut(id) {
                e.settings = s;
            }
        }
        for (id, deltas) in self.counts {
            if let Some(e) = catalog.by_id_mut(id) {
                for st in TaskState::ALL {
                    let c = e.counts.get_mut(st);
                    *c = c.saturating_add_signed(deltas[st.index()]);
                }
            }
        }
        for (id, t) in self.last_claim_at {
            if let Some(e) = catalog.by_id_mut(id) {
                e.last_claim_at = Some(t);
            }
        }
    }
}
