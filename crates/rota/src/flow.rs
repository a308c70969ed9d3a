//! Flow control from the command line: `rota queue set`'s limit flags, `rota queue group`
//! (one group's own settings) and `rota queue groups` (the queue's groups), and the flow part
//! of `rota queue stats`. Rates are written `LIMIT/PERIOD` (`100/1s`, `5000/1h`), parsed by
//! rota-core so the CLI, the dashboard and the docs read them alike.

use crate::output::{self, duration_ms, relative, table, Format};
use anyhow::{bail, Result};
use rota_client::{Client, GroupInfo, GroupSettings, Hold, Rate};
use rota_core::flow_stats::FlowStats;
use rota_core::{QueueStats, Timestamp};

/// A limit given on the command line: a value, or `none` to lift it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrNone<T>(pub Option<T>);

/// `--concurrency 8`, `--concurrency none`.
pub fn limit_or_none(s: &str) -> Result<OrNone<u32>, String> {
    if s.trim() == "none" {
        return Ok(OrNone(None));
    }
    match s.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(OrNone(Some(n))),
        _ => Err(format!(
            "`{s}` is not a limit: give a whole number from 1 (or none to lift it)"
        )),
    }
}

/// `--rate 100/1s`, `--rate 10/1s,burst=10`, `--rate none`.
pub fn rate_or_none(s: &str) -> Result<OrNone<Rate>, String> {
    if s.trim() == "none" {
        return Ok(OrNone(None));
    }
    s.parse::<Rate>().map(|r| OrNone(Some(r)))
}

/// `rota queue group QUEUE GROUP [--concurrency N|none] [--rate R|none] [--weight W]
/// [--pause|--resume]`: the flags given change; the group's other own settings stay.
pub struct GroupChange {
    pub concurrency: Option<OrNone<u32>>,
    pub rate: Option<OrNone<Rate>>,
    pub weight: Option<u32>,
    pub paused: Option<bool>,
}

/// Pages looked through to find one group's settings before changing them.
const FIND_PAGES: usize = 10;

/// One group as the listing shows it (`None` when it has no tasks nor settings of its own).
/// Listing after the name less its last character starts just before it, so this is
/// usually one page.
async fn find_group(c: &Client, queue: &str, group: &str) -> Result<Option<GroupInfo>> {
    let mut after: Option<String> = group
        .char_indices()
        .last()
        .map(|(i, _)| group[..i].to_owned())
        .filter(|s| !s.is_empty());
    for _ in 0..FIND_PAGES {
        let page = match c.groups(queue, after.as_deref(), Some(100)).await {
            Ok(p) => p,
            // Setting a group creates its queue, as `rota queue set` does.
            Err(rota_client::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        for g in page.groups {
            if g.group == group {
                return Ok(Some(g));
            }
            if g.group.as_str() > group {
                return Ok(None);
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(None),
        }
    }
    bail!("could not find group `{group}` among the queue's groups to keep its settings; give every setting")
}

pub async fn group(
    c: &Client,
    queue: &str,
    group: &str,
    change: GroupChange,
    fmt: Format,
) -> Result<()> {
    let mut settings = find_group(c, queue, group)
        .await?
        .map(|g| g.settings)
        .unwrap_or_default();
    if let Some(OrNone(n)) = change.concurrency {
        settings.concurrency = n;
    }
    if let Some(OrNone(r)) = change.rate {
        settings.rate = r;
    }
    if let Some(w) = change.weight {
        settings.weight = w;
    }
    if let Some(p) = change.paused {
        settings.paused = p;
    }
    let g = c.put_group(queue, group, &settings).await?;
    match fmt {
        Format::Json => output::json(&g),
        Format::Table => group_rows(std::slice::from_ref(&g)),
    }
    Ok(())
}

pub async fn groups(
    c: &Client,
    queue: &str,
    after: Option<&str>,
    limit: usize,
    fmt: Format,
) -> Result<()> {
    let page = c.groups(queue, after, Some(limit)).await?;
    match fmt {
        // The API's shape, so a script pages with `next`.
        Format::Json => output::json(&page),
        Format::Table => {
            group_rows(&page.groups);
            if let Some(next) = &page.next {
                println!("(more: add --after {next})");
            }
        }
    }
    Ok(())
}

fn hold(h: Option<Hold>) -> &'static str {
    match h {
        Some(Hold::Paused) => "paused",
        Some(Hold::Concurrency) => "concurrency",
        Some(Hold::Rate) => "rate",
        None => "",
    }
}

fn now() -> Timestamp {
    rota_core::Clock::now(&rota_core::SystemClock)
}

fn own(g: &GroupSettings) -> String {
    let mut parts = Vec::new();
    if let Some(c) = g.concurrency {
        parts.push(format!("concurrency {c}"));
    }
    if let Some(r) = g.rate {
        parts.push(format!("rate {r}"));
    }
    if g.weight != 1 {
        parts.push(format!("weight {}", g.weight));
    }
    if g.paused {
        parts.push("paused".into());
    }
    parts.join(", ")
}

pub fn group_rows(groups: &[GroupInfo]) {
    let now = now();
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                g.ready.to_string(),
                g.running.to_string(),
                g.concurrency.map_or("-".into(), |c| c.to_string()),
                g.rate.map_or("-".into(), |r| r.to_string()),
                hold(g.held_by).into(),
                g.next_start_at.map_or("-".into(), |t| relative(t, now)),
                g.oldest_ready_age_ms.map_or("-".into(), duration_ms),
                own(&g.settings),
            ]
        })
        .collect();
    table(
        &[
            "GROUP",
            "READY",
            "RUNNING",
            "CONCURRENCY",
            "RATE",
            "HELD BY",
            "NEXT START",
            "OLDEST READY",
            "OWN SETTINGS",
        ],
        &rows,
    );
}

