//! Workflows across shards: each shard writes its part held, the record commits the whole,
//! then every part's holds are released (see `writer/workflows.rs`).

use super::SqliteStore;
use crate::shard::workflows::{assemble, listed, parts};
use async_trait::async_trait;
use futures_util::future::join_all;
use rota_core::workflow::Workflow;
use rota_core::{QueueKey, StateCounts, TaskId};
use rota_store::{
    Spawn, Spawned, StoreError, StoreResult, Submission, WorkflowSpecTask, WorkflowStore,
};
use std::sync::atomic::Ordering;

impl SqliteStore {
    /// Deletes the records of workflows whose tasks retention has all removed (in whichever
    /// shards they were), a bounded number per pass.
    pub(super) async fn trim_workflows(&self) -> StoreResult<u64> {
        use rota_core::workflow::{RECORDS_PER_PASS, RECORD_GRACE_MS};
        let before = self.shards[0].now().plus_ms(-RECORD_GRACE_MS);
        let mut deleted = 0;
        for (s, shard) in self.shards.iter().enumerate() {
            // Each pass walks on from where the last stopped (records whose tasks are still
            // kept would otherwise hold the same first page for ever), and starts over at the
            // end.
            let mark = &self.record_marks[s];
            let after = TaskId(mark.load(Ordering::Relaxed));
            let stale = shard.stale_records(before, after, RECORDS_PER_PASS).await?;
            let next = match stale.last() {
                Some(last) if stale.len() == RECORDS_PER_PASS => last.0,
                _ => 0,
            };
            mark.store(next, Ordering::Relaxed);
            if stale.is_empty() {
                continue;
            }
            let mut kept = std::collections::HashSet::new();
            for found in join_all(self.shards.iter().map(|o| o.workflows_kept(stale.clone()))).await
            {
                kept.extend(found?);
            }
            let gone: Vec<TaskId> = stale.into_iter().filter(|id| !kept.contains(id)).collect();
            if !gone.is_empty() {
                deleted += self.shards[s].drop_records(gone).await?;
            }
        }
        Ok(deleted)
    }
}

impl SqliteStore {
    /// Logs `workflow.*` for workflows whose tasks have all ended since the last pass (a
    /// bounded number of records per shard per pass, walking on as the trim does).
    pub(super) async fn end_workflows(&self) -> StoreResult<u64> {
        use rota_core::workflow::{WorkflowState, RECORDS_PER_PASS};
        let mut ended = 0;
        for (s, shard) in self.shards.iter().enumerate() {
            let mark = &self.end_marks[s];
            let after = TaskId(mark.load(Ordering::Relaxed));
            let running = shard.running_workflows(after, RECORDS_PER_PASS).await?;
            let next = match running.last() {
                Some(last) if running.len() == RECORDS_PER_PASS => last.0,
                _ => 0,
            };
            mark.store(next, Ordering::Relaxed);
            'records: for id in running {
                for o in self.shards.iter() {
                    if o.workflow_live(id).await? {
                        continue 'records;
                    }
                }
                // Ended: its record (names and all) is read only now.
                let Some(r) = shard.workflow_record(None, id).await? else {
                    continue;
                };
                let mut counts = StateCounts::default();
                for c in self.each(|o| o.workflow_counts(r.id)).await {
                    counts.add(&c?);
                }
                let state = WorkflowState::of(&counts);
                if state == WorkflowState::Running {
                    continue;
                }
                // The event goes with the workflow's last task (a batch's callback); none when
                // retention already removed it.
                let last_id = rota_core::workflow::event_task(r.callback, &r.names);
                let last = match last_id {
                    Some(id) => self.shards[self.of_id(id)]
                        .tasks_here(&r.tenant, vec![id])
                        .await?
                        .pop(),
                    None => None,
                };
                let now = shard.now();
                let event = last.as_ref().and_then(|t| {
                    let e = rota_core::events::workflow_ended(r.id, state, t, now)?;
                    Some((QueueKey::new(&r.tenant, &t.queue), e))
                });
                let there = last.as_ref().map(|t| self.of_id(t.id));
                let end = |record_here, event| crate::writer::WorkflowEnd {
                    workflow: r.id,
                    record_here,
                    event,
                };
                match there {
                    Some(t) if t != s => {
                        // Logged first, then marked: a crash between logs it again (at least
                        // once, as every event a webhook carries).
                        self.shards[t].end_workflow(end(false, event)).await?;
                        shard.end_workflow(end(true, None)).await?;
                    }
                    _ => shard.end_workflow(end(true, event)).await?,
                }
                ended += 1;
            }
        }
        Ok(ended)
    }
}

#[async_trait]
impl WorkflowStore for SqliteStore {
    async fn tasks_by_id(&self, tenant: &str, ids: &[TaskId]) -> StoreResult<Vec<rota_core::Task>> {
        let mut by_shard: std::collections::BTreeMap<usize, Vec<TaskId>> = Default::default();
        for id in ids {
            by_shard.entry(self.of_id(*id)).or_default().push(*id);
        }
        let reads = by_shard
            .into_iter()
            .map(|(s, ids)| self.shards[s].tasks_here(tenant, ids));
        let mut out = Vec::with_capacity(ids.len());
        for r in join_all(reads).await {
            out.extend(r?);
        }
        Ok(out)
    }

