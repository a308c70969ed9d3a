//! Schedules as the store keeps them, and one firing of a schedule's ticks (see
//! [`crate::Store::fire_schedule`]).

use rota_core::events::{self, Event};
use rota_core::schedule::{ScheduleRun, ScheduleSpec, KEPT_RUNS};
use rota_core::{NewTask, TaskId, Timestamp};

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

impl ScheduleRecord {
    /// Records a firing whose ticks' tasks got `ids` (in tick order, for the ticks that have a
    /// task; `None` when the id is not known): the runs, newest first, the oldest dropped past
    /// [`KEPT_RUNS`], and `next_run_at` moved unless it was a manual trigger. Answers the
    /// events to log with it, one per tick in tick order.
    pub fn record_firing(
        &mut self,
        f: &Firing,
        ids: impl IntoIterator<Item = Option<TaskId>>,
    ) -> Vec<Event> {
        let mut ids = ids.into_iter();
        let mut events = Vec::with_capacity(f.ticks.len());
        let mut runs: Vec<ScheduleRun> = f
            .ticks
            .iter()
            .map(|t| {
                let mut run = t.run.clone();
                if t.task.is_some() {
                    run.task_id = ids.next().flatten();
                }
                let (queue, kind) = (&self.spec.queue, &self.spec.kind);
                events.push(events::schedule_tick(
                    &self.name,
                    queue,
                    kind,
                    &run,
                    t.task.is_some(),
                ));
                run
            })
            .collect();
        runs.reverse();
        runs.extend(std::mem::take(&mut self.runs));
        runs.truncate(KEPT_RUNS);
        self.runs = runs;
        if f.expect.is_some() {
            self.next_run_at = f.next_run_at;
        }
        events
    }
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
