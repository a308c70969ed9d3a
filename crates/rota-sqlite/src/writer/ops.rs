//! The ops a shard's writer takes from its channel: what each asks, which tenant's lane it
//! waits in, whether its answer waits for an fsync, how many rows it may touch, how it is
//! applied inside a batch's transaction, and how it is answered.

use super::ctx::Ctx;
use super::{maintenance, Batch, Reply};
use super::{Adopt, OutboxRow, Part, RegisterResult, WorkflowEnd, WorkflowRow};
use rota_core::audit::AuditEntry;
use rota_core::events::Event;
use rota_core::flow::{GroupInfo, GroupSettings};
use rota_core::webhooks::{Attempt, Delivery, Webhook};
use rota_core::{NewTask, QueueKey, QueuePatch, Task, TaskId, TaskState, Timestamp};
use rota_store::{
    AuthChange, Change, ClaimRequest, Claimed, Completion, Enqueued, FailureReport, Firing,
    Heartbeat, MaintenanceReport, ScheduleRecord, StoreError, StoreResult,
};
use std::collections::{HashMap, HashSet};

/// Dependencies of an enqueue's tasks that are in other shards: those still live (their shards
/// are told once the enqueue commits) and those that already ended. Any other is in this
/// shard (or gone).
#[derive(Debug, Default)]
pub struct Remote {
    pub live: HashSet<TaskId>,
    pub ended: HashMap<TaskId, TaskState>,
}

pub enum Op {
    Enqueue(QueueKey, Vec<NewTask>, Reply<StoreResult<Vec<Enqueued>>>),
    /// An enqueue of tasks with dependencies.
    EnqueueWaiting(
        QueueKey,
        Vec<NewTask>,
        Box<Remote>,
        Reply<StoreResult<Vec<Enqueued>>>,
    ),
    /// (dependency, dependent in another shard) pairs.
    Register(Vec<(TaskId, TaskId)>, Reply<RegisterResult>),
    /// (dependent, dependency, how it ended) for dependents in this shard.
    Endings(Vec<(TaskId, TaskId, TaskState)>, Reply<StoreResult<()>>),
    Outbox(usize, Reply<StoreResult<Vec<OutboxRow>>>),
    DropOutbox(Vec<i64>, Reply<StoreResult<()>>),
    WorkflowPart(Box<Part>, Reply<StoreResult<Vec<Task>>>),
    /// A task comes to wait for tasks added after it (a spawn, or members added to a batch).
    Adopt(Box<Adopt>, Reply<StoreResult<Task>>),
    CommitWorkflow(WorkflowRow, Reply<StoreResult<()>>),
    /// Releases the holds of a committed workflow's tasks in this shard.
    ReleaseHolds(TaskId, Reply<StoreResult<()>>),
    /// Deletes this shard's part of a workflow that was never committed.
    DropPart(TaskId, Reply<StoreResult<u64>>),
    /// A workflow found ended: its record marked, its event logged.
    EndWorkflow(Box<WorkflowEnd>, Reply<StoreResult<()>>),
    /// Deletes workflow records none of whose tasks is kept (checked in every shard first).
    DropRecords(Vec<TaskId>, Reply<StoreResult<u64>>),
    Claim(QueueKey, ClaimRequest, Reply<StoreResult<Claimed>>),
    Heartbeat(String, Heartbeat, Reply<StoreResult<Task>>),
    Complete(String, Vec<Completion>, Reply<Vec<StoreResult<Task>>>),
    Fail(String, Vec<FailureReport>, Reply<Vec<StoreResult<Task>>>),
    Change(String, TaskId, Change, Reply<StoreResult<Task>>),
    UpdateQueue(QueueKey, QueuePatch, Reply<StoreResult<()>>),
    PutGroup(
        QueueKey,
        String,
        GroupSettings,
        Reply<StoreResult<GroupInfo>>,
    ),
    Purge(QueueKey, TaskState, Reply<StoreResult<u64>>),
    Maintenance(Reply<StoreResult<MaintenanceReport>>),
    Auth(AuthChange, Reply<StoreResult<()>>),
    PutSchedule(ScheduleRecord, Reply<StoreResult<(ScheduleRecord, bool)>>),
    DeleteSchedule(String, String, Reply<StoreResult<()>>),
    Fire(Firing, Reply<StoreResult<Option<ScheduleRecord>>>),
    PutWebhook(Webhook, Reply<StoreResult<()>>),
    DeleteWebhook(String, String, Reply<StoreResult<()>>),
    /// Ids, now, the attempt's deadline.
    TakeDeliveries(
        Vec<i64>,
        Timestamp,
        Timestamp,
        Reply<StoreResult<Vec<(Delivery, Webhook)>>>,
    ),
    /// Answers each webhook the attempts changed, and whether they disabled it.
    RecordAttempts(
        Vec<(i64, Attempt)>,
        Timestamp,
        Reply<StoreResult<Vec<(Webhook, bool)>>>,
    ),
    RetryDelivery(String, String, i64, Reply<StoreResult<Delivery>>),
    /// Another shard's attempts changed this webhook's health: its copy here follows.
    NoteWebhookHealth(Webhook, Reply<StoreResult<()>>),
    /// A write that changes nothing visible: tells readiness whether commits succeed.
    Probe(Reply<StoreResult<()>>),
    /// Events that are no task's transition (see `EventLog::log_events`).
    LogEvents(String, Vec<Event>, Reply<StoreResult<()>>),
    /// An administrative op and its audit entry, written in its transaction if it succeeds
    /// (see `rota_store::audit`).
    Audited(Box<Op>, Box<AuditEntry>),
    /// An audit entry for a change that is no write of its own (a backup).
    Audit(Box<AuditEntry>, Reply<StoreResult<()>>),
}

