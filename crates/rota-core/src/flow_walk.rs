//! One claim's walk through a queue under flow control (docs/flow-control.md), written once
//! for every engine. A queue's positions are its ungrouped tasks (`""`) and then its groups by
//! name, round a ring; a position takes up to its weight per turn, one task per step, so the
//! turns interleave; a position that gives nothing (paused, at its concurrency, held by its
//! rate, no ready task of the kinds asked) is skipped until the ring comes round with nothing
//! taken; the queue's rate stops the whole walk. Within a position, tasks go by priority then
//! age: that order is the engine's (its `take`).
//!
//! The engine gives the walk its reads inside the claim's transaction ([`FlowReads`]); the
//! walk keeps what it learns of each group ([`GroupState`]) and the queue's rate state, which
//! the engine stores afterwards in the same transaction. The engine counts the queue's own
//! running tasks (it knows how cheaply) and passes the room left.

use crate::flow::{GroupLimits, GroupSettings, Turn};
use crate::{QueueSettings, Timestamp};
use std::collections::{HashMap, HashSet};

/// Positions one claim visits at most (each costs an index read): a claim in a queue whose
/// groups are nearly all held (paused, at their limits) answers what it found so far and the
/// next claim goes on from there, so no claim's cost grows with the number of groups.
pub const MAX_GROUP_VISITS: usize = 2_000;

/// What a walk reads and does in the engine, inside the claim's transaction. `position` is a
/// group's name, or `""` for the tasks with no group.
// Each engine calls the walk on its own concrete reads, so the futures' auto traits are known
// where they are needed.
#[allow(async_fn_in_trait)]
pub trait FlowReads {
    type Error;
    /// A group's own settings and its rate's TAT (`None` and 0 when it has no row).
    async fn group_row(&mut self, group: &str)
        -> Result<(Option<GroupSettings>, i64), Self::Error>;
    /// The group's running tasks.
    async fn group_running(&mut self, group: &str) -> Result<u64, Self::Error>;
    /// Whether the position has a ready task that this claim has not taken.
    async fn has_ready(&mut self, position: &str) -> Result<bool, Self::Error>;
    /// The first group by name after `after` with a ready task not taken.
    async fn group_after(&mut self, after: &str) -> Result<Option<String>, Self::Error>;
    /// Takes up to `n` of the position's next ready tasks (priority, then age, of the kinds
    /// asked) for this claim; answers how many.
    async fn take(&mut self, position: &str, n: usize) -> Result<usize, Self::Error>;
}

/// One group as a claim sees it.
#[derive(Debug, Clone)]
pub struct GroupState {
    pub limits: GroupLimits,
    pub running: u64,
    /// The group rate's TAT (µs), and whether this claim moved it.
    pub tat: i64,
    pub tat_changed: bool,
}

/// Why a position gave no task.
enum Refused {
    /// The group is held (paused, full, rate) or has no ready task of the kinds asked.
    Group,
    /// The queue's rate: nothing more may start anywhere in the queue now.
    QueueRate,
}

/// A claim's walk: the queue's settings, its rate state and the groups read so far.
#[derive(Debug)]
pub struct Walk<'s> {
    settings: &'s QueueSettings,
    now: Timestamp,
    /// Whether the queue has grouped tasks (if not, there is one position and no turn).
    grouped: bool,
    /// The queue rate's TAT (µs), as this claim leaves it.
    pub q_tat: i64,
    pub groups: HashMap<String, GroupState>,
}

/// What a walk did: tasks taken, when a rate lets the next start (if one held a ready task
/// back), and where the round-robin stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walked {
    pub taken: usize,
    pub hold: Option<Timestamp>,
    pub turn: Turn,
}

fn held(hold: &mut Option<Timestamp>, at: Timestamp) {
    *hold = Some(hold.map_or(at, |h| h.min(at)));
}

impl<'s> Walk<'s> {
    pub fn new(settings: &'s QueueSettings, now: Timestamp, grouped: bool, q_tat: i64) -> Self {
        Walk {
            settings,
            now,
            grouped,
            q_tat,
            groups: HashMap::new(),
        }
    }

