//! `rota maintenance`: turn maintenance mode on, announce it, end it, show it (admin only).

use crate::output::{self, Format};
use anyhow::{Context, Result};
use rota_client::{Client, Maintenance};
use rota_core::{Clock, SystemClock, Timestamp};

#[derive(clap::Subcommand)]
pub enum MaintenanceCmd {
    /// Refuse writes and claims (503 with the message and Retry-After); reads keep working and
    /// running tasks may still heartbeat, complete and fail.
    ///
    /// Example: rota maintenance on --message "database upgrade" --until 30m
    On {
        /// The banner every caller sees.
        #[arg(long)]
        message: String,
        /// When it ends by itself: a time (2026-11-25T18:00:00Z) or a duration from now (30m).
        #[arg(long, value_parser = parse_until)]
        until: Option<Timestamp>,
    },
    /// Show a banner without refusing anything.
    ///
    /// Example: rota maintenance announce "upgrade tonight at 22:00 UTC" --until 12h
    Announce {
        message: String,
        /// When the banner goes by itself: a time (2026-11-25T18:00:00Z) or a duration (12h).
        #[arg(long, value_parser = parse_until)]
        until: Option<Timestamp>,
    },
    /// End maintenance mode and the banner.
    Off,
    /// Show whether maintenance is on or announced.
    Status,
}

fn parse_until(s: &str) -> Result<Timestamp, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        let ms = i64::try_from(d.as_millis()).map_err(|_| "that duration is too long")?;
        return Ok(SystemClock.now().plus_ms(ms));
    }
    Timestamp::parse_rfc3339(s)
        .map_err(|_| format!("`{s}` is neither a time (2026-11-25T18:00:00Z) nor a duration (30m)"))
}

fn show(m: Option<&Maintenance>, fmt: Format) {
    match (fmt, m) {
        (Format::Json, _) => output::json(&serde_json::json!({ "maintenance": m })),
        (Format::Table, None) => println!("maintenance: off"),
        (Format::Table, Some(m)) => {
            let state = if m.refusing { "on" } else { "announced" };
            let until = m.until.map(|u| format!(" until {u}")).unwrap_or_default();
            println!(
                "maintenance: {state}{until} (set by {} at {})",
                m.by, m.since
            );
            println!("message: {}", m.message);
        }
    }
}

pub async fn maintenance(c: &Client, cmd: MaintenanceCmd, fmt: Format) -> Result<()> {
    match cmd {
        MaintenanceCmd::On { message, until } => {
            let m = c.set_maintenance(true, &message, until).await?;
            show(m.as_ref(), fmt);
        }
        MaintenanceCmd::Announce { message, until } => {
            let m = c.set_maintenance(false, &message, until).await?;
            show(m.as_ref(), fmt);
        }
        MaintenanceCmd::Off => {
            c.end_maintenance().await.context("ending maintenance")?;
            show(None, fmt);
        }
        MaintenanceCmd::Status => show(c.maintenance().await?.as_ref(), fmt),
    }
    Ok(())
}
