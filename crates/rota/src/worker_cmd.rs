//! `rota worker <queue> -- <command>`: any program is a worker. For each task the command runs
//! with the payload on standard input and `ROTA_TASK_ID`, `ROTA_TASK_KIND`, `ROTA_TASK_ATTEMPT`
//! and `ROTA_TASK_QUEUE` in its environment:
//! - exit 0 completes the task; standard output is the result (JSON if it parses, else a string);
//! - exit 75 (EX_TEMPFAIL) is a temporary failure: recorded, retried after the queue's backoff,
//!   and not counted toward `max_attempts`;
//! - any other exit fails the attempt with the tail of standard error;
//! - past `--timeout` the command is stopped (as below) and the attempt fails.
//!
//! The command runs in a process group of its own. When its task is cancelled (the heartbeat,
//! every `--heartbeat-every`, answers `task_cancelled`), its lease is lost, it times out, or
//! the worker's shutdown grace runs out, the whole group gets SIGTERM, and SIGKILL if anything
//! of it is left after `--kill-grace`: a shell script's own children stop with it. A cancelled
//! task is not reported (nothing is retried); the worker waits for the groups it is stopping
//! before it exits.
//!
//! Each outcome is logged at `info`, one line per task. A command that cannot be started is
//! refused before anything is claimed; one that stops being startable later (deleted, made
//! unexecutable) hands its task back without spending an attempt and stops the worker with the
//! reason, rather than failing every task of the queue one attempt at a time.

use anyhow::Result;
use rota_client::worker::{HandlerError, Worker};
use rota_client::Client;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    /// Lease per task, renewed while the command runs.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    lease: Duration,
    /// How often a running task's lease is renewed (at most a third of --lease); a cancel
    /// reaches the command within this.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    heartbeat_every: Duration,
    /// After SIGTERM to a command's process group (cancel, timeout, end of --grace), how long
    /// it may take to exit before the group gets SIGKILL.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    kill_grace: Duration,
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

/// Where `program` would be run from: itself when it names a path, else the first executable
/// of that name on `PATH`; an error that says what is wrong otherwise.
fn resolve(program: &str, path_var: Option<&std::ffi::OsStr>) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = Path::new(program);
        return match std::fs::metadata(p) {
            Err(e) => Err(format!("`{program}` cannot be run: {e}")),
            Ok(_) if !executable(p) => Err(format!(
                "`{program}` is not an executable file (chmod +x {program}?)"
            )),
            Ok(_) => Ok(p.to_owned()),
        };
    }
    path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| {
            format!("`{program}` is not on PATH (give its path, e.g. ./{program}, if it is here)")
        })
}

/// What every task's run shares: the command, and the way to stop the worker when the command
/// cannot be started at all.
struct Runner {
    command: Vec<String>,
    stop: CancellationToken,
    cannot_start: Mutex<Option<String>>,
    kill_grace: Duration,
    /// The process groups being stopped; the worker exits once they are gone.
    stopping: TaskTracker,
}

impl Runner {
    async fn run(&self, task: rota_core::Task) -> Result<Option<rota_core::Json>, HandlerError> {
        let started = Instant::now();
        let (id, kind, attempt) = (task.id, task.kind.clone(), task.attempt);
        let outcome = run_command(self, task).await;
        let took =
            humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64));
        match &outcome {
            Ok(_) => tracing::info!("task {id} ({kind}, attempt {attempt}) succeeded in {took}"),
            Err(Start(e)) => {
                tracing::error!("task {id} handed back: {e}; stopping");
                self.cannot_start.lock().unwrap().get_or_insert(e.clone());
                self.stop.cancel();
            }
            Err(Ran(e)) => {
                tracing::info!(
                    "task {id} ({kind}, attempt {attempt}) failed in {took}: {}",
                    e.message
                )
            }
        }
        outcome.map_err(|e| match e {
            // Not the task's fault: another worker, or this one once fixed, runs it.
            Start(e) => HandlerError::new(e).temporary().retry_in(Duration::ZERO),
            Ran(e) => e,
        })
    }
}

