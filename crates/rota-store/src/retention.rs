//! Event retention per tenant: which events an engine's maintenance trims, decided once for
//! every engine.
//!
//! The log is one table in cursor order, and events of a tenant are not indexed apart (an index
//! would cost every transition a second B-tree insert). So each retention in use (the server's
//! default and each tenant's own) is a *group* that walks the log from a mark: it reads the rows
//! after its mark, oldest first, deletes those of its own tenants, and moves the mark past every
//! row it judged, stopping at the first row younger than its cutoff. Rows of other groups that
//! it passes are theirs to trim, and each group passes a row once, so a tenant that keeps events
//! a month beside a default of a week costs no rescans. Marks live in memory and start again
//! from the head every [`RESCAN_MS`], which also catches rows a group passed before their tenant
//! joined it (a changed retention) and, on PostgreSQL, rows committed below a mark after it moved.

use crate::DEFAULT_EVENT_RETENTION_MS;
use rota_core::Timestamp;
use std::collections::HashMap;

/// How often every group starts again from the head of the log.
pub const RESCAN_MS: i64 = 3_600_000;

/// How long events are kept: the server's default and tenants' own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRetention {
    pub default_ms: u64,
    pub tenants: HashMap<String, u64>,
}

impl Default for EventRetention {
    fn default() -> Self {
        EventRetention {
            default_ms: DEFAULT_EVENT_RETENTION_MS,
            tenants: HashMap::new(),
        }
    }
}

impl EventRetention {
    pub fn of(&self, tenant: &str) -> u64 {
        self.tenants.get(tenant).copied().unwrap_or(self.default_ms)
    }

    /// Each retention in use, once.
    fn groups(&self) -> Vec<u64> {
        let mut g: Vec<u64> = self.tenants.values().copied().collect();
        g.push(self.default_ms);
        g.sort_unstable();
        g.dedup();
        g
    }
}

/// A row of the log as the trim reads it. `tenant` is `None` for a row whose queue is gone,
/// which the default retention judges.
#[derive(Debug, Clone)]
pub struct TrimRow {
    pub cursor: i64,
    pub at: Timestamp,
    pub tenant: Option<String>,
}

/// One group's scan in a maintenance pass: read the rows after `after` in cursor order that are
/// older than `cutoff` (stopping at the first younger one where the engine reads in cursor
/// order), at most a chunk, then [`TrimMarks::judge`] them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrimStep {
    pub retention_ms: u64,
    pub after: i64,
    pub cutoff: Timestamp,
}

/// What a judged chunk came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Cursors to delete.
    pub delete: Vec<i64>,
    /// The chunk was read to its end without reaching the cutoff: more may be due.
    pub more: bool,
}

/// Where each group's walk has got to.
#[derive(Debug, Default)]
pub struct TrimMarks {
    marks: HashMap<u64, i64>,
    started: Option<Timestamp>,
}

impl TrimMarks {
    /// The scans of this pass: one per retention in use, each after its mark.
    pub fn steps(&mut self, retention: &EventRetention, now: Timestamp) -> Vec<TrimStep> {
        if self
            .started
            .is_none_or(|s| now.0 - s.0 >= RESCAN_MS || now < s)
        {
            self.marks.clear();
            self.started = Some(now);
        }
        let groups = retention.groups();
        self.marks.retain(|g, _| groups.contains(g));
        groups
            .into_iter()
            .map(|g| TrimStep {
                retention_ms: g,
                after: self.marks.get(&g).copied().unwrap_or(0),
                cutoff: now.plus_ms(-(g.min(i64::MAX as u64) as i64)),
            })
            .collect()
    }

