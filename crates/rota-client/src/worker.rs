//! The worker runtime: claim in batches with long-poll, run up to `concurrency` handlers at
//! once, heartbeat each running task, and report outcomes in batches.
//!
//! ```no_run
//! # async fn demo() -> rota_client::Result<()> {
//! use rota_client::{worker::{HandlerError, Worker}, Client};
//! use std::time::Duration;
//! let client = Client::new("http://127.0.0.1:7070")?;
//! let stats = Worker::new(client, "emails")
//!     .kinds(["email.send"])
//!     .concurrency(8)
//!     .run(
//!         |task| async move {
//!             if task.attempt > 3 {
//!                 return Err(HandlerError::new("smtp down").retry_in(Duration::from_secs(30)));
//!             }
//!             Ok(None) // completed, no result
//!         },
//!         async { let _ = tokio::signal::ctrl_c().await; },
//!     )
//!     .await?;
//! println!("{} succeeded", stats.succeeded);
//! # Ok(()) }
//! ```
//!
//! Guarantees: a handler's panic, error or timeout becomes a failed attempt (the worker keeps
//! running); a task that is cancelled (heartbeat answered 409 `task_cancelled`) or whose lease
//! is lost (409 `lease_lost`) has its handler aborted — its future dropped at its next await —
//! within one heartbeat interval (`heartbeat_every`, 1 s by default), and is abandoned without
//! reporting: a cancel is final, and a lost lease belongs to another worker now; on shutdown, tasks still running after the grace period are
//! failed as temporary with `retry_in_ms: 0` so they run again elsewhere at once, without
//! spending an attempt. A claim still in flight when shutdown begins is abandoned: tasks it may
//! have leased come back when that lease ends. A claim the server refuses (4xx) stops the worker
//! the same way and `run` returns the error.

use crate::{ClaimOptions, Client, CompleteItem, Error, FailItem, Job, Result};
use rota_core::{Json, Task};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

/// Why a handler did not succeed, and what should happen next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    pub message: String,
    /// Retry after this delay instead of the queue's backoff.
    pub retry_in: Option<Duration>,
    /// Do not retry: the task goes to the dead-letter queue.
    pub dead: bool,
    /// A temporary failure: recorded, but the attempt does not count toward `max_attempts`.
    pub temporary: bool,
}

impl HandlerError {
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry_in: None,
            dead: false,
            temporary: false,
        }
    }
    pub fn retry_in(mut self, delay: Duration) -> Self {
        self.retry_in = Some(delay);
        self
    }
    pub fn dead(mut self) -> Self {
        self.dead = true;
        self
    }
    /// The failure was temporary (a dependency was down): try again without spending an
    /// attempt.
    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }
}

impl<E: std::error::Error> From<E> for HandlerError {
    fn from(e: E) -> Self {
        HandlerError::new(e.to_string())
    }
}

/// What a worker did, returned when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    pub succeeded: u64,
    pub failed: u64,
    /// Tasks abandoned because their lease was lost.
    pub lease_lost: u64,
    /// Tasks whose handler was aborted because the task was cancelled while it ran.
    pub cancelled: u64,
    /// Tasks failed back to the queue because the worker shut down.
    pub interrupted: u64,
    /// Runs that spawned tasks ([`Client::spawn`]): the task waits for them and runs again.
    pub spawned: u64,
}

#[derive(Default)]
struct Counters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    lease_lost: AtomicU64,
    cancelled: AtomicU64,
    interrupted: AtomicU64,
    spawned: AtomicU64,
}

impl Counters {
    /// Where an item of a completion batch that the server refused is counted.
    fn refused(&self, error: Option<&crate::ErrorDetail>) -> &AtomicU64 {
        match error {
            Some(e) if e.code == "task_cancelled" => &self.cancelled,
            _ => &self.lease_lost,
        }
    }
}

enum Report {
    Complete(CompleteItem),
    Fail(FailItem),
}

/// Most tasks one claim asks for; a worker with more free slots claims again at once.
const MAX_CLAIM: usize = 100;

pub struct Worker {
    client: Client,
    queue: String,
    name: String,
    kinds: Vec<String>,
    concurrency: usize,
    timeout: Option<Duration>,
    lease: Duration,
    heartbeat_every: Duration,
    poll_wait: Duration,
    grace: Duration,
}

