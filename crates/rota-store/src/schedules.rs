//! Schedules as the store keeps them, and one firing of a schedule's ticks (see
//! [`crate::Store::fire_schedule`]).

use rota_core::schedule::{ScheduleRun, ScheduleSpec};
use rota_core::{NewTask, Timestamp};

/// A schedule as stored.
#[derive(Debug, Clone)]
pub struct ScheduleRecord {
    pub tenant: String,
    pub name: String,
    pub spec: ScheduleSpec,
    /// The next tick to fire; `None` while paused or when the expression never matches again.
    pub next_run_at: Option<Timestamp>,
    /// The latest runs, newest first, at most [`rota_core::schedule::KEPT_RUNS`].
    pub runs: Vec<ScheduleRun>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One tick being fired: the task it enqueues, or why it enqueues none.
#[derive(Debug, Clone)]
pub struct Tick {
    pub tick: Timestamp,
    /// `None`: skipped, with `run.skipped` saying why.
    pub task: Option<NewTask>,
    /// Recorded in the schedule's runs (its `task_id` filled in by the store).
    pub run: ScheduleRun,
}

/// Fires ticks of one schedule atomically: the tasks are enqueued (into the schedule's queue,
/// created if missing), the runs recorded and `next_run_at` moved, in one transaction.
#[derive(Debug, Clone)]
pub struct Firing {
    pub tenant: String,
    pub name: String,
    /// Fire only if the stored `next_run_at` is still this, so of several servers (or a
    /// restart racing a late one) exactly one fires a tick; and then set it to `next_run_at`.
    /// `None` (a manual trigger): fire regardless and leave `next_run_at` alone.
    pub expect: Option<Timestamp>,
    pub next_run_at: Option<Timestamp>,
    pub ticks: Vec<Tick>,
}

/// What [`crate::Store::due_schedules`] found.
#[derive(Debug, Clone, Default)]
pub struct DueSchedules {
    /// Schedules whose `next_run_at` has come, earliest first.
    pub due: Vec<ScheduleRecord>,
    /// The earliest `next_run_at` still ahead.
    pub next: Option<Timestamp>,
}