    /// Judges the rows read for `step` (`full` when the read stopped at its chunk, not at the
    /// cutoff or the end of the log): the rows of its own tenants go, and the mark moves past
    /// every row judged.
    pub fn judge(
        &mut self,
        retention: &EventRetention,
        step: TrimStep,
        rows: &[TrimRow],
        full: bool,
    ) -> Trimmed {
        let mut out = Trimmed::default();
        let mut mark = step.after;
        let mut reached_cutoff = false;
        for r in rows {
            if r.at >= step.cutoff {
                reached_cutoff = true;
                break;
            }
            let ms = r
                .tenant
                .as_deref()
                .map_or(retention.default_ms, |t| retention.of(t));
            if ms == step.retention_ms {
                out.delete.push(r.cursor);
            }
            mark = r.cursor;
        }
        self.marks.insert(step.retention_ms, mark);
        out.more = full && !reached_cutoff;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn row(cursor: i64, at: i64, tenant: &str) -> TrimRow {
        TrimRow {
            cursor,
            at: Timestamp(at),
            tenant: Some(tenant.into()),
        }
    }

    /// Runs passes over `log` until nothing more is due, as an engine would.
    fn trim(marks: &mut TrimMarks, r: &EventRetention, log: &mut Vec<TrimRow>, now: i64) {
        let now = Timestamp(now);
        loop {
            let mut more = false;
            for step in marks.steps(r, now) {
                let rows: Vec<TrimRow> = log
                    .iter()
                    .filter(|x| x.cursor > step.after)
                    .take_while(|x| x.at < step.cutoff)
                    .take(2)
                    .cloned()
                    .collect();
                let t = marks.judge(r, step, &rows, rows.len() == 2);
                log.retain(|x| !t.delete.contains(&x.cursor));
                more |= t.more;
            }
            if !more {
                return;
            }
        }
    }

    #[test]
    fn each_tenant_keeps_its_own_retention() {
        let r = EventRetention {
            default_ms: 7 * DAY as u64,
            tenants: [
                ("audit".into(), 30 * DAY as u64),
                ("brief".into(), DAY as u64),
            ]
            .into(),
        };
        let mut log: Vec<TrimRow> = (0..40)
            .flat_map(|d| {
                let c = d * 3;
                [
                    row(c + 1, d * DAY, "acme"),
                    row(c + 2, d * DAY, "audit"),
                    row(c + 3, d * DAY, "brief"),
                ]
            })
            .collect();
        let mut marks = TrimMarks::default();
        // On day 40: acme keeps days 33..39, audit 10..39, brief day 39.
        trim(&mut marks, &r, &mut log, 40 * DAY);
        let kept = |log: &[TrimRow]| {
            let n = |t: &str| {
                log.iter()
                    .filter(|x| x.tenant.as_deref() == Some(t))
                    .count()
            };
            (n("acme"), n("audit"), n("brief"))
        };
        assert_eq!(kept(&log), (7, 30, 1));
        // A day later the walk goes on from the marks.
        trim(&mut marks, &r, &mut log, 41 * DAY);
        assert_eq!(kept(&log), (6, 29, 0));
    }

    #[test]
    fn a_changed_retention_is_caught_by_the_next_rescan() {
        let mut r = EventRetention {
            default_ms: 7 * DAY as u64,
            tenants: [("audit".into(), 30 * DAY as u64)].into(),
        };
        let mut log: Vec<TrimRow> = (0..20).map(|d| row(d + 1, d * DAY, "audit")).collect();
        let mut marks = TrimMarks::default();
        trim(&mut marks, &r, &mut log, 20 * DAY);
        assert_eq!(log.len(), 20, "within audit's 30 days");
        // audit now keeps the default: the default group's mark passed its rows already...
        r.tenants.clear();
        // (only the row it reaches now goes)...
        trim(&mut marks, &r, &mut log, 20 * DAY + 1);
        assert_eq!(log.len(), 19);
        // ...and the rescan an hour on finds the rest: days 14 to 19 are left.
        trim(&mut marks, &r, &mut log, 20 * DAY + RESCAN_MS + 1);
        assert_eq!(log.len(), 6);
    }

    #[test]
    fn rows_of_a_deleted_queue_follow_the_default() {
        let r = EventRetention::default();
        let mut marks = TrimMarks::default();
        let step = marks.steps(&r, Timestamp(i64::MAX / 2))[0];
        let orphan = TrimRow {
            cursor: 1,
            at: Timestamp(0),
            tenant: None,
        };
        let t = marks.judge(&r, step, &[orphan], false);
        assert_eq!(t.delete, vec![1]);
    }
}
