//! Flow control: how many tasks of a queue (or of one group in it) may run at once, how fast
//! they may start, and in which order groups take turns. Pure rules; the engines store the
//! state (running counts are counted from rows, a rate's state is one number) and apply them
//! inside the claim's transaction, so a limit is a fact of the store and not a server's share.
//!
//! **Rates are GCRA with a burst.** A rate says "at most `limit` starts in any window of
//! `period_ms`". A sliding log would hold that exactly but keeps `limit` timestamps per key
//! (5,000 per GitHub token); a sliding-window counter keeps two numbers but only approximates the
//! window and can pass it. GCRA (the generic cell rate algorithm, as in `redis-cell`) keeps one
//! number, the theoretical arrival time (TAT), and with emission interval
//! `T = period / (limit − burst + 1)` and tolerance `τ = (burst − 1)·T` no window of `period_ms`
//! ever holds more than `limit` starts: at most `burst` at once, then one every `T`. With
//! `burst` 1 (the default) starts are spaced evenly, `limit` per period; a larger burst buys
//! starts at once with a slower pace after them. TATs are kept in microseconds and `T` rounded
//! up, so rounding can only make a limit stricter.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// At most `limit` tasks started in any window of `period_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rate {
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub limit: u32,
    /// The window, in milliseconds (at most a day).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86_400_000_u64))]
    pub period_ms: u64,
    /// How many may start at once (1 to `limit`); the pace after a burst is
    /// `limit − burst + 1` per period, so no window holds more than `limit`. Default 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub burst: u32,
}

fn one() -> u32 {
    1
}
fn is_one(v: &u32) -> bool {
    *v == 1
}

/// Longest rate period: a day (GitHub's budgets are per hour; a day covers daily quotas).
pub const MAX_RATE_PERIOD_MS: u64 = 24 * 3_600_000;
/// Largest `limit` of a rate, and of a concurrency.
pub const MAX_LIMIT: u32 = 1_000_000;
/// Largest group weight: a group takes up to `weight` tasks per turn.
pub const MAX_WEIGHT: u32 = 1_000;

impl Rate {
    pub fn check(&self, at: &str) -> Result<(), String> {
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(format!(
                "{at}.limit is {}; use 1 to {MAX_LIMIT} (pause the queue or group to stop it)",
                self.limit
            ));
        }
        if self.period_ms == 0 || self.period_ms > MAX_RATE_PERIOD_MS {
            return Err(format!(
                "{at}.period_ms is {}; use 1 to {MAX_RATE_PERIOD_MS} (a day)",
                self.period_ms
            ));
        }
        if self.burst == 0 || self.burst > self.limit {
            return Err(format!(
                "{at}.burst is {}; use 1 to limit ({})",
                self.burst, self.limit
            ));
        }
        Ok(())
    }

    /// `T` in microseconds, rounded up.
    pub fn interval_us(&self) -> i64 {
        let n = (self.limit - self.burst + 1) as u128;
        let p = self.period_ms as u128 * 1_000;
        p.div_ceil(n).min(i64::MAX as u128) as i64
    }

    fn tolerance_us(&self) -> i64 {
        self.interval_us().saturating_mul(self.burst as i64 - 1)
    }

    /// Whether one more start is allowed at `now` for a key whose TAT is `tat_us`; if so, the
    /// TAT after it.
    ///
    /// Clocks here count whole milliseconds, so a start is given the earliest µs of its
    /// millisecond at which GCRA lets it conform: it conforms if that is no later than the
    /// ms's last µs. That is GCRA exactly, on arrival times each inside its real millisecond,
    /// so its bound holds for windows of whole ms; and a rate faster than 1,000/s is not cut
    /// to one start per ms (5,000/s starts 5 in each ms).
    pub fn take(&self, tat_us: i64, now: Timestamp) -> Option<i64> {
        let first_us = now.0.saturating_mul(1_000);
        if tat_us.saturating_sub(self.tolerance_us()) > first_us.saturating_add(999) {
            return None;
        }
        Some(tat_us.max(first_us).saturating_add(self.interval_us()))
    }

    /// When a key whose TAT is `tat_us` may start its next task (the first ms whose last µs
    /// is late enough).
    pub fn next_at(&self, tat_us: i64) -> Timestamp {
        let us = tat_us
            .saturating_sub(self.tolerance_us())
            .saturating_sub(999);
        Timestamp(us.div_euclid(1_000) + i64::from(us.rem_euclid(1_000) != 0))
    }
}

