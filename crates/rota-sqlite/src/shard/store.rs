//! The store's operations for one shard: each call a read on the pool or an op for the writer.

use super::*;

/// The store's operations as one shard serves them (the engine routes each to its shard).
impl Shard {
    pub async fn enqueue(
        &self,
        queue: &QueueKey,
        tasks: Vec<NewTask>,
    ) -> StoreResult<Vec<Enqueued>> {
        let q = queue.clone();
        self.send(|r| Op::Enqueue(q, tasks, r)).await?
    }

    pub async fn claim_batch(&self, queue: &QueueKey, req: ClaimRequest) -> StoreResult<Claimed> {
        let q = queue.clone();
        self.send(|r| Op::Claim(q, req, r)).await?
    }

    pub async fn heartbeat(&self, tenant: &str, hb: Heartbeat) -> StoreResult<Task> {
        let t = tenant.to_owned();
        self.send(|r| Op::Heartbeat(t, hb, r)).await?
    }

    pub async fn complete(&self, tenant: &str, items: Vec<Completion>) -> Vec<StoreResult<Task>> {
        let n = items.len();
        let t = tenant.to_owned();
        self.send(|r| Op::Complete(t, items, r))
            .await
            .unwrap_or_else(|e| vec![Err(e); n])
    }

    pub async fn fail(&self, tenant: &str, items: Vec<FailureReport>) -> Vec<StoreResult<Task>> {
        let n = items.len();
        let t = tenant.to_owned();
        self.send(|r| Op::Fail(t, items, r))
            .await
            .unwrap_or_else(|e| vec![Err(e); n])
    }

    pub async fn change(&self, tenant: &str, id: TaskId, change: Change) -> StoreResult<Task> {
        let t = tenant.to_owned();
        self.send(|r| Op::Change(t, id, change, r)).await?
    }

