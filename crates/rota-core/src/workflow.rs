//! Dependencies between tasks and workflows submitted as one graph: the rules every engine
//! applies (what a finished dependency does to a waiting task) and the checks a workflow passes
//! before anything is stored (names, cycles, bounds). See docs/workflows.md.

use crate::{OnDependencyFailure, StateCounts, Task, TaskId, TaskState, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// `task` (waiting) once its last dependency ended as it may: ready, or scheduled until its
/// `run_at`. A task ready now takes now as its `run_at`: the time it could first run, which is
/// where its wait for a worker starts (`rota_task_wait_seconds`).
pub fn released(task: &Task, now: Timestamp) -> Task {
    Task {
        state: crate::lifecycle::waiting_state(task.run_at, now),
        run_at: task.run_at.max(now),
        updated_at: now,
        ..task.clone()
    }
}

/// Why a waiting task was cancelled: dependency `dep` ended `state` (dead or cancelled).
pub fn dependency_failed_reason(dep: TaskId, state: TaskState) -> String {
    format!("dependency {dep} ended {state}, and on_dependency_failure is cancel")
}

/// `task` (waiting) cancelled because a dependency ended dead or cancelled; the reason is kept
/// as its last error.
pub fn cancelled_by_dependency(task: &Task, dep: TaskId, state: TaskState, now: Timestamp) -> Task {
    let mut t = task.clone();
    t.errors.push(crate::AttemptError {
        attempt: t.attempt,
        message: dependency_failed_reason(dep, state),
        at: now,
    });
    t.state = TaskState::Cancelled;
    t.finished_at = Some(now);
    t.updated_at = now;
    t
}

/// Where a workflow stands, from its tasks' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    /// Some task is not final yet.
    Running,
    /// Every task succeeded.
    Succeeded,
    /// Every task is final and at least one is dead.
    Failed,
    /// Every task is final, none dead, at least one cancelled.
    Cancelled,
}

impl WorkflowState {
    pub fn of(c: &StateCounts) -> WorkflowState {
        let live = c.waiting + c.scheduled + c.ready + c.running;
        if live > 0 {
            WorkflowState::Running
        } else if c.dead > 0 {
            WorkflowState::Failed
        } else if c.cancelled > 0 {
            WorkflowState::Cancelled
        } else {
            WorkflowState::Succeeded
        }
    }
}

/// A task of a workflow, under the name it was submitted with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowTask {
    pub name: String,
    pub task: Task,
}

/// What a workflow was submitted as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkflowKind {
    /// A graph of named tasks (`POST /v1/workflows`).
    #[default]
    Workflow,
    /// Members and a callback that runs once they are all final (`POST /v1/batches`); the
    /// callback is the task named [`BATCH_CALLBACK`].
    Batch,
}

/// The name of a batch's callback task among its tasks.
pub const BATCH_CALLBACK: &str = "callback";

/// How a batch's members ended, as its callback's claim carries it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchSummary {
    /// The batch (a workflow id).
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub succeeded: Vec<crate::TaskId>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub dead: Vec<crate::TaskId>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub cancelled: Vec<crate::TaskId>,
}

impl BatchSummary {
    /// The summary of a batch from its workflow view: every task but the callback.
    pub fn of(batch: &Workflow) -> BatchSummary {
        let mut s = BatchSummary {
            id: batch.id.clone(),
            ..Default::default()
        };
        for t in batch.tasks.iter().filter(|t| t.name != BATCH_CALLBACK) {
            match t.task.state {
                TaskState::Succeeded => s.succeeded.push(t.task.id),
                TaskState::Dead => s.dead.push(t.task.id),
                TaskState::Cancelled => s.cancelled.push(t.task.id),
                _ => {}
            }
        }
        s
    }
}

/// A workflow as `GET /v1/workflows/{id}` shows it (its tasks) and the list shows it (without).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workflow {
    pub id: String,
    #[serde(default)]
    pub kind: WorkflowKind,
    pub state: WorkflowState,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Its tasks counted by state (tasks removed by retention are no longer counted).
    pub counts: StateCounts,
    /// A batch: whether tasks may still be added to it (`POST /v1/batches/{id}/tasks`) until
    /// `POST /v1/batches/{id}/close`. Absent for a workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<WorkflowTask>,
}