/// Why a command did not complete its task.
enum Failure {
    /// It could not be started.
    Start(String),
    /// It ran and failed.
    Ran(HandlerError),
}
use Failure::{Ran, Start};

async fn run_command(
    runner: &Runner,
    task: rota_core::Task,
) -> Result<Option<rota_core::Json>, Failure> {
    let command = &runner.command;
    let mut child = tokio::process::Command::new(&command[0]);
    child
        .args(&command[1..])
        .env("ROTA_TASK_ID", task.id.to_string())
        .env("ROTA_TASK_KIND", &task.kind)
        .env("ROTA_TASK_ATTEMPT", task.attempt.to_string())
        .env("ROTA_TASK_QUEUE", &task.queue)
        // The run's trace context, where OpenTelemetry SDKs look for it (docs/telemetry.md).
        .env_remove("TRACEPARENT")
        .env_remove("TRACESTATE");
    if let Some((parent, state)) = rota_client::trace::child_context(&task) {
        child.env("TRACEPARENT", parent);
        if let Some(s) = state {
            child.env("TRACESTATE", s);
        }
    }
    let child = child
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that stopping it reaches whatever it started.
        .process_group(0)
        .spawn()
        .map_err(|e| Start(format!("cannot start `{}`: {e}", command[0])))?;
    // A cancel, timeout or shutdown drops this future: the group must not outlive it.
    let mut group = Group {
        child: Some(child),
        kill_grace: runner.kill_grace,
        stopping: runner.stopping.clone(),
    };
    let child = group.child.as_mut().expect("just set");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let payload = task.payload.get().as_bytes().to_vec();
    // Written beside the wait so a command that does not read its input cannot block us.
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&payload).await;
    });
    let (status, stdout, stderr) = tokio::join!(child.wait(), read_all(stdout), read_all(stderr));
    feed.abort();
    let status = status.map_err(|e| {
        Ran(HandlerError::new(format!(
            "waiting for `{}` failed: {e}",
            command[0]
        )))
    })?;
    // Exited and reaped: nothing left to stop.
    group.child = None;
    let out = std::process::Output {
        status,
        stdout,
        stderr,
    };
    let failed = |e: HandlerError| Err(Ran(e));
    match out.status.code() {
        Some(0) => Ok(result_of(&out.stdout)),
        Some(75) => failed(
            HandlerError::new(format!(
                "temporary failure (exit 75): {}",
                tail(&out.stderr, STDERR_TAIL_BYTES)
            ))
            .temporary(),
        ),
        Some(code) => failed(HandlerError::new(format!(
            "exit {code}: {}",
            tail(&out.stderr, STDERR_TAIL_BYTES)
        ))),
        None => failed(HandlerError::new(format!(
            "killed by a signal: {}",
            tail(&out.stderr, STDERR_TAIL_BYTES)
        ))),
    }
}

async fn read_all(mut pipe: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = pipe.read_to_end(&mut bytes).await;
    bytes
}

/// A running command's process group (its id is the command's pid). Dropped while the command
/// still runs, it hands the child to a task that stops the group.
struct Group {
    child: Option<tokio::process::Child>,
    kill_grace: Duration,
    stopping: TaskTracker,
}

impl Drop for Group {
    fn drop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        let Some(pgid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
            return; // already reaped
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            self.stopping
                .spawn(stop_group(child, pgid, self.kill_grace));
        } else {
            signal_group(pgid, libc::SIGKILL);
        }
    }
}

