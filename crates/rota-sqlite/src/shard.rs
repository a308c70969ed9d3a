//! One file of the embedded engine: a SQLite file in WAL mode with its own writer.
//!
//! Writes go to a single writer thread that group-commits (see `writer/`); reads run on a
//! small pool of read connections, which WAL lets proceed while the writer commits. Queue
//! settings and per-state counts live in an in-memory catalog (`catalog.rs`) rebuilt from the
//! rows at open. [`crate::SqliteStore`] puts several of these side by side.

use crate::catalog::{Catalog, QueueEntry};
use crate::cursors::Cursors;
use crate::queries::queue_info;
use crate::rows::{task_from_row, TASK_COLUMNS};
use crate::writer::{Op, Writer};
use crate::*;
use async_trait::async_trait;
use rota_core::{
    NewTask, QueueInfo, QueueKey, QueuePatch, StateCounts, Task, TaskId, TaskState, Timestamp,
};
use rota_store::*;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, Notify};

pub(crate) struct Shard {
    shared: Arc<Shared>,
    path: PathBuf,
    options: SqliteOptions,
    sender: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

/// A shard's file, open and read, before its writer starts: what [`Shard::start`] needs, and
/// the greatest ids and cursor it holds, which every shard's writer must start after.
pub(crate) struct Opened {
    path: PathBuf,
    conn: Connection,
    catalog: Catalog,
    tenants: HashSet<String>,
    hooks: Vec<rota_core::webhooks::Webhook>,
    pub last_task: Option<TaskId>,
    pub last_delivery: i64,
    pub last_cursor: i64,
}

impl Opened {
    /// Each tenant with queues in this file, and how many.
    pub fn tenant_queue_counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.catalog.tenant_queue_counts()
    }
}

/// What the shards of one store share.
pub(crate) struct Link {
    pub index: usize,
    pub cursors: Arc<Cursors>,
    pub events: Arc<rota_store::EventSignals>,
    pub maintenance: Arc<Notify>,
    /// The greatest task id of any shard.
    pub last_task: Option<TaskId>,
    pub delivery_ids: Arc<std::sync::atomic::AtomicI64>,
    pub quota: Arc<crate::quota::QueueQuota>,
}

impl Shard {
    /// Opens (creating if needed) and migrates the file at `path`.
    pub fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection, String> {
        load::make_private(path)?;
        let mut conn =
            Connection::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!(
                "{} cannot use WAL mode (got {mode})",
                path.display()
            ));
        }
        // FULL: every commit fsyncs the WAL, so an acknowledged write survives power loss.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| e.to_string())?;
        configure(&conn, options.write_cache_kib).map_err(|e| e.to_string())?;
        schema::migrate(&mut conn)?;
        Ok(conn)
    }

    /// Reads what the writer of a connected file starts from.
    pub fn load(path: &Path, conn: Connection) -> Result<Opened, String> {
        let (catalog, last_task) =
            load::load_catalog(&conn).map_err(|e| format!("cannot load queues: {e}"))?;
        let tenants =
            load::load_tenant_names(&conn).map_err(|e| format!("cannot load tenants: {e}"))?;
        let hooks = webhooks::load_all(&conn)?;
        let (last_delivery, last_cursor) =
            load::load_sequences(&conn).map_err(|e| format!("cannot load sequences: {e}"))?;
        Ok(Opened {
            path: path.to_owned(),
            conn,
            catalog,
            tenants,
            hooks,
            last_task,
            last_delivery,
            last_cursor,
        })
    }

    /// Starts the writer of an opened file.
    pub fn start(
        opened: Opened,
        link: Link,
        clock: Arc<dyn Clock>,
        options: SqliteOptions,
    ) -> Result<Self, String> {
        let shared = Arc::new(Shared {
            catalog: RwLock::new(opened.catalog),
            tenants: RwLock::new(opened.tenants),
            clock,
            signals: ReadySignals::default(),
            maintenance: link.maintenance,
            write_failing: AtomicBool::new(false),
            max_queues_per_tenant: options.max_queues_per_tenant,
            events: link.events,
            event_retention_ms: options.event_retention_ms,
            trim_marks: Default::default(),
            writer_busy_ns: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            synced_commits: AtomicU64::new(0),
            shard: link.index,
            cursors: link.cursors,
            delivery_ids: link.delivery_ids,
            quota: link.quota,
        });
        let (tx, rx) = mpsc::channel(options.queue_depth);
        let writer = Writer::new(opened.conn, shared.clone(), link.last_task, opened.hooks);
        let handle = std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || writer.run(rx))
            .map_err(|e| e.to_string())?;
        Ok(Shard {
            shared,
            path: opened.path,
            options,
            sender: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            readers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    pub(crate) async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Op,
    ) -> Result<T, StoreError> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| unavailable("the store is closed"))?;
        let (tx, rx) = oneshot::channel();
        sender
            .send(make(tx))
            .await
            .map_err(|_| unavailable("the store is closed"))?;
        rx.await.map_err(|_| unavailable("the writer stopped"))
    }

    /// Runs `f` on a read connection, off the async threads.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Shared) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(unavailable("the store is closed"));
        }
        let conn = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(unavailable)?;
                configure(&c, self.options.read_cache_kib).map_err(unavailable)?;
                c
            }
        };
        let shared = self.shared.clone();
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let out = f(&conn, &shared);
            (conn, out)
        })
        .await
        .map_err(unavailable)?;
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.options.idle_readers && !self.closed.load(Ordering::Acquire) {
            pool.push(conn);
        }
        out
    }
}

