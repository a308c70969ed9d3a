//! The embedded engine: SQLite files in WAL mode, one per shard (see `sharded/`), each with a
//! writer thread that group-commits (see `writer/`) and a small pool of read connections,
//! which WAL lets proceed while the writer commits.

mod audit;
pub mod backup;
mod catalog;
mod cursors;
mod diagnose;
mod events;
mod groups;
mod identity;
mod load;
mod queries;
mod quota;
mod rows;
mod schedules;
pub mod schema;
mod shard;
mod sharded;
mod webhooks;
mod writer;

pub use sharded::{existing_shards, shard_path, SqliteStore};

use catalog::Catalog;
use rota_core::Clock;
use rota_store::*;
use rusqlite::Connection;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;

/// The file name inside the data directory.
pub const DB_FILE: &str = "rota.db";

/// The name of the writer thread (Linux shows the first 15 bytes in `/proc/PID/task/*/comm`).
pub const WRITER_THREAD: &str = "rota-sqlite-writer";

/// Open-time settings of the engine.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Page cache of the write connections, in KiB, shared out over the shards (each gets
    /// its part, at least 16 MiB).
    pub write_cache_kib: i64,
    /// Page cache of each read connection, in KiB.
    pub read_cache_kib: i64,
    /// Read connections kept open between reads, shared out over the shards (each keeps at
    /// least 2).
    pub idle_readers: usize,
    /// Ops waiting for the writer before callers wait to send.
    pub queue_depth: usize,
    /// Most queues one tenant may have (`limits.max_queues_per_tenant`).
    pub max_queues_per_tenant: usize,
    /// How long the event log keeps an event (`events.retention_ms`).
    pub event_retention_ms: u64,
    /// How long the audit log keeps an entry (`audit.retention_ms`).
    pub audit_retention_ms: u64,
    /// Shards new queues are spread over (`storage.shards`); a data directory with more
    /// shard files keeps using them all.
    pub shards: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            write_cache_kib: 64 * 1024,
            read_cache_kib: 8 * 1024,
            idle_readers: 4,
            queue_depth: 8_192,
            max_queues_per_tenant: rota_core::Limits::default().max_queues_per_tenant,
            event_retention_ms: DEFAULT_EVENT_RETENTION_MS,
            audit_retention_ms: rota_core::audit::DEFAULT_AUDIT_RETENTION_MS,
            shards: 1,
        }
    }
}

impl SqliteOptions {
    /// One of `shards` shards' options: its part of the caches and idle readers, so the
    /// memory the store holds does not grow with the shard count.
    pub(crate) fn per_shard(&self, shards: usize) -> SqliteOptions {
        let n = shards.max(1);
        SqliteOptions {
            write_cache_kib: (self.write_cache_kib / n as i64).max(16 * 1024),
            idle_readers: (self.idle_readers / n).max(2),
            ..self.clone()
        }
    }
}

pub(crate) struct Shared {
    pub catalog: RwLock<Catalog>,
    /// Tenants that exist; the writer refuses to create queues for any other.
    pub tenants: RwLock<HashSet<String>>,
    pub clock: Arc<dyn Clock>,
    pub signals: ReadySignals,
    /// Waiting claims the writer claims for when their queue's tasks become ready.
    pub parked: rota_store::ParkedClaims,
    pub maintenance: Arc<Notify>,
    /// Whether the last write batch failed to begin or commit (a full disk, say).
    pub write_failing: AtomicBool,
    pub max_queues_per_tenant: usize,
    /// Readers of the event log, woken per tenant when a commit makes its events readable.
    pub events: Arc<rota_store::EventSignals>,
    /// How long events are kept, unless their tenant says otherwise.
    pub event_retention_ms: u64,
    /// How long audit entries are kept.
    pub audit_retention_ms: u64,
    /// Where retention's walks through the log have got to (only the writer uses it).
    pub trim_marks: Mutex<rota_store::TrimMarks>,
    /// What the writer has done (see [`rota_store::WriterStatus`]).
    pub writer_busy_ns: AtomicU64,
    pub commits: AtomicU64,
    pub synced_commits: AtomicU64,
    /// WAL checkpoints run by the shard's checkpoint thread, and by the writer itself.
    pub checkpoints: AtomicU64,
    pub writer_checkpoints: AtomicU64,
    /// This shard's index: its ids' stripe.
    pub shard: usize,
    /// Event cursors, shared by every shard's writer.
    pub cursors: Arc<cursors::Cursors>,
    /// The last delivery id given, shared by every shard's writer (ids are unique across
    /// shards, so the deliverer can hand every shard the ids it took).
    pub delivery_ids: Arc<std::sync::atomic::AtomicI64>,
    /// Each tenant's queues across every shard, for `max_queues_per_tenant`.
    pub quota: Arc<quota::QueueQuota>,
    /// Wakes the relay that carries endings to dependents in other shards.
    pub releases: Arc<Notify>,
    /// How task ids map to shards, for telling a dependent here from one elsewhere.
    pub legacy_below: u64,
    pub shard_count: usize,
    /// This shard's task ids, taken by its writer and by a workflow's submission (which needs
    /// its tasks' ids before it writes them).
    pub ids: Mutex<rota_core::IdGenerator>,
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(crate) fn configure(conn: &Connection, cache_kib: i64) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // The writer uses ~25 distinct statements; rusqlite's default cache of 16 would evict and
    // re-parse them on every batch (seen in perf as sqlite3RunParser in the writer thread).
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.pragma_update(None, "temp_store", "memory")?;
    conn.pragma_update(None, "foreign_keys", false)?;
    Ok(())
}

pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    unavailable(e)
}
