//! Dependency findings (docs/workflows.md): a task still waiting though every dependency
//! ended (its release is overdue: the store's relay or maintenance has not caught up), a task
//! waiting on a dependency in a paused queue, and workflows that made no progress for long.
//! The pure checks take what the store read; [`read`] reads it, bounded.

use super::checks::{finding, minutes};
use super::{Finding, Severity};
use rota_core::workflow::{Workflow, WorkflowState};
use rota_core::{QueueInfo, QueueKey, Task, TaskId, TaskState, Timestamp};
use rota_store::{ListFilter, Store, StoreResult};
use std::collections::{HashMap, HashSet};

/// A task still waiting this long after its last dependency ended is a finding.
pub const OVERDUE_MS: i64 = 60_000;
/// A running workflow whose tasks last changed this long ago is a finding.
pub const IDLE_MS: i64 = 3_600_000;
/// Waiting tasks read per queue, queues with waiting tasks read, and running workflows read.
pub const WAITING_PER_QUEUE: usize = 100;
pub const QUEUES_READ: usize = 20;
pub const WORKFLOWS_READ: usize = 10;
/// Dependencies read per waiting task, and in all.
pub const DEPS_PER_TASK: usize = 100;
pub const DEPS_READ: usize = 10_000;

/// What the checks look at.
pub struct Seen {
    /// Waiting tasks (a sample per queue) and their dependencies as found (a dependency
    /// retention removed is missing).
    pub waiting: Vec<Task>,
    pub deps: HashMap<TaskId, Task>,
    /// The dependencies asked for (one asked for and not found was removed by retention).
    pub asked: HashSet<TaskId>,
    /// The running workflows read, with their tasks.
    pub workflows: Vec<Workflow>,
    /// Waiting tasks that are batches' callbacks: (batch, whether it is open), `None` where
    /// the batch was not read. A callback waits for its batch's close as well.
    pub callbacks: HashMap<TaskId, (TaskId, Option<bool>)>,
}

/// Reads what the checks need for the tenant's `queues` (those the caller may read).
pub async fn read(store: &dyn Store, tenant: &str, queues: &[QueueInfo]) -> StoreResult<Seen> {
    let mut waiting = Vec::new();
    let mut with: Vec<&QueueInfo> = queues.iter().filter(|q| q.counts.waiting > 0).collect();
    with.sort_by_key(|q| std::cmp::Reverse(q.counts.waiting));
    for q in with.into_iter().take(QUEUES_READ) {
        let filter = ListFilter {
            state: Some(TaskState::Waiting),
            limit: WAITING_PER_QUEUE,
            ..ListFilter::default()
        };
        waiting.extend(
            store
                .list(&QueueKey::new(tenant, &q.name), filter)
                .await?
                .tasks,
        );
    }
    // Bounded: a batch's callback alone may wait for 9,999 tasks.
    let ids: Vec<TaskId> = waiting
        .iter()
        .flat_map(|t| t.depends_on.iter().take(DEPS_PER_TASK).copied())
        .collect::<HashSet<_>>()
        .into_iter()
        .take(DEPS_READ)
        .collect();
    let deps: HashMap<TaskId, Task> = if ids.is_empty() {
        HashMap::new()
    } else {
        store
            .tasks_by_id(tenant, &ids)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect()
    };
    let in_workflows: Vec<TaskId> = waiting
        .iter()
        .filter_map(|t| t.workflow.as_deref()?.parse().ok())
        .collect::<HashSet<_>>()
        .into_iter()
        .take(DEPS_READ)
        .collect();
    let waiting_ids: HashSet<TaskId> = waiting.iter().map(|t| t.id).collect();
    let mut callbacks = HashMap::new();
    if !in_workflows.is_empty() {
        for (batch, cb) in store.batch_callbacks(tenant, &in_workflows).await? {
            if waiting_ids.contains(&cb) {
                callbacks.insert(cb, (batch, None));
            }
        }
    }
    for (batch, open) in callbacks.values_mut().take(WORKFLOWS_READ) {
        *open = store.workflow(tenant, *batch).await?.open;
    }
    let mut workflows = Vec::new();
    for w in store.workflows(tenant, None, WORKFLOWS_READ * 5).await? {
        if w.state != WorkflowState::Running || workflows.len() >= WORKFLOWS_READ {
            continue;
        }
        if let Ok(id) = w.id.parse() {
            workflows.push(store.workflow(tenant, id).await?);
        }
    }
    Ok(Seen {
        waiting,
        deps,
        asked: ids.into_iter().collect(),
        workflows,
        callbacks,
    })
}

