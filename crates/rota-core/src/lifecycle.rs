//! The task state machine: which transitions exist and where a failure leads.
//!
//! ```text
//! scheduled --(run_at reached)--> ready --(claim)--> running --(complete)--> succeeded
//!     ^                                                 |
//!     +----(fail / lease expired, attempts left)--------+--(attempts spent or dead)--> dead
//! any non-final state --(cancel)--> cancelled;  dead | cancelled --(retry)--> ready
//! scheduled --(run now)--> ready;  scheduled | ready | waiting --(kill)--> dead
//! waiting --(dependencies succeeded)--> ready (scheduled before its run_at)
//! running --(spawn: it adds tasks and waits for them)--> waiting
//! any state but running --(delete)--> gone
//! ```
//! Engines call these rules instead of re-deciding them, so every engine agrees.

use crate::{AttemptError, Backoff, Lease, NewTask, Task, TaskId, TaskState, Timestamp};

/// Something that happens to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Promote,
    Claim,
    Heartbeat,
    Complete,
    /// A failure reported by the worker, or a lease that ran out.
    Fail,
    Cancel,
    Retry,
    /// An operator runs a scheduled task (or a retry waiting for its backoff) now.
    RunNow,
    /// An operator sends a waiting task to the dead letters without running it.
    Kill,
    /// An operator removes a task that is not running.
    Delete,
    /// A waiting task's last dependency ended (docs/workflows.md).
    Release,
    /// A running task adds tasks and waits for them; it runs again once they end.
    Spawn,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} task cannot {event}")]
pub struct InvalidTransition {
    pub from: TaskState,
    pub event: &'static str,
}

fn event_name(e: Event) -> &'static str {
    match e {
        Event::Promote => "be promoted",
        Event::Claim => "be claimed",
        Event::Heartbeat => "heartbeat",
        Event::Complete => "complete",
        Event::Fail => "fail",
        Event::Cancel => "be cancelled",
        Event::Retry => "be retried (only dead or cancelled tasks can)",
        Event::RunNow => "be run now (only scheduled tasks wait to run)",
        Event::Kill => "be killed (only scheduled or ready tasks can; cancel a running one)",
        Event::Delete => "be deleted while it runs (cancel it first)",
        Event::Release => "be released (only waiting tasks wait for dependencies)",
        Event::Spawn => "spawn tasks (only a running task can)",
    }
}

/// Checks that `event` may happen in state `from`. For `Fail` the target depends on attempts
/// (see [`after_failure`]); this returns `Scheduled` as the nominal target. `Delete` removes the
/// task; its nominal target is the state it had.
pub fn transition(from: TaskState, event: Event) -> Result<TaskState, InvalidTransition> {
    use TaskState::*;
    let to = match (from, event) {
        (Scheduled, Event::Promote) => Ready,
        (Ready, Event::Claim) => Running,
        (Running, Event::Heartbeat) => Running,
        (Running, Event::Complete) => Succeeded,
        (Running, Event::Fail) => Scheduled,
        (Scheduled | Ready | Running | Waiting, Event::Cancel) => Cancelled,
        (Waiting, Event::Release) => Ready,
        (Running, Event::Spawn) => Waiting,
        (Dead | Cancelled, Event::Retry) => Ready,
        (Scheduled, Event::RunNow) => Ready,
        (Scheduled | Ready | Waiting, Event::Kill) => Dead,
        (s, Event::Delete) if s != Running => s,
        _ => {
            return Err(InvalidTransition {
                from,
                event: event_name(event),
            })
        }
    };
    Ok(to)
}

/// Why a lease token no longer proves a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseLoss {
    /// The token was the lease, but its time ran out; the task returns to the queue.
    Expired(Timestamp),
    /// The task is running under another lease, or waiting to be claimed again.
    Replaced,
    /// The task already ended in this (final) state.
    Final(TaskState),
}