/// What an applied op will answer once its batch commits.
pub(super) enum Answer {
    Enqueued(StoreResult<Vec<Enqueued>>),
    Claimed(StoreResult<Claimed>),
    Task(Box<StoreResult<Task>>),
    Each(Vec<StoreResult<Task>>),
    Unit(StoreResult<()>),
    Count(StoreResult<u64>),
    Report(StoreResult<MaintenanceReport>),
    Schedule(StoreResult<(ScheduleRecord, bool)>),
    Fired(StoreResult<Option<ScheduleRecord>>),
    Taken(StoreResult<Vec<(Delivery, Webhook)>>),
    Webhooks(StoreResult<Vec<(Webhook, bool)>>),
    Delivery(Box<StoreResult<Delivery>>),
    Group(Box<StoreResult<GroupInfo>>),
    Registered(RegisterResult),
    Outbox(StoreResult<Vec<OutboxRow>>),
    Tasks(StoreResult<Vec<Task>>),
}

impl Answer {
    /// Whether the op did what it asked (an administrative op's audit entry is written only
    /// then).
    fn succeeded(&self) -> bool {
        match self {
            Answer::Enqueued(r) => r.is_ok(),
            Answer::Claimed(r) => r.is_ok(),
            Answer::Task(r) => r.is_ok(),
            Answer::Each(rs) => rs.iter().any(Result::is_ok),
            Answer::Unit(r) => r.is_ok(),
            Answer::Count(r) => r.is_ok(),
            Answer::Report(r) => r.is_ok(),
            Answer::Schedule(r) => r.is_ok(),
            Answer::Fired(r) => r.is_ok(),
            Answer::Taken(r) => r.is_ok(),
            Answer::Webhooks(r) => r.is_ok(),
            Answer::Delivery(r) => r.is_ok(),
            Answer::Group(r) => r.is_ok(),
            Answer::Registered(_) => true,
            Answer::Outbox(r) => r.is_ok(),
            Answer::Tasks(r) => r.is_ok(),
        }
    }
}

impl Op {
    /// The lane the op waits in: its tenant's, or the server's own for maintenance and probes.
    pub(super) fn lane(&self) -> Option<&str> {
        match self {
            Op::Audited(op, _) => op.lane(),
            Op::Audit(e, _) => Some(&e.tenant),
            Op::Enqueue(q, ..)
            | Op::EnqueueWaiting(q, ..)
            | Op::Claim(q, ..)
            | Op::UpdateQueue(q, ..)
            | Op::PutGroup(q, ..)
            | Op::Purge(q, ..) => Some(&q.tenant),
            Op::Heartbeat(t, ..) | Op::Complete(t, ..) | Op::Fail(t, ..) | Op::Change(t, ..) => {
                Some(t)
            }
            Op::PutSchedule(s, _) => Some(&s.tenant),
            Op::DeleteSchedule(t, ..) => Some(t),
            Op::Fire(f, _) => Some(&f.tenant),
            Op::PutWebhook(w, _) | Op::NoteWebhookHealth(w, _) => Some(&w.tenant),
            Op::DeleteWebhook(t, ..) | Op::RetryDelivery(t, ..) | Op::LogEvents(t, ..) => Some(t),
            Op::WorkflowPart(p, _) => Some(&p.tenant),
            Op::Adopt(a, _) => Some(&a.tenant),
            Op::CommitWorkflow(w, _) => Some(&w.tenant),
            Op::TakeDeliveries(..) | Op::RecordAttempts(..) => None,
            Op::Register(..)
            | Op::Endings(..)
            | Op::Outbox(..)
            | Op::DropOutbox(..)
            | Op::ReleaseHolds(..)
            | Op::DropPart(..)
            | Op::DropRecords(..)
            | Op::EndWorkflow(..) => None,
            Op::Auth(..) | Op::Maintenance(_) | Op::Probe(_) => None,
        }
    }

