//! Schedules: a task enqueued on every tick of a cron expression (in an IANA time zone) or of a
//! fixed interval. What a schedule is, when it ticks, and which ticks to fire after a pause or
//! downtime ([`plan`]); storing them and firing each tick exactly once is the engines' and the
//! server's part.
//!
//! Cron expressions are parsed by `croner` (five fields, or six with seconds first), evaluated
//! in the schedule's time zone by `chrono-tz`: across a daylight-saving gap a fixed-time entry
//! runs at the first valid time after the gap, across an overlap once, at its first occurrence;
//! an interval entry (`*/15 * * * *`) skips times inside a gap and runs in both copies of a
//! repeated hour.

use crate::{Json, NewTask, Timestamp};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use serde::{Deserialize, Serialize};

/// A tick counts as on time (fired even with `catch_up: none`) when it is the latest due tick
/// and at most this late.
pub const ON_TIME_MS: i64 = 60_000;
/// The most missed ticks `catch_up: all` fires at once (the latest ones).
pub const MAX_CATCH_UP: usize = 100;
/// Ticks looked at in one plan; past this a long downtime's missed ticks are counted as "at
/// least" this many.
const MAX_SCAN: usize = 10_000;
/// The shortest `every_ms`.
pub const MIN_EVERY_MS: u64 = 1_000;
/// Runs each schedule remembers.
pub const KEPT_RUNS: usize = 20;

/// Whether a tick fires while the previous tick's task is still live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    #[default]
    Allow,
    Skip,
}

/// Which missed ticks fire after the server was down (or the schedule paused).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// None: the next tick after now is the next run.
    None,
    /// Only the latest missed tick.
    #[default]
    Latest,
    /// Every missed tick, the latest [`MAX_CATCH_UP`] of them.
    All,
}

/// A schedule's definition, as stored (`PUT /v1/schedules/{name}` in full).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleSpec {
    pub queue: String,
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub payload: Option<Json>,
    pub priority: i32,
    pub max_attempts: Option<u32>,
    /// Five fields (minute first) or six (second first).
    pub cron: Option<String>,
    pub every_ms: Option<u64>,
    /// IANA name; cron ticks are local times there.
    pub timezone: String,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
    /// Each task's `run_at` is its tick plus up to this much, the same for a tick every time.
    pub jitter_ms: u64,
    pub paused: bool,
    /// The flow-control group of the tasks it enqueues (one mirror per upstream, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// One fired (or skipped) tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleRun {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub tick: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub fired_at: Timestamp,
    /// The task it enqueued; none when skipped.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub task_id: Option<crate::TaskId>,
    /// `manual` for a trigger, else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// Why the tick enqueued nothing (`overlap`: the previous run was live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// When a schedule ticks.
#[derive(Debug, Clone)]
pub enum Timing {
    Cron(Box<Cron>, Tz),
    Every(u64),
}

impl ScheduleSpec {
    /// The timing, or what is wrong with the definition (naming the field).
    pub fn timing(&self) -> Result<Timing, String> {
        match (&self.cron, self.every_ms) {
            (Some(_), Some(_)) => Err("give either cron or every_ms, not both".into()),
            (None, None) => Err("give cron (e.g. \"0 3 * * *\") or every_ms".into()),
            (None, Some(ms)) if ms < MIN_EVERY_MS => Err(format!(
                "every_ms is {ms}; the shortest interval is {MIN_EVERY_MS}"
            )),
            (None, Some(ms)) => {
                if self.timezone != "UTC" {
                    return Err("timezone applies to cron schedules only".into());
                }
                Ok(Timing::Every(ms))
            }
            (Some(expr), None) => {
                let tz: Tz = self.timezone.parse().map_err(|_| {
                    format!(
                        "timezone: `{}` is not an IANA time zone such as Europe/Berlin or UTC",
                        self.timezone
                    )
                })?;
                let cron = CronParser::builder()
                    .seconds(Seconds::Optional)
                    .build()
                    .parse(expr)
                    .map_err(|e| format!("cron: `{expr}` is not a cron expression: {e}"))?;
                Ok(Timing::Cron(Box::new(cron), tz))
            }
        }
    }

    /// The task a tick enqueues: its unique key is the tick, so a tick enqueues at most one
    /// live task whoever fires it.
    pub fn task(&self, name: &str, tick: Timestamp) -> NewTask {
        NewTask {
            kind: self.kind.clone(),
            payload: self.payload.clone().unwrap_or_else(crate::json_null),
            priority: self.priority,
            run_at: Some(tick.plus_ms(jitter(name, tick, self.jitter_ms))),
            max_attempts: self.max_attempts,
            unique_key: Some(tick_key(name, tick)),
            on_duplicate: Default::default(),
            tags: vec![format!("schedule:{name}")],
            callback_url: None,
            group: self.group.clone(),
            depends_on: Vec::new(),
            on_dependency_failure: Default::default(),
            workflow: None,
            traceparent: None,
            tracestate: None,
        }
    }
}