/// Units of a rate's period as written (`100/1s`), largest first.
const PERIOD_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// A rate as people write it: `LIMIT/PERIOD` with an optional `,burst=B`, the period a number
/// and a unit (`ms`, `s`, `m`, `h`, `d`; a bare unit is one of it): `100/1s`, `5000/1h`,
/// `10/1s,burst=10`. What the CLI and the dashboard take and show.
impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Rate, String> {
        let text = text.trim();
        let bad = |why: String| {
            format!("rate `{text}`: {why}; write LIMIT/PERIOD such as 100/1s or 5000/1h (units ms, s, m, h, d), with ,burst=B to let B start at once")
        };
        let (rate, burst) = match text.split_once(',') {
            Some((r, b)) => {
                let b = b.trim();
                let n = b
                    .strip_prefix("burst=")
                    .ok_or_else(|| bad(format!("`{b}` is not burst=B")))?;
                let n = n
                    .parse::<u32>()
                    .map_err(|_| bad(format!("burst `{n}` is not a whole number")))?;
                (r, n)
            }
            None => (text, 1),
        };
        let (limit, period) = rate
            .split_once('/')
            .ok_or_else(|| bad("no `/` between the limit and the period".into()))?;
        let limit = limit
            .trim()
            .parse::<u32>()
            .map_err(|_| bad(format!("limit `{}` is not a whole number", limit.trim())))?;
        let period = period.trim();
        let digits = period
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(period.len());
        let (count, unit) = period.split_at(digits);
        let ms = PERIOD_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, ms)| *ms)
            .ok_or_else(|| bad(format!("period `{period}` needs a unit: ms, s, m, h or d")))?;
        let count = if count.is_empty() {
            1
        } else {
            count
                .parse::<u64>()
                .map_err(|_| bad(format!("period `{period}` is too long")))?
        };
        let r = Rate {
            limit,
            period_ms: count.saturating_mul(ms),
            burst,
        };
        r.check("rate").map_err(bad)?;
        Ok(r)
    }
}

/// `100/1s`, `5000/1h`, `10/1s,burst=10`: the period in the largest unit that divides it.
impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (unit, ms) = PERIOD_UNITS
            .iter()
            .find(|(_, ms)| self.period_ms.is_multiple_of(*ms))
            .copied()
            .unwrap_or(("ms", 1));
        write!(f, "{}/{}{unit}", self.limit, self.period_ms / ms)?;
        if self.burst != 1 {
            write!(f, ",burst={}", self.burst)?;
        }
        Ok(())
    }
}

/// One group's own settings (`PUT /v1/queues/{queue}/groups/{group}`); what it leaves out is
/// the queue's `group_concurrency` / `group_rate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// At most this many of the group's tasks running at once, instead of the queue's
    /// `group_concurrency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub concurrency: Option<u32>,
    /// The group's rate, instead of the queue's `group_rate`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::objects::optional_object"
    )]
    pub rate: Option<Rate>,
    /// The group's ready tasks wait; its running ones finish.
    #[serde(default)]
    pub paused: bool,
    /// Tasks the group takes per turn of the round-robin (1 to 1,000).
    #[serde(default = "one")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000))]
    pub weight: u32,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            concurrency: None,
            rate: None,
            paused: false,
            weight: 1,
        }
    }
}

impl GroupSettings {
    pub fn check(&self) -> Result<(), String> {
        check_concurrency("concurrency", self.concurrency)?;
        if let Some(r) = &self.rate {
            r.check("rate")?;
        }
        if self.weight == 0 || self.weight > MAX_WEIGHT {
            return Err(format!("weight is {}; use 1 to {MAX_WEIGHT}", self.weight));
        }
        Ok(())
    }
    /// Whether these are just the defaults (the group needs no row of its own for them).
    pub fn is_default(&self) -> bool {
        *self == GroupSettings::default()
    }
}

pub fn check_concurrency(at: &str, c: Option<u32>) -> Result<(), String> {
    match c {
        Some(0) => Err(format!(
            "{at} is 0; use 1 to {MAX_LIMIT}, or pause to stop claims"
        )),
        Some(n) if n > MAX_LIMIT => Err(format!("{at} is {n}; use 1 to {MAX_LIMIT}")),
        _ => Ok(()),
    }
}

