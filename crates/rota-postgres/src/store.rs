//! The engine behind the [`Store`] contract: each operation delegated to the module that does it.

use super::*;

#[async_trait]
impl EventLog for PostgresStore {
    async fn events(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
        keep: EventKeep,
    ) -> StoreResult<EventPage> {
        let client = self.event_conn().await?;
        events::read(&client, tenant, after, limit, &*keep).await
    }
    fn event_signal(&self) -> Arc<Notify> {
        self.shared.events.any()
    }
    fn tenant_event_signal(&self, tenant: &str) -> Arc<Notify> {
        self.shared.events.tenant(tenant)
    }
    async fn log_events(
        &self,
        tenant: &str,
        events: Vec<rota_core::events::Event>,
    ) -> StoreResult<()> {
        self.log_other_events(tenant, events).await
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn enqueue(&self, queue: &QueueKey, tasks: Vec<NewTask>) -> StoreResult<Vec<Enqueued>> {
        if tasks.iter().any(|t| !t.depends_on.is_empty()) {
            return self.enqueue_waiting(queue, tasks).await;
        }
        self.enqueue_tasks(queue, tasks).await
    }
    async fn claim_batch(&self, queue: &QueueKey, req: ClaimRequest) -> StoreResult<Claimed> {
        self.claim_tasks(queue, req).await
    }
    async fn heartbeat(&self, tenant: &str, hb: Heartbeat) -> StoreResult<Task> {
        self.heartbeat_task(tenant, hb).await
    }
    async fn complete(&self, tenant: &str, items: Vec<Completion>) -> Vec<StoreResult<Task>> {
        let n = items.len();
        self.complete_tasks(tenant, items)
            .await
            .unwrap_or_else(|e| vec![Err(e); n])
    }
    async fn fail(&self, tenant: &str, items: Vec<FailureReport>) -> Vec<StoreResult<Task>> {
        let n = items.len();
        self.fail_tasks(tenant, items)
            .await
            .unwrap_or_else(|e| vec![Err(e); n])
    }
    async fn change(&self, tenant: &str, id: TaskId, change: Change) -> StoreResult<Task> {
        self.change_task(tenant, id, change).await
    }
    async fn get(&self, tenant: &str, id: TaskId) -> StoreResult<Task> {
        self.get_task(tenant, id).await
    }
    async fn unique_holders(&self, tenant: &str, unique_key: &str) -> StoreResult<Vec<Task>> {
        self.unique_holders(tenant, unique_key).await
    }
    async fn list(&self, queue: &QueueKey, filter: ListFilter) -> StoreResult<Page> {
        self.list_tasks(queue, filter).await
    }
    async fn queues(&self, tenant: &str) -> StoreResult<Vec<QueueInfo>> {
        let all = self.queue_infos(Some(tenant), None).await?;
        Ok(all.into_iter().map(|(_, q)| q).collect())
    }
    async fn queue(&self, queue: &QueueKey) -> StoreResult<QueueInfo> {
        self.queue_infos(Some(&queue.tenant), Some(&queue.name))
            .await?
            .pop()
            .map(|(_, q)| q)
            .ok_or_else(|| StoreError::QueueNotFound(queue.name.clone()))
    }
    async fn all_queues(&self) -> StoreResult<Vec<(String, QueueInfo)>> {
        self.queue_infos(None, None).await
    }
    async fn queue_overview(&self, max: usize) -> StoreResult<QueueOverview> {
        self.overview(max).await
    }
    async fn diagnose(
        &self,
        tenant: &str,
        since: rota_core::Timestamp,
        far: rota_core::Timestamp,
    ) -> StoreResult<rota_store::Diagnosis> {
        self.diagnosis(tenant, since, far).await
    }
    async fn update_queue(&self, queue: &QueueKey, patch: QueuePatch) -> StoreResult<QueueInfo> {
        self.update_queue_settings(queue, patch).await
    }
    async fn purge(&self, queue: &QueueKey, state: TaskState) -> StoreResult<u64> {
        self.purge_tasks(queue, state).await
    }
    async fn run_maintenance(&self) -> StoreResult<MaintenanceReport> {
        self.maintenance_pass().await
    }
    fn ready_signal(&self, queue: &QueueKey) -> Arc<Notify> {
        self.shared.signals.get(queue)
    }
    fn maintenance_signal(&self) -> Arc<Notify> {
        self.shared.maintenance.clone()
    }
    fn auth_signal(&self) -> Arc<Notify> {
        self.shared.auth_changed.clone()
    }
    async fn exchange_demand(
        &self,
        server: &str,
        mine: Vec<(String, u64)>,
    ) -> StoreResult<std::collections::HashMap<String, u64>> {
        self.exchange_demand(server, mine).await
    }
    fn pool_status(&self) -> Option<PoolStatus> {
        Some(self.pools())
    }
    async fn health(&self) -> Health {
        self.health_checks().await
    }
    async fn load_auth(&self) -> StoreResult<AuthData> {
        self.load_access().await
    }
    async fn change_auth(&self, change: AuthChange) -> StoreResult<()> {
        self.change_access(change).await
    }
    async fn find_key(&self, id: &str) -> StoreResult<Option<rota_core::auth::KeyRecord>> {
        self.find_access_key(id).await
    }
    async fn put_first_key(&self, key: rota_core::auth::KeyRecord) -> StoreResult<bool> {
        self.put_first(key).await
    }
    async fn lead(&self, service: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        self.try_lead(service, holder, ttl).await
    }
    async fn resign(&self, service: &str, holder: &str) {
        self.give_up(service, holder).await
    }
    async fn servers_alive(&self, server: &str) -> StoreResult<usize> {
        self.register_server(server).await
    }
    async fn put_schedule(&self, rec: ScheduleRecord) -> StoreResult<(ScheduleRecord, bool)> {
        self.put_schedule_row(rec).await
    }
    async fn schedules(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> StoreResult<Vec<ScheduleRecord>> {
        self.schedule_rows(tenant, name).await
    }
    async fn delete_schedule(&self, tenant: &str, name: &str) -> StoreResult<()> {
        self.delete_schedule_row(tenant, name).await
    }
    async fn due_schedules(
        &self,
        now: rota_core::Timestamp,
        limit: usize,
    ) -> StoreResult<DueSchedules> {
        self.due_schedule_rows(now, limit).await
    }
    async fn fire_schedule(&self, firing: Firing) -> StoreResult<Option<ScheduleRecord>> {
        self.fire(firing).await
    }
    async fn put_webhook(&self, w: rota_core::webhooks::Webhook) -> StoreResult<()> {
        self.put_webhook_row(w).await
    }
    async fn webhooks(
        &self,
        tenant: &str,
        id: Option<&str>,
    ) -> StoreResult<Vec<rota_core::webhooks::Webhook>> {
        self.webhook_rows(tenant, id).await
    }
    async fn delete_webhook(&self, tenant: &str, id: &str) -> StoreResult<()> {
        self.delete_webhook_row(tenant, id).await
    }
    async fn deliveries(
        &self,
        tenant: &str,
        f: DeliveryFilter,
    ) -> StoreResult<Vec<rota_core::webhooks::Delivery>> {
        self.delivery_rows(tenant, f).await
    }
    async fn due_deliveries(
        &self,
        now: rota_core::Timestamp,
        limit: usize,
        skip: rota_store::DueSkip,
    ) -> StoreResult<Vec<DueDelivery>> {
        self.due_delivery_rows(now, limit, skip).await
    }
    async fn take_deliveries(
        &self,
        ids: Vec<i64>,
        now: rota_core::Timestamp,
        until: rota_core::Timestamp,
    ) -> StoreResult<Vec<(rota_core::webhooks::Delivery, rota_core::webhooks::Webhook)>> {
        self.take_delivery_rows(ids, now, until).await
    }
    async fn record_attempts(
        &self,
        results: Vec<(i64, rota_core::webhooks::Attempt)>,
        now: rota_core::Timestamp,
    ) -> StoreResult<Vec<rota_core::webhooks::Webhook>> {
        self.record_attempt_rows(results, now).await
    }
    async fn retry_delivery(
        &self,
        tenant: &str,
        webhook_id: &str,
        id: i64,
    ) -> StoreResult<rota_core::webhooks::Delivery> {
        self.retry_delivery_row(tenant, webhook_id, id).await
    }
    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notifier.abort();
        // The last wake-ups, if the database answers at once.
        let last = self.shared.notifier.flush(&self.pools.leases);
        let _ = tokio::time::timeout(Duration::from_secs(1), last).await;
        self.listener.abort();
        self.pools.tasks.close();
        self.pools.leases.close();
        self.pools.other.close();
    }
}
