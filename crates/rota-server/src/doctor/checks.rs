//! The checks: each turns what was gathered into findings (what was seen, the likely cause, the
//! fix). Pure functions of their inputs, so each situation is easy to build in a test.

use super::flow::QueueFlow;
use super::observed::{ClaimSeen, Refusal, WriterBusy};
use super::{Finding, Severity};
use rota_core::events::EventType;
use rota_core::webhooks::Webhook;
use rota_core::{QueueInfo, Timestamp};
use rota_store::{Diagnosis, Health, QueueActivity, ScheduleRecord};
use std::collections::HashMap;

/// Ready tasks older than this, with no worker asking for as long, are stuck.
pub const STALE_MS: i64 = 60_000;
/// The event window the rates are read from.
pub const WINDOW_MS: i64 = 3_600_000;
/// Leases that ran out in the window before it is a finding (and a tenth of the claims).
pub const LEASES_EXPIRED_MIN: u64 = 3;
/// Failed attempts in the window before the failure share counts, and the share.
pub const FAILURES_MIN: u64 = 10;
pub const FAILURE_SHARE: f64 = 0.5;
/// Refusals of one credential in this window, at least this many.
pub const REFUSALS_WINDOW_MS: i64 = 300_000;
pub const REFUSALS_MIN: usize = 20;
/// A run this far ahead is implausible.
pub const FAR_MS: i64 = 365 * 86_400_000;
/// A health probe slower than this is slow storage.
pub const SLOW_PROBE_MS: u64 = 1_000;
/// A writer busy this share of the last minute is the bottleneck.
pub const WRITER_SATURATED: f64 = 0.9;
/// Seconds of samples needed before the writer is judged.
pub const WRITER_MIN_SPAN_S: f64 = 30.0;
/// A webhook failing this long is a finding before it is disabled.
pub const WEBHOOK_FAILING_MS: i64 = 600_000;
/// Missed ticks this recent are a finding.
pub const MISSED_WINDOW_MS: i64 = 86_400_000;

/// Everything the checks look at, already narrowed to what the caller may see.
pub struct Inputs<'a> {
    pub now: Timestamp,
    pub tenant: &'a str,
    pub queues: &'a [QueueInfo],
    pub activity: &'a Diagnosis,
    /// Requests for work on this server, every tenant's.
    pub claims: &'a [(String, String, ClaimSeen)],
    pub refusals: &'a [Refusal],
    pub webhooks: &'a [Webhook],
    pub schedules: &'a [ScheduleRecord],
    pub health: &'a Health,
    pub health_ms: u64,
    /// Requests that failed in the store lately (any tenant's): how many, and the last.
    pub storage_errors: &'a [Refusal],
    /// The busiest writer's share of the last minute, the seconds sampled, and which writer
    /// (the embedded store's shard) it is (engines with writer threads).
    pub writer_busy: Option<WriterBusy>,
    /// The flow of the queues worth reading ([`super::flow::worth_reading`]), by name.
    pub flows: &'a HashMap<String, QueueFlow>,
}

pub(super) fn finding(
    check: &'static str,
    severity: Severity,
    subject: String,
    seen: String,
    cause: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        check,
        severity,
        subject,
        seen,
        cause: cause.into(),
        fix: fix.into(),
    }
}

fn secs(ms: i64) -> String {
    format!("{} s", ms.max(0) / 1000)
}

/// A wait as people say it: seconds under two minutes, else minutes.
pub(super) fn minutes(ms: i64) -> String {
    if ms < 120_000 {
        secs(ms)
    } else {
        format!("{} min", ms / 60_000)
    }
}

pub fn run(i: &Inputs) -> Vec<Finding> {
    let mut out = Vec::new();
    let none = QueueActivity::default();
    for q in i.queues {
        let a = i.activity.queues.get(&q.name).unwrap_or(&none);
        let flow = i
            .flows
            .get(&q.name)
            .map(|f| super::flow::findings(q, f, i.now))
            .unwrap_or_default();
        // A limit that holds tasks back explains a backlog better than slow workers do.
        let limited = !flow.is_empty();
        out.extend(stalled(i, q, a).filter(|f| !(limited && f.check == "queue_backlog")));
        out.extend(flow);
        out.extend(rates(q, a));
        out.extend(paused_or_far(q, a));
    }
    out.extend(refusals(i));
    out.extend(webhooks(i));
    out.extend(schedules(i));
    out.extend(storage(i.health, i.health_ms, i.storage_errors));
    out.extend(writer_saturated(i.writer_busy));
    out
}

