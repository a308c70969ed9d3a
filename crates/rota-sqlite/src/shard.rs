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

mod store;
pub(crate) mod workflows;

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
    pub releases: Arc<Notify>,
    /// How task ids map to shards (see `sharded::shard_of`).
    pub legacy_below: u64,
    pub shard_count: usize,
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
            parked: Default::default(),
            maintenance: link.maintenance,
            write_failing: AtomicBool::new(false),
            max_queues_per_tenant: options.max_queues_per_tenant,
            events: link.events,
            event_retention_ms: options.event_retention_ms,
            audit_retention_ms: options.audit_retention_ms,
            trim_marks: Default::default(),
            writer_busy_ns: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            synced_commits: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            writer_checkpoints: AtomicU64::new(0),
            shard: link.index,
            cursors: link.cursors,
            delivery_ids: link.delivery_ids,
            quota: link.quota,
            releases: link.releases,
            legacy_below: link.legacy_below,
            shard_count: link.shard_count,
            ids: Mutex::new(rota_core::IdGenerator::striped(
                link.last_task,
                link.index as u64,
            )),
        });
        let (tx, rx) = mpsc::channel(options.queue_depth);
        let writer = Writer::new(opened.conn, shared.clone(), opened.hooks);
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
        let mut op = make(tx);
        // An administrative change takes the audit entry waiting in its caller's scope.
        if op.is_administrative() {
            if let Some(entry) = rota_store::audit::take() {
                op = Op::Audited(Box::new(op), Box::new(entry));
            }
        }
        sender
            .send(op)
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