impl Workflow {
    /// The workflow from its record (the names its tasks were submitted under, in order) and
    /// those of its tasks still kept (in any order).
    pub fn assemble(
        id: crate::TaskId,
        kind: WorkflowKind,
        created_at: Timestamp,
        names: &[(String, crate::TaskId)],
        tasks: Vec<Task>,
    ) -> Workflow {
        let mut by_id: HashMap<crate::TaskId, Task> =
            tasks.into_iter().map(|t| (t.id, t)).collect();
        let mut tasks: Vec<WorkflowTask> = names
            .iter()
            .filter_map(|(name, id)| {
                by_id.remove(id).map(|task| WorkflowTask {
                    name: name.clone(),
                    task,
                })
            })
            .collect();
        // Tasks added after the submission (spawned by a running task, or added to an open
        // batch), in the order they were made.
        let mut added: Vec<Task> = by_id.into_values().collect();
        added.sort_by_key(|t| t.id);
        let members = names.len().saturating_sub(1);
        for (k, task) in added.into_iter().enumerate() {
            let name = match kind {
                WorkflowKind::Batch => format!("m{}", members + k),
                WorkflowKind::Workflow => format!("spawned-{k}"),
            };
            tasks.push(WorkflowTask { name, task });
        }
        Workflow::new(id.to_string(), kind, created_at, tasks)
    }

    /// A workflow as a list shows it: its tasks counted, not shown.
    pub fn listed(
        id: crate::TaskId,
        kind: WorkflowKind,
        created_at: Timestamp,
        counts: StateCounts,
    ) -> Workflow {
        Workflow {
            id: id.to_string(),
            kind,
            state: WorkflowState::of(&counts),
            created_at,
            counts,
            open: None,
            tasks: Vec::new(),
        }
    }

    /// The workflow of `tasks` (in submission order), its state from theirs.
    pub fn new(
        id: String,
        kind: WorkflowKind,
        created_at: Timestamp,
        tasks: Vec<WorkflowTask>,
    ) -> Workflow {
        let mut counts = StateCounts::default();
        for t in &tasks {
            *counts.get_mut(t.task.state) += 1;
        }
        Workflow {
            id,
            kind,
            state: WorkflowState::of(&counts),
            created_at,
            counts,
            open: None,
            tasks,
        }
    }
}

/// The task a workflow's `workflow.*` event names (and is logged in the queue of): a batch's
/// callback, else the last task submitted.
pub fn event_task(
    callback: Option<crate::TaskId>,
    names: &[(String, crate::TaskId)],
) -> Option<crate::TaskId> {
    callback.or_else(|| names.last().map(|(_, id)| *id))
}

/// Most tasks one workflow may hold (and most dependencies one task may name): a fan-in of
/// this many tasks into one join is allowed.
pub const MAX_WORKFLOW_TASKS: usize = 10_000;
/// A workflow's record is deleted once none of its tasks is kept (retention removed them) and
/// it is at least this old (a younger one may still be being written across shards).
pub const RECORD_GRACE_MS: i64 = 3_600_000;
/// Workflow records one maintenance pass looks at.
pub const RECORDS_PER_PASS: usize = 200;
/// Most dependency edges one workflow may hold in all.
pub const MAX_WORKFLOW_EDGES: usize = 100_000;
/// Longest local name of a task in a workflow.
pub const MAX_NAME_LEN: usize = 128;

/// Dependencies a claimed task carries inline (the first this many of its `depends_on`).
pub const MAX_INLINE_DEPENDENCIES: usize = 100;
/// Bytes of results a claimed task carries inline in all; a result past them is left out.
pub const MAX_INLINE_RESULT_BYTES: usize = 64 * 1024;

/// A dependency of a claimed task: how it ended and its result, so a join gets its inputs in
/// the claim's round trip.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DependencyResult {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: crate::TaskId,
    pub queue: String,
    pub kind: String,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub result: Option<crate::Json>,
    /// The result is not inline: it would pass the claim's bound on result bytes (64 KiB),
    /// or the claimer may not read the dependency's queue. `GET /v1/tasks/{id}` has it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub result_omitted: bool,
}

