//! The event log's records: one per task transition, written by the engine in the same
//! transaction as the change, so the log and the tasks never disagree. The functions here say
//! which event a transition makes and what it carries (what changed, never the payload), so
//! every engine records the same log.

use crate::lifecycle;
use crate::{Task, TaskId, TaskState, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use crate::event_types::{EventType, Subject};

/// One event. `cursor` only grows: an engine gives it when the event is stored, in the order
/// its transactions commit, so a reader that resumes after a cursor misses nothing retained.
/// What changed is kept as typed fields, which engines store as columns; [`Event::data`]
/// renders them.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub cursor: i64,
    pub event_type: EventType,
    pub at: Timestamp,
    pub queue: String,
    /// The task's kind.
    pub kind: String,
    /// The task; [`TaskId::NONE`] for a schedule's tick that enqueued nothing.
    pub task_id: TaskId,
    pub attempt: u32,
    /// The state the task went to (enqueued, lease expired, deleted).
    pub state: Option<TaskState>,
    /// The worker (claimed, lease expired).
    pub worker: Option<String>,
    /// The error (failed, dead).
    pub error: Option<String>,
    /// When something is due: the scheduled run (enqueued), the lease's end (claimed), the
    /// retry (failed); a schedule's tick.
    pub due: Option<Timestamp>,
    /// What a schedule or delivery event is about.
    pub subject: Option<Subject>,
}

impl Event {
    fn of(event_type: EventType, t: &Task, at: Timestamp) -> Event {
        Event {
            cursor: 0,
            event_type,
            at,
            queue: t.queue.clone(),
            kind: t.kind.clone(),
            task_id: t.id,
            attempt: t.attempt,
            state: None,
            worker: None,
            error: None,
            due: None,
            subject: None,
        }
    }

    /// What changed, as the API shows it: `state`, `worker`, `error`, and `due` named for what
    /// is due (`run_at`, `lease_expires_at`, `retry_at`).
    pub fn data(&self) -> Value {
        let mut m = serde_json::Map::new();
        if let Some(s) = self.state {
            m.insert("state".into(), json!(s));
        }
        if let Some(w) = &self.worker {
            m.insert("worker".into(), json!(w));
        }
        if let Some(e) = &self.error {
            let name = match self.event_type {
                EventType::ScheduleSkipped
                | EventType::WebhookDisabled
                | EventType::HookRejected => "reason",
                _ => "error",
            };
            m.insert(name.into(), json!(e));
        }
        if let Some(d) = self.due {
            let name = match self.event_type {
                EventType::Claimed => "lease_expires_at",
                EventType::Failed => "retry_at",
                EventType::KeyExpiring | EventType::KeyExpired => "expires_at",
                EventType::KeyRotated => "previous_secret_until",
                t if t.is_schedule() => "tick",
                _ => "run_at",
            };
            m.insert(name.into(), json!(d));
        }
        match &self.subject {
            Some(Subject::Schedule(name)) => {
                m.insert("schedule".into(), json!(name));
            }
            Some(Subject::Workflow(id)) => {
                m.insert("workflow".into(), json!(id));
            }
            Some(Subject::Delivery {
                webhook_id,
                delivery_id,
            }) => {
                m.insert("webhook_id".into(), json!(webhook_id));
                m.insert("delivery_id".into(), json!(delivery_id));
            }
            Some(Subject::Key(id)) => {
                m.insert("key_id".into(), json!(id));
            }
            Some(Subject::Hook { hook_id, delivery }) => {
                m.insert("hook_id".into(), json!(hook_id));
                if let Some(d) = delivery {
                    m.insert("delivery".into(), json!(d));
                }
            }
            None => {}
        }
        Value::Object(m)
    }
}

/// An event about API key `key_id` (`key.*`): the tenant's, in no queue; `due` is when it
/// expires (`key.expiring`, `key.expired`) or when its previous secret stops working
/// (`key.rotated`).
pub fn about_key(
    event_type: EventType,
    key_id: &str,
    at: Timestamp,
    due: Option<Timestamp>,
) -> Event {
    debug_assert!(event_type.is_key());
    Event {
        cursor: 0,
        event_type,
        at,
        queue: String::new(),
        kind: String::new(),
        task_id: TaskId::NONE,
        attempt: 0,
        state: None,
        worker: None,
        error: None,
        due,
        subject: Some(Subject::Key(key_id.to_owned())),
    }
}