/// `schedule:<name>:<tick in ms>`.
pub fn tick_key(name: &str, tick: Timestamp) -> String {
    format!("schedule:{name}:{}", tick.0)
}

/// The same offset in `0..=max` for the same schedule and tick, spread over ticks.
fn jitter(name: &str, tick: Timestamp, max: u64) -> i64 {
    if max == 0 {
        return 0;
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (name, tick.0).hash(&mut h);
    (h.finish() % (max + 1)) as i64
}

impl Timing {
    /// The first tick strictly after `t`, if the expression ever matches again.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Timing::Every(ms) => {
                let ms = *ms as i64;
                Some(Timestamp((t.0.div_euclid(ms) + 1) * ms))
            }
            Timing::Cron(cron, tz) => {
                let at: DateTime<Utc> = DateTime::from_timestamp_millis(t.0)?;
                let local = at.with_timezone(tz);
                let next = cron.find_next_occurrence(&local, false).ok()?;
                Some(Timestamp(next.with_timezone(&Utc).timestamp_millis()))
            }
        }
    }
}

/// What to do now for a schedule whose next tick was `next_run_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Ticks to fire, oldest first.
    pub fire: Vec<Timestamp>,
    /// Due ticks not fired (at least this many after a very long downtime).
    pub missed: usize,
    /// The next tick after now.
    pub next: Option<Timestamp>,
}

/// The ticks due by `now` since `next_run_at`, and which of them to fire by `catch_up`.
pub fn plan(timing: &Timing, catch_up: CatchUp, next_run_at: Timestamp, now: Timestamp) -> Plan {
    let mut due = Vec::new();
    let mut tick = Some(next_run_at);
    let mut skipped = 0usize;
    while let Some(t) = tick.filter(|t| *t <= now) {
        if due.len() == MAX_SCAN {
            // Keep the count bounded: remember how many were passed over.
            skipped += due.len() - MAX_CATCH_UP;
            due.drain(..due.len() - MAX_CATCH_UP);
        }
        due.push(t);
        tick = timing.next_after(t);
        if skipped > MAX_SCAN * 10 {
            break;
        }
    }
    let next = match tick {
        Some(t) if t > now => Some(t),
        _ => timing.next_after(now),
    };
    let Some(&last) = due.last() else {
        return Plan {
            fire: vec![],
            missed: 0,
            next,
        };
    };
    let fire: Vec<Timestamp> = match catch_up {
        CatchUp::None if now.0 - last.0 <= ON_TIME_MS => vec![last],
        CatchUp::None => vec![],
        CatchUp::Latest => vec![last],
        CatchUp::All => due[due.len().saturating_sub(MAX_CATCH_UP)..].to_vec(),
    };
    Plan {
        missed: skipped + due.len() - fire.len(),
        fire,
        next,
    }
}

