//! What a queue's flow-control limits hold back now: a queue's `flow` in
//! `GET /v1/queues/{queue}`, the `/metrics` held-task gauges and the doctor's flow findings
//! all read it. Pure: built from the queue as the store shows it and its groups, fed page by
//! page ([`FlowTally`]), so it never holds more than the busiest groups it reports.
//!
//! Each ready task counts under the first limit that holds it, in the order a claim checks
//! them (the queue paused, its concurrency, its rate, then its group paused, at its
//! concurrency, held by its rate), so the counts add up to at most the queue's ready tasks.

use crate::flow::{GroupInfo, Hold, Rate};
use crate::{QueueInfo, Timestamp};
use serde::{Deserialize, Serialize};

/// Ready tasks held back now, by the limit that holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Held {
    /// The queue is paused.
    pub queue_paused: u64,
    /// The queue has `concurrency` tasks running.
    pub queue_concurrency: u64,
    /// The queue's `rate` lets the next task start only at `next_start_at`.
    pub queue_rate: u64,
    /// Their group is paused.
    pub group_paused: u64,
    /// Their group is at its concurrency.
    pub group_concurrency: u64,
    /// Their group's rate holds them.
    pub group_rate: u64,
}

impl Held {
    /// Every held task.
    pub fn total(&self) -> u64 {
        self.queue_paused
            + self.queue_concurrency
            + self.queue_rate
            + self.group_paused
            + self.group_concurrency
            + self.group_rate
    }

    /// The counts with their names, as `/metrics` labels them.
    pub fn by_limit(&self) -> [(&'static str, u64); 6] {
        [
            ("queue_paused", self.queue_paused),
            ("queue_concurrency", self.queue_concurrency),
            ("queue_rate", self.queue_rate),
            ("group_paused", self.group_paused),
            ("group_concurrency", self.group_concurrency),
            ("group_rate", self.group_rate),
        ]
    }
}

/// A queue's flow control as it stands: its limits, how close it runs to them, what they hold
/// back and its busiest groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowStats {
    /// The queue's tasks running now.
    pub running: u64,
    /// The queue's concurrency limit, if any.
    pub concurrency: Option<u32>,
    /// The queue's rate, if any.
    pub rate: Option<Rate>,
    /// Ready tasks held back now, by the limit that holds them (each under the first one a
    /// claim checks).
    pub held: Held,
    /// While the queue's rate holds its ready tasks: when the next may start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_start_at: Option<Timestamp>,
    /// Groups looked at (those with ready or running tasks or settings of their own).
    pub groups_seen: u64,
    /// False when the queue has more groups than one look reads: `held`'s group counts and
    /// `busiest_groups` then cover the first `groups_seen` by name.
    pub groups_complete: bool,
    /// The groups with the most ready tasks, most first (at most `limits.max_flow_groups`).
    pub busiest_groups: Vec<GroupInfo>,
    /// The group whose oldest ready task has waited longest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_waiting_group: Option<GroupInfo>,
    /// The median over groups with ready tasks of how long their oldest has waited: what
    /// "long" means for this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_group_wait_ms: Option<u64>,
}

/// Builds a [`FlowStats`] from a queue and its groups, a page at a time.
#[derive(Debug)]
pub struct FlowTally {
    stats: FlowStats,
    /// The queue itself holds every ready task, so groups hold none of them.
    queue_held: bool,
    top: usize,
    /// Each group's oldest ready age, for the median.
    waits: Vec<u64>,
}

impl FlowTally {
    /// Starts from the queue; `top` is how many busiest groups to keep.
    pub fn new(queue: &QueueInfo, top: usize) -> Self {
        let s = &queue.settings;
        let ready = queue.counts.ready;
        let running = queue.counts.running;
        let mut held = Held::default();
        if s.paused {
            held.queue_paused = ready;
        } else if s.concurrency.is_some_and(|c| running >= u64::from(c)) {
            held.queue_concurrency = ready;
        } else if queue.next_start_at.is_some() {
            held.queue_rate = ready;
        }
        FlowTally {
            queue_held: held.total() > 0,
            stats: FlowStats {
                running,
                concurrency: s.concurrency,
                rate: s.rate,
                held,
                next_start_at: queue.next_start_at.filter(|_| ready > 0),
                groups_seen: 0,
                groups_complete: true,
                busiest_groups: Vec::new(),
                longest_waiting_group: None,
                median_group_wait_ms: None,
            },
            top,
            waits: Vec::new(),
        }
    }