    /// Takes up to `room` tasks starting from `turn`.
    pub async fn run<R: FlowReads>(
        &mut self,
        reads: &mut R,
        room: usize,
        mut turn: Turn,
    ) -> Result<Walked, R::Error> {
        if !self.grouped {
            turn = Turn::default();
        }
        let mut done = Walked {
            turn: turn.clone(),
            ..Walked::default()
        };
        if room == 0 {
            return Ok(done);
        }
        let mut idle: HashSet<String> = HashSet::new();
        let mut visits = 0usize;
        while done.taken < room && visits < MAX_GROUP_VISITS {
            let stay = match &turn.group {
                Some(g) if self.grouped => {
                    let g = g.clone();
                    let weight = self.group(reads, &g).await?.map_or(1, |g| g.limits.weight);
                    turn.taken < weight
                }
                _ => false,
            };
            let position = match &turn.group {
                Some(g) if stay => g.clone(),
                _ if !self.grouped => String::new(),
                _ => match next_position(reads, turn.group.as_deref()).await? {
                    Some(p) => {
                        turn = Turn {
                            group: Some(p.clone()),
                            taken: 0,
                        };
                        p
                    }
                    None => break,
                },
            };
            visits += 1;
            // A queue without groups takes all it may at once; a grouped one a task per step.
            let want = if self.grouped { 1 } else { room - done.taken };
            match self.take_from(reads, &position, want).await? {
                Ok(n) => {
                    done.taken += n;
                    turn.taken = turn.taken.saturating_add(n as u32);
                    idle.clear();
                }
                Err(Refused::QueueRate) => {
                    if let Some(r) = self.settings.rate {
                        held(&mut done.hold, r.next_at(self.q_tat));
                    }
                    break;
                }
                Err(Refused::Group) => {
                    if !self.grouped || !idle.insert(position.clone()) {
                        break; // round the whole ring with nothing taken
                    }
                    turn.taken = u32::MAX; // on to the next position
                }
            }
            if !self.grouped {
                turn = Turn::default();
            }
        }
        // Groups held by their rate say when they may start again.
        let rated: Vec<(String, i64, crate::flow::Rate)> = self
            .groups
            .iter()
            .filter_map(|(n, g)| g.limits.rate.map(|r| (n.clone(), g.tat, r)))
            .collect();
        for (name, tat, r) in rated {
            if r.take(tat, self.now).is_none() && reads.has_ready(&name).await? {
                held(&mut done.hold, r.next_at(tat));
            }
        }
        if turn.taken == u32::MAX {
            turn.taken = 0;
        }
        done.turn = turn;
        Ok(done)
    }

    /// The groups whose rate state this claim moved, with their new TAT.
    pub fn moved_tats(&self) -> impl Iterator<Item = (&str, i64)> {
        self.groups
            .iter()
            .filter(|(_, g)| g.tat_changed)
            .map(|(n, g)| (n.as_str(), g.tat))
    }

    /// A group's state for this claim, read on first use; `None` for the tasks with no group.
    async fn group<R: FlowReads>(
        &mut self,
        reads: &mut R,
        position: &str,
    ) -> Result<Option<&mut GroupState>, R::Error> {
        if position.is_empty() {
            return Ok(None);
        }
        if !self.groups.contains_key(position) {
            let (own, tat) = reads.group_row(position).await?;
            let limits = GroupLimits::of(own.as_ref(), self.settings);
            let running = match limits.concurrency {
                Some(_) => reads.group_running(position).await?,
                None => 0,
            };
            let state = GroupState {
                limits,
                running,
                tat,
                tat_changed: false,
            };
            self.groups.insert(position.to_owned(), state);
        }
        Ok(self.groups.get_mut(position))
    }

