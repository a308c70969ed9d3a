//! How the CLI shows things: aligned tables for people, stable JSON for scripts.

use rota_core::{QueueInfo, Task, Timestamp};
use serde::Serialize;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// Prints rows as columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("values serialize")
    );
}

pub use rota_core::timestamp::duration_ms;

/// "12s ago", "in 5m 0s", relative to now.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let diff = now.millis() - t.millis();
    if diff >= 0 {
        format!("{} ago", duration_ms(diff as u64))
    } else {
        format!("in {}", duration_ms((-diff) as u64))
    }
}

fn now() -> Timestamp {
    rota_core::Clock::now(&rota_core::SystemClock)
}

pub fn task_detail(t: &Task) {
    let now = now();
    let mut rows = vec![
        ("id", t.id.to_string()),
        ("queue", t.queue.clone()),
        ("kind", t.kind.clone()),
        ("state", t.state.to_string()),
        ("attempt", format!("{} of {}", t.attempt, t.max_attempts)),
        ("priority", t.priority.to_string()),
        (
            "run at",
            format!("{} ({})", t.run_at, relative(t.run_at, now)),
        ),
        (
            "created",
            format!("{} ({})", t.created_at, relative(t.created_at, now)),
        ),
        ("payload", t.payload.get().to_owned()),
    ];
    if let Some(l) = &t.lease {
        rows.push((
            "lease",
            format!(
                "held by {} until {} ({})",
                l.worker,
                l.expires_at,
                relative(l.expires_at, now)
            ),
        ));
    }
    if let Some(f) = t.finished_at {
        rows.push(("finished", format!("{f} ({})", relative(f, now))));
    }
    if let Some(r) = &t.result {
        rows.push(("result", r.get().to_owned()));
    }
    if let Some(k) = &t.unique_key {
        rows.push(("unique key", k.clone()));
    }
    if !t.tags.is_empty() {
        rows.push(("tags", t.tags.join(", ")));
    }
    for e in &t.errors {
        rows.push((
            "error",
            format!(
                "attempt {}: {} ({})",
                e.attempt,
                e.message,
                relative(e.at, now)
            ),
        ));
    }
    for (k, v) in rows {
        println!("{k:<11} {v}");
    }
}

pub fn task_rows(tasks: &[Task]) {
    let now = now();
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.kind.clone(),
                t.state.to_string(),
                format!("{}/{}", t.attempt, t.max_attempts),
                t.priority.to_string(),
                relative(t.created_at, now),
                t.errors
                    .last()
                    .map(|e| e.message.chars().take(60).collect())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "KIND",
            "STATE",
            "ATTEMPT",
            "PRIORITY",
            "CREATED",
            "LAST ERROR",
        ],
        &rows,
    );
}

pub fn queue_rows(queues: &[QueueInfo]) {
    let now = now();
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            let c = &q.counts;
            vec![
                q.name.clone(),
                c.ready.to_string(),
                c.scheduled.to_string(),
                c.running.to_string(),
                c.succeeded.to_string(),
                c.dead.to_string(),
                c.cancelled.to_string(),
                q.oldest_ready_age_ms
                    .map(duration_ms)
                    .unwrap_or_else(|| "-".into()),
                q.last_claim_at
                    .map(|t| relative(t, now))
                    .unwrap_or_else(|| "never".into()),
                if q.settings.paused { "paused" } else { "" }.into(),
            ]
        })
        .collect();
    table(
        &[
            "QUEUE",
            "READY",
            "SCHEDULED",
            "RUNNING",
            "SUCCEEDED",
            "DEAD",
            "CANCELLED",
            "OLDEST READY",
            "LAST CLAIM",
            "",
        ],
        &rows,
    );
}

pub fn queue_detail(q: &QueueInfo) {
    let now = now();
    let c = &q.counts;
    let s = &q.settings;
    let rows = [
        ("queue", q.name.clone()),
        (
            "state",
            if s.paused {
                "paused".into()
            } else {
                "active".to_owned()
            },
        ),
        ("ready", c.ready.to_string()),
        ("scheduled", c.scheduled.to_string()),
        ("running", c.running.to_string()),
        ("succeeded", c.succeeded.to_string()),
        ("dead", c.dead.to_string()),
        ("cancelled", c.cancelled.to_string()),
        (
            "oldest ready",
            q.oldest_ready_age_ms
                .map(duration_ms)
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "last claim",
            q.last_claim_at
                .map(|t| relative(t, now))
                .unwrap_or_else(|| "never".into()),
        ),
        (
            "shard",
            q.shard.map_or_else(|| "-".into(), |n| n.to_string()),
        ),
        ("max attempts", s.max_attempts.to_string()),
        (
            "backoff",
            format!(
                "{} doubling to {}",
                duration_ms(s.backoff.base_ms),
                duration_ms(s.backoff.max_ms)
            ),
        ),
        ("lease", duration_ms(s.lease_ms)),
        ("retention", duration_ms(s.retention_ms)),
    ];
    for (k, v) in rows {
        println!("{k:<13} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(relative(Timestamp(1_000), Timestamp(13_000)), "12s ago");
        assert_eq!(relative(Timestamp(301_000), Timestamp(1_000)), "in 5m 0s");
    }
}
