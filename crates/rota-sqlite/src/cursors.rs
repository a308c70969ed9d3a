//! Event cursors for every shard of one store.
//!
//! Each shard's writer appends its events in its own transaction, so cursors cannot come from
//! one table's sequence: they come from here, in memory, in the order writers ask. A reader
//! must never hand out a cursor while a smaller one may still commit, or a stream resumed past
//! it would miss that event; so each writer marks the first cursor it took until its commit is
//! done, and readers stop below the [`Cursors::horizon`], the lowest such mark. This is the
//! rule the PostgreSQL engine applies to its transactions in flight.
//!
//! Readers are woken per tenant, so a tenant's readers must be woken when its events become
//! readable, which may be after the batch that logged them has committed: while another
//! shard's batch holds a lower cursor, the events wait here, and the settling of that batch
//! releases them ([`Cursors::settle`]).

use std::sync::Mutex;

pub(crate) struct Cursors {
    state: Mutex<State>,
}

struct State {
    /// The next cursor to hand out.
    next: i64,
    /// Per shard: the first cursor its batch in flight took, until that batch is settled.
    taken: Vec<Option<i64>>,
    /// Committed batches whose events are not yet below the horizon: their last cursor and
    /// the tenants of their events, to be woken once readers may see them.
    waiting: Vec<(i64, Vec<String>)>,
}

impl Cursors {
    /// Cursors after `last` (the greatest any shard has used) for `shards` writers.
    pub fn new(last: i64, shards: usize) -> Self {
        Cursors {
            state: Mutex::new(State {
                next: last + 1,
                taken: vec![None; shards],
                waiting: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `n` consecutive cursors for `shard`'s batch in flight; answers the first.
    pub fn take(&self, shard: usize, n: usize) -> i64 {
        let mut s = self.lock();
        let first = s.next;
        s.next += n as i64;
        s.taken[shard].get_or_insert(first);
        first
    }

    /// `shard`'s batch has committed (or rolled back): its cursors no longer hold readers back.
    /// `logged`: the batch committed events, up to this cursor, of these tenants. Answers the
    /// tenants whose events readers may now see (this batch's, unless a batch in flight on
    /// another shard still holds a lower cursor, and those of batches that waited behind this
    /// one), each once.
    pub fn settle(&self, shard: usize, logged: Option<(i64, Vec<String>)>) -> Vec<String> {
        let mut s = self.lock();
        s.taken[shard] = None;
        if let Some(l) = logged {
            s.waiting.push(l);
        }
        if s.waiting.is_empty() {
            return Vec::new();
        }
        let horizon = s.horizon();
        let mut wake: Vec<String> = Vec::new();
        s.waiting.retain_mut(|(last, tenants)| {
            if *last >= horizon {
                return true;
            }
            wake.append(tenants);
            false
        });
        wake.sort_unstable();
        wake.dedup();
        wake
    }

    /// Every cursor below this one is committed (or never will be): what readers may return.
    pub fn horizon(&self) -> i64 {
        self.lock().horizon()
    }
}

impl State {
    fn horizon(&self) -> i64 {
        self.taken
            .iter()
            .flatten()
            .fold(self.next, |h, t| h.min(*t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_stop_below_the_first_cursor_in_flight() {
        let c = Cursors::new(10, 2);
        assert_eq!(c.horizon(), 11);
        assert_eq!(c.take(0, 3), 11);
        assert_eq!(c.take(1, 2), 14);
        assert_eq!(c.horizon(), 11, "shard 0 has not committed 11..=13");
        c.settle(1, None);
        assert_eq!(c.horizon(), 11, "16 is past 11 that may still commit");
        assert_eq!(c.take(0, 1), 16, "a second statement of the same batch");
        c.settle(0, None);
        assert_eq!(c.horizon(), 17);
    }

    #[test]
    fn a_tenant_is_woken_when_its_events_pass_the_horizon() {
        let c = Cursors::new(0, 2);
        let logged = |last: i64, t: &str| Some((last, vec![t.to_owned()]));
        assert_eq!(c.take(0, 2), 1);
        assert_eq!(c.take(1, 2), 3);
        // Shard 1 committed 3..=4 for tenant a, but 1 may still commit: a waits.
        assert!(c.settle(1, logged(4, "a")).is_empty());
        // Shard 0's commit makes both readable: a and b wake now.
        assert_eq!(c.settle(0, logged(2, "b")), ["a", "b"]);
        // With nothing in flight, a commit's tenants wake at once; a rollback wakes nobody.
        c.take(0, 1);
        assert_eq!(c.settle(0, logged(5, "c")), ["c"]);
        c.take(1, 1);
        assert!(c.settle(1, None).is_empty());
    }
}
