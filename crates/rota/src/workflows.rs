//! `rota workflow`: submit a graph of tasks at once, show one with its tasks, list, cancel;
//! add members to an open batch and close it (docs/workflows.md).

use crate::output::{self, Format};
use anyhow::{Context, Result};
use rota_client::{Client, Workflow};
use rota_core::{Clock, SystemClock};
use std::io::Read;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum WorkflowCmd {
    /// Submit a workflow from a JSON file (or - for stdin) as the API takes it:
    /// {"tasks": [{"name", "queue", "kind", "payload", "depends_on": [names]}, ...]}. Every
    /// task is stored or none.
    ///
    /// Example: rota workflow submit release.json
    Submit { file: PathBuf },
    /// Submit a batch from a JSON file (or - for stdin) as the API takes it:
    /// {"tasks": [{"queue", "kind", "payload"}, ...], "callback": {"queue", "kind"},
    /// "only_on_success": false, "open": false}. The callback runs once every member is
    /// final (and, for an open batch, once it is closed).
    ///
    /// Example: rota workflow batch variants.json
    Batch { file: PathBuf },
    /// Add members to an open batch from a JSON file (or - for stdin):
    /// {"tasks": [{"queue", "kind", "payload"}, ...]}.
    ///
    /// Example: rota workflow add <batch id> rows.json
    Add { batch: String, file: PathBuf },
    /// Close an open batch: its callback runs once every member is final.
    ///
    /// Example: rota workflow close <batch id>
    Close { batch: String },
    /// One workflow (or batch) with each task's state. Example: rota workflow get <id>
    Get { id: String },
    /// The tenant's workflows, newest first. Example: rota workflow list --limit 20
    List {
        /// Workflows older than this one (the previous page's last).
        #[arg(long)]
        before: Option<String>,
        /// At most this many [default: 100].
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Cancel every task of the workflow that is not final. Example: rota workflow cancel <id>
    Cancel { id: String },
}

pub async fn workflow(c: &Client, cmd: WorkflowCmd, fmt: Format) -> Result<()> {
    let one = match cmd {
        WorkflowCmd::List { before, limit } => {
            let page = c.workflows(before.as_deref(), limit).await?;
            match fmt {
                Format::Json => output::json(&page),
                Format::Table => {
                    rows(&page.workflows);
                    if let Some(next) = page.next_before {
                        println!("\nmore: rota workflow list --before {next}");
                    }
                }
            }
            return Ok(());
        }
        WorkflowCmd::Submit { file } => c.submit_workflow_body(&read_json(&file)?).await?,
        WorkflowCmd::Batch { file } => c.submit_batch_body(&read_json(&file)?).await?,
        WorkflowCmd::Add { batch, file } => {
            let added = c.add_batch_body(&batch, &read_json(&file)?).await?;
            match fmt {
                Format::Json => output::json(&added),
                Format::Table => {
                    for t in &added {
                        println!("{}  {}  {}", t.id, t.queue, t.state);
                    }
                }
            }
            return Ok(());
        }
        WorkflowCmd::Close { batch } => c.close_batch(&batch).await?,
        WorkflowCmd::Get { id } => c.workflow(&id).await?,
        WorkflowCmd::Cancel { id } => c.cancel_workflow(&id).await?,
    };
    match fmt {
        Format::Json => output::json(&one),
        Format::Table => detail(&one),
    }
    Ok(())
}

/// The JSON body in `file`, or on standard input for `-`.
fn read_json(file: &PathBuf) -> Result<serde_json::Value> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
    }
    serde_json::from_str(&text).context("the file is not valid JSON")
}

fn rows(list: &[Workflow]) {
    let now = SystemClock.now();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|w| {
            vec![
                w.id.clone(),
                serde_json::to_value(w.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                output::relative(w.created_at, now),
                w.counts.summary(),
            ]
        })
        .collect();
    output::table(&["ID", "STATE", "CREATED", "TASKS"], &rows);
}

fn detail(w: &Workflow) {
    rows(std::slice::from_ref(w));
    println!();
    let names: std::collections::HashMap<_, _> = w
        .tasks
        .iter()
        .map(|t| (t.task.id, t.name.as_str()))
        .collect();
    let rows: Vec<Vec<String>> = w
        .tasks
        .iter()
        .map(|t| {
            let after: Vec<&str> = t
                .task
                .depends_on
                .iter()
                .map(|d| names.get(d).copied().unwrap_or("?"))
                .collect();
            vec![
                t.name.clone(),
                t.task.state.to_string(),
                t.task.queue.clone(),
                t.task.kind.clone(),
                after.join(", "),
                t.task.id.to_string(),
            ]
        })
        .collect();
    output::table(&["NAME", "STATE", "QUEUE", "KIND", "AFTER", "TASK"], &rows);
}