/// Ready tasks waiting, and why no worker takes them.
fn stalled(i: &Inputs, q: &QueueInfo, a: &QueueActivity) -> Option<Finding> {
    let age = q.oldest_ready_age_ms? as i64;
    if q.settings.paused || q.counts.ready == 0 || age < STALE_MS {
        return None;
    }
    let subject = format!("queue {}", q.name);
    let seen = format!(
        "{} ready tasks, the oldest waiting {}",
        q.counts.ready,
        secs(age)
    );
    let asked = q.last_claim_at.map(|t| i.now.0 - t.0);
    let recent = |c: &ClaimSeen| i.now.0 - c.at.0 < STALE_MS;
    let mine = i
        .claims
        .iter()
        .find(|(t, n, c)| t == i.tenant && *n == q.name && recent(c));
    if asked.is_none_or(|ms| ms >= STALE_MS) {
        let elsewhere = i
            .claims
            .iter()
            .find(|(t, n, c)| t != i.tenant && *n == q.name && recent(c));
        let when = match asked {
            None => "no worker has ever asked this queue for work".to_owned(),
            Some(ms) => format!("no worker has asked for {}", secs(ms)),
        };
        return Some(match elsewhere {
            Some((other, _, c)) => finding(
                "queue_stalled",
                Severity::Error,
                subject,
                format!("{seen}; {when}"),
                format!(
                    "a worker ({}) claims `{}` in tenant `{other}` instead: it uses a key of \
                     another tenant",
                    c.by, q.name
                ),
                format!(
                    "give that worker a key of tenant `{}` (rota key create --tenant {} --role \
                     worker)",
                    i.tenant, i.tenant
                ),
            ),
            None => finding(
                "queue_stalled",
                Severity::Error,
                subject,
                format!("{seen}; {when}"),
                "no worker is running for this queue, or workers point at another queue name \
                 or server",
                format!(
                    "start a worker: rota worker {} -- <command>, and check its queue name and \
                     ROTA_URL",
                    q.name
                ),
            ),
        });
    }
    // Workers ask, yet tasks wait.
    if let Some((_, _, c)) = mine {
        let takes = |k: &String| c.kinds.is_empty() || c.kinds.contains(k);
        if !a.ready_kinds.is_empty() && !a.ready_kinds.iter().any(takes) {
            return Some(finding(
                "queue_stalled",
                Severity::Error,
                subject,
                seen,
                format!(
                    "workers ask for kinds [{}] but the ready tasks are [{}]",
                    c.kinds.join(", "),
                    a.ready_kinds.join(", ")
                ),
                "run a worker for those kinds, or fix the kind the producer enqueues",
            ));
        }
    }
    Some(finding(
        "queue_backlog",
        Severity::Warning,
        subject,
        format!("{seen}, while workers ask for work"),
        "the workers cannot keep up",
        "add workers or raise their concurrency",
    ))
}

/// Leases running out, failure share, dead letters growing.
fn rates(q: &QueueInfo, a: &QueueActivity) -> Vec<Finding> {
    let mut out = Vec::new();
    let subject = || format!("queue {}", q.name);
    let expired = a.count(EventType::LeaseExpired);
    let claimed = a.count(EventType::Claimed);
    if expired >= LEASES_EXPIRED_MIN && expired * 10 >= claimed {
        out.push(finding(
            "leases_expiring",
            Severity::Warning,
            subject(),
            format!("{expired} leases ran out in the last hour (of {claimed} claims)"),
            format!(
                "workers stop heartbeating before their lease ({} ms) ends: they crash or are \
                 killed, or the work takes longer than the lease without heartbeats",
                q.settings.lease_ms
            ),
            format!(
                "heartbeat within the lease, or lengthen it (rota queue set {} --lease 5m); \
                 check the workers' logs for crashes",
                q.name
            ),
        ));
    }
    let failed = a.count(EventType::Failed) + a.count(EventType::Dead);
    let attempts = failed + a.count(EventType::Succeeded);
    if failed >= FAILURES_MIN && failed as f64 >= FAILURE_SHARE * attempts as f64 {
        let errors: Vec<String> = a
            .errors
            .iter()
            .map(|(e, n)| format!("{n} × \"{e}\""))
            .collect();
        out.push(finding(
            "failing",
            Severity::Warning,
            subject(),
            format!(
                "{failed} of {attempts} attempts failed in the last hour; most common: {}",
                if errors.is_empty() {
                    "-".to_owned()
                } else {
                    errors.join(", ")
                }
            ),
            "the handlers fail on these tasks (the errors above are what workers reported)",
            format!(
                "fix the cause, then requeue the dead ones: rota dead list {} / rota dead \
                 requeue {} --all",
                q.name, q.name
            ),
        ));
    }
    let dead_now = a.count(EventType::Dead);
    if dead_now > 0 && q.counts.dead > 0 {
        out.push(finding(
            "dead_letters_growing",
            Severity::Warning,
            subject(),
            format!(
                "{dead_now} tasks went to the dead letters in the last hour; {} are there now",
                q.counts.dead
            ),
            "tasks spend their attempts or are failed as dead",
            format!(
                "look at them (rota dead list {}), fix the cause, then rota dead requeue {} \
                 --all, or purge them",
                q.name, q.name
            ),
        ));
    }
    out
}