impl Shard {
    /// The tenant's events after `after` and below `horizon` (see [`Cursors::horizon`]).
    pub async fn events_below(
        &self,
        tenant: &str,
        after: i64,
        horizon: i64,
        limit: usize,
        keep: EventKeep,
    ) -> StoreResult<EventPage> {
        let tenant = tenant.to_owned();
        self.read(move |conn, _| events::read(conn, &tenant, after, horizon, limit, &*keep))
            .await
    }

    /// Records delivery attempts; answers each webhook they changed, and whether they
    /// disabled it.
    pub async fn record_attempts_changed(
        &self,
        results: Vec<(i64, rota_core::webhooks::Attempt)>,
        now: Timestamp,
    ) -> StoreResult<Vec<(rota_core::webhooks::Webhook, bool)>> {
        self.send(|r| Op::RecordAttempts(results, now, r)).await?
    }

    /// Takes another shard's view of a webhook's health (see `Ctx::note_webhook_health`).
    pub async fn note_webhook_health(&self, w: rota_core::webhooks::Webhook) -> StoreResult<()> {
        self.send(|r| Op::NoteWebhookHealth(w, r)).await?
    }

    /// Whether the queue is in this shard's file.
    pub fn has_queue(&self, key: &QueueKey) -> bool {
        let cat = self
            .shared
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner());
        cat.by_key(key).is_some()
    }
}

#[async_trait]
impl Store for Shard {
    async fn enqueue(&self, queue: &QueueKey, tasks: Vec<NewTask>) -> StoreResult<Vec<Enqueued>> {
        let q = queue.clone();
        self.send(|r| Op::Enqueue(q, tasks, r)).await?
    }

    async fn claim_batch(&self, queue: &QueueKey, req: ClaimRequest) -> StoreResult<Claimed> {
        let q = queue.clone();
        self.send(|r| Op::Claim(q, req, r)).await?
    }

    async fn heartbeat(&self, tenant: &str, hb: Heartbeat) -> StoreResult<Task> {
        let t = tenant.to_owned();
        self.send(|r| Op::Heartbeat(t, hb, r)).await?
    }

    async fn complete(&self, tenant: &str, items: Vec<Completion>) -> Vec<StoreResult<Task>> {
        let n = items.len();
        let t = tenant.to_owned();
        self.send(|r| Op::Complete(t, items, r))
            .await
            .unwrap_or_else(|e| vec![Err(e); n])
    }

    async fn fail(&self, tenant: &str, items: Vec<FailureReport>) -> Vec<StoreResult<Task>> {
        let n = items.len();
        let t = tenant.to_owned();
        self.send(|r| Op::Fail(t, items, r))
            .await
            .unwrap_or_else(|e| vec![Err(e); n])
    }

    async fn change(&self, tenant: &str, id: TaskId, change: Change) -> StoreResult<Task> {
        let t = tenant.to_owned();
        self.send(|r| Op::Change(t, id, change, r)).await?
    }

