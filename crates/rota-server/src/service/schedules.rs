//! Schedules: define, list, pause, resume, trigger and delete them. A schedule's writer needs
//! `schedules:write` on `schedules/<name>` and `tasks:enqueue` on its queue (the scheduler
//! enqueues on its behalf); readers need `schedules:read`.

use super::*;
use rota_core::auth::validate_name;
use rota_core::schedule::{ScheduleRun, ScheduleSpec};
use rota_core::TaskState;
use rota_store::{Firing, ScheduleRecord, Tick};

/// A schedule as the API shows it: the stored record, and for one schedule read alone, the
/// current state of each run's task.
#[derive(Debug, Clone)]
pub struct ScheduleView {
    pub record: ScheduleRecord,
    /// Per run (same order): its task's state now; `None` when not looked up, or the task is
    /// gone (deleted by retention).
    pub outcomes: Vec<Option<TaskState>>,
}

pub(super) fn resource(name: &str) -> String {
    format!("schedules/{name}")
}

impl Service {
    fn check_schedule_name(&self, name: &str) -> ApiResult<()> {
        validate_name("schedule name", name).map_err(ApiError::bad_request)
    }

    /// Creates or replaces schedule `name`: the view and whether it was created.
    pub async fn put_schedule(
        &self,
        caller: &Caller,
        name: &str,
        spec: ScheduleSpec,
    ) -> ApiResult<(ScheduleView, bool)> {
        self.write_schedule(caller, name, spec, "schedule.put")
            .await
    }

    /// [`Service::put_schedule`], audited as `action`.
    async fn write_schedule(
        &self,
        caller: &Caller,
        name: &str,
        spec: ScheduleSpec,
        action: &str,
    ) -> ApiResult<(ScheduleView, bool)> {
        self.check_schedule_name(name)?;
        caller.require(actions::SCHEDULES_WRITE, &resource(name))?;
        caller.queue(&spec.queue, actions::TASKS_ENQUEUE)?;
        caller.require_kinds([spec.kind.as_str()])?;
        let timing = spec.timing().map_err(ApiError::invalid)?;
        let now = self.clock.now();
        let limits = self.limits();
        check_task("schedule", &spec.task(name, now), now, limits)?;
        limits
            .check_delay("jitter_ms", spec.jitter_ms)
            .map_err(ApiError::invalid)?;
        // A tick further apart than any time may lie ahead would have no date.
        if let Some(ms) = spec.every_ms {
            limits
                .check_delay("every_ms", ms)
                .map_err(ApiError::invalid)?;
        }
        let next_run_at = if spec.paused {
            None
        } else {
            timing.next_after(now)
        };
        let entry = audit::with(
            caller.audit(action, resource(name)),
            None,
            audit::json(&spec),
        );
        let rec = ScheduleRecord {
            tenant: caller.tenant.clone(),
            name: name.to_owned(),
            spec,
            next_run_at,
            runs: vec![],
            created_at: now,
            updated_at: now,
        };
        let (record, created) = audit::audited(entry, self.store.put_schedule(rec)).await?;
        self.schedules_changed.notify_one();
        Ok((
            ScheduleView {
                outcomes: vec![None; record.runs.len()],
                record,
            },
            created,
        ))
    }

    /// The schedules the caller may read, by name.
    pub async fn schedules(&self, caller: &Caller) -> ApiResult<Vec<ScheduleView>> {
        let all = self.store.schedules(&caller.tenant, None).await?;
        Ok(all
            .into_iter()
            .filter(|r| caller.can(actions::SCHEDULES_READ, &resource(&r.name)))
            .map(|record| ScheduleView {
                outcomes: vec![None; record.runs.len()],
                record,
            })
            .collect())
    }

    /// One schedule, with its runs' outcomes.
    pub async fn schedule(&self, caller: &Caller, name: &str) -> ApiResult<ScheduleView> {
        self.check_schedule_name(name)?;
        caller.require(actions::SCHEDULES_READ, &resource(name))?;
        let record = self.one_schedule(caller, name).await?;
        let mut outcomes = Vec::with_capacity(record.runs.len());
        for run in &record.runs {
            outcomes.push(match run.task_id {
                Some(id) => self
                    .store
                    .get(&caller.tenant, id)
                    .await
                    .ok()
                    .map(|t| t.state),
                None => None,
            });
        }
        Ok(ScheduleView { record, outcomes })
    }

    async fn one_schedule(&self, caller: &Caller, name: &str) -> ApiResult<ScheduleRecord> {
        let mut found = self.store.schedules(&caller.tenant, Some(name)).await?;
        Ok(found.remove(0))
    }

    pub async fn delete_schedule(&self, caller: &Caller, name: &str) -> ApiResult<()> {
        self.check_schedule_name(name)?;
        caller.require(actions::SCHEDULES_WRITE, &resource(name))?;
        let entry = caller.audit("schedule.delete", resource(name));
        audit::audited(entry, self.store.delete_schedule(&caller.tenant, name)).await?;
        self.schedules_changed.notify_one();
        Ok(())
    }

    /// Pauses (no ticks fire; `next_run_at` is cleared) or resumes (the next tick after now).
    pub async fn pause_schedule(
        &self,
        caller: &Caller,
        name: &str,
        paused: bool,
    ) -> ApiResult<ScheduleView> {
        self.check_schedule_name(name)?;
        caller.require(actions::SCHEDULES_WRITE, &resource(name))?;
        let mut spec = self.one_schedule(caller, name).await?.spec;
        spec.paused = paused;
        let action = if paused {
            "schedule.pause"
        } else {
            "schedule.resume"
        };
        Ok(self.write_schedule(caller, name, spec, action).await?.0)
    }

    /// Enqueues the schedule's task now, outside its ticks (`next_run_at` stays).
    pub async fn trigger_schedule(&self, caller: &Caller, name: &str) -> ApiResult<ScheduleView> {
        self.check_schedule_name(name)?;
        caller.require(actions::SCHEDULES_WRITE, &resource(name))?;
        let rec = self.one_schedule(caller, name).await?;
        caller.queue(&rec.spec.queue, actions::TASKS_ENQUEUE)?;
        let now = self.clock.now();
        let mut task = rec.spec.task(name, now);
        task.run_at = None;
        task.unique_key = Some(format!("schedule:{name}:manual:{}", now.0));
        let firing = Firing {
            tenant: caller.tenant.clone(),
            name: name.to_owned(),
            expect: None,
            next_run_at: None,
            ticks: vec![Tick {
                tick: now,
                task: Some(task),
                run: ScheduleRun {
                    tick: now,
                    fired_at: now,
                    task_id: None,
                    trigger: Some("manual".into()),
                    skipped: None,
                },
            }],
        };
        let entry = caller.audit("schedule.trigger", resource(name));
        let record = audit::audited(entry, self.store.fire_schedule(firing))
            .await?
            .expect("a manual trigger expects nothing");
        Ok(ScheduleView {
            outcomes: vec![None; record.runs.len()],
            record,
        })
    }
}