/// SIGTERM to the group, then SIGKILL once `kill_grace` has passed with any of it left.
async fn stop_group(mut child: tokio::process::Child, pgid: i32, kill_grace: Duration) {
    signal_group(pgid, libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + kill_grace;
    loop {
        // Reap the leader once it exits, so it does not linger in the group as a zombie.
        let _ = child.try_wait();
        if !signal_group(pgid, 0) {
            return; // no process of the group is left
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("process group {pgid} outlived SIGTERM by {kill_grace:?}; SIGKILL");
            signal_group(pgid, libc::SIGKILL);
            let _ = child.wait().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `signal` to every process of group `pgid`; false when the group no longer exists.
/// (Safe to repeat: while any member lives the kernel does not reuse the group's id.)
fn signal_group(pgid: i32, signal: i32) -> bool {
    // SAFETY: killpg only sends a signal; it touches no memory of ours.
    unsafe { libc::killpg(pgid, signal) == 0 }
}

pub async fn run(client: Client, args: WorkerArgs) -> Result<()> {
    resolve(&args.command[0], std::env::var_os("PATH").as_deref()).map_err(anyhow::Error::msg)?;
    let runner = Arc::new(Runner {
        command: args.command,
        stop: CancellationToken::new(),
        cannot_start: Mutex::new(None),
        kill_grace: args.kill_grace,
        stopping: TaskTracker::new(),
    });
    eprintln!(
        "rota worker: running `{}` for queue {} ({} at once); Ctrl-C to stop",
        runner.command.join(" "),
        args.queue,
        args.concurrency
    );
    // Each run is a span when the OTEL_* variables name a collector (docs/telemetry.md).
    let traces = rota_server::telemetry::provider(&Default::default(), "rota-worker")
        .map_err(anyhow::Error::msg)?;
    if let Some(p) = &traces {
        opentelemetry::global::set_tracer_provider(p.clone());
    }
    let stop = runner.stop.clone();
    let shutdown = async move {
        tokio::select! {
            _ = crate::serve::shutdown_signal() => {}
            _ = stop.cancelled() => {}
        }
    };
    let handler = runner.clone();
    let stats = Worker::new(client, &args.queue)
        .kinds(args.kinds)
        .concurrency(args.concurrency)
        .timeout(args.timeout)
        .lease(args.lease)
        .heartbeat_every(args.heartbeat_every)
        .grace(args.grace)
        .run(
            move |task| {
                let handler = handler.clone();
                async move { handler.run(task).await }
            },
            shutdown,
        )
        .await;
    // Commands being stopped (cancelled, timed out, past the grace) end before the worker does.
    runner.stopping.close();
    runner.stopping.wait().await;
    if let Some(p) = traces {
        // Spans still queued are sent before the worker exits.
        let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
    }
    let stats = stats?;
    eprintln!(
        "rota worker: stopped; {} succeeded, {} failed, {} handed back, {} cancelled, {} lost their lease",
        stats.succeeded, stats.failed, stats.interrupted, stats.cancelled, stats.lease_lost
    );
    let cannot_start = runner.cannot_start.lock().unwrap().take();
    match cannot_start {
        Some(e) => anyhow::bail!("{e}"),
        None => Ok(()),
    }
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
    fn a_command_that_cannot_run_is_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("job.sh");
        let path = script.to_str().unwrap();
        let e = resolve(path, None).unwrap_err();
        assert!(
            e.contains("cannot be run") && e.contains("No such file"),
            "{e}"
        );
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let e = resolve(path, None).unwrap_err();
        assert!(e.contains("not an executable file"), "{e}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(resolve(path, None).unwrap(), script);
        let on_path = Some(dir.path().as_os_str());
        assert_eq!(resolve("job.sh", on_path).unwrap(), script);
        let e = resolve("no-such-job", on_path).unwrap_err();
        assert!(e.contains("not on PATH"), "{e}");
    }

    #[test]
    fn stderr_tail_keeps_the_end() {
        assert_eq!(tail(b"first\nlast line\n", 9), "last line");
        assert_eq!(tail("ééé".as_bytes(), 3), "é");
    }
}