/// The limits that apply to one group: its own settings over the queue's defaults. Tasks with
/// no group are not limited per group (only by the queue's limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    pub concurrency: Option<u32>,
    pub rate: Option<Rate>,
    pub paused: bool,
    pub weight: u32,
}

impl GroupLimits {
    pub fn of(own: Option<&GroupSettings>, q: &crate::QueueSettings) -> Self {
        GroupLimits {
            concurrency: own.and_then(|g| g.concurrency).or(q.group_concurrency),
            rate: own.and_then(|g| g.rate).or(q.group_rate),
            paused: own.is_some_and(|g| g.paused),
            weight: own.map_or(1, |g| g.weight.max(1)),
        }
    }
    /// For the tasks with no group: only a place in the round-robin.
    pub const UNGROUPED: GroupLimits = GroupLimits {
        concurrency: None,
        rate: None,
        paused: false,
        weight: 1,
    };
}

/// Why a group (or the queue) gives no task now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    Paused,
    Concurrency,
    Rate,
}

/// A group as `GET /v1/queues/{queue}/groups` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupInfo {
    pub group: String,
    pub ready: u64,
    pub running: u64,
    /// The group's own settings (what it leaves out is the queue's).
    pub settings: GroupSettings,
    /// The limits in force (own over the queue's).
    pub concurrency: Option<u32>,
    pub rate: Option<Rate>,
    /// What holds the group's ready tasks back now, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<Hold>,
    /// When its rate lets the next task start, while its rate holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_start_at: Option<Timestamp>,
    /// How long its oldest ready task has waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_ready_age_ms: Option<u64>,
}

/// A page of a queue's groups, by name (`GET /v1/queues/{queue}/groups`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupPage {
    pub groups: Vec<GroupInfo>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<String>,
}

/// What the store read of one group, for [`GroupInfo::new`].
#[derive(Debug, Clone, Default)]
pub struct GroupRow {
    /// Its own settings, if it has any.
    pub own: Option<GroupSettings>,
    /// Its rate's TAT (µs; 0 when none was stored).
    pub tat_us: i64,
    pub ready: u64,
    pub running: u64,
    /// When its oldest ready task was created.
    pub oldest_ready_created: Option<Timestamp>,
}

impl GroupInfo {
    /// The group as it stands at `now`: the limits in force (its own over the queue's) and
    /// what holds its ready tasks back, checked in the order a claim checks them.
    pub fn new(name: &str, row: GroupRow, queue: &crate::QueueSettings, now: Timestamp) -> Self {
        let limits = GroupLimits::of(row.own.as_ref(), queue);
        let rate_next = limits
            .rate
            .filter(|r| r.take(row.tat_us, now).is_none())
            .map(|r| r.next_at(row.tat_us));
        let held_by = if row.ready == 0 {
            None
        } else if limits.paused {
            Some(Hold::Paused)
        } else if limits
            .concurrency
            .is_some_and(|c| row.running >= u64::from(c))
        {
            Some(Hold::Concurrency)
        } else if rate_next.is_some() {
            Some(Hold::Rate)
        } else {
            None
        };
        GroupInfo {
            group: name.to_owned(),
            ready: row.ready,
            running: row.running,
            settings: row.own.unwrap_or_default(),
            concurrency: limits.concurrency,
            rate: limits.rate,
            held_by,
            next_start_at: rate_next.filter(|_| row.ready > 0),
            oldest_ready_age_ms: row
                .oldest_ready_created
                .map(|c| (now.0 - c.0).max(0) as u64),
        }
    }
}