    /// Whether the op's answer must wait for an fsync. A claim or heartbeat lost in a crash only
    /// leaves the task as it was before (ready again, or its lease as long as before), which
    /// at-least-once delivery allows; and the next durable commit makes it durable too, since
    /// the WAL is one file synced whole. Everything else (enqueue, complete, fail, operator
    /// changes, access control, schedules, webhooks, maintenance, the probe) waits.
    pub(super) fn must_be_durable(&self) -> bool {
        !matches!(self, Op::Claim(..) | Op::Heartbeat(..))
    }

    /// Whether the op is an administrative change, which an audit entry waiting in its
    /// caller's scope goes with.
    pub(crate) fn is_administrative(&self) -> bool {
        matches!(
            self,
            Op::Change(..)
                | Op::UpdateQueue(..)
                | Op::PutGroup(..)
                | Op::Purge(..)
                | Op::Auth(..)
                | Op::PutSchedule(..)
                | Op::DeleteSchedule(..)
                | Op::PutWebhook(..)
                | Op::DeleteWebhook(..)
                | Op::RetryDelivery(..)
                | Op::Fire(..)
        )
    }

    /// Rows the op may touch, for the per-commit budget.
    pub(super) fn rows(&self) -> usize {
        match self {
            Op::Audited(op, _) => op.rows() + 1,
            Op::Enqueue(_, tasks, _) | Op::EnqueueWaiting(_, tasks, ..) => tasks.len(),
            Op::WorkflowPart(p, _) => p.tasks.len(),
            Op::Adopt(a, _) => a.added.len(),
            Op::Register(pairs, _) => pairs.len(),
            Op::Endings(e, _) => e.len(),
            Op::Claim(_, req, _) => req.max,
            Op::Complete(_, items, _) => items.len(),
            Op::Fail(_, items, _) => items.len(),
            Op::Maintenance(_) => maintenance::CHUNK,
            _ => 1,
        }
        .max(1)
    }

    /// Applies the op inside the batch's transaction. `Err` means its statements failed: the
    /// caller rolls back and applies the batch again without it.
    pub(super) fn apply(&self, ctx: &mut Ctx<'_>, b: &mut Batch) -> rusqlite::Result<Answer> {
        Ok(match self {
            Op::Audited(op, entry) => {
                let answer = op.apply(ctx, b)?;
                if answer.succeeded() {
                    crate::audit::write(ctx.tx(), entry)?;
                }
                answer
            }
            Op::Audit(entry, _) => Answer::Unit(Ok(crate::audit::write(ctx.tx(), entry)?)),
            Op::Enqueue(q, tasks, _) => {
                Answer::Enqueued(ctx.enqueue(b, q, tasks, &Remote::default())?)
            }
            Op::EnqueueWaiting(q, tasks, remote, _) => {
                Answer::Enqueued(ctx.enqueue(b, q, tasks, remote)?)
            }
            Op::Register(pairs, _) => Answer::Registered(ctx.register(pairs)?),
            Op::Endings(e, _) => Answer::Unit(ctx.apply_endings(b, e)?),
            Op::Outbox(n, _) => Answer::Outbox(ctx.outbox(*n)?),
            Op::DropOutbox(ids, _) => Answer::Unit(ctx.drop_outbox(ids)?),
            Op::WorkflowPart(p, _) => Answer::Tasks(ctx.put_part(b, p)?),
            Op::Adopt(a, _) => Answer::Task(Box::new(ctx.adopt(b, a)?)),
            Op::CommitWorkflow(w, _) => Answer::Unit(ctx.commit_workflow(w)?),
            Op::ReleaseHolds(wf, _) => Answer::Unit(ctx.release_holds(b, *wf)?),
            Op::DropPart(wf, _) => Answer::Count(ctx.drop_part(b, *wf)?),
            Op::DropRecords(ids, _) => Answer::Count(ctx.drop_records(ids)?),
            Op::EndWorkflow(w, _) => Answer::Unit(ctx.end_workflow(b, w)?),
            Op::Claim(q, req, _) => Answer::Claimed(ctx.claim(b, q, req)?),
            Op::Heartbeat(tenant, hb, _) => Answer::Task(Box::new(ctx.heartbeat(b, tenant, hb)?)),
            Op::Complete(tenant, items, _) => Answer::Each(ctx.complete(b, tenant, items)?),
            Op::Fail(tenant, items, _) => Answer::Each(ctx.fail(b, tenant, items)?),
            Op::Change(tenant, id, change, _) => {
                Answer::Task(Box::new(ctx.change(b, tenant, *id, change)?))
            }
            Op::UpdateQueue(q, patch, _) => Answer::Unit(ctx.update_queue(b, q, patch)?),
            Op::PutGroup(q, name, settings, _) => {
                Answer::Group(Box::new(ctx.put_group(b, q, name, settings)?))
            }
            Op::Purge(q, state, _) => Answer::Count(ctx.purge(b, q, *state)?),
            Op::Maintenance(_) => Answer::Report(ctx.maintenance(b)?),
            Op::Auth(change, _) => Answer::Unit(ctx.change_auth(b, change)?),
            Op::Probe(_) => Answer::Unit(ctx.probe(b)?),
            Op::LogEvents(tenant, events, _) => Answer::Unit(ctx.log_events(b, tenant, events)?),
            Op::PutSchedule(s, _) => Answer::Schedule(ctx.put_schedule(s)?),
            Op::DeleteSchedule(t, name, _) => Answer::Unit(ctx.delete_schedule(t, name)?),
            Op::Fire(f, _) => Answer::Fired(ctx.fire_schedule(b, f)?),
            Op::PutWebhook(w, _) => Answer::Unit(ctx.put_webhook(b, w)?),
            Op::NoteWebhookHealth(w, _) => Answer::Unit(ctx.note_webhook_health(b, w)?),
            Op::DeleteWebhook(t, id, _) => Answer::Unit(ctx.delete_webhook(b, t, id)?),
            Op::TakeDeliveries(ids, now, until, _) => {
                Answer::Taken(ctx.take_deliveries(ids, *now, *until)?)
            }
            Op::RecordAttempts(results, now, _) => {
                Answer::Webhooks(ctx.record_attempts(b, results, *now)?)
            }
            Op::RetryDelivery(t, w, id, _) => {
                Answer::Delivery(Box::new(ctx.retry_delivery(t, w, *id, b.now)?))
            }
        })
    }