impl std::fmt::Display for LeaseLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseLoss::Expired(at) => write!(
                f,
                "the lease expired at {at}; the task goes back to the queue, so stop working on it"
            ),
            LeaseLoss::Replaced => f.write_str(
                "the lease is no longer held by this token (it expired and the task was claimed again)",
            ),
            LeaseLoss::Final(state) => {
                write!(f, "the task is already {state}, a final state; nothing to do")
            }
        }
    }
}

/// The one rule heartbeat, complete and fail apply: `token` proves the lease only while the
/// task runs under it and before it expires. An expired lease is refused at once, not only
/// after maintenance has returned the task.
pub fn check_lease(
    state: TaskState,
    lease: Option<&Lease>,
    token: &str,
    now: Timestamp,
) -> Result<(), LeaseLoss> {
    if state.is_final() {
        return Err(LeaseLoss::Final(state));
    }
    match lease {
        Some(l) if state == TaskState::Running && l.token == token => {
            if l.expires_at <= now {
                Err(LeaseLoss::Expired(l.expires_at))
            } else {
                Ok(())
            }
        }
        _ => Err(LeaseLoss::Replaced),
    }
}

/// The state a task waiting for `run_at` is in at `now`.
pub fn waiting_state(run_at: Timestamp, now: Timestamp) -> TaskState {
    if run_at > now {
        TaskState::Scheduled
    } else {
        TaskState::Ready
    }
}

/// The task an enqueue stores: `new` in `queue`, not yet attempted, waiting for its `run_at`
/// (now when it gives none).
pub fn enqueued(id: TaskId, queue: &str, new: &NewTask, max_attempts: u32, now: Timestamp) -> Task {
    let run_at = new.run_at.unwrap_or(now);
    Task {
        id,
        queue: queue.to_owned(),
        kind: new.kind.clone(),
        payload: new.payload.clone(),
        priority: new.priority,
        state: waiting_state(run_at, now),
        attempt: 0,
        max_attempts,
        run_at,
        created_at: now,
        updated_at: now,
        finished_at: None,
        started_at: None,
        lease: None,
        progress: None,
        result: None,
        errors: Vec::new(),
        unique_key: new.unique_key.clone(),
        tags: new.tags.clone(),
        callback_url: new.callback_url.clone(),
        group: new.group.clone(),
        depends_on: new.depends_on.clone(),
        on_dependency_failure: new.on_dependency_failure,
        workflow: new.workflow.clone(),
        traceparent: new.traceparent.clone(),
        tracestate: new.tracestate.clone(),
    }
}

/// The task a debounce leaves (`on_duplicate: replace`): `holder`, still waiting to run (see
/// [`crate::replaceable`]), described by `new` instead: its kind, payload, priority, tags,
/// callback URL, trace context and attempts (`max_attempts`, the queue's when `new` gives none), and its
/// `run_at`, so a delay starts again from this enqueue. The holder keeps its id, creation time
/// and unique key (what clients and the key refer to), and what its runs recorded so far
/// (attempt count and errors, when it waits for a retry). Its group stays unless `new` names
/// one: a producer that debounces without naming a group does not move the task out of its
/// group's turn and limits.
pub fn replaced(holder: &Task, new: &NewTask, max_attempts: u32, now: Timestamp) -> Task {
    let run_at = new.run_at.unwrap_or(now);
    Task {
        kind: new.kind.clone(),
        payload: new.payload.clone(),
        priority: new.priority,
        state: waiting_state(run_at, now),
        max_attempts,
        run_at,
        updated_at: now,
        tags: new.tags.clone(),
        callback_url: new.callback_url.clone(),
        group: new.group.clone().or_else(|| holder.group.clone()),
        traceparent: new.traceparent.clone(),
        tracestate: new.tracestate.clone(),
        ..holder.clone()
    }
}

/// What a failed attempt asks for.
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    /// The attempt that failed (1-based; a task is on attempt 1 after its first claim).
    pub attempt: u32,
    pub max_attempts: u32,
    /// A delay the worker asked for instead of the backoff.
    pub retry_in_ms: Option<u64>,
    /// The worker says retrying is pointless.
    pub dead: bool,
    /// The worker says the failure was temporary (e.g. a dependency was down): the attempt does
    /// not count toward `max_attempts`, so this failure alone never makes the task dead.
    pub temporary: bool,
}

