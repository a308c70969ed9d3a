//! `MUTATE`: Faktory's repair commands over the retry, scheduled and dead sets, as changes to
//! Rota tasks by id through the service (so each change is checked and permitted like the HTTP
//! API's).
//!
//! The sets are Rota states: `retries` is a scheduled task that has failed before (it records an
//! error), `scheduled` one that has not, `dead` the dead letters. `clear` and `discard` delete,
//! `kill` sends to the dead letters, `requeue` runs a waiting task now or retries a dead one.

use super::job;
use super::pattern::Pattern;
use super::{invalid, parse_json, Reply};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::AppState;
use rota_core::{QueueInfo, Task, TaskId, TaskState};
use rota_store::{Change, ListFilter};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Changes in flight at once: enough to share commits, few enough not to crowd out traffic.
const IN_FLIGHT: usize = 32;

/// The reason a task killed by `MUTATE` records.
const KILLED: &str = "killed by a Faktory MUTATE command";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Operation {
    cmd: String,
    target: String,
    filter: Option<Filter>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    regexp: String,
    #[serde(default)]
    jobtype: String,
    #[serde(default)]
    jids: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Retries,
    Scheduled,
    Dead,
}

impl Target {
    fn holds(self, t: &Task) -> bool {
        match self {
            Target::Retries => t.state == TaskState::Scheduled && !t.errors.is_empty(),
            Target::Scheduled => t.state == TaskState::Scheduled && t.errors.is_empty(),
            Target::Dead => t.state == TaskState::Dead,
        }
    }
}

impl Filter {
    /// Faktory's rule: jids alone decide when given; otherwise the job type and the pattern
    /// (over the job's JSON) must both match.
    fn matches(&self, pattern: &Pattern, t: &Task) -> bool {
        let (jid, job) = job::to_job(t);
        if !self.jids.is_empty() {
            return self.jids.contains(&jid);
        }
        (self.jobtype.is_empty() || t.kind == self.jobtype)
            && (self.regexp.is_empty() || pattern.matches(&job.to_string()))
    }
}

pub(super) async fn mutate(st: &AppState, caller: &Caller, arg: &str) -> ApiResult<Reply> {
    let op: Operation = parse_json("MUTATE", arg)?;
    let target = match op.target.as_str() {
        "retries" => Target::Retries,
        "scheduled" => Target::Scheduled,
        "dead" => Target::Dead,
        other => {
            return Err(invalid(format!(
                "MUTATE target is retries, scheduled or dead, not `{other}`"
            )))
        }
    };
    let change = match op.cmd.as_str() {
        "clear" | "discard" => Change::Delete,
        "kill" if target == Target::Dead => return Ok(Reply::Ok),
        "kill" => Change::Kill {
            reason: KILLED.into(),
        },
        "requeue" if target == Target::Dead => Change::Retry,
        "requeue" => Change::RunNow,
        other => {
            return Err(invalid(format!(
                "MUTATE cmd is clear, kill, discard or requeue, not `{other}`"
            )))
        }
    };
    // `clear` empties the whole set, as Faktory's does.
    let filter = match op.cmd.as_str() {
        "clear" => Filter::default(),
        _ => op.filter.unwrap_or_default(),
    };
    let pattern = Pattern::parse(&filter.regexp, st.config.faktory.max_mutate_pattern_bytes)?;
    let budget_ms = st.config.faktory.mutate_budget_ms;
    let deadline = Instant::now() + Duration::from_millis(budget_ms);
    let over_budget = || {
        ApiError::new(
            ErrorKind::Timeout,
            "mutate_budget",
            format!(
                "MUTATE stopped after its time budget of {budget_ms} ms \
                 (faktory.mutate_budget_ms); the jobs it changed before stopping stay changed; \
                 narrow the filter (jids, jobtype) or raise the budget"
            ),
        )
    };
    // Matching runs on the blocking pool: a long scan must never hold a runtime thread that
    // serves other requests.
    let matcher = Arc::new((filter, pattern));
    let state = match target {
        Target::Dead => TaskState::Dead,
        Target::Retries | Target::Scheduled => TaskState::Scheduled,
    };
    let filter = &matcher.0;
    let kind =
        (filter.jids.is_empty() && !filter.jobtype.is_empty()).then(|| filter.jobtype.clone());
    let mut refused = Vec::new();
    for queue in st.service.queues(caller).await? {
        let mut before = None;
        loop {
            if Instant::now() >= deadline {
                return Err(over_budget());
            }
            let list = ListFilter {
                state: Some(state),
                kind: kind.clone(),
                limit: st.config.limits.max_list,
                before,
                unique_key: None,
            };
            let page = st.service.list(caller, &queue.name, list).await?;
            let next = page.next_cursor;
            let m = matcher.clone();
            let ids = tokio::task::spawn_blocking(move || {
                let mut ids = Vec::new();
                for t in &page.tasks {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    if target.holds(t) && m.0.matches(&m.1, t) {
                        ids.push(t.id);
                    }
                }
                Some(ids)
            })
            .await
            .expect("matching does not panic");
            let Some(ids): Option<Vec<TaskId>> = ids else {
                return Err(over_budget());
            };
            refused.extend(apply(st, caller, ids, &change).await?);
            match next {
                Some(c) => before = Some(c),
                None => break,
            }
        }
    }
    match refused.first() {
        None => Ok(Reply::Ok),
        Some(first) => Err(ApiError::new(
            ErrorKind::Conflict,
            "conflict",
            format!(
                "MUTATE left {} job(s) as they were; the first: {first}",
                refused.len()
            ),
        )),
    }
}