fn last_error(t: &Task) -> Option<String> {
    t.errors.last().map(|e| e.message.clone())
}

/// A new task (not a duplicate answered instead): `task.waiting` when it waits for
/// dependencies.
pub fn enqueued(t: &Task) -> Event {
    let ty = if t.state == TaskState::Waiting {
        EventType::Waiting
    } else {
        EventType::Enqueued
    };
    let mut e = Event::of(ty, t, t.created_at);
    e.state = Some(t.state);
    e.due = (t.state == TaskState::Scheduled).then_some(t.run_at);
    e
}

/// A waiting task replaced by a later enqueue of its unique key (`t` as the replacement left
/// it): the state it waits in, and its new `run_at` when scheduled, as for an enqueue.
pub fn replaced(t: &Task) -> Event {
    let mut e = Event::of(EventType::Replaced, t, t.updated_at);
    e.state = Some(t.state);
    e.due = (t.state == TaskState::Scheduled).then_some(t.run_at);
    e
}

/// A waiting task whose dependencies all ended (`t` as the release left it): the state it
/// waits in now, and its `run_at` when scheduled.
pub fn released(t: &Task) -> Event {
    released_parts(
        t.id,
        (&t.queue, &t.kind),
        t.attempt,
        (t.state, t.run_at),
        t.updated_at,
    )
}

/// [`released`] from the fields it records, for an engine that did not read the whole task:
/// its id, queue and kind, attempt, the state it went to and its `run_at`, and when.
pub fn released_parts(
    id: TaskId,
    (queue, kind): (&str, &str),
    attempt: u32,
    (state, run_at): (TaskState, Timestamp),
    at: Timestamp,
) -> Event {
    Event {
        cursor: 0,
        event_type: EventType::Released,
        at,
        queue: queue.to_owned(),
        kind: kind.to_owned(),
        task_id: id,
        attempt,
        state: Some(state),
        worker: None,
        error: None,
        due: (state == TaskState::Scheduled).then_some(run_at),
        subject: None,
    }
}

/// A running task that spawned tasks and waits for them (`t` as the spawn left it): logged as
/// `task.waiting`, with the worker that held it.
pub fn spawned(t: &Task, worker: &str, at: Timestamp) -> Event {
    let mut e = Event::of(EventType::Waiting, t, at);
    e.state = Some(TaskState::Waiting);
    e.worker = Some(worker.to_owned());
    e
}

/// A workflow (or batch) `id` whose tasks all ended as `state` says, logged with its last
/// task `last` (the callback of a batch, else the last task submitted); `None` while running.
pub fn workflow_ended(
    id: TaskId,
    state: crate::workflow::WorkflowState,
    last: &Task,
    at: Timestamp,
) -> Option<Event> {
    use crate::workflow::WorkflowState as W;
    let event_type = match state {
        W::Running => return None,
        W::Succeeded => EventType::WorkflowSucceeded,
        W::Failed => EventType::WorkflowFailed,
        W::Cancelled => EventType::WorkflowCancelled,
    };
    let mut e = Event::of(event_type, last, at);
    e.state = Some(last.state);
    e.subject = Some(Subject::Workflow(id.to_string()));
    Some(e)
}

/// A claimed task, with its lease.
pub fn claimed(t: &Task, now: Timestamp) -> Event {
    let mut e = Event::of(EventType::Claimed, t, now);
    e.worker = t.lease.as_ref().map(|l| l.worker.clone());
    e.due = t.lease.as_ref().map(|l| l.expires_at);
    e
}

pub fn succeeded(t: &Task, now: Timestamp) -> Event {
    Event::of(EventType::Succeeded, t, now)
}

/// A failed attempt, as `fail_attempt` left the task: a retry, or dead.
pub fn failed(t: &Task, now: Timestamp) -> Event {
    let dead = t.state == TaskState::Dead;
    let ty = if dead {
        EventType::Dead
    } else {
        EventType::Failed
    };
    let mut e = Event::of(ty, t, now);
    e.error = last_error(t);
    e.due = (!dead).then_some(t.run_at);
    e
}

/// A lease that ran out (`t` as the expiry left it, `worker` the lease's holder): the expiry,
/// then the dead letters if no attempt is left.
pub fn lease_expired(t: &Task, worker: &str, now: Timestamp) -> Vec<Event> {
    let mut e = Event::of(EventType::LeaseExpired, t, now);
    e.worker = Some(worker.to_owned());
    e.state = Some(t.state);
    let mut out = vec![e];
    if t.state == TaskState::Dead {
        let mut d = Event::of(EventType::Dead, t, now);
        d.error = last_error(t);
        out.push(d);
    }
    out
}