    async fn batch_callbacks(
        &self,
        tenant: &str,
        ids: &[TaskId],
    ) -> StoreResult<std::collections::HashMap<TaskId, TaskId>> {
        let mut by_shard: std::collections::BTreeMap<usize, Vec<TaskId>> = Default::default();
        for id in ids {
            by_shard.entry(self.of_id(*id)).or_default().push(*id);
        }
        let reads = by_shard
            .into_iter()
            .map(|(s, ids)| self.shards[s].callbacks_here(tenant, ids));
        let mut out = std::collections::HashMap::new();
        for r in join_all(reads).await {
            out.extend(r?);
        }
        Ok(out)
    }

    async fn submit_workflow(
        &self,
        tenant: &str,
        tasks: Vec<WorkflowSpecTask>,
        kind: Submission,
    ) -> StoreResult<Workflow> {
        let places: Vec<usize> = tasks
            .iter()
            .map(|t| self.place(&QueueKey::new(tenant, &t.queue)))
            .collect();
        let ids = self.ids_for(&places);
        let home = places[0];
        let id = self.shards[home].next_id();
        let now = self.shards[home].now();
        let (parts, record) = parts(tenant, id, kind, now, tasks, &places, &ids);
        if parts.len() == 1 {
            let (s, part) = parts.into_iter().next().expect("one part");
            let stored = self.shards[s].put_part(part).await?;
            let mut wf = assemble(&record, stored);
            wf.open = record.callback.map(|_| kind.open());
            return Ok(wf);
        }
        // Its own task: a request dropped now (its client gone) must not leave parts held
        // with no one to commit or drop them.
        let (all, relay) = (self.shards.clone(), self.relay.clone());
        tokio::spawn(async move { write_parts(&all, &relay, id, home, parts, record).await })
            .await
            .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("submission stopped: {e}"))))?;
        self.workflow(tenant, id).await
    }

    async fn add_to_batch(
        &self,
        tenant: &str,
        batch: TaskId,
        tasks: Vec<(String, rota_core::NewTask)>,
    ) -> StoreResult<Vec<rota_core::Task>> {
        self.add_to_batch_here(tenant, batch, tasks).await
    }

    async fn close_batch(&self, tenant: &str, batch: TaskId) -> StoreResult<()> {
        self.close_batch_here(tenant, batch).await
    }

    async fn spawn(&self, tenant: &str, spawn: Spawn) -> StoreResult<Spawned> {
        self.spawn_here(tenant, spawn).await
    }

    async fn workflow(&self, tenant: &str, id: TaskId) -> StoreResult<Workflow> {
        let home = &self.shards[self.of_id(id)];
        let record = home
            .workflow_record(Some(tenant), id)
            .await?
            .ok_or(StoreError::WorkflowNotFound(id))?;
        let tasks = self.gathered(|s| s.workflow_tasks(tenant, id)).await?;
        let mut wf = assemble(&record, tasks);
        if let Some(cb) = record.callback {
            wf.open = Some(self.shards[self.of_id(cb)].anchored(cb, id).await?);
        }
        Ok(wf)
    }

    async fn workflows(
        &self,
        tenant: &str,
        before: Option<TaskId>,
        limit: usize,
    ) -> StoreResult<Vec<Workflow>> {
        let mut records = self
            .gathered(|s| s.workflow_records(tenant, before, limit))
            .await?;
        records.sort_by_key(|r| std::cmp::Reverse(r.id));
        records.truncate(limit);
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let mut counts = StateCounts::default();
            for c in self.each(|s| s.workflow_counts(r.id)).await {
                counts.add(&c?);
            }
            out.push(listed(&r, counts));
        }
        Ok(out)
    }
}

/// Writes a workflow's held parts, commits its record in its home shard and releases the
/// holds; drops the parts written if a step before the commit fails.
async fn write_parts(
    all: &[crate::shard::Shard],
    relay: &super::deps::Relay,
    id: TaskId,
    home: usize,
    parts: Vec<(usize, crate::writer::Part)>,
    record: crate::writer::WorkflowRow,
) -> StoreResult<()> {
    let shards: Vec<usize> = parts.iter().map(|(s, _)| *s).collect();
    let written = join_all(parts.into_iter().map(|(s, part)| all[s].put_part(part))).await;
    let mut ok = Vec::new();
    let mut failed = None;
    for (s, r) in shards.iter().zip(written) {
        match r {
            Ok(_) => ok.push(*s),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    if let Some(e) = failed {
        abandon(all, relay, id, &ok).await;
        return Err(e);
    }
    if let Err(e) = all[home].commit_workflow(record.clone()).await {
        abandon(all, relay, id, &ok).await;
        return Err(e);
    }
    for r in join_all(shards.iter().map(|&s| all[s].release_holds(id))).await {
        if let Err(e) = r {
            tracing::error!(error = %e, workflow = %id, "cannot release a committed workflow's holds yet");
            relay.recheck.store(true, Ordering::Release);
            relay.wake.notify_one();
        }
    }
    Ok(())
}

/// Deletes the parts written of a submission that failed before it committed.
async fn abandon(
    all: &[crate::shard::Shard],
    relay: &super::deps::Relay,
    workflow: TaskId,
    written: &[usize],
) {
    for r in join_all(written.iter().map(|&s| all[s].drop_part(workflow))).await {
        if let Err(e) = r {
            // The relay deletes it after a while (or at the next open).
            tracing::error!(error = %e, workflow = %workflow, "cannot delete the part of a failed workflow submission yet");
            relay.recheck.store(true, Ordering::Release);
        }
    }
}
