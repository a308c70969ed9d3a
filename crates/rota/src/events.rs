//! `rota events`: the tenant's event log, a page at a time or followed as it grows.

use crate::output::{self, Format};
use anyhow::Result;
use rota_client::{Client, EventOptions, EventRecord};

#[derive(clap::Args)]
pub struct EventsArgs {
    /// Events after this cursor (0: from the oldest retained).
    #[arg(long, default_value_t = 0)]
    after: i64,
    /// Event types or patterns, comma-separated. Example: --types task.dead,task.failed
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Queue names or patterns, comma-separated.
    #[arg(long, value_delimiter = ',')]
    queue: Vec<String>,
    /// Most events per page.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Keep printing events as they are committed (one per line; JSON Lines with
    /// --output json) until interrupted.
    #[arg(long, short)]
    follow: bool,
}

/// How long each long poll of `--follow` waits.
const FOLLOW_WAIT_MS: u64 = 30_000;

pub async fn events(c: &Client, args: EventsArgs, fmt: Format) -> Result<()> {
    let mut opts = EventOptions {
        after: args.after,
        types: args.types,
        queues: args.queue,
        limit: Some(args.limit),
        wait_ms: None,
    };
    if !args.follow {
        let page = c.events(&opts).await?;
        match fmt {
            Format::Json => output::json(&page),
            Format::Table => {
                let rows: Vec<Vec<String>> = page.events.iter().map(row).collect();
                output::table(&HEADER, &rows);
                println!("next cursor: {}", page.next_cursor);
            }
        }
        return Ok(());
    }
    opts.wait_ms = Some(FOLLOW_WAIT_MS);
    if fmt == Format::Table {
        println!("{}", HEADER.join("  "));
    }
    loop {
        let page = c.events(&opts).await?;
        for e in &page.events {
            match fmt {
                Format::Json => println!("{}", serde_json::to_string(e)?),
                Format::Table => println!("{}", row(e).join("  ")),
            }
        }
        opts.after = page.next_cursor;
    }
}

const HEADER: [&str; 7] = ["CURSOR", "AT", "TYPE", "QUEUE", "KIND", "TASK", "DATA"];

fn row(e: &EventRecord) -> Vec<String> {
    vec![
        e.cursor.to_string(),
        e.at.to_string(),
        e.event_type.clone(),
        e.queue.clone(),
        e.kind.clone(),
        match e.task_id {
            Some(id) => format!("{id} #{}", e.attempt),
            None => "-".into(),
        },
        e.data.to_string(),
    ]
}