/// The task's attempt counter after a failure: a temporary failure gives its attempt back.
pub fn attempts_after_failure(f: &Failure) -> u32 {
    if f.temporary {
        f.attempt.saturating_sub(1)
    } else {
        f.attempt
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Run again at `run_at` (in state `scheduled`, or `ready` if that is now).
    Retry {
        run_at: Timestamp,
        state: TaskState,
    },
    Dead,
}

/// Where a failure leads: `dead` when asked or when the attempts are spent, else a retry after
/// the worker's delay or the queue's backoff (with `jitter_unit` in `[0, 1)` as the jitter).
pub fn after_failure(
    f: Failure,
    backoff: &Backoff,
    now: Timestamp,
    jitter_unit: f64,
) -> FailureOutcome {
    if f.dead || (!f.temporary && f.attempt >= f.max_attempts) {
        return FailureOutcome::Dead;
    }
    let delay = f
        .retry_in_ms
        .unwrap_or_else(|| backoff.delay_ms(f.attempt, jitter_unit));
    let run_at = now.plus_ms(i64::try_from(delay).unwrap_or(i64::MAX));
    FailureOutcome::Retry {
        run_at,
        state: waiting_state(run_at, now),
    }
}

/// The error recorded when a lease runs out before its worker finished.
pub fn expired_lease_message(worker: &str) -> String {
    format!("lease expired: worker `{worker}` stopped heartbeating before the lease ended")
}

/// The error a killed task records: who killed it and why, after its last attempt.
pub fn kill(task: &Task, reason: String, now: Timestamp) -> Task {
    let mut t = task.clone();
    t.errors.push(AttemptError {
        attempt: t.attempt,
        message: reason,
        at: now,
    });
    t.state = TaskState::Dead;
    t.finished_at = Some(now);
    t.updated_at = now;
    t
}

/// `task` (running) after its attempt failed with `message`: the error appended to its history,
/// the attempt counted (or given back when `temporary`), and the task waiting for its retry or
/// dead, without a lease. Engines store exactly this.
pub fn fail_attempt(
    task: &Task,
    message: String,
    how: (Option<u64>, bool, bool),
    backoff: &Backoff,
    now: Timestamp,
    jitter_unit: f64,
) -> Task {
    let (retry_in_ms, dead, temporary) = how;
    let mut t = task.clone();
    let failure = Failure {
        attempt: t.attempt,
        max_attempts: t.max_attempts,
        retry_in_ms,
        dead,
        temporary,
    };
    t.errors.push(AttemptError {
        attempt: t.attempt,
        message,
        at: now,
    });
    t.attempt = attempts_after_failure(&failure);
    match after_failure(failure, backoff, now, jitter_unit) {
        FailureOutcome::Dead => {
            t.state = TaskState::Dead;
            t.finished_at = Some(now);
        }
        FailureOutcome::Retry { run_at, state } => {
            t.state = state;
            t.run_at = run_at;
        }
    }
    t.updated_at = now;
    t.lease = None;
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, ManualClock};
    use TaskState::*;

    #[test]
    fn happy_path() {
        assert_eq!(transition(Scheduled, Event::Promote), Ok(Ready));
        assert_eq!(transition(Ready, Event::Claim), Ok(Running));
        assert_eq!(transition(Running, Event::Heartbeat), Ok(Running));
        assert_eq!(transition(Running, Event::Complete), Ok(Succeeded));
    }

    #[test]
    fn final_states_only_leave_by_retry() {
        for s in [Succeeded, Dead, Cancelled] {
            for e in [
                Event::Promote,
                Event::Claim,
                Event::Heartbeat,
                Event::Complete,
                Event::Fail,
                Event::Cancel,
            ] {
                assert!(transition(s, e).is_err(), "{s} {e:?}");
            }
        }
        assert_eq!(transition(Dead, Event::Retry), Ok(Ready));
        assert_eq!(transition(Cancelled, Event::Retry), Ok(Ready));
        assert!(transition(Succeeded, Event::Retry).is_err());
    }

    fn new_task(payload: &str, group: Option<&str>) -> NewTask {
        NewTask {
            kind: "k".into(),
            payload: serde_json::value::RawValue::from_string(payload.into()).unwrap(),
            priority: 0,
            run_at: None,
            max_attempts: None,
            unique_key: Some("key".into()),
            on_duplicate: crate::OnDuplicate::Replace,
            tags: vec![],
            callback_url: None,
            group: group.map(Into::into),
            depends_on: Vec::new(),
            on_dependency_failure: Default::default(),
            workflow: None,
            traceparent: None,
            tracestate: None,
        }
    }

    #[test]
    fn a_replacement_takes_the_new_fields_and_keeps_identity_history_and_group() {
        let t0 = Timestamp(1_000_000);
        let mut holder = enqueued(
            TaskId::from_i64(7),
            "q",
            &new_task("1", Some("acme")),
            25,
            t0,
        );
        holder.attempt = 1;
        holder.errors.push(AttemptError {
            attempt: 1,
            message: "boom".into(),
            at: t0,
        });
        let now = t0.plus_ms(500);
        let mut new = new_task("2", None);
        new.run_at = Some(now.plus_ms(10_000));
        new.priority = 4;
        let r = replaced(&holder, &new, 3, now);
        assert_eq!((r.id, r.created_at, r.updated_at), (holder.id, t0, now));
        assert_eq!((r.payload.get(), r.priority, r.max_attempts), ("2", 4, 3));
        assert_eq!((r.state, r.run_at), (Scheduled, now.plus_ms(10_000)));
        assert_eq!(
            (r.attempt, r.errors.len()),
            (1, 1),
            "its runs' history stays"
        );
        assert_eq!(
            r.group.as_deref(),
            Some("acme"),
            "no group named: the holder's"
        );
        let named = replaced(&holder, &new_task("3", Some("globex")), 3, now);
        assert_eq!(named.group.as_deref(), Some("globex"));
        assert_eq!((named.state, named.run_at), (Ready, now), "no run_at: now");
        assert!(crate::replaceable(Scheduled) && crate::replaceable(Ready));
        for s in [Running, Succeeded, Dead, Cancelled] {
            assert!(!crate::replaceable(s), "{s}");
        }
        let modes: Vec<crate::OnDuplicate> =
            serde_json::from_str(r#"["keep", "replace"]"#).unwrap();
        assert_eq!(
            modes,
            [crate::OnDuplicate::Keep, crate::OnDuplicate::Replace]
        );
        assert_eq!(crate::OnDuplicate::default(), crate::OnDuplicate::Keep);
    }

    #[test]
    fn only_running_tasks_complete_fail_or_heartbeat() {
        for s in [Scheduled, Ready] {
            assert!(transition(s, Event::Complete).is_err());
            assert!(transition(s, Event::Fail).is_err());
            assert!(transition(s, Event::Heartbeat).is_err());
            assert_eq!(transition(s, Event::Cancel), Ok(Cancelled));
        }
        assert!(transition(Running, Event::Claim).is_err());
        let e = transition(Succeeded, Event::Cancel).unwrap_err();
        assert_eq!(e.to_string(), "a succeeded task cannot be cancelled");
    }

    #[test]
    fn operators_run_now_kill_and_delete_only_tasks_that_do_not_run() {
        assert_eq!(transition(Scheduled, Event::RunNow), Ok(Ready));
        for s in [Ready, Running, Succeeded, Dead, Cancelled] {
            assert!(transition(s, Event::RunNow).is_err(), "{s}");
        }
        assert_eq!(transition(Scheduled, Event::Kill), Ok(Dead));
        assert_eq!(transition(Ready, Event::Kill), Ok(Dead));
        for s in [Running, Succeeded, Dead, Cancelled] {
            assert!(transition(s, Event::Kill).is_err(), "{s}");
        }
        for s in [Scheduled, Ready, Succeeded, Dead, Cancelled] {
            assert_eq!(transition(s, Event::Delete), Ok(s));
        }
        let e = transition(Running, Event::Delete).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a running task cannot be deleted while it runs (cancel it first)"
        );
    }

    #[test]
    fn failure_uses_backoff_from_the_manual_clock() {
        let clock = ManualClock::new(Timestamp(1_000_000));
        let b = Backoff {
            base_ms: 100,
            max_ms: 1_000,
        };
        let f = |attempt| Failure {
            attempt,
            max_attempts: 5,
            retry_in_ms: None,
            dead: false,
            temporary: false,
        };
        let now = clock.now();
        assert_eq!(
            after_failure(f(1), &b, now, 0.5),
            FailureOutcome::Retry {
                run_at: Timestamp(1_000_050),
                state: Scheduled
            }
        );
        // Attempt 4: ceiling 800 ms; the whole range is reachable.
        assert_eq!(
            after_failure(f(4), &b, now, 0.999_999),
            FailureOutcome::Retry {
                run_at: Timestamp(1_000_800),
                state: Scheduled
            }
        );
        // A zero delay is ready at once.
        assert_eq!(
            after_failure(f(4), &b, now, 0.0),
            FailureOutcome::Retry {
                run_at: now,
                state: Ready
            }
        );
        clock.advance_ms(10);
        assert_eq!(
            after_failure(f(5), &b, clock.now(), 0.5),
            FailureOutcome::Dead
        );
    }

    #[test]
    fn worker_overrides_delay_or_kills() {
        let b = Backoff::default();
        let now = Timestamp(0);
        let mut f = Failure {
            attempt: 1,
            max_attempts: 25,
            retry_in_ms: Some(42),
            dead: false,
            temporary: false,
        };
        assert_eq!(
            after_failure(f, &b, now, 0.9),
            FailureOutcome::Retry {
                run_at: Timestamp(42),
                state: Scheduled
            }
        );
        f.dead = true;
        assert_eq!(after_failure(f, &b, now, 0.9), FailureOutcome::Dead);
    }

    #[test]
    fn temporary_failures_do_not_spend_attempts() {
        let b = Backoff::default();
        let last = Failure {
            attempt: 3,
            max_attempts: 3,
            retry_in_ms: Some(1_000),
            dead: false,
            temporary: true,
        };
        assert!(matches!(
            after_failure(last, &b, Timestamp(0), 0.5),
            FailureOutcome::Retry { .. }
        ));
        assert_eq!(attempts_after_failure(&last), 2);
        let hard = Failure {
            temporary: false,
            ..last
        };
        assert_eq!(
            after_failure(hard, &b, Timestamp(0), 0.5),
            FailureOutcome::Dead
        );
        assert_eq!(attempts_after_failure(&hard), 3);
        let asked_dead = Failure { dead: true, ..last };
        assert_eq!(
            after_failure(asked_dead, &b, Timestamp(0), 0.5),
            FailureOutcome::Dead
        );
    }

    #[test]
    fn a_lease_holds_only_for_its_token_and_until_it_expires() {
        let now = Timestamp(10_000);
        let lease = Lease {
            worker: "w".into(),
            token: "t1".into(),
            expires_at: Timestamp(10_500),
        };
        assert_eq!(check_lease(Running, Some(&lease), "t1", now), Ok(()));
        assert_eq!(
            check_lease(Running, Some(&lease), "t2", now),
            Err(LeaseLoss::Replaced)
        );
        assert_eq!(
            check_lease(Running, Some(&lease), "t1", Timestamp(10_500)),
            Err(LeaseLoss::Expired(Timestamp(10_500)))
        );
        assert_eq!(
            check_lease(Succeeded, None, "t1", now),
            Err(LeaseLoss::Final(Succeeded))
        );
        assert_eq!(
            check_lease(Ready, None, "t1", now),
            Err(LeaseLoss::Replaced)
        );
    }

    #[test]
    fn waiting_state_splits_on_run_at() {
        assert_eq!(waiting_state(Timestamp(5), Timestamp(4)), Scheduled);
        assert_eq!(waiting_state(Timestamp(5), Timestamp(5)), Ready);
    }
}
