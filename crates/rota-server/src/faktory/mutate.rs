//! `MUTATE`: Faktory's repair commands over the retry, scheduled and dead sets, as changes to
//! Rota tasks by id through the service (so each change is checked and permitted like the HTTP
//! API's).
//!
//! The sets are Rota states: `retries` is a scheduled task that has failed before (it records an
//! error), `scheduled` one that has not, `dead` the dead letters. `clear` and `discard` delete,
//! `kill` sends to the dead letters, `requeue` runs a waiting task now or retries a dead one.

use super::job;
use super::{invalid, parse_json, Reply};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::AppState;
use rota_core::{QueueInfo, Task, TaskId, TaskState};
use rota_store::{Change, ListFilter};
use serde::Deserialize;
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

/// A piece of a `SCAN MATCH` pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece {
    /// `*`: any text.
    Any,
    /// `?`: one character.
    One,
    Char(char),
}

/// The pattern Faktory hands to Redis's `SCAN MATCH`: `*`, `?` and `\` escapes as Redis reads
/// them. Character classes (`[…]`) are refused rather than read otherwise.
#[derive(Debug)]
struct Pattern(Vec<Piece>);

impl Pattern {
    fn parse(text: &str) -> ApiResult<Pattern> {
        let mut pieces = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            pieces.push(match c {
                '*' => Piece::Any,
                '?' => Piece::One,
                '\\' => Piece::Char(chars.next().unwrap_or('\\')),
                '[' => {
                    return Err(invalid(format!(
                        "MUTATE filter regexp `{text}`: character classes (`[…]`) are not \
                         supported; use `*`, `?`, or `\\[` for a literal bracket"
                    )))
                }
                c => Piece::Char(c),
            });
        }
        Ok(Pattern(pieces))
    }

    /// Whether the whole of `text` matches (backtracking to the last `*`).
    fn matches(&self, text: &str) -> bool {
        let (p, t): (&[Piece], Vec<char>) = (&self.0, text.chars().collect());
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some(Piece::Any) => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(Piece::One) => (pi, ti) = (pi + 1, ti + 1),
                Some(Piece::Char(c)) if *c == t[ti] => (pi, ti) = (pi + 1, ti + 1),
                _ => match star {
                    Some((sp, st)) => {
                        (pi, ti) = (sp + 1, st + 1);
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|x| *x == Piece::Any)
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
    let pattern = Pattern::parse(&filter.regexp)?;
    let state = match target {
        Target::Dead => TaskState::Dead,
        Target::Retries | Target::Scheduled => TaskState::Scheduled,
    };
    let kind =
        (filter.jids.is_empty() && !filter.jobtype.is_empty()).then(|| filter.jobtype.clone());
    let mut refused = Vec::new();
    for queue in st.service.queues(caller).await? {
        let mut before = None;
        loop {
            let list = ListFilter {
                state: Some(state),
                kind: kind.clone(),
                limit: st.config.limits.max_list,
                before,
                unique_key: None,
            };
            let page = st.service.list(caller, &queue.name, list).await?;
            let ids: Vec<TaskId> = page
                .tasks
                .iter()
                .filter(|t| target.holds(t) && filter.matches(&pattern, t))
                .map(|t| t.id)
                .collect();
            refused.extend(apply(st, caller, ids, &change).await?);
            match page.next_cursor {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(text)
    }

    #[test]
    fn patterns_match_as_redis_scan_match_does() {
        let job = r#"{"jid":"j1","jobtype":"fail","args":["fizz"],"queue":"default"}"#;
        assert!(m("*", job));
        assert!(m("*fizz*", job));
        assert!(
            m(r#"*\"args\":\["fizz"\]*"#, job),
            "escapes as the Rust client writes them"
        );
        assert!(m("*\"jid\":\"j?\"*", job));
        assert!(!m("*fuzz*", job));
        assert!(!m("fizz*", job), "anchored at both ends");
        assert!(m("a*b*c", "aXbYbc"));
        assert!(!m("a?c", "abbc"));
        assert!(m("", ""));
        let e = Pattern::parse("*[ab]*").unwrap_err();
        assert!(e.message.contains("character classes"), "{}", e.message);
    }
}