fn paused_or_far(q: &QueueInfo, a: &QueueActivity) -> Vec<Finding> {
    let mut out = Vec::new();
    let waiting = q.counts.ready + q.counts.scheduled;
    if q.settings.paused && waiting > 0 {
        out.push(finding(
            "paused_with_backlog",
            Severity::Warning,
            format!("queue {}", q.name),
            format!("the queue is paused with {waiting} tasks waiting"),
            "claims get nothing while a queue is paused",
            format!("resume it when ready: rota queue resume {}", q.name),
        ));
    }
    if a.far_scheduled > 0 {
        let latest = a.latest_run_at.map(|t| t.to_string()).unwrap_or_default();
        out.push(finding(
            "scheduled_far_ahead",
            Severity::Warning,
            format!("queue {}", q.name),
            format!(
                "{} tasks are scheduled more than a year ahead, the latest for {latest}",
                a.far_scheduled
            ),
            "a run_at or delay given in the wrong unit (seconds for milliseconds, or \
             milliseconds for seconds), or a wrong year",
            "check how the producer computes run_at / delay_ms; cancel or run-now the tasks \
             (rota task cancel <id>)",
        ));
    }
    out
}

fn refusals(i: &Inputs) -> Vec<Finding> {
    let since = i.now.plus_ms(-REFUSALS_WINDOW_MS);
    let mut by: std::collections::BTreeMap<(&str, u16), Vec<&Refusal>> = Default::default();
    for r in i.refusals.iter().filter(|r| r.at >= since) {
        by.entry((r.credential.as_str(), r.status))
            .or_default()
            .push(r);
    }
    by.into_iter()
        .filter(|(_, rs)| rs.len() >= REFUSALS_MIN)
        .map(|((cred, status), rs)| {
            let last = rs.last().expect("at least REFUSALS_MIN");
            let (cause, fix) = match status {
                401 => (
                    "the credential is wrong, expired or revoked",
                    "give the client a valid key (rota key list shows state and expiry)",
                ),
                403 => (
                    "the credential lacks a permission it uses",
                    "grant the permission named in the message (rota role put), or use a key \
                     with that role",
                ),
                429 => (
                    "the client sends more requests than its rate limit",
                    "slow the client down or raise its limit (rota key create --rate N, rota \
                     tenant limits)",
                ),
                _ => (
                    "the client has too many requests in flight, or the server was unavailable",
                    "lower the client's concurrency or raise --max-in-flight; check rota doctor \
                     for storage findings",
                ),
            };
            finding(
                "credential_refused",
                Severity::Warning,
                cred.to_owned(),
                format!(
                    "{} requests answered {status} in the last 5 minutes; the last: {} ({})",
                    rs.len(),
                    last.message,
                    last.code
                ),
                cause,
                fix,
            )
        })
        .collect()
}

fn webhooks(i: &Inputs) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in i.webhooks {
        if !w.enabled {
            if let Some(reason) = &w.disabled_reason {
                out.push(finding(
                    "webhook_disabled",
                    Severity::Error,
                    format!("webhook {}", w.id),
                    format!("{} was disabled: {reason}", w.url),
                    "the endpoint failed every delivery for three days",
                    format!(
                        "fix the endpoint, then rota webhook enable {} and retry the dead \
                         deliveries (rota webhook deliveries {} --state dead)",
                        w.id, w.id
                    ),
                ));
            }
            continue;
        }
        if let Some(since) = w.failing_since {
            let ms = i.now.0 - since.0;
            if ms >= WEBHOOK_FAILING_MS {
                out.push(finding(
                    "webhook_failing",
                    Severity::Warning,
                    format!("webhook {}", w.id),
                    format!("every delivery to {} failed for {}", w.url, secs(ms)),
                    "the endpoint is down, refuses the requests, or rejects the signature",
                    format!(
                        "see the errors: rota webhook deliveries {} --state failed; it is \
                         disabled after three days",
                        w.id
                    ),
                ));
            }
        }
    }
    out
}

fn schedules(i: &Inputs) -> Vec<Finding> {
    let since = i.now.plus_ms(-MISSED_WINDOW_MS);
    i.schedules
        .iter()
        .filter_map(|s| {
            let missed: Vec<&str> = s
                .runs
                .iter()
                .filter(|r| r.fired_at >= since && r.task_id.is_none())
                .filter_map(|r| r.skipped.as_deref())
                .filter(|why| why.starts_with("missed"))
                .collect();
            let last = missed.first()?;
            Some(finding(
                "schedule_missed_ticks",
                Severity::Warning,
                format!("schedule {}", s.name),
                format!(
                    "{} runs in the last day missed ticks; the latest: {last}",
                    missed.len()
                ),
                "no server ran the scheduler when they were due (down, or in maintenance)",
                "keep a server running; choose catch_up (none, latest, all) for what happens \
                 after downtime",
            ))
        })
        .collect()
}

