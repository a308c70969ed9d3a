//! Which shard answers each request: a queue's own, a task id's, every shard merged, or shard
//! 0 first and then the others for the rows every shard keeps a copy of.

use super::{merge, SqliteStore};
use async_trait::async_trait;
use futures_util::future::join_all;
use rota_core::webhooks::{Attempt, Delivery, Webhook};
use rota_core::{NewTask, QueueInfo, QueueKey, QueuePatch, Task, TaskId, TaskState, Timestamp};
use rota_store::*;
use std::sync::Arc;
use tokio::sync::Notify;

impl SqliteStore {
    /// Runs `items` (each naming a task) through the shard their ids name, the shards at once;
    /// outcomes in the items' order.
    async fn by_id<I, F, Fut>(
        &self,
        items: Vec<I>,
        id: impl Fn(&I) -> TaskId,
        run: F,
    ) -> Vec<StoreResult<Task>>
    where
        F: Fn(usize, Vec<I>) -> Fut,
        Fut: std::future::Future<Output = Vec<StoreResult<Task>>>,
    {
        let n = items.len();
        let mut groups: Vec<(Vec<usize>, Vec<I>)> =
            (0..self.shards.len()).map(|_| Default::default()).collect();
        for (i, item) in items.into_iter().enumerate() {
            let g = &mut groups[self.of_id(id(&item))];
            g.0.push(i);
            g.1.push(item);
        }
        let mut places = Vec::new();
        let mut runs = Vec::new();
        for (s, (at, batch)) in groups.into_iter().enumerate() {
            if !batch.is_empty() {
                places.push(at);
                runs.push(run(s, batch));
            }
        }
        let mut out: Vec<Option<StoreResult<Task>>> = (0..n).map(|_| None).collect();
        for (at, results) in places.into_iter().zip(join_all(runs).await) {
            for (i, r) in at.into_iter().zip(results) {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| r.expect("every item has an outcome"))
            .collect()
    }

    /// Runs `f` on every shard at once; the answers in shard order.
    pub(super) async fn each<'a, T, F, Fut>(&'a self, f: F) -> Vec<T>
    where
        F: Fn(&'a crate::shard::Shard) -> Fut,
        Fut: std::future::Future<Output = T> + 'a,
    {
        join_all(self.shards.iter().map(f)).await
    }

    /// Every shard's list at once, in one list (shard order; callers sort).
    pub(super) async fn gathered<'a, T, F, Fut>(&'a self, f: F) -> StoreResult<Vec<T>>
    where
        F: Fn(&'a crate::shard::Shard) -> Fut,
        Fut: std::future::Future<Output = StoreResult<Vec<T>>> + 'a,
    {
        let mut all = Vec::new();
        for list in self.each(f).await {
            all.extend(list?);
        }
        Ok(all)
    }

    /// Writes a row every shard keeps a copy of: shard 0 first (its answer is the answer),
    /// then the others. A shard that fails after shard 0 succeeded is brought back in line
    /// when the store next opens.
    async fn everywhere<'a, F, Fut>(&'a self, f: F) -> StoreResult<()>
    where
        F: Fn(&'a crate::shard::Shard) -> Fut,
        Fut: std::future::Future<Output = StoreResult<()>> + 'a,
    {
        f(&self.shards[0]).await?;
        for r in join_all(self.shards[1..].iter().map(f)).await {
            r?;
        }
        Ok(())
    }

    /// The shard holding schedule `name`, if any.
    async fn schedule_shard(
        &self,
        tenant: &str,
        name: &str,
    ) -> StoreResult<Option<(usize, ScheduleRecord)>> {
        for (i, found) in self
            .each(|s| s.schedules(tenant, Some(name)))
            .await
            .into_iter()
            .enumerate()
        {
            match found {
                Ok(mut v) if !v.is_empty() => return Ok(Some((i, v.remove(0)))),
                Ok(_) | Err(StoreError::ScheduleNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl GroupStore for SqliteStore {
    async fn put_group(
        &self,
        queue: &QueueKey,
        group: &str,
        settings: rota_core::flow::GroupSettings,
    ) -> StoreResult<rota_core::flow::GroupInfo> {
        self.of_queue(queue).put_group(queue, group, settings).await
    }

    async fn groups(
        &self,
        queue: &QueueKey,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<GroupPage> {
        self.of_queue(queue).groups(queue, after, limit).await
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn events(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
        keep: EventKeep,
    ) -> StoreResult<EventPage> {
        self.event_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let horizon = self.cursors.horizon();
        let pages = self
            .each(|s| s.events_below(tenant, after, horizon, limit, keep.clone()))
            .await;
        merge::events(pages.into_iter().collect::<StoreResult<_>>()?, limit)
    }

    fn event_signal(&self) -> Arc<Notify> {
        self.events.any()
    }

    fn tenant_event_signal(&self, tenant: &str) -> Arc<Notify> {
        self.events.tenant(tenant)
    }

    async fn log_events(
        &self,
        tenant: &str,
        events: Vec<rota_core::events::Event>,
    ) -> StoreResult<()> {
        // Each event goes to its queue's shard; each shard's part is one transaction.
        let mut parts: Vec<Vec<rota_core::events::Event>> = vec![Vec::new(); self.shards.len()];
        for e in events {
            parts[self.place(&QueueKey::new(tenant, e.queue.as_str()))].push(e);
        }
        for (i, part) in parts.into_iter().enumerate() {
            if !part.is_empty() {
                self.shards[i].log_events(tenant, part).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn enqueue(&self, queue: &QueueKey, tasks: Vec<NewTask>) -> StoreResult<Vec<Enqueued>> {
        if tasks.iter().any(|t| !t.depends_on.is_empty()) {
            return self.enqueue_waiting(queue, tasks).await;
        }
        self.of_queue(queue).enqueue(queue, tasks).await
    }

    async fn claim_batch(&self, queue: &QueueKey, req: ClaimRequest) -> StoreResult<Claimed> {
        self.of_queue(queue).claim_batch(queue, req).await
    }

    async fn heartbeat(&self, tenant: &str, hb: Heartbeat) -> StoreResult<Task> {
        self.shards[self.of_id(hb.id)].heartbeat(tenant, hb).await
    }

    async fn complete(&self, tenant: &str, items: Vec<Completion>) -> Vec<StoreResult<Task>> {
        self.by_id(
            items,
            |c| c.id,
            |s, batch| self.shards[s].complete(tenant, batch),
        )
        .await
    }

    async fn fail(&self, tenant: &str, items: Vec<FailureReport>) -> Vec<StoreResult<Task>> {
        self.by_id(
            items,
            |f| f.id,
            |s, batch| self.shards[s].fail(tenant, batch),
        )
        .await
    }

    async fn change(&self, tenant: &str, id: TaskId, change: Change) -> StoreResult<Task> {
        self.shards[self.of_id(id)].change(tenant, id, change).await
    }

    async fn get(&self, tenant: &str, id: TaskId) -> StoreResult<Task> {
        self.shards[self.of_id(id)].get(tenant, id).await
    }

    async fn unique_holders(&self, tenant: &str, unique_key: &str) -> StoreResult<Vec<Task>> {
        let mut all = self
            .gathered(|s| s.unique_holders(tenant, unique_key))
            .await?;
        all.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(all)
    }

    async fn list(&self, queue: &QueueKey, filter: ListFilter) -> StoreResult<Page> {
        self.of_queue(queue).list(queue, filter).await
    }

    async fn queues(&self, tenant: &str) -> StoreResult<Vec<QueueInfo>> {
        let mut all = self.gathered(|s| s.queues(tenant)).await?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn queue(&self, queue: &QueueKey) -> StoreResult<QueueInfo> {
        self.of_queue(queue).queue(queue).await
    }

    async fn all_queues(&self) -> StoreResult<Vec<(String, QueueInfo)>> {
        let mut all = self.gathered(|s| s.all_queues()).await?;
        all.sort_by(|a, b| (&a.0, &a.1.name).cmp(&(&b.0, &b.1.name)));
        Ok(all)
    }

    async fn queue_overview(&self, max: usize) -> StoreResult<QueueOverview> {
        let found = self.each(|s| s.queue_overview(max)).await;
        Ok(merge::overviews(
            found.into_iter().collect::<StoreResult<_>>()?,
            max,
        ))
    }

    async fn diagnose(
        &self,
        tenant: &str,
        since: Timestamp,
        far: Timestamp,
    ) -> StoreResult<Diagnosis> {
        let found = self.each(|s| s.diagnose(tenant, since, far)).await;
        let mut out = Diagnosis::default();
        for d in found {
            let d = d?;
            out.truncated |= d.truncated;
            out.queues.extend(d.queues);
        }
        Ok(out)
    }

    async fn update_queue(&self, queue: &QueueKey, patch: QueuePatch) -> StoreResult<QueueInfo> {
        self.of_queue(queue).update_queue(queue, patch).await
    }

    async fn purge(&self, queue: &QueueKey, state: TaskState) -> StoreResult<u64> {
        self.of_queue(queue).purge(queue, state).await
    }

    async fn run_maintenance(&self) -> StoreResult<MaintenanceReport> {
        let mut out = MaintenanceReport::default();
        for r in self.each(|s| s.run_maintenance()).await {
            let r = r?;
            out.promoted += r.promoted;
            out.expired += r.expired;
            out.deleted += r.deleted;
            out.next_due = match (out.next_due, r.next_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.end_workflows().await?;
        self.trim_workflows().await?;
        Ok(out)
    }

    fn ready_signal(&self, queue: &QueueKey) -> Arc<Notify> {
        self.of_queue(queue).ready_signal(queue)
    }

    fn park_claim(&self, queue: &QueueKey, claim: &Arc<rota_store::ParkedClaim>) -> bool {
        self.of_queue(queue).park_claim(queue, claim)
    }

    fn maintenance_signal(&self) -> Arc<Notify> {
        self.maintenance.clone()
    }

    fn writer_status(&self) -> Option<WriterStatus> {
        let mut out = WriterStatus::default();
        for w in self.shards.iter().filter_map(|s| s.writer_status()) {
            out.busy_seconds += w.busy_seconds;
            out.busy_by_writer.extend(w.busy_by_writer);
            out.commits += w.commits;
            out.synced_commits += w.synced_commits;
            out.checkpoints += w.checkpoints;
            out.writer_checkpoints += w.writer_checkpoints;
        }
        Some(out)
    }

    async fn health(&self) -> Health {
        let mut checks = Vec::new();
        for (i, h) in self.each(|s| s.health()).await.into_iter().enumerate() {
            for (name, r) in h.checks {
                let name = match i {
                    0 => name,
                    _ => name.replacen("storage.", &format!("storage.shard{i}."), 1),
                };
                checks.push((name, r));
            }
        }
        Health { checks }
    }

    async fn load_auth(&self) -> StoreResult<AuthData> {
        self.shards[0].load_auth().await
    }

    async fn find_key(&self, id: &str) -> StoreResult<Option<rota_core::auth::KeyRecord>> {
        // Keys live in shard 0 alone.
        self.shards[0].find_key(id).await
    }

    async fn change_auth(&self, change: AuthChange) -> StoreResult<()> {
        match &change {
            // Every shard keeps the tenants: its writer checks them, and deletes a tenant's rows.
            AuthChange::PutTenant(_) | AuthChange::DeleteTenant(_) => {
                self.everywhere(|s| s.change_auth(change.clone())).await
            }
            _ => self.shards[0].change_auth(change).await,
        }
    }

    async fn put_schedule(&self, mut rec: ScheduleRecord) -> StoreResult<(ScheduleRecord, bool)> {
        // A schedule lives with its target queue, so a firing is one shard's transaction.
        let target = self.place(&QueueKey::new(rec.tenant.clone(), rec.spec.queue.clone()));
        let old = self.schedule_shard(&rec.tenant, &rec.name).await?;
        let moved_from = match &old {
            Some((from, old)) if *from != target => {
                rec.runs = old.runs.clone();
                rec.created_at = old.created_at;
                Some(*from)
            }
            _ => None,
        };
        let (out, _) = self.shards[target].put_schedule(rec).await?;
        if let Some(from) = moved_from {
            self.shards[from]
                .delete_schedule(&out.tenant, &out.name)
                .await?;
        }
        Ok((out, old.is_none()))
    }

    async fn schedules(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> StoreResult<Vec<ScheduleRecord>> {
        if let Some(name) = name {
            return match self.schedule_shard(tenant, name).await? {
                Some((_, rec)) => Ok(vec![rec]),
                None => Err(StoreError::ScheduleNotFound(name.to_owned())),
            };
        }
        let mut all = self.gathered(|s| s.schedules(tenant, None)).await?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn delete_schedule(&self, tenant: &str, name: &str) -> StoreResult<()> {
        // Whichever shard holds it writes the audit entry (see `rota_store::audit`).
        let entry = rota_store::audit::take();
        let mut found = false;
        let deletes = self
            .each(|s| rota_store::audit::scope_opt(entry.clone(), s.delete_schedule(tenant, name)));
        for r in deletes.await {
            match r {
                Ok(()) => found = true,
                Err(StoreError::ScheduleNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if found {
            Ok(())
        } else {
            Err(StoreError::ScheduleNotFound(name.to_owned()))
        }
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> StoreResult<DueSchedules> {
        let found = self.each(|s| s.due_schedules(now, limit)).await;
        let mut out = DueSchedules::default();
        for d in found {
            let d = d?;
            out.due.extend(d.due);
            out.next = match (out.next, d.next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        out.due.sort_by_key(|s| s.next_run_at);
        for late in out.due.drain(limit.min(out.due.len())..) {
            out.next = match (out.next, late.next_run_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(out)
    }

    async fn fire_schedule(&self, firing: Firing) -> StoreResult<Option<ScheduleRecord>> {
        let entry = rota_store::audit::take();
        let Some((at, rec)) = self.schedule_shard(&firing.tenant, &firing.name).await? else {
            return Err(StoreError::ScheduleNotFound(firing.name.clone()));
        };
        // The target queue may have been created in another shard since the schedule was put
        // (the shard count changed): the schedule follows it before it fires.
        let target = self.place(&QueueKey::new(rec.tenant.clone(), rec.spec.queue.clone()));
        if target != at {
            self.put_schedule(rec).await?;
        }
        let fire = self.shards[target].fire_schedule(firing);
        rota_store::audit::scope_opt(entry, fire).await
    }

    async fn put_webhook(&self, w: Webhook) -> StoreResult<()> {
        self.everywhere(|s| s.put_webhook(w.clone())).await
    }

    async fn webhooks(&self, tenant: &str, id: Option<&str>) -> StoreResult<Vec<Webhook>> {
        self.shards[0].webhooks(tenant, id).await
    }

    async fn delete_webhook(&self, tenant: &str, id: &str) -> StoreResult<()> {
        self.everywhere(|s| s.delete_webhook(tenant, id)).await
    }

    async fn deliveries(&self, tenant: &str, f: DeliveryFilter) -> StoreResult<Vec<Delivery>> {
        let limit = f.limit;
        let mut all = self.gathered(|s| s.deliveries(tenant, f.clone())).await?;
        all.sort_by_key(|d| std::cmp::Reverse(d.id));
        all.truncate(limit);
        Ok(all)
    }

    async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: usize,
        skip: DueSkip,
    ) -> StoreResult<Vec<DueDelivery>> {
        let found = self
            .each(|s| s.due_deliveries(now, limit, skip.clone()))
            .await;
        let lists = found.into_iter().collect::<StoreResult<Vec<_>>>()?;
        Ok(merge::interleave(lists, limit))
    }

    async fn take_deliveries(
        &self,
        ids: Vec<i64>,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<(Delivery, Webhook)>> {
        // Delivery ids are unique across shards: each shard takes the ones it has.
        self.gathered(|s| s.take_deliveries(ids.clone(), now, until))
            .await
    }

    async fn record_attempts(
        &self,
        results: Vec<(i64, Attempt)>,
        now: Timestamp,
    ) -> StoreResult<Vec<Webhook>> {
        let changed = self
            .each(|s| s.record_attempts_changed(results.clone(), now))
            .await;
        let mut disabled = Vec::new();
        for (i, c) in changed.into_iter().enumerate() {
            for (w, off) in c? {
                // The webhook's health is one record: the other shards' copies follow (only
                // its health, so an edit made meanwhile stands).
                for (j, s) in self.shards.iter().enumerate() {
                    if j != i {
                        s.note_webhook_health(w.clone()).await?;
                    }
                }
                if off {
                    disabled.push(w);
                }
            }
        }
        Ok(disabled)
    }

    async fn retry_delivery(
        &self,
        tenant: &str,
        webhook_id: &str,
        id: i64,
    ) -> StoreResult<Delivery> {
        let entry = rota_store::audit::take();
        for s in self.shards.iter() {
            let retry = s.retry_delivery(tenant, webhook_id, id);
            match rota_store::audit::scope_opt(entry.clone(), retry).await {
                Err(StoreError::DeliveryNotFound(_)) => continue,
                r => return r,
            }
        }
        Err(StoreError::DeliveryNotFound(id))
    }

    async fn close(&self) {
        self.relay
            .stop
            .store(true, std::sync::atomic::Ordering::Release);
        self.relay.wake.notify_one();
        self.each(|s| s.close()).await;
    }
}
