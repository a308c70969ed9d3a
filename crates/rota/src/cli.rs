//! The client commands: `rota task …`, `rota queue …`, `rota dead …`, all through the HTTP API.

use crate::flow;
use crate::output::{self, Format};
use anyhow::{bail, Context, Result};
use rota_client::{Client, ListOptions, NewTask, QueueSettingsPatch, Rate};
use rota_core::{Backoff, OnDuplicate, TaskId, TaskState};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";

#[derive(clap::Subcommand)]
pub enum TaskCmd {
    /// Enqueue a task. The payload comes from --payload, --payload-file, or standard input.
    ///
    /// Example: rota task add emails --kind email.send --payload '{"to": "ada@example.com"}'
    Add {
        /// The queue: 1 to 128 of A-Z, a-z, 0-9, '.', '_', '-' (created on first use).
        queue: String,
        /// The command name workers filter on, e.g. email.send.
        #[arg(long)]
        kind: String,
        /// The payload as JSON text.
        #[arg(long, conflicts_with = "payload_file")]
        payload: Option<String>,
        /// Read the payload (JSON) from this file.
        #[arg(long)]
        payload_file: Option<PathBuf>,
        /// Higher runs first; FIFO within a priority [default: 0].
        #[arg(long, allow_negative_numbers = true)]
        priority: Option<i32>,
        /// Run no sooner than this from now, e.g. 30s, 5m, 2h.
        #[arg(long, value_parser = humantime::parse_duration)]
        delay: Option<Duration>,
        /// While a task with this key is not finished, adding it again returns that task.
        #[arg(long)]
        unique_key: Option<String>,
        /// When --unique-key is held by a live task: keep it (the default), or replace it
        /// while it waits to run (a debounce: the new payload, its delay started again; a
        /// running task is kept).
        #[arg(long, value_enum)]
        on_duplicate: Option<OnDuplicateArg>,
        /// Attempts before the task is dead [default: the queue's, 25 unless set].
        #[arg(long)]
        max_attempts: Option<u32>,
        /// POST the task's final outcome here (needs the tenant's callback secret: rota
        /// webhook callbacks-secret).
        #[arg(long)]
        callback_url: Option<String>,
        /// The flow-control group whose limits and turn the task takes (a customer, a token,
        /// an upstream); see docs/flow-control.md.
        #[arg(long)]
        group: Option<String>,
        /// A task that must succeed first (repeat for several); the task waits until then.
        #[arg(long = "after", value_name = "TASK_ID")]
        after: Vec<String>,
        /// What a dependency that ends dead or cancelled does: cancel this task (the
        /// default) or run it anyway.
        #[arg(long, value_enum, requires = "after")]
        on_dependency_failure: Option<DepFailureArg>,
    },
    /// Show a task. Example: rota task get 01a20c27-4e6d-7000-8000-000000000000
    Get { id: String },
    /// Cancel a task that is not finished. Example: rota task cancel <id>
    Cancel { id: String },
    /// Bring a dead or cancelled task back. Example: rota task retry <id>
    Retry { id: String },
    /// Run a scheduled task, or a retry waiting for its backoff, now. Example: rota task run-now <id>
    RunNow { id: String },
    /// Send a scheduled or ready task to the dead letters without running it.
    /// Example: rota task kill <id> --reason "customer closed"
    Kill {
        id: String,
        /// Recorded as the task's last error.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Delete a task that is not running. Example: rota task delete <id>
    Delete { id: String },
    /// List a queue's tasks, newest first. Example: rota task list emails --state dead
    List {
        queue: String,
        /// Only tasks in this state (scheduled, ready, running, succeeded, dead, cancelled).
        #[arg(long)]
        state: Option<TaskState>,
        /// Only tasks of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only the live task (scheduled, ready or running) holding this unique key.
        #[arg(long)]
        unique_key: Option<String>,
        /// Tasks per page.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Where the previous page ended (its `next_cursor`).
        #[arg(long)]
        cursor: Option<String>,
    },
}

#[derive(clap::Subcommand)]
pub enum QueueCmd {
    /// Every queue with its counts. Example: rota queue list
    List,
    /// One queue's counts, settings and flow control (what its limits hold back, its
    /// busiest groups). Example: rota queue stats emails
    Stats { queue: String },
    /// Stop handing out tasks. Example: rota queue pause emails
    Pause { queue: String },
    /// Hand out tasks again. Example: rota queue resume emails
    Resume { queue: String },
    /// Delete the queue's tasks in a final state. Example: rota queue purge emails --state dead
    Purge {
        queue: String,
        /// The final state to delete: succeeded, dead or cancelled.
        #[arg(long)]
        state: TaskState,
    },
    /// Change settings and limits. Example: rota queue set emails --max-attempts 5 --backoff
    /// 1s:10m; rota queue set gather --group-rate 5000/1h
    Set {
        queue: String,
        /// Attempts before a task is dead, for tasks added from now on.
        #[arg(long)]
        max_attempts: Option<u32>,
        /// BASE:MAX, e.g. 1s:1h (exponential, with full jitter).
        #[arg(long, value_parser = parse_backoff)]
        backoff: Option<Backoff>,
        /// Default lease for claims, e.g. 30s.
        #[arg(long, value_parser = humantime::parse_duration)]
        lease: Option<Duration>,
        /// How long finished tasks are kept, e.g. 7d.
        #[arg(long, value_parser = humantime::parse_duration)]
        retention: Option<Duration>,
        /// Where the outcome of tasks that name no --callback-url is POSTed; "" clears it.
        #[arg(long)]
        callback_url: Option<String>,
        /// At most N of the queue's tasks running at once, over every worker; none lifts it.
        #[arg(long, value_name = "N|none", value_parser = flow::limit_or_none)]
        concurrency: Option<flow::OrNone<u32>>,
        /// At most LIMIT tasks started per PERIOD, e.g. 100/1s (units ms, s, m, h, d; add
        /// ,burst=B to let B start at once); none lifts it.
        #[arg(long, value_name = "LIMIT/PERIOD|none", value_parser = flow::rate_or_none)]
        rate: Option<flow::OrNone<Rate>>,
        /// --concurrency for each group of the queue (a group's own overrides it).
        #[arg(long, value_name = "N|none", value_parser = flow::limit_or_none)]
        group_concurrency: Option<flow::OrNone<u32>>,
        /// --rate for each group of the queue, e.g. 5000/1h (a group's own overrides it).
        #[arg(long, value_name = "LIMIT/PERIOD|none", value_parser = flow::rate_or_none)]
        group_rate: Option<flow::OrNone<Rate>>,
    },
    /// Set one group's own limits; the flags given change, the rest stay.
    /// Example: rota queue group reports client-acme --concurrency 8
    Group {
        queue: String,
        group: String,
        /// At most N of the group's tasks running at once; none falls back to the queue's
        /// --group-concurrency.
        #[arg(long, value_name = "N|none", value_parser = flow::limit_or_none)]
        concurrency: Option<flow::OrNone<u32>>,
        /// The group's rate, e.g. 5/1s; none falls back to the queue's --group-rate.
        #[arg(long, value_name = "LIMIT/PERIOD|none", value_parser = flow::rate_or_none)]
        rate: Option<flow::OrNone<Rate>>,
        /// Tasks the group takes per turn (1 to 1000).
        #[arg(long)]
        weight: Option<u32>,
        /// Hold the group's ready tasks (its running ones finish).
        #[arg(long, conflicts_with = "resume")]
        pause: bool,
        /// Let a paused group's tasks run again.
        #[arg(long)]
        resume: bool,
    },
    /// The queue's groups by name, with their counts, limits and what holds them.
    /// Example: rota queue groups reports
    Groups {
        queue: String,
        /// Start after this group (the previous page's last).
        #[arg(long)]
        after: Option<String>,
        /// Groups per page.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(clap::Subcommand)]
pub enum DeadCmd {
    /// The queue's dead tasks. Example: rota dead list emails
    List {
        queue: String,
        /// Most dead tasks to show, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Put dead tasks back to ready. Example: rota dead requeue emails --all
    Requeue {
        queue: String,
        /// Every dead task of the queue.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// These tasks.
        #[arg(required_unless_present = "all")]
        ids: Vec<String>,
    },
}

fn parse_backoff(s: &str) -> std::result::Result<Backoff, String> {
    let (base, max) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not BASE:MAX such as 1s:1h"))?;
    let ms = |v: &str| {
        humantime::parse_duration(v)
            .map(|d| d.as_millis() as u64)
            .map_err(|e| format!("`{v}`: {e}"))
    };
    let b = Backoff {
        base_ms: ms(base)?,
        max_ms: ms(max)?,
    };
    b.validate()?;
    Ok(b)
}

fn task_id(s: &str) -> Result<TaskId> {
    s.parse()
        .map_err(|e: rota_core::id::InvalidTaskId| anyhow::anyhow!("{e}"))
}

fn read_payload(payload: Option<String>, file: Option<PathBuf>) -> Result<String> {
    if let Some(p) = payload {
        return Ok(p);
    }
    if let Some(f) = file {
        return std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok("null".into());
    }
    let mut s = String::new();
    stdin
        .lock()
        .read_to_string(&mut s)
        .context("cannot read the payload from standard input")?;
    Ok(if s.trim().is_empty() {
        "null".into()
    } else {
        s
    })
}

/// `--on-duplicate`, as the API's `on_duplicate`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OnDuplicateArg {
    Keep,
    Replace,
}

impl From<OnDuplicateArg> for OnDuplicate {
    fn from(a: OnDuplicateArg) -> Self {
        match a {
            OnDuplicateArg::Keep => OnDuplicate::Keep,
            OnDuplicateArg::Replace => OnDuplicate::Replace,
        }
    }
}

/// `--on-dependency-failure`, as the API's `on_dependency_failure`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DepFailureArg {
    Cancel,
    Run,
}

impl From<DepFailureArg> for rota_client::OnDependencyFailure {
    fn from(a: DepFailureArg) -> Self {
        match a {
            DepFailureArg::Cancel => rota_client::OnDependencyFailure::Cancel,
            DepFailureArg::Run => rota_client::OnDependencyFailure::Run,
        }
    }
}

pub async fn task(c: &Client, cmd: TaskCmd, fmt: Format) -> Result<()> {
    match cmd {
        TaskCmd::Add {
            queue,
            kind,
            payload,
            payload_file,
            priority,
            delay,
            unique_key,
            on_duplicate,
            max_attempts,
            callback_url,
            group,
            after,
            on_dependency_failure,
        } => {
            if unique_key.is_none() && on_duplicate.is_some() {
                bail!(
                    "--on-duplicate needs --unique-key: the key names the task to keep or replace"
                );
            }
            let text = read_payload(payload, payload_file)?;
            let payload = serde_json::value::RawValue::from_string(text.trim().to_owned())
                .map_err(|e| anyhow::anyhow!("the payload is not valid JSON: {e}"))?;
            let task = NewTask {
                kind,
                payload,
                priority,
                run_at: None,
                delay_ms: delay.map(|d| d.as_millis() as u64),
                max_attempts,
                unique_key,
                on_duplicate: on_duplicate.map(OnDuplicate::from),
                tags: Vec::new(),
                callback_url,
                group,
                depends_on: after.iter().map(|id| task_id(id)).collect::<Result<_>>()?,
                on_dependency_failure: on_dependency_failure.map(Into::into),
                traceparent: None,
                tracestate: None,
            };
            let task = match environment_trace() {
                Some((parent, state)) => task.trace(parent, state),
                None => task,
            };
            let e = c.enqueue(&queue, &task).await?;
            match fmt {
                Format::Json => output::json(&serde_json::json!({
                    "task": e.task, "duplicate": e.duplicate, "replaced": e.replaced
                })),
                Format::Table if e.replaced => println!(
                    "{} replaced in place ({}, runs at {})",
                    e.task.id, e.task.state, e.task.run_at
                ),
                Format::Table if e.duplicate => {
                    println!(
                        "{} already holds that unique key ({}); nothing added",
                        e.task.id, e.task.state
                    )
                }
                Format::Table => println!("{} {} in queue {}", e.task.id, e.task.state, queue),
            }
        }
        TaskCmd::Get { id } => show_task(c.get(task_id(&id)?).await?, fmt),
        TaskCmd::Cancel { id } => show_task(c.cancel(task_id(&id)?).await?, fmt),
        TaskCmd::Retry { id } => show_task(c.retry(task_id(&id)?).await?, fmt),
        TaskCmd::RunNow { id } => show_task(c.run_now(task_id(&id)?).await?, fmt),
        TaskCmd::Kill { id, reason } => {
            show_task(c.kill(task_id(&id)?, reason.as_deref()).await?, fmt)
        }
        TaskCmd::Delete { id } => show_task(c.delete_task(task_id(&id)?).await?, fmt),
        TaskCmd::List {
            queue,
            state,
            kind,
            unique_key,
            limit,
            cursor,
        } => {
            let page = c
                .list(
                    &queue,
                    &ListOptions {
                        state,
                        kind,
                        unique_key,
                        limit: Some(limit),
                        cursor,
                    },
                )
                .await?;
            match fmt {
                // The API's own shape, so a script pages with `next_cursor`.
                Format::Json => output::json(&page),
                Format::Table => {
                    output::task_rows(&page.tasks);
                    if let Some(next) = &page.next_cursor {
                        println!("(more: add --cursor {next})");
                    }
                }
            }
        }
    }
    Ok(())
}

fn show_task(t: rota_core::Task, fmt: Format) {
    match fmt {
        Format::Json => output::json(&t),
        Format::Table => output::task_detail(&t),
    }
}

fn show_queue(q: rota_core::QueueInfo, fmt: Format) {
    match fmt {
        Format::Json => output::json(&q),
        Format::Table => output::queue_detail(&q),
    }
}

pub async fn queue(c: &Client, cmd: QueueCmd, fmt: Format) -> Result<()> {
    let patch = |paused| QueueSettingsPatch {
        paused: Some(paused),
        ..Default::default()
    };
    match cmd {
        QueueCmd::List => {
            let qs = c.queues().await?;
            match fmt {
                Format::Json => output::json(&qs),
                Format::Table => output::queue_rows(&qs),
            }
        }
        QueueCmd::Stats { queue } => flow::stats(&c.queue_stats(&queue).await?, fmt),
        QueueCmd::Pause { queue } => {
            c.queue(&queue).await?; // a typo should say "not found", not create a queue
            show_queue(c.update_queue(&queue, &patch(true)).await?, fmt)
        }
        QueueCmd::Resume { queue } => {
            c.queue(&queue).await?;
            show_queue(c.update_queue(&queue, &patch(false)).await?, fmt)
        }
        QueueCmd::Purge { queue, state } => {
            let n = c.purge(&queue, state).await?;
            match fmt {
                Format::Json => output::json(&serde_json::json!({"deleted": n})),
                Format::Table => println!("deleted {n} {state} tasks from {queue}"),
            }
        }
        QueueCmd::Set {
            queue,
            max_attempts,
            backoff,
            lease,
            retention,
            callback_url,
            concurrency,
            rate,
            group_concurrency,
            group_rate,
        } => {
            if max_attempts.is_none()
                && backoff.is_none()
                && lease.is_none()
                && retention.is_none()
                && callback_url.is_none()
                && concurrency.is_none()
                && rate.is_none()
                && group_concurrency.is_none()
                && group_rate.is_none()
            {
                bail!(
                    "nothing to set: give --max-attempts, --backoff, --lease, --retention, \
                     --callback-url, --concurrency, --rate, --group-concurrency or --group-rate"
                );
            }
            let p = QueueSettingsPatch {
                max_attempts,
                backoff,
                lease_ms: lease.map(|d| d.as_millis() as u64),
                retention_ms: retention.map(|d| d.as_millis() as u64),
                paused: None,
                callback_url,
                concurrency: concurrency.map(|l| l.0),
                rate: rate.map(|r| r.0),
                group_concurrency: group_concurrency.map(|l| l.0),
                group_rate: group_rate.map(|r| r.0),
            };
            show_queue(c.update_queue(&queue, &p).await?, fmt)
        }
        QueueCmd::Group {
            queue,
            group,
            concurrency,
            rate,
            weight,
            pause,
            resume,
        } => {
            if concurrency.is_none() && rate.is_none() && weight.is_none() && !pause && !resume {
                bail!("nothing to set: give --concurrency, --rate, --weight, --pause or --resume");
            }
            let change = flow::GroupChange {
                concurrency,
                rate,
                weight,
                paused: (pause || resume).then_some(pause),
            };
            flow::group(c, &queue, &group, change, fmt).await?
        }
        QueueCmd::Groups {
            queue,
            after,
            limit,
        } => flow::groups(c, &queue, after.as_deref(), limit, fmt).await?,
    }
    Ok(())
}

pub async fn dead(c: &Client, cmd: DeadCmd, fmt: Format) -> Result<()> {
    match cmd {
        DeadCmd::List { queue, limit } => {
            task(
                c,
                TaskCmd::List {
                    queue,
                    state: Some(TaskState::Dead),
                    kind: None,
                    unique_key: None,
                    limit,
                    cursor: None,
                },
                fmt,
            )
            .await
        }
        DeadCmd::Requeue { queue, all, ids } => {
            let ids: Vec<TaskId> = if all {
                let mut found = Vec::new();
                let mut cursor = None;
                loop {
                    let opts = ListOptions {
                        state: Some(TaskState::Dead),
                        limit: Some(1_000),
                        cursor: cursor.take(),
                        ..Default::default()
                    };
                    let page = c.list(&queue, &opts).await?;
                    found.extend(page.tasks.iter().map(|t| t.id));
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => break found,
                    }
                }
            } else {
                ids.iter().map(|s| task_id(s)).collect::<Result<_>>()?
            };
            let mut requeued = Vec::with_capacity(ids.len());
            for id in ids {
                let t = c
                    .retry(id)
                    .await
                    .with_context(|| format!("requeueing {id}"))?;
                requeued.push(t.id.to_string());
            }
            match fmt {
                Format::Json => output::json(&serde_json::json!({"requeued": requeued})),
                Format::Table => {
                    let n = requeued.len();
                    let tasks = if n == 1 { "task" } else { "tasks" };
                    println!("requeued {n} {tasks} in {queue}")
                }
            }
            Ok(())
        }
    }
}

/// The W3C trace context in the environment (`TRACEPARENT`, `TRACESTATE`, as `rota worker`
/// sets them for its command), so a task enqueued from a traced job joins its trace; one that
/// is not valid is ignored.
fn environment_trace() -> Option<(String, Option<String>)> {
    let parent = std::env::var("TRACEPARENT").ok()?;
    rota_core::trace::check_traceparent(&parent).ok()?;
    let state = std::env::var("TRACESTATE")
        .ok()
        .filter(|s| !s.is_empty() && rota_core::trace::check_tracestate(s).is_ok());
    Some((parent, state))
}
