//! Fair batching: waiting ops sit in one FIFO lane per tenant (and one for the server's own
//! work), and a batch takes them round-robin across lanes within a budget of rows. A tenant that
//! sends thousands of large batches fills its own lane; another tenant's request waits for at
//! most the commit in progress, and goes into the next one.
//!
//! Lanes that are owed a turn (newly active, or skipped because their op did not fit) stand
//! ahead of lanes that were just served, in the order they became owed.

use super::Op;
use std::collections::{HashMap, HashSet, VecDeque};

#[derive(Default)]
pub struct Lanes {
    /// Lane name (`None`: the server's own) to its ops, oldest first.
    lanes: HashMap<Option<String>, VecDeque<Op>>,
    /// Lanes with ops, in the order they are served; the first is served next.
    order: VecDeque<Option<String>>,
    /// Lanes not served since they became active or were skipped; they lead `order`.
    owed: HashSet<Option<String>>,
    len: usize,
}

impl Lanes {
    pub fn push(&mut self, op: Op) {
        let lane = op.lane().map(str::to_owned);
        let q = self.lanes.entry(lane.clone()).or_default();
        let newly_active = q.is_empty();
        q.push_back(op);
        self.len += 1;
        if newly_active {
            // Behind the other lanes owed a turn, ahead of the lanes just served.
            let at = self
                .order
                .iter()
                .position(|l| !self.owed.contains(l))
                .unwrap_or(self.order.len());
            self.order.insert(at, lane.clone());
            self.owed.insert(lane);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes ops round-robin, one per lane per round, until `max_ops` or `max_rows` would be
    /// passed. Always takes at least one op, however large. Lanes whose next op did not fit
    /// go first next time, ahead of the lanes served now, so no lane waits behind a busier one
    /// for more than one batch.
    pub fn take_batch(&mut self, max_ops: usize, max_rows: usize) -> Vec<Op> {
        let mut out: Vec<Op> = Vec::new();
        let mut rows = 0;
        loop {
            let mut took_any = false;
            let mut skipped = VecDeque::new();
            let mut served = VecDeque::new();
            while let Some(lane) = self.order.pop_front() {
                let q = self.lanes.get_mut(&lane).expect("ordered lanes exist");
                let fits = out.len() < max_ops
                    && q.front()
                        .is_some_and(|op| out.is_empty() || rows + op.rows() <= max_rows);
                if !fits {
                    self.owed.insert(lane.clone());
                    skipped.push_back(lane);
                    continue;
                }
                self.owed.remove(&lane);
                let op = q.pop_front().expect("checked above");
                rows += op.rows();
                out.push(op);
                self.len -= 1;
                took_any = true;
                if q.is_empty() {
                    self.lanes.remove(&lane);
                } else {
                    served.push_back(lane);
                }
            }
            skipped.append(&mut served);
            self.order = skipped;
            if !took_any || rows >= max_rows || out.len() >= max_ops || self.order.is_empty() {
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rota_core::{json_null, NewTask, QueueKey};
    use tokio::sync::oneshot;

    fn enqueue(tenant: &str, n: usize) -> Op {
        let task = NewTask {
            kind: "k".into(),
            payload: json_null(),
            priority: 0,
            run_at: None,
            max_attempts: None,
            unique_key: None,
            on_duplicate: Default::default(),
            tags: vec![],
            callback_url: None,
            group: None,
            depends_on: Vec::new(),
            on_dependency_failure: Default::default(),
            workflow: None,
            traceparent: None,
            tracestate: None,
        };
        let (tx, _rx) = oneshot::channel();
        Op::Enqueue(QueueKey::new(tenant, "q"), vec![task; n], tx)
    }

    fn tenants(ops: &[Op]) -> Vec<String> {
        ops.iter().map(|o| o.lane().unwrap().to_owned()).collect()
    }

    #[test]
    fn a_flooding_tenant_shares_each_batch_with_the_others() {
        let mut lanes = Lanes::default();
        for _ in 0..100 {
            lanes.push(enqueue("flood", 2_000));
        }
        lanes.push(enqueue("small", 1));
        let first = lanes.take_batch(2_048, 4_096);
        assert_eq!(tenants(&first), ["flood", "small", "flood"]);
        // The flood's op that did not fit is owed the next turn; a lane that becomes active
        // now is served right after it, in the same batch.
        lanes.push(enqueue("late", 1));
        assert_eq!(lanes.len(), 99);
        let second = lanes.take_batch(2_048, 4_096);
        assert_eq!(tenants(&second), ["flood", "late", "flood"]);
    }

    #[test]
    fn a_lane_whose_op_did_not_fit_goes_first_next_time() {
        let mut lanes = Lanes::default();
        for _ in 0..10 {
            lanes.push(enqueue("flood", 2_000));
        }
        assert_eq!(tenants(&lanes.take_batch(2_048, 1_024)), ["flood"]);
        // `small` arrives while the flood's batch commits: it goes ahead of the flood, and the
        // flood's op, which no longer fits beside it, is owed the next batch.
        lanes.push(enqueue("small", 1));
        assert_eq!(tenants(&lanes.take_batch(2_048, 1_024)), ["small"]);
        lanes.push(enqueue("other", 1));
        assert_eq!(tenants(&lanes.take_batch(2_048, 1_024)), ["flood"]);
        assert_eq!(tenants(&lanes.take_batch(2_048, 1_024)), ["other"]);
        assert_eq!(tenants(&lanes.take_batch(2_048, 1_024)), ["flood"]);
    }

    #[test]
    fn an_op_larger_than_the_budget_still_runs_alone() {
        let mut lanes = Lanes::default();
        lanes.push(enqueue("a", 10_000));
        lanes.push(enqueue("b", 10_000));
        assert_eq!(tenants(&lanes.take_batch(2_048, 4_096)), ["a"]);
        assert_eq!(tenants(&lanes.take_batch(2_048, 4_096)), ["b"]);
        assert!(lanes.is_empty());
    }

    #[test]
    fn small_ops_fill_a_batch_up_to_the_op_limit() {
        let mut lanes = Lanes::default();
        for i in 0..10 {
            lanes.push(enqueue(&format!("t{}", i % 3), 1));
        }
        let batch = lanes.take_batch(4, 4_096);
        assert_eq!(tenants(&batch), ["t0", "t1", "t2", "t0"]);
        assert_eq!(lanes.take_batch(100, 4_096).len(), 6);
    }
}
