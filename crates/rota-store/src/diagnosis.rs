//! What `rota doctor` reads from the store about one tenant: the recent event log summed per
//! queue, the most common errors, which kinds are ready, and tasks scheduled implausibly far
//! ahead. Engines answer it with a bounded amount of work (see [`DIAGNOSE_SCAN`]).

use rota_core::events::EventType;
use rota_core::Timestamp;
use std::collections::{BTreeMap, HashMap};

/// Events one diagnosis looks at, at most (the newest ones).
pub const DIAGNOSE_SCAN: i64 = 200_000;
/// Errors kept per queue, most common first.
pub const TOP_ERRORS: usize = 3;
/// Distinct ready kinds listed per queue.
pub const READY_KINDS: usize = 10;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnosis {
    /// By queue name: the queues with events since the diagnosis's `since`, ready tasks, or
    /// tasks scheduled beyond its `far`.
    pub queues: HashMap<String, QueueActivity>,
    /// More events were logged since `since` than [`DIAGNOSE_SCAN`]; the newest were counted.
    pub truncated: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueActivity {
    /// Events since `since`, by type.
    pub events: HashMap<EventType, u64>,
    /// The most common errors of failed attempts and dead tasks since `since`, with how often
    /// each came, most common first (at most [`TOP_ERRORS`]).
    pub errors: Vec<(String, u64)>,
    /// Kinds of the queue's ready tasks (at most [`READY_KINDS`], in name order).
    pub ready_kinds: Vec<String>,
    /// Scheduled tasks whose run is after `far`, and the latest such run.
    pub far_scheduled: u64,
    pub latest_run_at: Option<Timestamp>,
    /// By minute (its start, ms) since `since`: tasks succeeded, and attempts failed (retried
    /// or dead).
    pub minutes: BTreeMap<i64, (u64, u64)>,
}

impl QueueActivity {
    pub fn count(&self, t: EventType) -> u64 {
        self.events.get(&t).copied().unwrap_or(0)
    }
}

/// Adds `(queue, minute, type, count)` rows to the per-minute outcomes.
pub fn add_minutes(rows: Vec<(String, i64, EventType, u64)>, d: &mut Diagnosis) {
    for (queue, minute, t, n) in rows {
        let m = d
            .queues
            .entry(queue)
            .or_default()
            .minutes
            .entry(minute * 60_000)
            .or_default();
        match t {
            EventType::Succeeded => m.0 += n,
            EventType::Failed | EventType::Dead => m.1 += n,
            _ => {}
        }
    }
}

/// Keeps the most common errors, ties by text, as engines return `(queue, error, count)` rows.
pub fn top_errors(rows: Vec<(String, String, u64)>, d: &mut Diagnosis) {
    let mut by_queue: HashMap<String, Vec<(String, u64)>> = HashMap::new();
    for (queue, error, n) in rows {
        by_queue.entry(queue).or_default().push((error, n));
    }
    for (queue, mut errors) in by_queue {
        errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        errors.truncate(TOP_ERRORS);
        d.queues.entry(queue).or_default().errors = errors;
    }
}
