//! `rota workers`: worker processes connected over the Faktory protocol, and asking one to
//! quiet down or stop (its next BEAT is answered so).

use crate::output::{self, Format};
use anyhow::Result;
use rota_client::{Client, WorkerProcess};
use rota_core::{Clock, SystemClock};

#[derive(clap::Subcommand)]
pub enum WorkersCmd {
    /// Worker processes connected to this server. Example: rota workers list
    List,
    /// Ask a worker process to fetch no more jobs. Example: rota workers quiet 4qpc2443vpvai
    Quiet { wid: String },
    /// Ask a worker process to fail back its jobs and exit. Example: rota workers terminate 4qpc2443vpvai
    Terminate { wid: String },
}

pub async fn workers(c: &Client, cmd: WorkersCmd, fmt: Format) -> Result<()> {
    let (list, asked) = match cmd {
        WorkersCmd::List => (c.workers().await?, None),
        WorkersCmd::Quiet { wid } => (vec![c.quiet_worker(&wid).await?], Some("quiet")),
        WorkersCmd::Terminate { wid } => (vec![c.terminate_worker(&wid).await?], Some("terminate")),
    };
    match fmt {
        Format::Json if asked.is_some() => output::json(&list[0]),
        Format::Json => output::json(&list),
        Format::Table => {
            if let Some(s) = asked {
                println!(
                    "asked worker {} to {s}; it hears at its next BEAT",
                    list[0].wid
                );
            } else {
                rows(&list);
            }
        }
    }
    Ok(())
}

fn rows(list: &[WorkerProcess]) {
    let now = SystemClock.now();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|w| {
            vec![
                w.wid.clone(),
                w.hostname.clone(),
                w.pid.to_string(),
                w.labels.join(","),
                w.connections.to_string(),
                w.last_beat
                    .map_or("never".into(), |t| output::relative(t, now)),
                w.signal.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        &[
            "WID",
            "HOST",
            "PID",
            "LABELS",
            "CONNS",
            "LAST BEAT",
            "ASKED",
        ],
        &rows,
    );
}
