//! Flow-control findings: a queue held at its concurrency limit, a rate holding back a
//! backlog, a group left waiting far longer than the others. The queue's flow stats come from
//! the store's reads (`service::flow_stats`); how long a queue has sat at its limit is what
//! this server saw ([`Observed::queue_seen`], sampled by the upkeep and by each look).

use super::checks::{finding, minutes};
use super::observed::Observed;
use super::{Finding, Severity};
use rota_core::flow::{Hold, Rate};
use rota_core::flow_stats::FlowStats;
use rota_core::{Clock, QueueInfo, Timestamp};
use rota_store::Store;

/// A queue at its concurrency limit this long, with tasks ready, is a finding.
pub const AT_LIMIT_MS: i64 = 300_000;
/// Tasks held back by a rate whose oldest has waited this long are a finding.
pub const RATE_WAIT_MS: i64 = 300_000;
/// A group whose oldest ready task has waited this long, and [`GROUP_WAIT_FACTOR`] times the
/// median of the queue's groups, was left behind.
pub const GROUP_WAIT_MS: i64 = 300_000;
pub const GROUP_WAIT_FACTOR: u64 = 10;
/// Queues one doctor run reads the groups of (those with the most ready tasks first).
pub const MAX_DOCTOR_FLOW_QUEUES: usize = 100;

/// What the checks know of one queue's flow: its stats, and since when this server has seen
/// it at its concurrency limit.
pub struct QueueFlow {
    pub stats: FlowStats,
    pub at_limit_since: Option<Timestamp>,
}

/// The queues whose flow is worth reading: tasks ready, and a limit set or tasks waiting long
/// enough that a group's own limit may hold them.
pub fn worth_reading(q: &QueueInfo) -> bool {
    q.counts.ready > 0
        && (q.settings.limited()
            || q.oldest_ready_age_ms
                .is_some_and(|a| a as i64 >= GROUP_WAIT_MS.min(RATE_WAIT_MS)))
}

/// The upkeep's look: which of the deepest queues sit at their concurrency limit.
pub async fn sample_limits(store: &dyn Store, observed: &Observed, clock: &dyn Clock, max: usize) {
    match store.queue_overview(max).await {
        Ok(o) => {
            let now = clock.now();
            for (tenant, q) in &o.top {
                if q.settings.concurrency.is_some() {
                    observed.queue_seen(tenant, q, now);
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "flow limits not sampled this time"),
    }
}

fn rate_text(r: Option<Rate>) -> String {
    r.map_or_else(|| "its rate".into(), |r| format!("its rate ({r})"))
}

/// The findings about one queue's flow.
pub fn findings(q: &QueueInfo, f: &QueueFlow, now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let subject = || format!("queue {}", q.name);
    let s = &f.stats;
    if let (Some(since), Some(c)) = (f.at_limit_since, s.concurrency) {
        let ms = now.0 - since.0;
        if ms >= AT_LIMIT_MS {
            out.push(finding(
                "flow_at_concurrency",
                Severity::Warning,
                subject(),
                format!(
                    "at its concurrency limit ({c} running) for {} with {} ready",
                    minutes(ms),
                    q.counts.ready
                ),
                "the queue's concurrency is lower than its work needs, or its running tasks \
                 take long (a stuck task holds its slot until its lease ends)",
                format!(
                    "raise it if what the tasks call allows (rota queue set {} --concurrency \
                     {}), or look at what runs: rota list {} --state running",
                    q.name,
                    c.saturating_mul(2),
                    q.name
                ),
            ));
        }
    }
    let oldest = q.oldest_ready_age_ms.unwrap_or(0) as i64;
    let by_rate = s.held.queue_rate + s.held.group_rate;
    if by_rate > 0 && oldest >= RATE_WAIT_MS {
        let (whose, fix) = if s.held.queue_rate > 0 {
            (
                format!("the queue's {}", rate_text(s.rate)),
                format!(
                    "if the budget allows, raise it: rota queue set {} --rate <LIMIT/PERIOD>; \
                     else the backlog drains at the rate's pace",
                    q.name
                ),
            )
        } else {
            (
                format!(
                    "group rates ({})",
                    q.settings
                        .group_rate
                        .map_or("the groups' own".into(), |r| r.to_string())
                ),
                format!(
                    "raise the groups' rate if the budget allows (rota queue set {} \
                     --group-rate <LIMIT/PERIOD>, or one group's: rota queue group {} <group> \
                     --rate <LIMIT/PERIOD>); else the backlog drains at the rate's pace",
                    q.name, q.name
                ),
            )
        };
        out.push(finding(
            "flow_rate_backlog",
            Severity::Warning,
            subject(),
            format!(
                "{whose} holds back {by_rate} ready tasks; the oldest has waited {}",
                minutes(oldest)
            ),
            "tasks arrive faster than the rate lets them start",
            fix,
        ));
    }
    if let (Some(g), Some(median)) = (&s.longest_waiting_group, s.median_group_wait_ms) {
        let wait = g.oldest_ready_age_ms.unwrap_or(0);
        if wait as i64 >= GROUP_WAIT_MS && wait >= median.saturating_mul(GROUP_WAIT_FACTOR) {
            let (cause, fix) = match g.held_by {
                Some(Hold::Paused) => (
                    "the group is paused".to_owned(),
                    format!(
                        "resume it: rota queue group {} {} --resume",
                        q.name, g.group
                    ),
                ),
                Some(Hold::Concurrency) => (
                    format!("the group is at its concurrency ({} running)", g.running),
                    format!(
                        "raise it: rota queue group {} {} --concurrency <N>, or look at its \
                         running tasks",
                        q.name, g.group
                    ),
                ),
                Some(Hold::Rate) => (
                    format!("the group's {} holds it", rate_text(g.rate)),
                    format!(
                        "raise it if the budget allows: rota queue group {} {} --rate \
                         <LIMIT/PERIOD>",
                        q.name, g.group
                    ),
                ),
                None => (
                    "the group gets too few turns for its tasks, or was held until just now"
                        .to_owned(),
                    format!(
                        "give it a larger weight: rota queue group {} {} --weight <W>",
                        q.name, g.group
                    ),
                ),
            };
            out.push(finding(
                "flow_group_waiting",
                Severity::Warning,
                format!("queue {} group {}", q.name, g.group),
                format!(
                    "its oldest ready task has waited {}, the groups' median {} ({} ready)",
                    minutes(wait as i64),
                    minutes(median as i64),
                    g.ready
                ),
                cause,
                fix,
            ));
        }
    }
    out
}