    /// Takes up to `want` of the position's next tasks, as many as its limits and the queue's
    /// rate let start now; answers how many.
    async fn take_from<R: FlowReads>(
        &mut self,
        reads: &mut R,
        position: &str,
        mut want: usize,
    ) -> Result<Result<usize, Refused>, R::Error> {
        let now = self.now;
        if let Some(g) = self.group(reads, position).await? {
            let full = g
                .limits
                .concurrency
                .is_some_and(|c| g.running >= u64::from(c));
            let rate_holds = g.limits.rate.is_some_and(|r| r.take(g.tat, now).is_none());
            if g.limits.paused || full || rate_holds {
                return Ok(Err(Refused::Group));
            }
            want = 1;
        }
        if let Some(r) = self.settings.rate {
            let (mut tat, mut allowed) = (self.q_tat, 0);
            while allowed < want {
                match r.take(tat, now) {
                    Some(next) => {
                        tat = next;
                        allowed += 1;
                    }
                    None => break,
                }
            }
            if allowed == 0 {
                return Ok(Err(if reads.has_ready(position).await? {
                    Refused::QueueRate
                } else {
                    Refused::Group
                }));
            }
            want = allowed;
        }
        let n = reads.take(position, want).await?;
        if n == 0 {
            return Ok(Err(Refused::Group));
        }
        if let Some(r) = self.settings.rate {
            for _ in 0..n {
                self.q_tat = r.take(self.q_tat, now).expect("counted above");
            }
        }
        if let Some(g) = self.group(reads, position).await? {
            g.running += n as u64;
            if let Some(r) = g.limits.rate {
                for _ in 0..n {
                    g.tat = r.take(g.tat, now).expect("checked above");
                }
                g.tat_changed = true;
            }
        }
        Ok(Ok(n))
    }
}

/// The next position after `after` (`None`: before the first) that has ready tasks, round
/// the ring; `None` when nothing in the queue is ready.
async fn next_position<R: FlowReads>(
    reads: &mut R,
    after: Option<&str>,
) -> Result<Option<String>, R::Error> {
    if after.is_none() && reads.has_ready("").await? {
        return Ok(Some(String::new()));
    }
    if let Some(g) = reads.group_after(after.unwrap_or("")).await? {
        return Ok(Some(g));
    }
    // Round again from the start.
    if reads.has_ready("").await? {
        return Ok(Some(String::new()));
    }
    reads.group_after("").await
}

