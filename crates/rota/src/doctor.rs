//! `rota doctor`: what is wrong, why, and what to do; the exit status is 1 when anything is.

use crate::output::{self, Format};
use anyhow::Result;
use rota_client::{Client, DoctorReport};

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Only this queue's findings (and the storage's).
    #[arg(long)]
    queue: Option<String>,
}

/// Something was found: the report is printed, and the exit status says so.
#[derive(Debug)]
pub struct Found(pub usize);

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rota doctor found {} problem(s)", self.0)
    }
}

impl std::error::Error for Found {}

pub async fn doctor(c: &Client, args: DoctorArgs, fmt: Format) -> Result<()> {
    let report = c.doctor(args.queue.as_deref()).await?;
    match fmt {
        Format::Json => output::json(&report),
        Format::Table => print(&report),
    }
    if report.ok {
        Ok(())
    } else {
        Err(Found(report.findings.len()).into())
    }
}

fn print(r: &DoctorReport) {
    if r.ok {
        println!("no problems found ({})", r.checked_at);
    }
    for f in &r.findings {
        println!("{} {}: {}", f.severity.to_uppercase(), f.check, f.subject);
        println!("  seen:  {}", f.seen);
        println!("  cause: {}", f.cause);
        println!("  fix:   {}", f.fix);
        println!();
    }
    for n in &r.notes {
        println!("note: {n}");
    }
}