/// Where a queue's round-robin stands: the group served last (`None` before the first) and
/// how many tasks it took in its current turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Turn {
    pub group: Option<String>,
    pub taken: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays starts at the times `take` allows and checks no window of `period` holds more
    /// than `limit`.
    fn most_in_any_window(rate: Rate, asks_ms: &[i64]) -> (usize, usize) {
        let mut tat = 0i64;
        let mut starts = Vec::new();
        for &t in asks_ms {
            if let Some(next) = rate.take(tat, Timestamp(t)) {
                tat = next;
                starts.push(t);
            }
        }
        let p = rate.period_ms as i64;
        let most = (0..starts.len())
            .map(|i| {
                starts[i..]
                    .iter()
                    .take_while(|&&s| s < starts[i] + p)
                    .count()
            })
            .max()
            .unwrap_or(0);
        (most, starts.len())
    }

    #[test]
    fn no_window_holds_more_than_the_limit() {
        // Asking every millisecond (many times per ms) for 10 s.
        let asks: Vec<i64> = (0..10_000).flat_map(|t| [t; 8]).collect();
        for (limit, period, burst) in [
            (100, 1_000, 1),
            (3, 1_000, 1),
            (7, 1_000, 7),
            (10, 333, 4),
            (5_000, 1_000, 1),
            (2_000, 1_000, 10),
            (3, 2, 1),
        ] {
            let r = Rate {
                limit,
                period_ms: period,
                burst,
            };
            let (most, total) = most_in_any_window(r, &asks);
            assert!(most <= limit as usize, "{r:?}: {most} in one window");
            // And it is not stingier than its pace: about (limit − burst + 1) per period.
            let pace = (limit - burst + 1) as f64 * 10_000.0 / period as f64;
            assert!(total as f64 >= pace * 0.98, "{r:?}: only {total} started");
        }
    }

    #[test]
    fn a_rate_faster_than_the_clock_is_not_cut_to_one_per_ms() {
        let r = Rate {
            limit: 5_000,
            period_ms: 1_000,
            burst: 1,
        };
        let mut tat = 0;
        let mut started = 0;
        for ms in 0..1_000 {
            while let Some(next) = r.take(tat, Timestamp(10_000 + ms)) {
                tat = next;
                started += 1;
            }
            assert!(r.next_at(tat) > Timestamp(10_000 + ms));
            assert!(r.take(tat, r.next_at(tat)).is_some());
        }
        assert!(
            (4_990..=5_000).contains(&started),
            "{started} started in a second"
        );
    }

    #[test]
    fn a_burst_starts_at_once_then_paces() {
        let r = Rate {
            limit: 5,
            period_ms: 1_000,
            burst: 5,
        };
        let mut tat = 0;
        for _ in 0..5 {
            tat = r.take(tat, Timestamp(10_000)).expect("within the burst");
        }
        assert_eq!(r.take(tat, Timestamp(10_000)), None);
        assert_eq!(r.next_at(tat), Timestamp(11_000));
        assert!(r.take(tat, Timestamp(11_000)).is_some());
    }

    #[test]
    fn rates_are_written_and_read_as_limit_per_period() {
        for (text, limit, period_ms, burst) in [
            ("100/1s", 100, 1_000, 1),
            ("5000/1h", 5_000, 3_600_000, 1),
            ("5000/h", 5_000, 3_600_000, 1),
            ("10/1s,burst=10", 10, 1_000, 10),
            ("3/250ms", 3, 250, 1),
            ("7/90s", 7, 90_000, 1),
            ("1/1d", 1, 86_400_000, 1),
        ] {
            let r: Rate = text.parse().unwrap();
            assert_eq!(
                (r.limit, r.period_ms, r.burst),
                (limit, period_ms, burst),
                "{text}"
            );
            assert_eq!(
                r.to_string().parse::<Rate>().unwrap(),
                r,
                "{text} round trips"
            );
        }
        assert_eq!("5000/h".parse::<Rate>().unwrap().to_string(), "5000/1h");
        assert_eq!("7/90s".parse::<Rate>().unwrap().to_string(), "7/90s");
        for (bad, why) in [
            ("100", "no `/`"),
            ("x/1s", "limit `x`"),
            ("100/1w", "needs a unit"),
            ("100/10", "needs a unit"),
            ("0/1s", "rate.limit is 0"),
            ("100/2d", "a day"),
            ("5/1s,burst=6", "burst"),
            ("5/1s,b=2", "burst=B"),
        ] {
            let e = bad.parse::<Rate>().unwrap_err();
            assert!(e.contains(why) && e.contains("LIMIT/PERIOD"), "{bad}: {e}");
        }
    }

    #[test]
    fn rates_are_checked() {
        let bad = Rate {
            limit: 0,
            period_ms: 1_000,
            burst: 1,
        };
        assert!(bad.check("rate").unwrap_err().contains("rate.limit"));
        let bad = Rate {
            limit: 3,
            period_ms: 1_000,
            burst: 4,
        };
        assert!(bad.check("rate").unwrap_err().contains("burst"));
    }
}
