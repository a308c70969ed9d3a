//! Dependencies across shards (docs/workflows.md, "Where it holds"). A task and a dependency
//! in different shards are tied by a wait in the task's shard and a dependent row in the
//! dependency's; an ending crosses through the ending shard's outbox, which the relay here
//! carries. Every step is idempotent, so after a crash the relay's first pass (re-registering
//! every cross-shard wait, settling held workflows, then the outboxes) brings the shards back
//! in line with no ending lost or applied twice.

use super::{shard_of, SqliteStore};
use crate::shard::Shard;
use crate::writer::Remote;
use rota_core::{NewTask, QueueKey, TaskId, TaskState, Timestamp};
use rota_store::{Enqueued, StoreError, StoreResult};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Endings the relay moves per round trip.
const CARRY: usize = 512;
/// How often the relay looks even when not woken (an ending written while a carry failed).
const IDLE: Duration = Duration::from_secs(1);
/// How often the relay looks for held workflow parts to release or delete.
const SETTLE_EVERY: Duration = Duration::from_secs(60);
/// A workflow part held this long without its record is taken as abandoned (its submission
/// failed or crashed) and deleted; younger ones may still be committing.
const ABANDONED_MS: i64 = 5 * 60 * 1000;

/// What the relay shares with the store.
pub(crate) struct Relay {
    pub wake: Arc<Notify>,
    pub stop: AtomicBool,
    /// Set when a step of a submission or registration failed after its commit: the next pass
    /// re-does the recovery's checks.
    pub recheck: AtomicBool,
}

impl Relay {
    pub fn new(wake: Arc<Notify>) -> Self {
        Relay {
            wake,
            stop: AtomicBool::new(false),
            recheck: AtomicBool::new(false),
        }
    }
}

/// The shards and how ids map to them: what the relay needs of the store.
#[derive(Clone)]
pub(crate) struct Map {
    pub shards: Arc<Vec<Shard>>,
    pub legacy_below: u64,
}

impl Map {
    pub fn of(&self, id: TaskId) -> usize {
        shard_of(id, self.legacy_below, self.shards.len())
    }

    /// Tells each dependency's shard about dependents in shard `here`; applies in `here` the
    /// endings of those that already ended.
    /// Answers how many had already ended.
    pub(super) async fn register(
        &self,
        here: usize,
        waits: Vec<(TaskId, TaskId)>,
    ) -> StoreResult<usize> {
        let mut applied = 0;
        let mut by_shard: BTreeMap<usize, Vec<(TaskId, TaskId)>> = BTreeMap::new();
        for (task, dep) in waits {
            let s = self.of(dep);
            if s != here {
                by_shard.entry(s).or_default().push((dep, task));
            }
        }
        for (s, pairs) in by_shard {
            let answers = self.shards[s].register(pairs.clone()).await?;
            let ended: Vec<(TaskId, TaskId, TaskState)> = pairs
                .into_iter()
                .zip(answers)
                .filter_map(|((dep, task), a)| a.map(|state| (task, dep, state)))
                .collect();
            if !ended.is_empty() {
                applied += ended.len();
                self.shards[here].endings(ended).await?;
            }
        }
        Ok(applied)
    }