impl Worker {
    pub fn new(client: Client, queue: impl Into<String>) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
        Worker {
            client,
            queue: queue.into(),
            name: format!("{host}-{}", std::process::id()),
            kinds: Vec::new(),
            concurrency: 1,
            timeout: None,
            lease: Duration::from_secs(30),
            heartbeat_every: Duration::from_secs(1),
            poll_wait: Duration::from_secs(20),
            grace: Duration::from_secs(10),
        }
    }
    /// Only tasks of these kinds.
    pub fn kinds<S: Into<String>>(mut self, kinds: impl IntoIterator<Item = S>) -> Self {
        self.kinds = kinds.into_iter().map(Into::into).collect();
        self
    }
    /// Handlers running at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Longest a handler may run; past it the attempt fails.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
    /// Lease asked for on claim and on each heartbeat.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// How often a running task's lease is renewed (at most every third of the lease, so a
    /// lost heartbeat or two does not lose it). The heartbeat's answer is also how a cancel
    /// reaches the handler, so this bounds the time from cancel to stop. Default 1 s.
    pub fn heartbeat_every(mut self, every: Duration) -> Self {
        self.heartbeat_every = every;
        self
    }
    /// Longest a claim waits for work before asking again.
    pub fn poll_wait(mut self, wait: Duration) -> Self {
        self.poll_wait = wait;
        self
    }
    /// How long running tasks may finish after shutdown begins.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
    /// The worker's name in leases and lease-expiry errors.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Runs until `shutdown` resolves, then drains as described in the module docs.
    pub async fn run<F, Fut>(
        self,
        handler: F,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<WorkerStats>
    where
        F: Fn(Task) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<Json>, HandlerError>> + Send + 'static,
    {
        self.run_jobs(move |job: Job| handler(job.task), shutdown)
            .await
    }

    /// [`Worker::run`] with a handler that gets the whole [`Job`]: the task, how its
    /// dependencies ended and their results (a join's inputs), and for a batch's callback how
    /// the batch's members ended.
    pub async fn run_jobs<F, Fut>(
        self,
        handler: F,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<WorkerStats>
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<Json>, HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let counters = Arc::new(Counters::default());
        let (report_tx, report_rx) = mpsc::channel::<Report>(self.concurrency * 2 + 16);
        let completer = tokio::spawn(completer(self.client.clone(), report_rx, counters.clone()));
        let stop = CancellationToken::new();
        let mut running: JoinSet<()> = JoinSet::new();
        tokio::pin!(shutdown);
        let lease_ms = self.lease.as_millis() as u64;
        let mut fatal = None;
        let mut unreachable = false;
        loop {
            // Wait for a free slot, then claim as many tasks as there are free slots.
            let first = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("never closed"),
                _ = &mut shutdown => break,
            };
            // At most MAX_CLAIM per request, well under the server's `limits.max_claim`.
            let free = (permits.available_permits() + 1).min(MAX_CLAIM);
            let opts = ClaimOptions {
                worker: self.name.clone(),
                kinds: self.kinds.clone(),
                max: free,
                wait_ms: Some(self.poll_wait.as_millis() as u64),
                lease_ms: Some(lease_ms),
            };
            let claimed = tokio::select! {
                r = self.client.claim_jobs(&self.queue, &opts) => r,
                _ = &mut shutdown => { drop(first); break; }
            };
            let tasks = match claimed {
                Ok(t) => t,
                Err(
                    e @ (Error::Transport(_)
                    | Error::Unavailable { .. }
                    | Error::RateLimited { .. }
                    | Error::Api {
                        status: 500 | 502 | 504,
                        ..
                    }),
                ) => {
                    // The server is unreachable, busy or failing (a load balancer answers 502
                    // or 504 while servers restart): back off briefly, then ask again, saying
                    // so once per outage rather than once a second.
                    if !unreachable {
                        tracing::warn!(queue = %self.queue, "cannot claim, retrying every second: {e}");
                        unreachable = true;
                    }
                    drop(first);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = &mut shutdown => break,
                    }
                }
                Err(e) => {
                    // A request the server refuses (a bad queue name, say) will not improve:
                    // hand the running tasks back and report it.
                    fatal = Some(e);
                    break;
                }
            };
            if std::mem::take(&mut unreachable) {
                tracing::info!(queue = %self.queue, "claiming again");
            }
            let mut first = Some(first);
            for job in tasks {
                let permit = match first.take() {
                    Some(p) => p,
                    None => permits.clone().acquire_owned().await.expect("never closed"),
                };
                let run = RunOne {
                    client: self.client.clone(),
                    lease_ms,
                    heartbeat_every: self.heartbeat_every,
                    timeout: self.timeout,
                    reports: report_tx.clone(),
                    counters: counters.clone(),
                    stop: stop.clone(),
                };
                let handler = handler.clone();
                running.spawn(async move {
                    run.run(job, move |j| handler(j)).await;
                    drop(permit);
                });
            }
            while running.try_join_next().is_some() {}
        }
        // Shutdown: no more claims; let running tasks finish within the grace period.
        let grace = if fatal.is_some() {
            Duration::ZERO
        } else {
            self.grace
        };
        let drained = tokio::time::timeout(grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            stop.cancel();
            while running.join_next().await.is_some() {}
        }
        drop(report_tx);
        let _ = completer.await;
        if let Some(e) = fatal {
            return Err(e);
        }
        Ok(WorkerStats {
            succeeded: counters.succeeded.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            lease_lost: counters.lease_lost.load(Ordering::Relaxed),
            cancelled: counters.cancelled.load(Ordering::Relaxed),
            interrupted: counters.interrupted.load(Ordering::Relaxed),
            spawned: counters.spawned.load(Ordering::Relaxed),
        })
    }
}