/// The dependencies as a claim carries them: in order, each result inline while the results
/// so far fit [`MAX_INLINE_RESULT_BYTES`] and `readable` allows it.
pub fn inline_results(
    deps: impl IntoIterator<Item = Task>,
    readable: impl Fn(&Task) -> bool,
) -> Vec<DependencyResult> {
    let mut budget = MAX_INLINE_RESULT_BYTES;
    deps.into_iter()
        .map(|t| {
            let size = t.result.as_ref().map_or(0, |r| r.get().len());
            let inline = readable(&t) && size <= budget;
            if inline {
                budget -= size;
            }
            DependencyResult {
                id: t.id,
                queue: t.queue,
                kind: t.kind,
                state: t.state,
                result_omitted: !inline && t.result.is_some(),
                result: if inline { t.result } else { None },
            }
        })
        .collect()
}

/// What a dependency's final state does to a task waiting for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyOutcome {
    /// The dependency counts as done.
    Satisfied,
    /// The waiting task is cancelled (the dependency ended dead or cancelled).
    Cancel,
}

/// The one rule: success satisfies; dead or cancelled cancels the dependent unless it runs
/// anyway (`on_dependency_failure: run`). `state` must be final.
pub fn after_dependency(state: TaskState, policy: OnDependencyFailure) -> DependencyOutcome {
    debug_assert!(state.is_final(), "a dependency releases only when final");
    match (state, policy) {
        (TaskState::Succeeded, _) | (_, OnDependencyFailure::Run) => DependencyOutcome::Satisfied,
        _ => DependencyOutcome::Cancel,
    }
}

/// A workflow's tasks as names and the names each depends on, checked: every name unique and
/// known, no cycle, within the bounds. The answer is an order in which every task comes after
/// its dependencies (indexes into `deps`).
pub fn check_graph(names: &[&str], deps: &[Vec<&str>]) -> Result<Vec<usize>, String> {
    if names.is_empty() {
        return Err("tasks: a workflow needs at least one task".into());
    }
    if names.len() > MAX_WORKFLOW_TASKS {
        return Err(format!(
            "tasks: {} tasks is more than a workflow may hold ({MAX_WORKFLOW_TASKS})",
            names.len()
        ));
    }
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() || n.len() > MAX_NAME_LEN {
            return Err(format!(
                "tasks[{i}].name: a name of 1 to {MAX_NAME_LEN} bytes is required"
            ));
        }
        if index.insert(n, i).is_some() {
            return Err(format!("tasks[{i}].name: `{n}` names two tasks"));
        }
    }
    let edges: usize = deps.iter().map(Vec::len).sum();
    if edges > MAX_WORKFLOW_EDGES {
        return Err(format!(
            "tasks: {edges} dependencies is more than a workflow may hold ({MAX_WORKFLOW_EDGES})"
        ));
    }
    let mut on: Vec<Vec<usize>> = Vec::with_capacity(names.len());
    for (i, ds) in deps.iter().enumerate() {
        let mut mine = Vec::with_capacity(ds.len());
        for d in ds {
            match index.get(d) {
                Some(&j) if j == i => {
                    return Err(format!("tasks[{i}].depends_on: `{d}` depends on itself"))
                }
                Some(&j) => mine.push(j),
                None => {
                    return Err(format!(
                        "tasks[{i}].depends_on: `{d}` is not the name of a task in this workflow"
                    ))
                }
            }
        }
        mine.sort_unstable();
        mine.dedup();
        on.push(mine);
    }
    order(&on).map_err(|cycle| {
        let path: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
        format!(
            "tasks: the dependencies form a cycle: {}",
            path.join(" -> ")
        )
    })
}