    /// Sends the op's answer, or the batch's error (for every item of a batch op).
    pub(super) fn answer(self, outcome: Result<Answer, StoreError>) {
        macro_rules! reply {
            ($r:expr, $pat:pat => $v:expr, $err:expr) => {{
                let _ = $r.send(match outcome {
                    Ok($pat) => $v,
                    Ok(_) => unreachable!("an op's answer matches its kind"),
                    Err(e) => $err(e),
                });
            }};
        }
        let items = match &self {
            Op::Complete(_, items, _) => items.len(),
            Op::Fail(_, items, _) => items.len(),
            _ => 0,
        };
        match self {
            Op::Audited(op, _) => op.answer(outcome),
            Op::Enqueue(.., r) | Op::EnqueueWaiting(.., r) => {
                reply!(r, Answer::Enqueued(v) => v, Err)
            }
            Op::Register(_, r) => reply!(r, Answer::Registered(v) => v, Err),
            Op::Outbox(_, r) => reply!(r, Answer::Outbox(v) => v, Err),
            Op::WorkflowPart(_, r) => reply!(r, Answer::Tasks(v) => v, Err),
            Op::DropPart(_, r) | Op::DropRecords(_, r) => reply!(r, Answer::Count(v) => v, Err),
            Op::Claim(.., r) => reply!(r, Answer::Claimed(v) => v, Err),
            Op::Heartbeat(.., r) | Op::Change(.., r) | Op::Adopt(_, r) => {
                reply!(r, Answer::Task(v) => *v, Err)
            }
            Op::Complete(.., r) | Op::Fail(.., r) => {
                reply!(r, Answer::Each(v) => v, |e| vec![Err(e); items])
            }
            Op::PutSchedule(_, r) => reply!(r, Answer::Schedule(v) => v, Err),
            Op::Fire(_, r) => reply!(r, Answer::Fired(v) => v, Err),
            Op::TakeDeliveries(.., r) => reply!(r, Answer::Taken(v) => v, Err),
            Op::RecordAttempts(.., r) => reply!(r, Answer::Webhooks(v) => v, Err),
            Op::RetryDelivery(.., r) => reply!(r, Answer::Delivery(v) => *v, Err),
            Op::PutGroup(.., r) => reply!(r, Answer::Group(v) => *v, Err),
            Op::UpdateQueue(.., r)
            | Op::Auth(_, r)
            | Op::Probe(r)
            | Op::DeleteSchedule(.., r)
            | Op::PutWebhook(_, r)
            | Op::NoteWebhookHealth(_, r)
            | Op::DeleteWebhook(.., r)
            | Op::LogEvents(.., r)
            | Op::Audit(_, r)
            | Op::Endings(_, r)
            | Op::DropOutbox(_, r)
            | Op::CommitWorkflow(_, r)
            | Op::EndWorkflow(_, r)
            | Op::ReleaseHolds(_, r) => {
                reply!(r, Answer::Unit(v) => v, Err)
            }
            Op::Purge(.., r) => reply!(r, Answer::Count(v) => v, Err),
            Op::Maintenance(r) => reply!(r, Answer::Report(v) => v, Err),
        }
    }
}