pub fn findings(seen: &Seen, queues: &[QueueInfo], now: Timestamp) -> Vec<Finding> {
    let paused: HashSet<&str> = queues
        .iter()
        .filter(|q| q.settings.paused)
        .map(|q| q.name.as_str())
        .collect();
    let mut out = Vec::new();
    let mut overdue: HashMap<&str, (usize, &Task, i64)> = HashMap::new();
    for t in &seen.waiting {
        if t.depends_on.iter().any(|d| !seen.asked.contains(d)) {
            // Not all its dependencies were read: whether they all ended is not known here.
            continue;
        }
        let deps: Vec<Option<&Task>> = t.depends_on.iter().map(|d| seen.deps.get(d)).collect();
        let all_ended = deps.iter().all(|d| d.is_none_or(|d| d.state.is_final()));
        let last_ended = || {
            deps.iter()
                .flatten()
                .filter_map(|d| d.finished_at)
                .max()
                .unwrap_or(t.created_at)
        };
        match seen.callbacks.get(&t.id) {
            // It waits for its batch's close: not overdue, but a batch left open long after
            // its members ended is worth a look.
            Some(&(batch, Some(true))) => {
                let idle = now.0 - last_ended().0;
                if all_ended && idle >= IDLE_MS {
                    out.push(finding(
                        "batch_left_open",
                        Severity::Warning,
                        format!("batch {batch}"),
                        format!(
                            "batch {batch} is open and every member ended {} ago; its callback \
                             task {} waits for the close",
                            minutes(idle),
                            t.id
                        ),
                        "an open batch's callback runs only once the batch is closed",
                        format!(
                            "close it (POST /v1/batches/{batch}/close) once every member is \
                             added, or cancel it (rota workflow cancel {batch})"
                        ),
                    ));
                }
                continue;
            }
            // Not read: whether it waits for a close is not known here.
            Some((_, None)) => continue,
            _ => {}
        }
        if all_ended {
            let last = last_ended();
            let late = now.0 - last.0.max(t.created_at.0);
            if late >= OVERDUE_MS {
                let e = overdue.entry(t.queue.as_str()).or_insert((0, t, late));
                e.0 += 1;
                if late > e.2 {
                    (e.1, e.2) = (t, late);
                }
            }
            continue;
        }
        if let Some(d) = deps
            .iter()
            .flatten()
            .find(|d| !d.state.is_final() && paused.contains(d.queue.as_str()))
        {
            out.push(finding(
                "waits_on_paused_queue",
                Severity::Warning,
                format!("task {}", t.id),
                format!(
                    "task {} (queue {}) waits for task {}, which is {} in paused queue {}",
                    t.id, t.queue, d.id, d.state, d.queue
                ),
                format!("queue {} is paused, so its tasks do not run", d.queue),
                format!(
                    "resume it (rota queue resume {}), or cancel the waiting task if it is not \
                     wanted any more",
                    d.queue
                ),
            ));
        }
    }
    let mut queues_overdue: Vec<_> = overdue.into_iter().collect();
    queues_overdue.sort_by_key(|(q, _)| *q);
    for (queue, (n, t, late)) in queues_overdue {
        out.push(finding(
            "release_overdue",
            Severity::Error,
            format!("queue {queue}"),
            format!(
                "{n} task(s) still waiting though every dependency ended; task {} for {}",
                t.id,
                minutes(late)
            ),
            "the endings have not reached their dependents: the store's relay between shards \
             or, on PostgreSQL, maintenance has not caught up (see the server's log)",
            "check the server's log for relay or release errors; a restart re-applies every \
             ending (each is applied once however often it is carried)",
        ));
    }
    for w in &seen.workflows {
        let last = w.tasks.iter().map(|t| t.task.updated_at).max();
        let Some(last) = last else { continue };
        let idle = now.0 - last.0;
        if idle < IDLE_MS {
            continue;
        }
        let c = &w.counts;
        out.push(finding(
            "workflow_idle",
            Severity::Warning,
            format!("workflow {}", w.id),
            format!(
                "no task changed for {}: {} waiting, {} scheduled, {} ready, {} running",
                minutes(idle),
                c.waiting,
                c.scheduled,
                c.ready,
                c.running
            ),
            if c.ready > 0 {
                "its ready tasks are not being claimed: no worker serves their queues, or a \
                 limit holds them"
            } else if c.running > 0 {
                "a task of it has been running that long"
            } else {
                "its tasks wait for something that does not come (a far run_at, or a \
                 dependency outside the workflow)"
            },
            "look at its tasks (rota workflow get) and the findings about their queues; cancel \
             it (rota workflow cancel) if it is not wanted",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, queue: &str, state: TaskState, finished: Option<i64>) -> Task {
        let new = rota_store::conformance::task("k");
        let mut t = rota_core::lifecycle::enqueued(TaskId(id << 20), queue, &new, 1, Timestamp(0));
        t.state = state;
        t.finished_at = finished.map(Timestamp);
        t
    }

    fn queue(name: &str, paused: bool) -> QueueInfo {
        QueueInfo {
            name: name.into(),
            settings: rota_core::QueueSettings {
                paused,
                ..Default::default()
            },
            counts: Default::default(),
            oldest_ready_age_ms: None,
            last_claim_at: None,
            created_at: Timestamp(0),
            shard: None,
            next_start_at: None,
        }
    }

    #[test]
    fn a_wait_whose_dependencies_all_ended_long_ago_is_overdue() {
        let dep = task(1, "a", TaskState::Succeeded, Some(1_000));
        let mut w = task(2, "b", TaskState::Waiting, None);
        w.depends_on = vec![dep.id];
        let seen = Seen {
            waiting: vec![w],
            asked: [dep.id].into_iter().collect(),
            deps: [(dep.id, dep)].into_iter().collect(),
            workflows: vec![],
            callbacks: HashMap::new(),
        };
        let qs = [queue("a", false), queue("b", false)];
        assert!(findings(&seen, &qs, Timestamp(1_000 + OVERDUE_MS - 1)).is_empty());
        let f = findings(&seen, &qs, Timestamp(1_000 + OVERDUE_MS));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].check, "release_overdue");
    }

    #[test]
    fn a_dependency_in_a_paused_queue_is_named() {
        let dep = task(1, "a", TaskState::Ready, None);
        let mut w = task(2, "b", TaskState::Waiting, None);
        w.depends_on = vec![dep.id];
        let seen = Seen {
            waiting: vec![w],
            asked: [dep.id].into_iter().collect(),
            deps: [(dep.id, dep)].into_iter().collect(),
            workflows: vec![],
            callbacks: HashMap::new(),
        };
        assert!(findings(&seen, &[queue("a", false)], Timestamp(10_000_000)).is_empty());
        let f = findings(&seen, &[queue("a", true)], Timestamp(10_000_000));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].check, "waits_on_paused_queue");
        assert!(f[0].fix.contains("rota queue resume a"), "{}", f[0].fix);
    }

    #[test]
    fn a_workflow_with_no_change_for_an_hour_is_idle() {
        let t = task(1, "a", TaskState::Ready, None);
        let wf = Workflow::new(
            "w".into(),
            Default::default(),
            Timestamp(0),
            vec![rota_core::workflow::WorkflowTask {
                name: "a".into(),
                task: t,
            }],
        );
        let seen = Seen {
            waiting: vec![],
            deps: HashMap::new(),
            asked: HashSet::new(),
            workflows: vec![wf],
            callbacks: HashMap::new(),
        };
        assert!(findings(&seen, &[], Timestamp(IDLE_MS - 1)).is_empty());
        let f = findings(&seen, &[], Timestamp(IDLE_MS));
        assert_eq!(f[0].check, "workflow_idle");
        assert!(f[0].cause.contains("not being claimed"));
    }

    #[test]
    fn an_open_batchs_callback_is_not_overdue_but_a_batch_left_open_is_named() {
        let member = task(1, "a", TaskState::Succeeded, Some(1_000));
        let mut cb = task(2, "b", TaskState::Waiting, None);
        cb.depends_on = vec![member.id];
        let batch = TaskId(3 << 20);
        let mut seen = Seen {
            waiting: vec![cb.clone()],
            asked: [member.id].into_iter().collect(),
            deps: [(member.id, member)].into_iter().collect(),
            workflows: vec![],
            callbacks: [(cb.id, (batch, Some(true)))].into_iter().collect(),
        };
        let qs = [queue("a", false), queue("b", false)];
        assert!(findings(&seen, &qs, Timestamp(1_000 + OVERDUE_MS)).is_empty());
        let f = findings(&seen, &qs, Timestamp(1_000 + IDLE_MS));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].check, "batch_left_open");
        assert!(f[0].fix.contains("/close"), "{}", f[0].fix);
        // Closed, a callback still waiting is overdue as any task.
        seen.callbacks.insert(cb.id, (batch, Some(false)));
        let f = findings(&seen, &qs, Timestamp(1_000 + OVERDUE_MS));
        assert_eq!(f[0].check, "release_overdue");
    }
}
