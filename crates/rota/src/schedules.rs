//! `rota schedule`: define, list, trigger, pause, resume and delete schedules.

use crate::output::{self, Format};
use anyhow::{Context, Result};
use rota_client::{Client, ScheduleDef, ScheduleInfo};
use rota_core::{Clock, SystemClock};

#[derive(clap::Subcommand)]
pub enum ScheduleCmd {
    /// Create or replace a schedule.
    ///
    /// Example: rota schedule put nightly-sync --queue mirrors --kind sync --cron "0 3 * * *" --timezone Europe/Berlin
    Put(Box<PutArgs>),
    /// Every schedule of the tenant. Example: rota schedule list
    List,
    /// One schedule with its latest runs and their outcomes. Example: rota schedule get nightly-sync
    Get { name: String },
    /// Enqueue the schedule's task now. Example: rota schedule trigger nightly-sync
    Trigger { name: String },
    /// Stop firing ticks until resumed. Example: rota schedule pause nightly-sync
    Pause { name: String },
    /// Fire again from the next tick. Example: rota schedule resume nightly-sync
    Resume { name: String },
    /// Example: rota schedule delete nightly-sync
    Delete { name: String },
}

#[derive(clap::Args)]
pub struct PutArgs {
    name: String,
    /// The queue each tick's task goes to.
    #[arg(long)]
    queue: String,
    /// The kind of each tick's task [default: `default`].
    #[arg(long)]
    kind: Option<String>,
    /// Five fields, or six with seconds first.
    #[arg(
        long,
        conflicts_with = "every_ms",
        required_unless_present = "every_ms"
    )]
    cron: Option<String>,
    /// A tick every this many milliseconds (at least 1000).
    #[arg(long)]
    every_ms: Option<u64>,
    /// IANA time zone for --cron (default UTC).
    #[arg(long)]
    timezone: Option<String>,
    /// JSON payload of each tick's task.
    #[arg(long)]
    payload: Option<String>,
    /// Priority of each tick's task (higher runs first).
    #[arg(long)]
    priority: Option<i32>,
    /// Attempts of each tick's task [default: the queue's].
    #[arg(long)]
    max_attempts: Option<u32>,
    /// allow or skip (skip a tick while the previous run is live).
    #[arg(long)]
    overlap: Option<String>,
    /// none, latest or all: which ticks missed during downtime fire.
    #[arg(long)]
    catch_up: Option<String>,
    /// Delay each tick's task by a random time up to this (spreads load from many schedules).
    #[arg(long)]
    jitter_ms: Option<u64>,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
}

pub async fn schedule(c: &Client, cmd: ScheduleCmd, fmt: Format) -> Result<()> {
    let one = match cmd {
        ScheduleCmd::List => {
            let all = c.schedules().await?;
            match fmt {
                Format::Json => output::json(&all),
                Format::Table => rows(&all),
            }
            return Ok(());
        }
        ScheduleCmd::Delete { name } => {
            c.delete_schedule(&name).await?;
            if fmt == Format::Table {
                println!("deleted schedule {name}");
            }
            return Ok(());
        }
        ScheduleCmd::Put(a) => {
            let payload = a
                .payload
                .map(|p| serde_json::from_str(&p).context("--payload is not JSON"))
                .transpose()?;
            let def = ScheduleDef {
                queue: a.queue,
                kind: a.kind,
                payload,
                priority: a.priority,
                max_attempts: a.max_attempts,
                cron: a.cron,
                every_ms: a.every_ms,
                timezone: a.timezone,
                overlap: a.overlap,
                catch_up: a.catch_up,
                jitter_ms: a.jitter_ms,
                paused: a.paused.then_some(true),
            };
            c.put_schedule(&a.name, &def).await?
        }
        ScheduleCmd::Get { name } => c.schedule(&name).await?,
        ScheduleCmd::Trigger { name } => c.schedule_action(&name, "trigger").await?,
        ScheduleCmd::Pause { name } => c.schedule_action(&name, "pause").await?,
        ScheduleCmd::Resume { name } => c.schedule_action(&name, "resume").await?,
    };
    match fmt {
        Format::Json => output::json(&one),
        Format::Table => {
            rows(std::slice::from_ref(&one));
            runs(&one);
        }
    }
    Ok(())
}

fn when(s: &ScheduleInfo) -> String {
    match (&s.cron, s.every_ms) {
        (Some(c), _) => format!("{c} ({})", s.timezone),
        (None, Some(ms)) => format!("every {}", output::duration_ms(ms)),
        _ => String::new(),
    }
}

fn rows(list: &[ScheduleInfo]) {
    let now = SystemClock.now();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.queue.clone(),
                s.kind.clone(),
                when(s),
                match s.next_run_at {
                    Some(t) => output::relative(t, now),
                    None if s.paused => "paused".into(),
                    None => "never".into(),
                },
                s.runs
                    .first()
                    .map_or("-".into(), |r| output::relative(r.fired_at, now)),
            ]
        })
        .collect();
    output::table(
        &["NAME", "QUEUE", "KIND", "WHEN", "NEXT", "LAST RUN"],
        &rows,
    );
}

fn runs(s: &ScheduleInfo) {
    if s.runs.is_empty() {
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = s
        .runs
        .iter()
        .map(|r| {
            vec![
                r.tick.to_string(),
                r.task_id.map_or("-".into(), |t| t.to_string()),
                r.outcome.clone().or(r.skipped.clone()).unwrap_or_default(),
                r.trigger.clone().unwrap_or_else(|| "tick".into()),
            ]
        })
        .collect();
    output::table(&["TICK", "TASK", "OUTCOME", "BY"], &rows);
}