    /// Adds a page of groups.
    pub fn add(&mut self, groups: impl IntoIterator<Item = GroupInfo>) {
        for g in groups {
            self.stats.groups_seen += 1;
            if !self.queue_held {
                let h = &mut self.stats.held;
                match g.held_by {
                    Some(Hold::Paused) => h.group_paused += g.ready,
                    Some(Hold::Concurrency) => h.group_concurrency += g.ready,
                    Some(Hold::Rate) => h.group_rate += g.ready,
                    None => {}
                }
            }
            if let Some(age) = g.oldest_ready_age_ms.filter(|_| g.ready > 0) {
                self.waits.push(age);
                let longest = &mut self.stats.longest_waiting_group;
                if longest
                    .as_ref()
                    .is_none_or(|l| l.oldest_ready_age_ms < Some(age))
                {
                    *longest = Some(g.clone());
                }
            }
            if self.top > 0 && g.ready > 0 {
                self.stats.busiest_groups.push(g);
            }
        }
        let busiest = &mut self.stats.busiest_groups;
        // Most ready first; ties by name so the answer is stable.
        busiest.sort_by(|a, b| b.ready.cmp(&a.ready).then_with(|| a.group.cmp(&b.group)));
        busiest.truncate(self.top);
    }

    /// The stats; `complete` says whether every group was added.
    pub fn finish(mut self, complete: bool) -> FlowStats {
        self.stats.groups_complete = complete;
        if !self.waits.is_empty() {
            let mid = self.waits.len() / 2;
            self.stats.median_group_wait_ms = Some(*self.waits.select_nth_unstable(mid).1);
        }
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::GroupSettings;
    use crate::{QueueSettings, StateCounts};

    fn queue(settings: QueueSettings, ready: u64, running: u64) -> QueueInfo {
        QueueInfo {
            name: "q".into(),
            settings,
            counts: StateCounts {
                ready,
                running,
                ..Default::default()
            },
            oldest_ready_age_ms: None,
            last_claim_at: None,
            created_at: Timestamp(0),
            shard: None,
            next_start_at: None,
        }
    }

    fn group(name: &str, ready: u64, held_by: Option<Hold>) -> GroupInfo {
        GroupInfo {
            group: name.into(),
            ready,
            running: 0,
            settings: GroupSettings::default(),
            concurrency: None,
            rate: None,
            held_by,
            next_start_at: None,
            oldest_ready_age_ms: None,
        }
    }

    #[test]
    fn groups_count_under_their_hold_and_the_busiest_are_kept() {
        let mut t = FlowTally::new(&queue(QueueSettings::default(), 20, 1), 2);
        t.add([
            group("a", 3, Some(Hold::Rate)),
            group("b", 5, Some(Hold::Concurrency)),
        ]);
        t.add([group("c", 5, Some(Hold::Paused)), group("d", 0, None)]);
        let s = t.finish(true);
        assert_eq!(
            s.held,
            Held {
                group_paused: 5,
                group_concurrency: 5,
                group_rate: 3,
                ..Default::default()
            }
        );
        assert_eq!(s.groups_seen, 4);
        let names: Vec<_> = s.busiest_groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
    }

    #[test]
    fn the_longest_wait_is_set_against_the_median() {
        let mut t = FlowTally::new(&queue(QueueSettings::default(), 30, 0), 0);
        for (name, age) in [("a", 1_000), ("b", 900_000), ("c", 2_000), ("d", 1_500)] {
            let mut g = group(name, 1, None);
            g.oldest_ready_age_ms = Some(age);
            t.add([g]);
        }
        let s = t.finish(true);
        assert!(s.busiest_groups.is_empty(), "top 0 lists none");
        assert_eq!(s.longest_waiting_group.unwrap().group, "b");
        assert_eq!(s.median_group_wait_ms, Some(2_000));
    }

    #[test]
    fn a_queue_at_its_concurrency_holds_every_ready_task_itself() {
        let settings = QueueSettings {
            concurrency: Some(2),
            ..Default::default()
        };
        let mut t = FlowTally::new(&queue(settings, 7, 2), 10);
        t.add([group("a", 7, Some(Hold::Rate))]);
        let s = t.finish(false);
        assert_eq!(s.held.queue_concurrency, 7);
        assert_eq!(s.held.total(), 7, "each task counts once");
        assert!(!s.groups_complete);
        assert_eq!(s.busiest_groups.len(), 1);
    }

    #[test]
    fn a_rate_holds_the_queue_only_while_tasks_are_ready() {
        let mut q = queue(QueueSettings::default(), 0, 0);
        q.next_start_at = Some(Timestamp(5));
        let s = FlowTally::new(&q, 3).finish(true);
        assert_eq!((s.held.total(), s.next_start_at), (0, None));
        q.counts.ready = 4;
        let s = FlowTally::new(&q, 3).finish(true);
        assert_eq!(
            (s.held.queue_rate, s.next_start_at),
            (4, Some(Timestamp(5)))
        );
    }
}