/// A topological order of the graph where task `i` depends on `on[i]`, or one cycle (its
/// tasks in dependency order, the first repeated at the end).
fn order(on: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; on.len()];
    let mut out = Vec::with_capacity(on.len());
    // Iterative depth-first search: a graph of 10,000 tasks in one chain must not overflow the
    // stack.
    for root in 0..on.len() {
        if mark[root] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = on[node].get(*next) {
                *next += 1;
                match mark[dep] {
                    Mark::New => {
                        mark[dep] = Mark::Open;
                        stack.push((dep, 0));
                    }
                    Mark::Open => {
                        let from = stack.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|&(n, _)| n).collect();
                        cycle.reverse();
                        cycle.insert(0, dep);
                        return Err(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                out.push(node);
                stack.pop();
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(names: &[&str], deps: &[&[&str]]) -> Result<Vec<usize>, String> {
        let deps: Vec<Vec<&str>> = deps.iter().map(|d| d.to_vec()).collect();
        check_graph(names, &deps)
    }

    #[test]
    fn an_order_puts_every_task_after_its_dependencies() {
        let order = check(
            &["notify", "evaluate", "scrape"],
            &[&["evaluate"], &["scrape"], &[]],
        )
        .unwrap();
        assert_eq!(order, vec![2, 1, 0]);
    }

    #[test]
    fn a_cycle_is_named() {
        let err = check(&["a", "b", "c"], &[&["c"], &["a"], &["b"]]).unwrap_err();
        assert!(err.contains("cycle"), "{err}");
        assert!(
            err.contains("a -> c -> b -> a") || err.contains("a -> b -> c -> a"),
            "{err}"
        );
    }

    #[test]
    fn unknown_duplicate_and_self_names_are_refused() {
        assert!(check(&["a"], &[&["x"]]).unwrap_err().contains("`x` is not"));
        assert!(check(&["a", "a"], &[&[], &[]])
            .unwrap_err()
            .contains("names two tasks"));
        assert!(check(&["a"], &[&["a"]]).unwrap_err().contains("itself"));
        assert!(check(&[], &[]).unwrap_err().contains("at least one"));
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let names: Vec<String> = (0..MAX_WORKFLOW_TASKS).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let deps: Vec<Vec<&str>> = (0..refs.len())
            .map(|i| if i == 0 { vec![] } else { vec![refs[i - 1]] })
            .collect();
        let order = check_graph(&refs, &deps).unwrap();
        assert_eq!(order.first(), Some(&0));
        assert_eq!(order.last(), Some(&(MAX_WORKFLOW_TASKS - 1)));
        let too_many: Vec<&str> = (0..=MAX_WORKFLOW_TASKS).map(|_| "x").collect();
        let none: Vec<Vec<&str>> = vec![vec![]; too_many.len()];
        assert!(check_graph(&too_many, &none)
            .unwrap_err()
            .contains("more than"));
    }

    fn done(id: u64, result_bytes: usize) -> Task {
        let new = crate::NewTask {
            kind: "k".into(),
            payload: crate::json_null(),
            priority: 0,
            run_at: None,
            max_attempts: None,
            unique_key: None,
            on_duplicate: Default::default(),
            tags: vec![],
            callback_url: None,
            group: None,
            depends_on: vec![],
            on_dependency_failure: Default::default(),
            workflow: None,
            traceparent: None,
            tracestate: None,
        };
        let mut t = crate::lifecycle::enqueued(crate::TaskId(id << 20), "q", &new, 1, Timestamp(0));
        t.state = TaskState::Succeeded;
        let text = format!("\"{}\"", "x".repeat(result_bytes.saturating_sub(2)));
        t.result = Some(serde_json::value::RawValue::from_string(text).unwrap());
        t
    }

    #[test]
    fn results_are_inline_within_the_bound_and_what_may_be_read() {
        let half = MAX_INLINE_RESULT_BYTES / 2;
        let deps = vec![done(1, half), done(2, half), done(3, 10), done(4, 10)];
        let out = inline_results(deps, |t| t.id != crate::TaskId(4 << 20));
        let inline: Vec<bool> = out.iter().map(|d| d.result.is_some()).collect();
        // The first two fill the budget exactly; the third no longer fits; the fourth may not
        // be read.
        assert_eq!(inline, [true, true, false, false]);
        assert!(out[2].result_omitted && out[3].result_omitted);
        assert_eq!(out[0].state, TaskState::Succeeded);
    }

    #[test]
    fn every_state_is_at_its_index() {
        // Engines store a state as its place in ALL (PostgreSQL's smallint).
        for (i, s) in TaskState::ALL.iter().enumerate() {
            assert_eq!(s.index(), i, "{s}");
        }
        assert_eq!(TaskState::ALL.len(), TaskState::COUNT);
    }

    #[test]
    fn failure_cancels_unless_the_task_runs_anyway() {
        use DependencyOutcome::*;
        use OnDependencyFailure as P;
        assert_eq!(after_dependency(TaskState::Succeeded, P::Cancel), Satisfied);
        assert_eq!(after_dependency(TaskState::Dead, P::Cancel), Cancel);
        assert_eq!(after_dependency(TaskState::Cancelled, P::Cancel), Cancel);
        assert_eq!(after_dependency(TaskState::Dead, P::Run), Satisfied);
    }
}