/// An operator's change (`t` as it is after, or was before a delete); running a scheduled
/// task now makes none, as the scheduled run it brings forward would make none.
pub fn changed(event: lifecycle::Event, t: &Task, now: Timestamp) -> Option<Event> {
    let mut e = match event {
        lifecycle::Event::Cancel => Event::of(EventType::Cancelled, t, now),
        lifecycle::Event::Retry => Event::of(EventType::Retried, t, now),
        lifecycle::Event::Kill => {
            let mut e = Event::of(EventType::Dead, t, now);
            e.error = last_error(t);
            e
        }
        lifecycle::Event::Delete => {
            let mut e = Event::of(EventType::Deleted, t, now);
            e.state = Some(t.state);
            e
        }
        _ => return None,
    };
    e.at = now;
    Some(e)
}

/// A waiting task cancelled because a dependency ended dead or cancelled (`t` as the cancel
/// left it: the reason is its last error).
pub fn dependency_cancelled(t: &Task, now: Timestamp) -> Event {
    let mut e = Event::of(EventType::Cancelled, t, now);
    e.error = last_error(t);
    e
}

/// A schedule's tick as its firing recorded it: `schedule.fired` when it enqueued a task
/// (`run.task_id`), or `schedule.skipped` with the reason it enqueued none.
pub fn schedule_tick(
    name: &str,
    queue: &str,
    kind: &str,
    run: &crate::schedule::ScheduleRun,
    fired: bool,
) -> Event {
    let event_type = if fired {
        EventType::ScheduleFired
    } else {
        EventType::ScheduleSkipped
    };
    Event {
        cursor: 0,
        event_type,
        at: run.fired_at,
        queue: queue.to_owned(),
        kind: kind.to_owned(),
        task_id: run.task_id.unwrap_or(TaskId::NONE),
        attempt: 0,
        state: None,
        worker: None,
        error: run.skipped.clone(),
        due: Some(run.tick),
        subject: Some(Subject::Schedule(name.to_owned())),
    }
}

/// A delivery of `event` (a task's) that came to something worth an event of its own:
/// `delivery.dead` (its attempts spent; `error` the last one's) or `webhook.disabled` (`error`
/// the reason).
pub fn about_delivery(
    event_type: EventType,
    event: &Event,
    webhook_id: &str,
    delivery_id: i64,
    attempts: u32,
    error: Option<String>,
    now: Timestamp,
) -> Event {
    Event {
        cursor: 0,
        event_type,
        at: now,
        queue: event.queue.clone(),
        kind: event.kind.clone(),
        task_id: event.task_id,
        attempt: attempts,
        state: None,
        worker: None,
        error,
        due: None,
        subject: Some(Subject::Delivery {
            webhook_id: webhook_id.to_owned(),
            delivery_id,
        }),
    }
}

/// Which events a reader asks for: types (`task.*` patterns) and queues (`emails-*`), each
/// empty for all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    pub types: Vec<String>,
    pub queues: Vec<String>,
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        let any = |patterns: &[String], s: &str| {
            patterns.is_empty() || patterns.iter().any(|p| crate::auth::glob_match(p, s))
        };
        any(&self.types, e.event_type.as_str()) && any(&self.queues, &e.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_types_and_queues_by_pattern() {
        let e = Event {
            cursor: 1,
            event_type: EventType::Dead,
            at: Timestamp(0),
            queue: "emails-eu".into(),
            kind: "send".into(),
            task_id: TaskId::from_i64(1),
            attempt: 1,
            state: None,
            worker: None,
            error: Some("boom".into()),
            due: None,
            subject: None,
        };
        assert_eq!(e.data(), json!({"error": "boom"}));
        assert!(EventFilter::default().matches(&e));
        let f = |types: &[&str], queues: &[&str]| EventFilter {
            types: types.iter().map(|s| s.to_string()).collect(),
            queues: queues.iter().map(|s| s.to_string()).collect(),
        };
        assert!(f(&["task.*"], &["emails-*"]).matches(&e));
        assert!(f(&["task.claimed", "task.dead"], &[]).matches(&e));
        assert!(!f(&["task.claimed"], &[]).matches(&e));
        assert!(!f(&[], &["reports"]).matches(&e));
    }
}