    pub async fn get(&self, tenant: &str, id: TaskId) -> StoreResult<Task> {
        let tenant = tenant.to_owned();
        self.read(move |conn, shared| {
            let row = conn
                .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))
                .and_then(|mut s| s.query_row([id.as_i64()], task_from_row).optional())
                .map_err(db_err)?;
            let cat = shared.catalog.read().unwrap_or_else(|e| e.into_inner());
            row.and_then(|r| r.into_task_for(&cat, &tenant))
                .ok_or(StoreError::TaskNotFound(id))
        })
        .await
    }

    pub async fn list(&self, queue: &QueueKey, filter: ListFilter) -> StoreResult<Page> {
        self.list_tasks(queue, filter).await
    }

    pub async fn queues(&self, tenant: &str) -> StoreResult<Vec<QueueInfo>> {
        let tenant = tenant.to_owned();
        let infos = self
            .queue_infos(move |cat| cat.for_tenant(&tenant).into_iter().cloned().collect())
            .await?;
        Ok(infos.into_iter().map(|(_, info)| info).collect())
    }

    pub async fn queue(&self, queue: &QueueKey) -> StoreResult<QueueInfo> {
        let queue = queue.clone();
        self.read(move |conn, shared| {
            let entry = {
                let cat = shared.catalog.read().unwrap_or_else(|e| e.into_inner());
                cat.by_key(&queue)
                    .cloned()
                    .ok_or_else(|| StoreError::QueueNotFound(queue.name.clone()))?
            };
            queue_info(conn, &entry, shared.clock.now(), shared.shard).map_err(db_err)
        })
        .await
    }

    pub async fn all_queues(&self) -> StoreResult<Vec<(String, QueueInfo)>> {
        self.queue_infos(|cat| {
            let mut all: Vec<QueueEntry> = cat.all().cloned().collect();
            all.sort_by(|a, b| a.key.cmp(&b.key));
            all
        })
        .await
    }

    pub async fn diagnose(
        &self,
        tenant: &str,
        since: Timestamp,
        far: Timestamp,
    ) -> StoreResult<rota_store::Diagnosis> {
        self.read_diagnosis(tenant, since, far).await
    }
    pub async fn queue_overview(&self, max: usize) -> StoreResult<QueueOverview> {
        let (chosen, rest, rest_queues) = {
            let cat = self
                .shared
                .catalog
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let mut all: Vec<&QueueEntry> = cat.all().collect();
            let live = |q: &QueueEntry| q.counts.scheduled + q.counts.ready + q.counts.running;
            if all.len() > max {
                // The deepest `max` first, in O(n): no full sort of every queue.
                all.select_nth_unstable_by_key(max, |q| std::cmp::Reverse(live(q)));
            }
            let split = all.len().min(max);
            let mut rest = StateCounts::default();
            for q in &all[split..] {
                rest.add(&q.counts);
            }
            let mut top: Vec<QueueEntry> = all[..split].iter().map(|q| (*q).clone()).collect();
            top.sort_by(|a, b| a.key.cmp(&b.key));
            (top, rest, all.len() - split)
        };
        let top = self.queue_infos(move |_| chosen).await?;
        Ok(QueueOverview {
            top,
            rest,
            rest_queues,
        })
    }

    pub async fn update_queue(
        &self,
        queue: &QueueKey,
        patch: QueuePatch,
    ) -> StoreResult<QueueInfo> {
        let q = queue.clone();
        self.send(|r| Op::UpdateQueue(q, patch, r)).await??;
        self.queue(queue).await
    }

    pub async fn purge(&self, queue: &QueueKey, state: TaskState) -> StoreResult<u64> {
        let q = queue.clone();
        self.send(|r| Op::Purge(q, state, r)).await?
    }

    pub async fn run_maintenance(&self) -> StoreResult<MaintenanceReport> {
        self.send(Op::Maintenance).await?
    }

    pub fn ready_signal(&self, queue: &QueueKey) -> Arc<Notify> {
        self.shared.signals.get(queue)
    }

    pub fn park_claim(&self, queue: &QueueKey, claim: &Arc<rota_store::ParkedClaim>) -> bool {
        self.shared.parked.park(queue, claim);
        true
    }

    pub fn writer_status(&self) -> Option<WriterStatus> {
        let s = &self.shared;
        let busy = s.writer_busy_ns.load(Ordering::Relaxed) as f64 / 1e9;
        Some(WriterStatus {
            busy_seconds: busy,
            busy_by_writer: vec![busy],
            commits: s.commits.load(Ordering::Relaxed),
            synced_commits: s.synced_commits.load(Ordering::Relaxed),
            checkpoints: s.checkpoints.load(Ordering::Relaxed),
            writer_checkpoints: s.writer_checkpoints.load(Ordering::Relaxed),
        })
    }

    pub async fn health(&self) -> Health {
        let writer_alive = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished());
        let writer = if writer_alive {
            Ok(())
        } else {
            Err("the writer thread is not running".to_owned())
        };
        let schema = self
            .read(|conn, _| {
                let v = schema::version(conn).map_err(db_err)?;
                if v == schema::CURRENT_VERSION {
                    Ok(())
                } else {
                    Err(StoreError::Unavailable(format!(
                        "schema version {v}, expected {}",
                        schema::CURRENT_VERSION
                    )))
                }
            })
            .await
            .map_err(|e| e.to_string());
        // A write through the writer, so readiness says whether commits succeed now; a batch
        // that failed to commit moments ago is reported even if the probe gets through.
        let failing = self.shared.write_failing.load(Ordering::Relaxed);
        let writes = match self.send(Op::Probe).await {
            Ok(Ok(())) if !failing => Ok(()),
            Ok(Ok(())) => Err("a recent write failed to commit (see the server log)".to_owned()),
            Ok(Err(e)) | Err(e) => Err(format!("writes do not commit: {e}")),
        };
        Health {
            checks: vec![
                ("storage.writer".into(), writer),
                ("storage.schema".into(), schema),
                ("storage.writes".into(), writes),
            ],
        }
    }

    pub async fn load_auth(&self) -> StoreResult<AuthData> {
        self.read(|conn, _| load::load_auth(conn).map_err(unavailable))
            .await
    }

    pub async fn change_auth(&self, change: AuthChange) -> StoreResult<()> {
        self.send(|reply| Op::Auth(change, reply)).await?
    }

    pub async fn find_key(&self, id: &str) -> StoreResult<Option<rota_core::auth::KeyRecord>> {
        let id = id.to_owned();
        self.read(move |conn, _| load::find_key(conn, &id).map_err(unavailable))
            .await
    }

    pub async fn put_schedule(&self, rec: ScheduleRecord) -> StoreResult<(ScheduleRecord, bool)> {
        self.send(|r| Op::PutSchedule(rec, r)).await?
    }

    pub async fn schedules(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> StoreResult<Vec<ScheduleRecord>> {
        self.read_schedules(tenant, name).await
    }

    pub async fn delete_schedule(&self, tenant: &str, name: &str) -> StoreResult<()> {
        let (t, n) = (tenant.to_owned(), name.to_owned());
        self.send(|r| Op::DeleteSchedule(t, n, r)).await?
    }

    pub async fn due_schedules(&self, now: Timestamp, limit: usize) -> StoreResult<DueSchedules> {
        self.read_due_schedules(now, limit).await
    }

    pub async fn fire_schedule(&self, firing: Firing) -> StoreResult<Option<ScheduleRecord>> {
        self.send(|r| Op::Fire(firing, r)).await?
    }

    pub async fn log_events(
        &self,
        tenant: &str,
        events: Vec<rota_core::events::Event>,
    ) -> StoreResult<()> {
        let tenant = tenant.to_owned();
        self.send(|r| Op::LogEvents(tenant, events, r)).await?
    }

    pub async fn put_webhook(&self, w: rota_core::webhooks::Webhook) -> StoreResult<()> {
        self.send(|r| Op::PutWebhook(w, r)).await?
    }

    pub async fn webhooks(
        &self,
        tenant: &str,
        id: Option<&str>,
    ) -> StoreResult<Vec<rota_core::webhooks::Webhook>> {
        self.read_webhooks(tenant, id).await
    }

    pub async fn delete_webhook(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let (t, i) = (tenant.to_owned(), id.to_owned());
        self.send(|r| Op::DeleteWebhook(t, i, r)).await?
    }

    pub async fn deliveries(
        &self,
        tenant: &str,
        f: DeliveryFilter,
    ) -> StoreResult<Vec<rota_core::webhooks::Delivery>> {
        self.read_deliveries(tenant, f).await
    }

    pub async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: usize,
        skip: rota_store::DueSkip,
    ) -> StoreResult<Vec<DueDelivery>> {
        self.read_due_deliveries(now, limit, skip).await
    }

    pub async fn take_deliveries(
        &self,
        ids: Vec<i64>,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<(rota_core::webhooks::Delivery, rota_core::webhooks::Webhook)>> {
        self.send(|r| Op::TakeDeliveries(ids, now, until, r))
            .await?
    }

    pub async fn retry_delivery(
        &self,
        tenant: &str,
        webhook_id: &str,
        id: i64,
    ) -> StoreResult<rota_core::webhooks::Delivery> {
        let (t, w) = (tenant.to_owned(), webhook_id.to_owned());
        let d = self.send(|r| Op::RetryDelivery(t, w, id, r)).await??;
        // The deliverer waits on the event signal of every tenant.
        self.shared.events.notify([]);
        Ok(d)
    }

    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // The read connections go first: they are read-only, so only the writer's connection,
        // closing last, can checkpoint the WAL and delete it (a clean stop leaves no -wal or
        // -shm file behind). A reader still in use is dropped when it comes back.
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        // Dropping the sender ends the writer's loop after the ops already queued.
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
        let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        self.shared.signals.notify_all();
    }
}