/// Runs a walk whose reads never wait (the embedded engine's, on its writer thread) to its end.
///
/// # Panics
/// If the future waits: such reads must be awaited on a runtime instead.
pub fn ready_now<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("a walk's reads waited, but they were said not to"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Rate;
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    /// A queue in memory: each position's ready tasks in claim order, running counts, the
    /// groups' own settings; `take` moves tasks to running and logs them.
    #[derive(Default)]
    struct Mem {
        ready: BTreeMap<String, Vec<String>>,
        running: HashMap<String, u64>,
        own: HashMap<String, GroupSettings>,
        started: Vec<String>,
    }

    impl Mem {
        fn with(groups: &[(&str, usize)]) -> Self {
            let mut m = Mem::default();
            for (g, n) in groups {
                let tasks = (0..*n).map(|i| format!("{g}{i}")).collect();
                m.ready.insert(g.to_string(), tasks);
            }
            m
        }
    }

    impl FlowReads for Mem {
        type Error = Infallible;
        async fn group_row(&mut self, g: &str) -> Result<(Option<GroupSettings>, i64), Infallible> {
            Ok((self.own.get(g).cloned(), 0))
        }
        async fn group_running(&mut self, g: &str) -> Result<u64, Infallible> {
            Ok(self.running.get(g).copied().unwrap_or(0))
        }
        async fn has_ready(&mut self, p: &str) -> Result<bool, Infallible> {
            Ok(self.ready.get(p).is_some_and(|t| !t.is_empty()))
        }
        async fn group_after(&mut self, after: &str) -> Result<Option<String>, Infallible> {
            Ok(self
                .ready
                .iter()
                .find(|(g, t)| !g.is_empty() && g.as_str() > after && !t.is_empty())
                .map(|(g, _)| g.clone()))
        }
        async fn take(&mut self, p: &str, n: usize) -> Result<usize, Infallible> {
            let Some(tasks) = self.ready.get_mut(p) else {
                return Ok(0);
            };
            let n = n.min(tasks.len());
            self.started.extend(tasks.drain(..n));
            *self.running.entry(p.to_owned()).or_default() += n as u64;
            Ok(n)
        }
    }

    fn claim(m: &mut Mem, s: &QueueSettings, room: usize, turn: Turn) -> Walked {
        let grouped = m.ready.keys().any(|g| !g.is_empty());
        let mut walk = Walk::new(s, Timestamp(1_000), grouped, 0);
        let Ok(w) = ready_now(walk.run(m, room, turn));
        w
    }

    fn started(m: &mut Mem) -> Vec<String> {
        std::mem::take(&mut m.started)
    }

    #[test]
    fn groups_take_turns_ungrouped_tasks_first() {
        let mut m = Mem::with(&[("", 2), ("a", 3), ("b", 1), ("c", 2)]);
        let w = claim(&mut m, &QueueSettings::default(), 7, Turn::default());
        assert_eq!(started(&mut m), ["0", "a0", "b0", "c0", "1", "a1", "c1"]);
        assert_eq!(w.taken, 7);
        // The next claim goes on where this one stopped.
        claim(&mut m, &QueueSettings::default(), 1, w.turn);
        assert_eq!(started(&mut m), ["a2"]);
    }

    #[test]
    fn a_big_group_delays_a_small_one_by_at_most_one_turn() {
        let mut groups = vec![("big".to_owned(), 100_000)];
        groups.extend((0..100).map(|i| (format!("s{i:03}"), 10)));
        let refs: Vec<(&str, usize)> = groups.iter().map(|(g, n)| (g.as_str(), *n)).collect();
        let mut m = Mem::with(&refs);
        let mut turn = Turn::default();
        let mut all = Vec::new();
        while m.ready.iter().any(|(g, t)| g != "big" && !t.is_empty()) {
            turn = claim(&mut m, &QueueSettings::default(), 1_000, turn).turn;
            all.extend(started(&mut m));
        }
        let last_small = all.iter().rposition(|t| !t.starts_with("big")).unwrap();
        let big = all[..last_small]
            .iter()
            .filter(|t| t.starts_with("big"))
            .count();
        // Ten rounds of the ring: each gives the big group one task.
        assert!(big <= 10, "{big}");
    }

    #[test]
    fn weights_concurrency_and_pauses_shape_the_turns() {
        let mut m = Mem::with(&[("a", 5), ("b", 5), ("c", 5), ("d", 5)]);
        m.own.insert(
            "a".into(),
            GroupSettings {
                weight: 3,
                ..Default::default()
            },
        );
        m.own.insert(
            "c".into(),
            GroupSettings {
                paused: true,
                ..Default::default()
            },
        );
        m.running.insert("d".into(), 1);
        let s = QueueSettings {
            group_concurrency: Some(2),
            ..Default::default()
        };
        let w = claim(&mut m, &s, 100, Turn::default());
        // a takes three a turn up to its concurrency of 2, b two, c is paused, d has one slot.
        assert_eq!(started(&mut m), ["a0", "a1", "b0", "d0", "b1"]);
        assert_eq!(w.taken, 5);
    }

    #[test]
    fn the_queues_rate_stops_the_walk_and_says_when_to_look_again() {
        let mut m = Mem::with(&[("", 10)]);
        let s = QueueSettings {
            rate: Some(Rate {
                limit: 2,
                period_ms: 1_000,
                burst: 2,
            }),
            ..Default::default()
        };
        let mut walk = Walk::new(&s, Timestamp(1_000), false, 0);
        let Ok(w) = ready_now(walk.run(&mut m, 10, Turn::default()));
        assert_eq!(w.taken, 2);
        let next = w.hold.expect("held by the rate");
        assert!(
            next > Timestamp(1_000) && next <= Timestamp(2_000),
            "{next:?}"
        );
        // Nothing more until then; the rate state carried over says so.
        let mut again = Walk::new(&s, Timestamp(1_001), false, walk.q_tat);
        let Ok(w) = ready_now(again.run(&mut m, 10, Turn::default()));
        assert_eq!((w.taken, w.hold), (0, Some(next)));
    }

    #[test]
    fn a_group_held_by_its_rate_reports_when_it_may_start() {
        let mut m = Mem::with(&[("a", 3)]);
        let s = QueueSettings {
            group_rate: Some(Rate {
                limit: 1,
                period_ms: 100,
                burst: 1,
            }),
            ..Default::default()
        };
        let mut walk = Walk::new(&s, Timestamp(1_000), true, 0);
        let Ok(w) = ready_now(walk.run(&mut m, 10, Turn::default()));
        assert_eq!(started(&mut m), ["a0"]);
        assert_eq!(w.hold, Some(Timestamp(1_100)));
        assert_eq!(walk.moved_tats().count(), 1);
    }
}