/// Converts local wall-clock fields to a timestamp in `tz` (for tests and examples); the
/// earlier instant when the time occurs twice.
pub fn local(tz: &str, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Option<Timestamp> {
    let tz: Tz = tz.parse().ok()?;
    let t = tz.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest()?;
    Some(Timestamp(t.with_timezone(&Utc).timestamp_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cron: Option<&str>, every: Option<u64>, tz: &str) -> ScheduleSpec {
        ScheduleSpec {
            queue: "q".into(),
            kind: "k".into(),
            payload: None,
            priority: 0,
            max_attempts: None,
            cron: cron.map(str::to_owned),
            every_ms: every,
            timezone: tz.into(),
            overlap: Overlap::Allow,
            catch_up: CatchUp::Latest,
            jitter_ms: 0,
            paused: false,
            group: None,
        }
    }

    fn utc(h: u32, mi: u32) -> Timestamp {
        local("UTC", 2026, 6, 1, h, mi).unwrap()
    }

    #[test]
    fn definitions_are_checked_with_messages_naming_the_field() {
        let e = spec(Some("61 * * * *"), None, "UTC").timing().unwrap_err();
        assert!(e.starts_with("cron: `61 * * * *`"), "{e}");
        let e = spec(Some("0 3 * * *"), None, "Mars/Base")
            .timing()
            .unwrap_err();
        assert!(e.contains("IANA"), "{e}");
        assert!(spec(None, None, "UTC").timing().is_err());
        assert!(spec(Some("* * * * *"), Some(1000), "UTC").timing().is_err());
        assert!(spec(None, Some(999), "UTC").timing().is_err());
        assert!(spec(Some("*/10 * * * * *"), None, "UTC").timing().is_ok());
    }

    #[test]
    fn cron_ticks_follow_local_time_across_daylight_saving() {
        // Europe/Berlin: 2026-03-29 02:00 -> 03:00; 2026-10-25 03:00 -> 02:00.
        let t = spec(Some("30 2 * * *"), None, "Europe/Berlin")
            .timing()
            .unwrap();
        let before = local("Europe/Berlin", 2026, 3, 28, 12, 0).unwrap();
        let first = t.next_after(before).unwrap();
        assert_eq!(first, local("Europe/Berlin", 2026, 3, 29, 3, 0).unwrap());
        let second = t.next_after(first).unwrap();
        assert_eq!(second, local("Europe/Berlin", 2026, 3, 30, 2, 30).unwrap());
        // Fall back: 02:30 happens twice; the daily entry runs once.
        let before = local("Europe/Berlin", 2026, 10, 24, 12, 0).unwrap();
        let once = t.next_after(before).unwrap();
        assert_eq!(once, local("Europe/Berlin", 2026, 10, 25, 2, 30).unwrap());
        let after = t.next_after(once).unwrap();
        assert_eq!(after, local("Europe/Berlin", 2026, 10, 26, 2, 30).unwrap());
        // Daily 09:00 local is 07:00 UTC in summer and 08:00 UTC in winter.
        let nine = spec(Some("0 9 * * *"), None, "Europe/Berlin")
            .timing()
            .unwrap();
        let summer = nine
            .next_after(local("UTC", 2026, 7, 1, 0, 0).unwrap())
            .unwrap();
        assert_eq!(summer, local("UTC", 2026, 7, 1, 7, 0).unwrap());
        let winter = nine
            .next_after(local("UTC", 2026, 12, 1, 0, 0).unwrap())
            .unwrap();
        assert_eq!(winter, local("UTC", 2026, 12, 1, 8, 0).unwrap());
    }

    #[test]
    fn every_ms_ticks_on_multiples_of_the_interval() {
        let t = Timing::Every(60_000);
        assert_eq!(t.next_after(Timestamp(59_999)), Some(Timestamp(60_000)));
        assert_eq!(t.next_after(Timestamp(60_000)), Some(Timestamp(120_000)));
    }

    #[test]
    fn catch_up_decides_which_missed_ticks_fire() {
        let hourly = spec(Some("0 * * * *"), None, "UTC").timing().unwrap();
        let next = utc(1, 0);
        let now = utc(5, 30); // ticks 1:00..5:00 are due, 5:00 is 30 min late
        let all = plan(&hourly, CatchUp::All, next, now);
        assert_eq!(
            all.fire,
            [utc(1, 0), utc(2, 0), utc(3, 0), utc(4, 0), utc(5, 0)]
        );
        assert_eq!((all.missed, all.next), (0, Some(utc(6, 0))));
        let latest = plan(&hourly, CatchUp::Latest, next, now);
        assert_eq!((latest.fire, latest.missed), (vec![utc(5, 0)], 4));
        let none = plan(&hourly, CatchUp::None, next, now);
        assert_eq!((none.fire.len(), none.missed), (0, 5));
        // On time (within a minute) fires even with none.
        let on_time = plan(&hourly, CatchUp::None, utc(5, 0), utc(5, 0));
        assert_eq!(on_time.fire, [utc(5, 0)]);
        // Nothing due yet.
        let early = plan(&hourly, CatchUp::All, utc(6, 0), now);
        assert_eq!((early.fire.len(), early.next), (0, Some(utc(6, 0))));
        // A long downtime fires at most MAX_CATCH_UP and counts the rest.
        let secs = Timing::Every(1_000);
        let long = plan(&secs, CatchUp::All, Timestamp(1_000), Timestamp(50_000_000));
        assert_eq!(long.fire.len(), MAX_CATCH_UP);
        assert_eq!(long.fire.last(), Some(&Timestamp(50_000_000)));
        assert!(long.missed >= 10_000, "{}", long.missed);
    }

    #[test]
    fn a_tick_task_has_the_tick_as_unique_key_and_a_stable_jitter() {
        let mut s = spec(Some("* * * * *"), None, "UTC");
        s.jitter_ms = 5_000;
        let a = s.task("nightly", utc(3, 0));
        let b = s.task("nightly", utc(3, 0));
        assert_eq!(
            a.unique_key.as_deref(),
            Some("schedule:nightly:1780282800000")
        );
        assert_eq!(a.run_at, b.run_at);
        let off = a.run_at.unwrap().0 - utc(3, 0).0;
        assert!((0..=5_000).contains(&off));
    }
}