struct RunOne {
    client: Client,
    lease_ms: u64,
    heartbeat_every: Duration,
    timeout: Option<Duration>,
    reports: mpsc::Sender<Report>,
    counters: Arc<Counters>,
    stop: CancellationToken,
}

enum End {
    Done(std::result::Result<Option<Json>, HandlerError>),
    Panicked(String),
    TimedOut,
    LeaseLost,
    Cancelled,
    Interrupted,
    /// The handler spawned tasks: the lease was given up, nothing to report.
    Spawned,
}

impl RunOne {
    async fn run<F, Fut>(self, claimed: Job, handler: F)
    where
        F: FnOnce(Job) -> Fut,
        Fut: Future<Output = std::result::Result<Option<Json>, HandlerError>> + Send + 'static,
    {
        let id = claimed.task.id;
        let lease = match &claimed.task.lease {
            Some(l) => l.token.clone(),
            None => return,
        };
        let handed_off = claimed.handed_off.clone();
        let spawned = move || handed_off.load(Ordering::Acquire);
        let run = crate::trace::Run::start(&claimed.task);
        // Its own task, so a panic is caught at the join; aborted if this runner is dropped.
        let mut job = AbortOnDropHandle::new(tokio::spawn(run.wrap(handler(claimed))));
        let heartbeat_every = self
            .heartbeat_every
            .min(Duration::from_millis(self.lease_ms / 3))
            .max(Duration::from_millis(10));
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(heartbeat_every);
        // A slow heartbeat is not followed by a burst of them.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is immediate
        let end = loop {
            tokio::select! {
                joined = &mut job => break match joined {
                    Ok(_) if spawned() => End::Spawned,
                    Ok(r) => End::Done(r),
                    Err(e) if e.is_panic() => End::Panicked(panic_text(e.into_panic())),
                    Err(_) => End::Interrupted,
                },
                _ = ticker.tick() => {
                    // A heartbeat that fails otherwise is retried at the next tick: the lease
                    // has two more ticks of slack.
                    let beat = self.client.heartbeat(id, &lease, Some(self.lease_ms), None).await;
                    match beat {
                        // The handler spawned and is finishing: the lease is given up.
                        Err(Error::LeaseLost { .. }) if spawned() => continue,
                        Err(Error::Cancelled { .. }) => break End::Cancelled,
                        Err(Error::LeaseLost { .. } | Error::NotFound { .. }) => break End::LeaseLost,
                        _ => {}
                    }
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break End::TimedOut,
                _ = self.stop.cancelled() => break End::Interrupted,
            }
        };
        if !matches!(end, End::Done(_) | End::Panicked(_)) {
            job.abort();
        }
        match &end {
            End::Done(Ok(_)) => run.end("succeeded", None),
            End::Done(Err(e)) => run.end("failed", Some(&e.message)),
            End::Panicked(msg) => run.end("failed", Some(msg)),
            End::TimedOut => run.end("timed_out", Some("the handler timed out")),
            End::LeaseLost => run.end("lease_lost", Some("the lease was lost")),
            End::Cancelled => run.end("cancelled", None),
            End::Interrupted => run.end("interrupted", None),
            End::Spawned => run.end("spawned", None),
        }
        let fail = |e: HandlerError| {
            Report::Fail(FailItem {
                id,
                lease: lease.clone(),
                error: e.message,
                retry_in_ms: e.retry_in.map(|d| d.as_millis() as u64),
                dead: e.dead,
                temporary: e.temporary,
            })
        };
        let report = match end {
            End::Done(Ok(result)) => Report::Complete(CompleteItem {
                id,
                lease: lease.clone(),
                result,
            }),
            End::Done(Err(e)) => fail(e),
            End::Panicked(msg) => fail(HandlerError::new(format!("handler panicked: {msg}"))),
            End::TimedOut => fail(HandlerError::new(format!(
                "handler timed out after {:?}",
                self.timeout.unwrap_or_default()
            ))),
            End::Interrupted => {
                self.counters.interrupted.fetch_add(1, Ordering::Relaxed);
                // Not the task's fault: it runs again at once, and the attempt is given back.
                fail(
                    HandlerError::new("worker shut down before the task finished")
                        .retry_in(Duration::ZERO)
                        .temporary(),
                )
            }
            End::LeaseLost => {
                self.counters.lease_lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
            End::Spawned => {
                self.counters.spawned.fetch_add(1, Ordering::Relaxed);
                return;
            }
            End::Cancelled => {
                tracing::info!("task {id} was cancelled; its handler was stopped");
                self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let _ = self.reports.send(report).await;
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-text panic".to_owned()
    }
}

/// Sends outcomes in batches: whatever has arrived while the previous batch was in flight.
async fn completer(client: Client, mut rx: mpsc::Receiver<Report>, counters: Arc<Counters>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 500 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for r in batch {
            match r {
                Report::Complete(c) => done.push(c),
                Report::Fail(f) => failed.push(f),
            }
        }
        if !done.is_empty() {
            let n = done.len() as u64;
            match send_with_retry(|| client.complete_batch(&done)).await {
                Ok(out) => count_outcomes(&out, &counters.succeeded, &counters),
                // One item (say a result over the server's size limit) made the server refuse
                // the whole batch: send them one by one, so only that item fails.
                Err(Error::TooLarge { .. } | Error::Invalid { .. }) => {
                    for item in done {
                        complete_one(&client, item, &counters).await;
                    }
                }
                Err(_) => {
                    counters.lease_lost.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        if !failed.is_empty() {
            let n = failed.len() as u64;
            match send_with_retry(|| client.fail_batch(&failed)).await {
                Ok(out) => count_outcomes(&out, &counters.failed, &counters),
                Err(_) => {
                    counters.lease_lost.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Counts a batch's answers: each item done in `ok`, each refused where its code says.
fn count_outcomes(out: &[crate::ItemOutcome], ok: &AtomicU64, counters: &Counters) {
    for item in out {
        let counter = if item.ok {
            ok
        } else {
            counters.refused(item.error.as_ref())
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Completes one task; a result the server refuses fails the task with the reason instead.
async fn complete_one(client: &Client, item: CompleteItem, counters: &Counters) {
    let counter = match client.complete(item.id, &item.lease, item.result).await {
        Ok(_) => &counters.succeeded,
        Err(Error::TooLarge { message } | Error::Invalid { message }) => {
            let error = format!("the server refused the task's result: {message}");
            match client.fail(item.id, &item.lease, &error, None, false).await {
                Ok(_) => &counters.failed,
                Err(Error::Cancelled { .. }) => &counters.cancelled,
                Err(_) => &counters.lease_lost,
            }
        }
        Err(Error::Cancelled { .. }) => &counters.cancelled,
        Err(_) => &counters.lease_lost,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Completing twice is safe (the second answer is `lease_lost`), so transport failures are
/// retried a few times; if the server stays away, the leases expire and the tasks run again.
async fn send_with_retry<T, Fut>(call: impl Fn() -> Fut) -> Result<T>
where
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(Error::Transport(_) | Error::Unavailable { .. } | Error::RateLimited { .. })
                if attempt < 4 =>
            {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