/// The store's health checks, how long they took, and requests the store failed lately (a disk
/// full for large writes may still take the probe's small one).
pub fn storage(health: &Health, ms: u64, errors: &[Refusal]) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(last) = errors.last() {
        out.push(finding(
            "storage_failing",
            Severity::Error,
            "storage".into(),
            format!(
                "{} requests failed in the store in the last 5 minutes; the last: {}",
                errors.len(),
                last.message
            ),
            "the store cannot commit: a full disk, a lost database connection, or permissions",
            "see the server's log at ERROR for the cause; free space or restore the database",
        ));
    }
    for (name, r) in &health.checks {
        let Err(e) = r else { continue };
        let (check, cause, fix) = if name.contains("schema") {
            (
                "schema_version",
                "the database's schema is not the one this binary expects",
                "run the migrations (rota migrate up) or run the matching Rota version",
            )
        } else {
            (
                "storage_failing",
                "the store cannot commit or read: a full disk, lost database, or permissions",
                "see the server's log at ERROR for the cause; free space or restore the database",
            )
        };
        out.push(finding(
            check,
            Severity::Error,
            name.clone(),
            e.clone(),
            cause,
            fix,
        ));
    }
    if ms > SLOW_PROBE_MS {
        out.push(finding(
            "storage_slow",
            Severity::Warning,
            "storage".into(),
            format!("a health probe (a write on the embedded store) took {ms} ms"),
            "the disk or database is overloaded or slow to sync",
            "check disk latency (iostat) or the database's load; see BENCHMARKS.md for what to \
             expect",
        ));
    }
    out
}

/// One of the embedded store's writers near its limit: writes to its shard queue behind it.
pub fn writer_saturated(busy: Option<WriterBusy>) -> Option<Finding> {
    let WriterBusy { share, span, shard } = busy?;
    (span >= WRITER_MIN_SPAN_S && share >= WRITER_SATURATED).then(|| {
        // Named as readiness names the shard's checks.
        let subject = match shard {
            0 => "storage.writer".to_owned(),
            n => format!("storage.shard{n}.writer"),
        };
        finding(
            "writer_saturated",
            Severity::Warning,
            subject,
            format!(
                "the writer of shard {shard} was busy {:.0} % of the last {span:.0} s",
                share * 100.0
            ),
            "every change to a queue goes through the writer of the shard that holds it; at \
             this load requests wait for it",
            "send work in batches (many tasks per enqueue, claim and complete); spread hot \
             work over several queues, which spread over the shards (storage.shards); or move \
             to PostgreSQL and several servers. BENCHMARKS.md shows what one writer carries",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_busy_most_of_a_minute_is_a_finding() {
        let busy = |share, span, shard| Some(WriterBusy { share, span, shard });
        assert!(writer_saturated(None).is_none());
        assert!(writer_saturated(busy(0.5, 60.0, 0)).is_none());
        assert!(
            writer_saturated(busy(0.95, 10.0, 0)).is_none(),
            "too short to judge"
        );
        let f = writer_saturated(busy(0.94, 60.0, 0)).unwrap();
        assert_eq!(
            (f.check, f.subject.as_str()),
            ("writer_saturated", "storage.writer")
        );
        assert!(f.seen.contains("94 %"), "{}", f.seen);
        let f = writer_saturated(busy(0.97, 60.0, 2)).unwrap();
        assert_eq!(f.subject, "storage.shard2.writer");
        assert!(f.seen.contains("shard 2"), "{}", f.seen);
    }

    #[test]
    fn storage_that_fails_or_is_slow_is_a_finding() {
        let health = Health {
            checks: vec![
                ("storage.writer".into(), Err("disk I/O error: full".into())),
                ("storage.schema".into(), Ok(())),
            ],
        };
        let found = storage(&health, SLOW_PROBE_MS + 500, &[]);
        let checks: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.check, f.subject.as_str()))
            .collect();
        assert_eq!(
            checks,
            [
                ("storage_failing", "storage.writer"),
                ("storage_slow", "storage")
            ]
        );
        assert_eq!(found[0].seen, "disk I/O error: full");
        assert!(found[1].seen.contains("1500 ms"));
        let fine = Health {
            checks: vec![("storage.writer".into(), Ok(()))],
        };
        assert!(storage(&fine, 3, &[]).is_empty());
    }
}