/// Scheduled tasks `INFO` reads to tell retries from scheduled jobs; past this, the rest count
/// as scheduled, so `INFO` stays cheap whatever the backlog.
const SIZE_SCAN: usize = 10_000;

/// The sizes of Faktory's sets for `INFO`: retries, scheduled, dead.
pub(super) async fn set_sizes(
    st: &AppState,
    caller: &Caller,
    queues: &[QueueInfo],
) -> ApiResult<(u64, u64, u64)> {
    let scheduled: u64 = queues.iter().map(|q| q.counts.scheduled).sum();
    let dead = queues.iter().map(|q| q.counts.dead).sum();
    let mut budget = SIZE_SCAN;
    let mut retries = 0;
    for q in queues.iter().filter(|q| q.counts.scheduled > 0) {
        let mut before = None;
        while budget > 0 {
            let list = ListFilter {
                state: Some(TaskState::Scheduled),
                kind: None,
                limit: budget.min(st.config.limits.max_list),
                before,
                unique_key: None,
            };
            let page = st.service.list(caller, &q.name, list).await?;
            budget -= page.tasks.len();
            retries += page
                .tasks
                .iter()
                .filter(|t| Target::Retries.holds(t))
                .count() as u64;
            match page.next_cursor {
                Some(c) => before = Some(c),
                None => break,
            }
        }
    }
    Ok((retries, scheduled.saturating_sub(retries), dead))
}

/// Applies `change` to `ids`, some at once. A task that left the set meanwhile (claimed,
/// promoted, deleted) is skipped; a change refused for another reason (a retry whose unique key
/// a live task holds) is returned; any other error ends the command.
async fn apply(
    st: &AppState,
    caller: &Caller,
    ids: Vec<TaskId>,
    change: &Change,
) -> ApiResult<Vec<String>> {
    let mut refused = Vec::new();
    let mut running = JoinSet::new();
    let mut ids = ids.into_iter();
    loop {
        while running.len() < IN_FLIGHT {
            let Some(id) = ids.next() else { break };
            let (st, caller, change) = (st.clone(), caller.clone(), change.clone());
            running.spawn(async move { st.service.change(&caller, id, change).await });
        }
        let Some(done) = running.join_next().await else {
            return Ok(refused);
        };
        match done.expect("a change does not panic") {
            Ok(_) => {}
            Err(e) if matches!(e.code, "invalid_state" | "task_not_found") => {}
            Err(e) if e.kind == ErrorKind::Conflict => refused.push(e.message),
            Err(e) => return Err(e),
        }
    }
}