/// `rota queue stats`: the queue, then its flow.
pub fn stats(q: &QueueStats, fmt: Format) {
    match fmt {
        Format::Json => output::json(q),
        Format::Table => {
            output::queue_detail(&q.queue);
            flow_detail(q);
        }
    }
}

fn flow_detail(q: &QueueStats) {
    let (s, f): (_, &FlowStats) = (&q.queue.settings, &q.flow);
    let or_none = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    let mut rows = vec![
        (
            "concurrency",
            match f.concurrency {
                Some(c) => format!("{} running of {c}", f.running),
                None => format!("{} running, no limit", f.running),
            },
        ),
        ("rate", or_none(s.rate.map(|r| r.to_string()))),
        (
            "group limits",
            format!(
                "concurrency {}, rate {}",
                or_none(s.group_concurrency.map(|c| c.to_string())),
                or_none(s.group_rate.map(|r| r.to_string()))
            ),
        ),
        ("held back", f.held.total().to_string()),
    ];
    for (limit, n) in f.held.by_limit() {
        if n > 0 {
            rows.push(("  by", format!("{} {n}", limit.replace('_', " "))));
        }
    }
    if let Some(t) = f.next_start_at {
        rows.push(("next start", relative(t, now())));
    }
    let more = if f.groups_complete {
        ""
    } else {
        " (the first by name)"
    };
    rows.push(("groups", format!("{}{more}", f.groups_seen)));
    for (k, v) in rows {
        println!("{k:<13} {v}");
    }
    if !f.busiest_groups.is_empty() {
        println!();
        group_rows(&f.busiest_groups);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_take_a_number_or_none() {
        assert_eq!(limit_or_none("8"), Ok(OrNone(Some(8))));
        assert_eq!(limit_or_none("none"), Ok(OrNone(None)));
        assert!(limit_or_none("0").unwrap_err().contains("from 1"));
        assert!(limit_or_none("lots").is_err());
        assert_eq!(
            rate_or_none("5000/1h").unwrap().0.map(|r| r.period_ms),
            Some(3_600_000)
        );
        assert_eq!(rate_or_none("none"), Ok(OrNone(None)));
        assert!(rate_or_none("5000 an hour")
            .unwrap_err()
            .contains("LIMIT/PERIOD"));
    }
}