    /// Carries every shard's outbox to the dependents' shards until all are empty.
    async fn carry(&self) -> StoreResult<()> {
        for (s, shard) in self.shards.iter().enumerate() {
            loop {
                let rows = shard.outbox(CARRY).await?;
                if rows.is_empty() {
                    break;
                }
                let mut by_shard: BTreeMap<usize, Vec<(TaskId, TaskId, TaskState)>> =
                    BTreeMap::new();
                for r in &rows {
                    by_shard
                        .entry(self.of(r.task))
                        .or_default()
                        .push((r.task, r.dep, r.state));
                }
                for (target, endings) in by_shard {
                    if target == s {
                        tracing::warn!(shard = s, "an outbox row names a task of its own shard");
                    }
                    self.shards[target].endings(endings).await?;
                }
                let n = rows.len();
                shard
                    .drop_outbox(rows.into_iter().map(|r| r.id).collect())
                    .await?;
                if n < CARRY {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Workflows with tasks on hold: released where the record exists, deleted where it does
    /// not and `abandon_before` says the part is old enough (every part, at open).
    async fn settle_holds(&self, abandon_before: Timestamp) -> StoreResult<()> {
        for shard in self.shards.iter() {
            for (wf, oldest) in shard.held().await? {
                let home = &self.shards[self.of(wf)];
                if home.workflow_record(None, wf).await?.is_some() {
                    shard.release_holds(wf).await?;
                } else if oldest < abandon_before {
                    let n = shard.drop_part(wf).await?;
                    tracing::warn!(workflow = %wf, tasks = n, "deleted the part of a workflow whose submission never committed");
                }
            }
        }
        Ok(())
    }

    /// The checks after a crash: every cross-shard wait registered again, held workflows
    /// settled. A part is abandoned when it is older than [`ABANDONED_MS`], or was written
    /// before this store opened (`opened_at`: no submission of an earlier process is alive;
    /// one of this process may be between its parts and its record).
    async fn recover(&self, opened_at: Option<Timestamp>) -> StoreResult<()> {
        for (s, shard) in self.shards.iter().enumerate() {
            let waits = shard.waits().await?;
            let ended = self.register(s, waits).await?;
            if ended > 0 {
                tracing::info!(
                    shard = s,
                    ended,
                    "applied dependency endings missed before a restart"
                );
            }
        }
        let stale = self.shards[0].now().plus_ms(-ABANDONED_MS);
        let abandon_before = opened_at.map_or(stale, |o| o.max(stale));
        self.settle_holds(abandon_before).await
    }
}

/// The relay's loop: recovery first, then the outboxes whenever a writer wakes it (and every
/// second), until the store closes.
pub(crate) async fn relay(map: Map, relay: Arc<Relay>, opened_at: Timestamp) {
    let mut recovered = false;
    let mut settled = std::time::Instant::now();
    while !relay.stop.load(Ordering::Acquire) {
        // Held parts now and then: a committed workflow whose holds a failed step left, or a
        // part whose submission never committed (after ABANDONED_MS).
        if recovered && settled.elapsed() >= SETTLE_EVERY {
            settled = std::time::Instant::now();
            let stale = map.shards[0].now().plus_ms(-ABANDONED_MS);
            if let Err(e) = map.settle_holds(stale).await {
                tracing::error!(error = %e, "cannot settle held workflow parts; trying again");
            }
        }
        if !recovered || relay.recheck.load(Ordering::Acquire) {
            // Endings already in the outboxes first: a registration answers a dependency that
            // is gone as cancelled, which must not beat its real ending on its way here.
            if let Err(e) = map.carry().await {
                tracing::error!(error = %e, "cannot carry task endings to other shards; trying again");
            }
            relay.recheck.store(false, Ordering::Release);
            match map.recover((!recovered).then_some(opened_at)).await {
                Ok(()) => recovered = true,
                Err(e) => {
                    relay.recheck.store(true, Ordering::Release);
                    tracing::error!(error = %e, "cannot check dependencies across shards; trying again")
                }
            }
        }
        if let Err(e) = map.carry().await {
            if !relay.stop.load(Ordering::Acquire) {
                tracing::error!(error = %e, "cannot carry task endings to other shards; trying again");
            }
        }
        tokio::select! {
            _ = relay.wake.notified() => {}
            _ = tokio::time::sleep(IDLE) => {}
        }
    }
}

impl SqliteStore {
    pub(super) fn map(&self) -> Map {
        Map {
            shards: self.shards.clone(),
            legacy_below: self.legacy_below,
        }
    }

    /// An enqueue of tasks with dependencies: each dependency must be a task of the tenant;
    /// those in other shards are read first, the tasks written, and then the dependencies'
    /// shards told whom to tell.
    pub(super) async fn enqueue_waiting(
        &self,
        queue: &QueueKey,
        tasks: Vec<NewTask>,
    ) -> StoreResult<Vec<Enqueued>> {
        let map = self.map();
        let here = self.place(queue);
        let mut by_shard: BTreeMap<usize, Vec<TaskId>> = BTreeMap::new();
        for t in &tasks {
            for &dep in &t.depends_on {
                by_shard.entry(map.of(dep)).or_default().push(dep);
            }
        }
        let mut remote = Remote::default();
        for (s, mut ids) in by_shard {
            ids.sort_unstable();
            ids.dedup();
            let found = self.shards[s].states(&queue.tenant, ids.clone()).await?;
            if let Some(missing) = ids.iter().find(|id| !found.contains_key(id)) {
                return Err(StoreError::Invalid(format!(
                    "depends_on: task {missing} does not exist"
                )));
            }
            if s != here {
                for (id, state) in found {
                    if state.is_final() {
                        remote.ended.insert(id, state);
                    } else {
                        remote.live.insert(id);
                    }
                }
            }
        }
        let live = remote.live.clone();
        let mut out = self.shards[here]
            .enqueue_waiting(queue, tasks, remote)
            .await?;
        let waits: Vec<(TaskId, TaskId)> = out
            .iter()
            .filter(|e| !e.duplicate && e.task.state == TaskState::Waiting)
            .flat_map(|e| {
                e.task
                    .depends_on
                    .iter()
                    .filter(|d| live.contains(d))
                    .map(move |&d| (e.task.id, d))
            })
            .collect();
        if waits.is_empty() {
            return Ok(out);
        }
        // Its own task: a request dropped now (its client gone) must not leave the tasks
        // stored and their dependencies' shards untold.
        let registered = tokio::spawn({
            let map = map.clone();
            async move { map.register(here, waits).await }
        })
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Unavailable(format!(
                "registration stopped: {e}"
            )))
        });
        match registered {
            Ok(0) => return Ok(out),
            Ok(_) => {}
            Err(e) => {
                // The tasks are stored; the relay's next pass registers them again.
                tracing::error!(error = %e, "cannot register dependents with other shards yet");
                self.relay.recheck.store(true, Ordering::Release);
                self.relay.wake.notify_one();
                return Ok(out);
            }
        }
        // A dependency that ended meanwhile may have released or cancelled a task: answer
        // each as it stands now.
        let ids: Vec<TaskId> = out
            .iter()
            .filter(|e| e.task.state == TaskState::Waiting)
            .map(|e| e.task.id)
            .collect();
        // One read for all of them; a read that fails leaves the answers as the enqueue gave.
        let mut now: HashMap<TaskId, rota_core::Task> = self.shards[here]
            .tasks_here(&queue.tenant, ids)
            .await
            .map(|ts| ts.into_iter().map(|t| (t.id, t)).collect())
            .unwrap_or_default();
        for e in &mut out {
            if let Some(t) = now.remove(&e.task.id) {
                e.task = t;
            }
        }
        Ok(out)
    }
}