    async fn get(&self, tenant: &str, id: TaskId) -> StoreResult<Task> {
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

    async fn unique_holders(&self, tenant: &str, unique_key: &str) -> StoreResult<Vec<Task>> {
        self.unique_holders(tenant, unique_key).await
    }

    async fn list(&self, queue: &QueueKey, filter: ListFilter) -> StoreResult<Page> {
        self.list_tasks(queue, filter).await
    }

    async fn queues(&self, tenant: &str) -> StoreResult<Vec<QueueInfo>> {
        let tenant = tenant.to_owned();
        let infos = self
            .queue_infos(move |cat| cat.for_tenant(&tenant).into_iter().cloned().collect())
            .await?;
        Ok(infos.into_iter().map(|(_, info)| info).collect())
    }

    async fn queue(&self, queue: &QueueKey) -> StoreResult<QueueInfo> {
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

    async fn all_queues(&self) -> StoreResult<Vec<(String, QueueInfo)>> {
        self.queue_infos(|cat| {
            let mut all: Vec<QueueEntry> = cat.all().cloned().collect();
            all.sort_by(|a, b| a.key.cmp(&b.key));
            all
        })
        .await
    }

    async fn diagnose(
        &self,
        tenant: &str,
        since: Timestamp,
        far: Timestamp,
    ) -> StoreResult<rota_store::Diagnosis> {
        self.read_diagnosis(tenant, since, far).await
    }
    async fn queue_overview(&self, max: usize) -> StoreResult<QueueOverview> {
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
                for st in TaskState::ALL {
                    *rest.get_mut(st) += q.counts.get(st);
                }
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

    async fn update_queue(&self, queue: &QueueKey, patch: QueuePatch) -> StoreResult<QueueInfo> {
        let q = queue.clone();
        self.send(|r| Op::UpdateQueue(q, patch, r)).await??;
        self.queue(queue).await
    }

    async fn purge(&self, queue: &QueueKey, state: TaskState) -> StoreResult<u64> {
        let q = queue.clone();
        self.send(|r| Op::Purge(q, state, r)).await?
    }

    async fn run_maintenance(&self) -> StoreResult<MaintenanceReport> {
        self.send(Op::Maintenance).await?
    }

    fn ready_signal(&self, queue: &QueueKey) -> Arc<Notify> {
        self.shared.signals.get(queue)
    }

    fn maintenance_signal(&self) -> Arc<Notify> {
        self.shared.maintenance.clone()
    }

    async fn events(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
        keep: EventKeep,
    ) -> StoreResult<EventPage> {
        let horizon = self.shared.cursors.horizon();
        self.events_below(tenant, after, horizon, limit, keep).await
    }

    fn event_signal(&self) -> Arc<Notify> {
        self.shared.events.any()
    }

    fn tenant_event_signal(&self, tenant: &str) -> Arc<Notify> {
        self.shared.events.tenant(tenant)
    }

    fn writer_status(&self) -> Option<WriterStatus> {
        let s = &self.shared;
        let busy = s.writer_busy_ns.load(Ordering::Relaxed) as f64 / 1e9;
        Some(WriterStatus {
            busy_seconds: busy,
            busy_by_writer: vec![busy],
            commits: s.commits.load(Ordering::Relaxed),
            synced_commits: s.synced_commits.load(Ordering::Relaxed),
        })
    }

    async fn health(&self) -> Health {
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

    async fn load_auth(&self) -> StoreResult<AuthData> {
        self.read(|conn, _| load::load_auth(conn).map_err(unavailable))
            .await
    }

    async fn change_auth(&self, change: AuthChange) -> StoreResult<()> {
        self.send(|reply| Op::Auth(change, reply)).await?
    }

    async fn find_key(&self, id: &str) -> StoreResult<Option<rota_core::auth::KeyRecord>> {
        let id = id.to_owned();
        self.read(move |conn, _| load::find_key(conn, &id).map_err(unavailable))
            .await
    }

    async fn put_schedule(&self, rec: ScheduleRecord) -> StoreResult<(ScheduleRecord, bool)> {
        self.send(|r| Op::PutSchedule(rec, r)).await?
    }

    async fn schedules(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> StoreResult<Vec<ScheduleRecord>> {
        self.read_schedules(tenant, name).await
    }

    async fn delete_schedule(&self, tenant: &str, name: &str) -> StoreResult<()> {
        let (t, n) = (tenant.to_owned(), name.to_owned());
        self.send(|r| Op::DeleteSchedule(t, n, r)).await?
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> StoreResult<DueSchedules> {
        self.read_due_schedules(now, limit).await
    }

    async fn fire_schedule(&self, firing: Firing) -> StoreResult<Option<ScheduleRecord>> {
        self.send(|r| Op::Fire(firing, r)).await?
    }

    async fn put_webhook(&self, w: rota_core::webhooks::Webhook) -> StoreResult<()> {
        self.send(|r| Op::PutWebhook(w, r)).await?
    }

    async fn webhooks(
        &self,
        tenant: &str,
        id: Option<&str>,
    ) -> StoreResult<Vec<rota_core::webhooks::Webhook>> {
        self.read_webhooks(tenant, id).await
    }

    async fn delete_webhook(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let (t, i) = (tenant.to_owned(), id.to_owned());
        self.send(|r| Op::DeleteWebhook(t, i, r)).await?
    }

    async fn deliveries(
        &self,
        tenant: &str,
        f: DeliveryFilter,
    ) -> StoreResult<Vec<rota_core::webhooks::Delivery>> {
        self.read_deliveries(tenant, f).await
    }

    async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: usize,
        skip: rota_store::DueSkip,
    ) -> StoreResult<Vec<DueDelivery>> {
        self.read_due_deliveries(now, limit, skip).await
    }

    async fn take_deliveries(
        &self,
        ids: Vec<i64>,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<(rota_core::webhooks::Delivery, rota_core::webhooks::Webhook)>> {
        self.send(|r| Op::TakeDeliveries(ids, now, until, r))
            .await?
    }

    async fn record_attempts(
        &self,
        results: Vec<(i64, rota_core::webhooks::Attempt)>,
        now: Timestamp,
    ) -> StoreResult<Vec<rota_core::webhooks::Webhook>> {
        let changed = self.record_attempts_changed(results, now).await?;
        Ok(changed.into_iter().filter(|c| c.1).map(|c| c.0).collect())
    }

    async fn retry_delivery(
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

    async fn close(&self) {
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
