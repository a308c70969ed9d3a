//! Event cursors for every shard of one store.
//!
//! Each shard's writer appends its events in its own transaction, so cursors cannot come from
//! one table's sequence: they come from here, in memory, in the order writers ask. A reader
//! must never hand out a cursor while a smaller one may still commit, or a stream resumed past
//! it would miss that event; so each writer marks the first cursor it took until its commit is
//! done, and readers stop below the [`Cursors::horizon`], the lowest such mark. This is the
//! rule the PostgreSQL engine applies to its transactions in flight.

use std::sync::Mutex;

pub(crate) struct Cursors {
    state: Mutex<State>,
}

struct State {
    /// The next cursor to hand out.
    next: i64,
    /// Per shard: the first cursor its batch in flight took, until that batch is settled.
    taken: Vec<Option<i64>>,
}

impl Cursors {
    /// Cursors after `last` (the greatest any shard has used) for `shards` writers.
    pub fn new(last: i64, shards: usize) -> Self {
        Cursors {
            state: Mutex::new(State {
                next: last + 1,
                taken: vec![None; shards],
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
    pub fn settle(&self, shard: usize) {
        self.lock().taken[shard] = None;
    }

    /// Every cursor below this one is committed (or never will be): what readers may return.
    pub fn horizon(&self) -> i64 {
        let s = self.lock();
        s.taken.iter().flatten().fold(s.next, |h, t| h.min(*t))
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
        c.settle(1);
        assert_eq!(c.horizon(), 11, "16 is past 11 that may still commit");
        assert_eq!(c.take(0, 1), 16, "a second statement of the same batch");
        c.settle(0);
        assert_eq!(c.horizon(), 17);
    }
}
