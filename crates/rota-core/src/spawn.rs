//! Fan-out at run time (docs/workflows.md, "Spawning tasks from a running task"): a running
//! task adds tasks and waits for them. It leaves `running` for `waiting` with their ids added
//! to its `depends_on`, its lease given up and its attempt given back; once they end it is
//! released and runs again, and that claim carries their results. Its own dependents wait all
//! the while, since it has not ended.

use crate::{OnDependencyFailure, Task, TaskId, TaskState, Timestamp};

/// Most tasks one spawn may add (and a task's `depends_on` may never pass
/// [`crate::workflow::MAX_WORKFLOW_TASKS`] in all).
pub const MAX_SPAWN: usize = crate::workflow::MAX_WORKFLOW_TASKS;

/// `task` (running) once it spawned `children`: waiting for them under `policy`, its lease
/// ended, its attempt given back (the run that continues after them is the same attempt).
pub fn spawned(
    task: &Task,
    children: &[TaskId],
    policy: OnDependencyFailure,
    now: Timestamp,
) -> Task {
    let mut t = task.clone();
    t.state = TaskState::Waiting;
    t.lease = None;
    t.attempt = t.attempt.saturating_sub(1);
    t.depends_on.extend_from_slice(children);
    t.on_dependency_failure = policy;
    t.updated_at = now;
    t
}

/// Whether `task` may wait for `more` tasks besides those it names already.
pub fn check_room(task: &Task, more: usize) -> Result<(), String> {
    let max = crate::workflow::MAX_WORKFLOW_TASKS;
    if task.depends_on.len() + more > max {
        return Err(format!(
            "task {} already waits for {} tasks; with {more} more it would pass {max}",
            task.id,
            task.depends_on.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{lifecycle, Lease, NewTask};

    #[test]
    fn a_spawn_waits_gives_the_attempt_back_and_keeps_the_old_dependencies() {
        let now = Timestamp(1_000);
        let new = NewTask {
            kind: "k".into(),
            payload: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
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
        let mut t = lifecycle::enqueued(TaskId(7 << 20), "q", &new, 3, now);
        t.state = TaskState::Running;
        t.attempt = 2;
        t.depends_on = vec![TaskId(1 << 20)];
        t.lease = Some(Lease {
            worker: "w".into(),
            token: "tok".into(),
            expires_at: Timestamp(9_000),
        });
        let kids = [TaskId(8 << 20), TaskId(9 << 20)];
        let s = spawned(&t, &kids, OnDependencyFailure::Run, Timestamp(2_000));
        assert_eq!(s.state, TaskState::Waiting);
        assert_eq!(s.attempt, 1);
        assert!(s.lease.is_none());
        assert_eq!(s.depends_on, vec![TaskId(1 << 20), kids[0], kids[1]]);
        assert_eq!(s.on_dependency_failure, OnDependencyFailure::Run);
        assert_eq!(
            lifecycle::transition(TaskState::Running, lifecycle::Event::Spawn),
            Ok(TaskState::Waiting)
        );
        assert!(lifecycle::transition(TaskState::Ready, lifecycle::Event::Spawn).is_err());
        assert!(check_room(&s, crate::workflow::MAX_WORKFLOW_TASKS - 3).is_ok());
        assert!(check_room(&s, crate::workflow::MAX_WORKFLOW_TASKS - 2).is_err());
    }
}
