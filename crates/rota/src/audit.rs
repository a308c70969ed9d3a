//! `rota audit`: the audit log, who changed what and when (docs/audit.md).

use crate::output::{self, Format};
use anyhow::{bail, Result};
use rota_client::{AuditEntry, AuditQuery, Client};
use rota_core::{Clock, SystemClock, Timestamp};

/// Most entries `--all` reads.
const MAX_ALL: usize = 100_000;

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Only this tenant's entries (an admin sees every tenant's without it).
    #[arg(long)]
    tenant: Option<String>,
    /// Only changes by this actor: key:<key id>, jwt:<subject>.
    #[arg(long)]
    actor: Option<String>,
    /// Only this action (key.create), or every action of an object (key.).
    #[arg(long)]
    action: Option<String>,
    /// Only changes to this target: queues/<name>, keys/<id>, roles/<name>, …
    #[arg(long)]
    target: Option<String>,
    /// Only entries this recent (a duration such as 2h or 7d) or since a time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only entries before this time (RFC 3339) or this long ago (a duration).
    #[arg(long)]
    until: Option<String>,
    /// Entries to show, newest first (1 to 500).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Every entry that passes the filters, page after page (up to 100,000).
    #[arg(long, conflicts_with = "limit")]
    all: bool,
}

/// `2h` (that long before now) or an RFC 3339 time.
fn when(flag: &str, text: &str, now: Timestamp) -> Result<Timestamp> {
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(now.plus_ms(-(d.as_millis().min(i64::MAX as u128) as i64)));
    }
    Timestamp::parse_rfc3339(text).map_err(|_| {
        anyhow::anyhow!("--{flag} `{text}` is neither a duration (2h, 7d) nor an RFC 3339 time")
    })
}

pub async fn audit(c: &Client, a: AuditArgs, fmt: Format) -> Result<()> {
    let now = SystemClock.now();
    if !(1..=500).contains(&a.limit) {
        bail!("--limit is {}; use 1 to 500", a.limit);
    }
    let mut q = AuditQuery {
        tenant: a.tenant,
        actor: a.actor,
        action: a.action,
        target: a.target,
        since: a
            .since
            .as_deref()
            .map(|t| when("since", t, now))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|t| when("until", t, now))
            .transpose()?,
        cursor: None,
        limit: Some(if a.all { 500 } else { a.limit }),
    };
    let mut entries = Vec::new();
    loop {
        let page = c.audit(&q).await?;
        entries.extend(page.entries);
        match page.next_cursor {
            Some(next) if a.all && entries.len() < MAX_ALL => q.cursor = Some(next),
            _ => break,
        }
    }
    match fmt {
        Format::Json => output::json(&entries),
        Format::Table => rows(&entries, now),
    }
    Ok(())
}

fn rows(entries: &[AuditEntry], now: Timestamp) {
    if entries.is_empty() {
        println!("no entries");
        return;
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                format!("{} ({})", e.at, output::relative(e.at, now)),
                e.tenant.clone(),
                e.actor.clone(),
                e.action.clone(),
                e.target.clone(),
                change(e),
                e.source.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        &[
            "AT", "TENANT", "ACTOR", "ACTION", "TARGET", "CHANGE", "FROM",
        ],
        &rows,
    );
}

/// `before → after`, cut to fit a line.
fn change(e: &AuditEntry) -> String {
    let show = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    let text = match (show(&e.before), show(&e.after)) {
        (Some(b), Some(a)) => format!("{b} → {a}"),
        (None, Some(a)) => a,
        (Some(b), None) => format!("was {b}"),
        (None, None) => String::new(),
    };
    if text.chars().count() > 80 {
        text.chars().take(79).chain(['…']).collect()
    } else {
        text
    }
}
