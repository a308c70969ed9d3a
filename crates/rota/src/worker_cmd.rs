//! `rota worker <queue> -- <command>`: any program is a worker. For each task the command runs
//! with the payload on standard input and `ROTA_TASK_ID`, `ROTA_TASK_KIND`, `ROTA_TASK_ATTEMPT`
//! and `ROTA_TASK_QUEUE` in its environment:
//! - exit 0 completes the task; standard output is the result (JSON if it parses, else a string);
//! - exit 75 (EX_TEMPFAIL) is a temporary failure: recorded, retried after the queue's backoff,
//!   and not counted toward `max_attempts`;
//! - any other exit fails the attempt with the tail of standard error;
//! - past `--timeout` the command is killed and the attempt fails.

use anyhow::Result;
use rota_client::worker::{HandlerError, Worker};
use rota_client::Client;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Longest stdout kept as the result; more is cut so the completion stays under server limits.
const MAX_RESULT_BYTES: usize = 256 * 1024;
/// How much of stderr goes into the error message.
const STDERR_TAIL_BYTES: usize = 2 * 1024;

#[derive(clap::Args)]
pub struct WorkerArgs {
    queue: String,
    /// Only these kinds, comma-separated.
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// Commands running at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Kill a command that runs longer than this, e.g. 30s, 10m.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    timeout: Duration,
    /// Lease per task; it is renewed every third of this while the command runs.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    lease: Duration,
    /// After Ctrl-C or SIGTERM, how long running commands may finish before they are killed
    /// and their tasks handed back.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    grace: Duration,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let start = text.len().saturating_sub(n);
    let start = (start..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text[start..].to_owned()
}

fn result_of(stdout: &[u8]) -> Option<rota_core::Json> {
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.len() <= MAX_RESULT_BYTES {
        if let Ok(raw) = serde_json::value::RawValue::from_string(text.to_owned()) {
            return Some(raw);
        }
    }
    let mut cut = text.len().min(MAX_RESULT_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    serde_json::value::to_raw_value(&text[..cut]).ok()
}

async fn run_command(
    command: Arc<Vec<String>>,
    task: rota_core::Task,
) -> Result<Option<rota_core::Json>, HandlerError> {
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .env("ROTA_TASK_ID", task.id.to_string())
        .env("ROTA_TASK_KIND", &task.kind)
        .env("ROTA_TASK_ATTEMPT", task.attempt.to_string())
        .env("ROTA_TASK_QUEUE", &task.queue)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A timeout or shutdown drops this future: the command must not outlive it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HandlerError::new(format!("cannot start `{}`: {e}", command[0])))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let payload = task.payload.get().as_bytes().to_vec();
    // Written beside the wait so a command that does not read its input cannot block us.
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&payload).await;
    });
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| HandlerError::new(format!("waiting for `{}` failed: {e}", command[0])))?;
    feed.abort();
    match out.status.code() {
        Some(0) => Ok(result_of(&out.stdout)),
        Some(75) => Err(HandlerError::new(format!(
            "temporary failure (exit 75): {}",
            tail(&out.stderr, STDERR_TAIL_BYTES)
        ))
        .temporary()),
        Some(code) => Err(HandlerError::new(format!(
            "exit {code}: {}",
            tail(&out.stderr, STDERR_TAIL_BYTES)
        ))),
        None => Err(HandlerError::new(format!(
            "killed by a signal: {}",
            tail(&out.stderr, STDERR_TAIL_BYTES)
        ))),
    }
}

pub async fn run(client: Client, args: WorkerArgs) -> Result<()> {
    let command = Arc::new(args.command);
    eprintln!(
        "rota worker: running `{}` for queue {} ({} at once); Ctrl-C to stop",
        command.join(" "),
        args.queue,
        args.concurrency
    );
    let stats = Worker::new(client, &args.queue)
        .kinds(args.kinds)
        .concurrency(args.concurrency)
        .timeout(args.timeout)
        .lease(args.lease)
        .grace(args.grace)
        .run(
            move |task| run_command(command.clone(), task),
            crate::serve::shutdown_signal(),
        )
        .await?;
    eprintln!(
        "rota worker: stopped; {} succeeded, {} failed, {} handed back, {} lost their lease",
        stats.succeeded, stats.failed, stats.interrupted, stats.lease_lost
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_becomes_json_or_a_string() {
        assert_eq!(result_of(b"  {\"a\": 1}\n").unwrap().get(), "{\"a\": 1}");
        assert_eq!(result_of(b"done\n").unwrap().get(), "\"done\"");
        assert!(result_of(b" \n").is_none());
        let big = vec![b'x'; MAX_RESULT_BYTES + 10];
        assert_eq!(result_of(&big).unwrap().get().len(), MAX_RESULT_BYTES + 2);
    }

    #[test]
    fn stderr_tail_keeps_the_end() {
        assert_eq!(tail(b"first\nlast line\n", 9), "last line");
        assert_eq!(tail("ééé".as_bytes(), 3), "é");
    }
}
