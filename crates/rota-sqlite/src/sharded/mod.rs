//! The embedded engine: one or more shard files side by side, each with its own writer.
//!
//! `rota.db` is shard 0: it alone holds access control (keys, roles, maintenance mode). Every
//! shard holds a copy of the tenants and webhooks, so each writer checks and fans out on its
//! own. A queue lives in one shard with its tasks, events and deliveries, and schedules live
//! with their target queue, so every state change is one shard's own transaction. A new queue
//! goes to the shard its name hashes to; an existing one stays where its rows are, so a data
//! directory keeps working when the shard count changes. Task ids carry their shard
//! (`id % ID_STRIPES`); event cursors come from one sequence shared by the writers, and
//! readers merge the shards' logs below the cursors still in flight (see `cursors.rs`).

mod audit;
mod deps;
mod merge;
mod reconcile;
mod routes;
mod spawn;
mod workflows;

use crate::cursors::Cursors;
use crate::quota::QueueQuota;
use crate::shard::{Link, Shard};
use crate::SqliteOptions;
use rota_core::id::ID_STRIPES;
use rota_core::{Clock, QueueKey, TaskId};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use tokio::sync::Notify;

pub struct SqliteStore {
    shards: Arc<Vec<Shard>>,
    /// Carries task endings to dependents in other shards (deps.rs).
    relay: Arc<deps::Relay>,
    /// Task ids below this were given before ids named their shard; they are all in shard 0.
    legacy_below: u64,
    /// Shards new queues are spread over (the configured count; files past it keep theirs).
    placing: usize,
    cursors: Arc<Cursors>,
    events: Arc<rota_store::EventSignals>,
    maintenance: Arc<Notify>,
    /// Reads of the event log (pages), for tests that show which readers a commit wakes.
    event_reads: std::sync::atomic::AtomicU64,
    /// Per shard, the workflow record the trim of records walks on from.
    record_marks: Vec<std::sync::atomic::AtomicU64>,
    /// Per shard, the workflow record the check for ended workflows walks on from.
    end_marks: Vec<std::sync::atomic::AtomicU64>,
    /// Serialize the adds and the close of one batch (spawn.rs).
    batch_locks: Vec<tokio::sync::Mutex<()>>,
}

/// The file of shard `index` beside `home` (shard 0): `rota.db`, `rota-shard1.db`, …
pub fn shard_path(home: &Path, index: usize) -> PathBuf {
    if index == 0 {
        return home.to_owned();
    }
    let stem = home
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    home.with_file_name(format!("{stem}-shard{index}.db"))
}

/// Every shard file that exists beside `home`, shard 0 first (it may not exist yet).
pub fn existing_shards(home: &Path) -> Vec<PathBuf> {
    let mut out = vec![home.to_owned()];
    while out.len() < ID_STRIPES as usize {
        let next = shard_path(home, out.len());
        if !next.exists() {
            break;
        }
        out.push(next);
    }
    out
}

/// Refuses a data directory whose shard files do not make a whole store: `rota.db` missing
/// beside shard files (opening would make an empty shard 0, and the shards' copies of the
/// tenants would then be brought in line with it: deleted), or a shard file after a gap.
fn check_layout(home: &Path, found: &[PathBuf]) -> Result<(), String> {
    if !home.exists() && found.len() > 1 {
        return Err(format!(
            "{} is missing but {} exists: this is part of a store, not a whole one; restore \
             {} (rota restore brings back every file of a backup)",
            home.display(),
            found[1].display(),
            home.display()
        ));
    }
    let gap = shard_path(home, found.len());
    if let Some(stray) = (found.len() + 1..ID_STRIPES as usize)
        .map(|i| shard_path(home, i))
        .find(|p| p.exists())
    {
        return Err(format!(
            "{} exists but {} does not: a shard file is missing; restore it before starting",
            stray.display(),
            gap.display()
        ));
    }
    Ok(())
}

/// FNV-1a: a hash that is the same in every process, so a new queue's shard does not depend
/// on a random seed.
fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// The shard a task id names among `count`: its stripe, or shard 0 for an id from before ids
/// named their shard (below `legacy_below`) or a stripe past the last shard.
pub(crate) fn shard_of(id: TaskId, legacy_below: u64, count: usize) -> usize {
    let stripe = (id.0 % ID_STRIPES) as usize;
    if id.0 < legacy_below || stripe >= count {
        0
    } else {
        stripe
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store whose shard 0 is the file `path`, with
    /// `options.shards` shards (or more, when more files are already there).
    pub fn open(
        path: &Path,
        clock: Arc<dyn Clock>,
        options: SqliteOptions,
    ) -> Result<Self, String> {
        if options.shards == 0 || options.shards > ID_STRIPES as usize {
            return Err(format!(
                "shards must be between 1 and {ID_STRIPES}, not {}",
                options.shards
            ));
        }
        let mut paths = existing_shards(path);
        check_layout(path, &paths)?;
        // Before any file is created or written: the shard files must belong with shard 0.
        crate::identity::check(&paths, &crate::identity::read_files(&paths)?)?;
        while paths.len() < options.shards {
            paths.push(shard_path(path, paths.len()));
        }
        let each = options.per_shard(paths.len());
        let mut conns = paths
            .iter()
            .map(|p| Shard::connect(p, &each))
            .collect::<Result<Vec<_>, _>>()?;
        reconcile::copies(&mut conns).map_err(|e| format!("cannot reconcile the shards: {e}"))?;
        crate::identity::stamp(&mut conns)
            .map_err(|e| format!("cannot record the store id in its shards: {e}"))?;
        let legacy_below = reconcile::striped_from(&conns[0])
            .map_err(|e| format!("cannot read where striped ids begin: {e}"))?;
        let opened = paths
            .iter()
            .zip(conns)
            .map(|(p, c)| Shard::load(p, c))
            .collect::<Result<Vec<_>, _>>()?;
        let last_task = opened.iter().filter_map(|o| o.last_task).max();
        let last_delivery = opened.iter().map(|o| o.last_delivery).max().unwrap_or(0);
        let last_cursor = opened.iter().map(|o| o.last_cursor).max().unwrap_or(0);
        let cursors = Arc::new(Cursors::new(last_cursor, opened.len()));
        let delivery_ids = Arc::new(AtomicI64::new(last_delivery));
        let quota = Arc::new(QueueQuota::new(opened.len()));
        for (i, o) in opened.iter().enumerate() {
            for (tenant, n) in o.tenant_queue_counts() {
                quota.settle(tenant, i, n);
            }
        }
        let events = Arc::new(rota_store::EventSignals::default());
        let maintenance = Arc::new(Notify::new());
        let releases = Arc::new(Notify::new());
        let opened_count = opened.len();
        let mut shards = Vec::with_capacity(opened.len());
        for (index, o) in opened.into_iter().enumerate() {
            let link = Link {
                index,
                cursors: cursors.clone(),
                events: events.clone(),
                maintenance: maintenance.clone(),
                last_task,
                delivery_ids: delivery_ids.clone(),
                quota: quota.clone(),
                releases: releases.clone(),
                legacy_below,
                shard_count: opened_count,
            };
            shards.push(Shard::start(o, link, clock.clone(), each.clone())?);
        }
        if shards.len() != options.shards {
            tracing::info!(
                files = shards.len(),
                placing = options.shards,
                "the data directory has more shard files than storage.shards; all of them keep \
                 serving their queues, and new queues go to the first {}",
                options.shards
            );
        }
        let shards = Arc::new(shards);
        let relay = Arc::new(deps::Relay::new(releases));
        if shards.len() > 1 {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let map = deps::Map {
                        shards: shards.clone(),
                        legacy_below,
                    };
                    rt.spawn(deps::relay(map, relay.clone(), clock.now()));
                }
                Err(_) => tracing::debug!(
                    "no async runtime: endings are not carried between shards by this handle"
                ),
            }
        }
        Ok(SqliteStore {
            shards,
            relay,
            legacy_below,
            placing: options.shards,
            cursors,
            events,
            maintenance,
            event_reads: Default::default(),
            record_marks: (0..opened_count).map(|_| Default::default()).collect(),
            end_marks: (0..opened_count).map(|_| Default::default()).collect(),
            batch_locks: (0..spawn::BATCH_LOCKS)
                .map(|_| Default::default())
                .collect(),
        })
    }

    /// How many times the event log was read (each read looks at every shard).
    pub fn event_reads(&self) -> u64 {
        self.event_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many shard files the store has.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard of `queue`: where it is, or for a new queue the one its name hashes to.
    fn place(&self, queue: &QueueKey) -> usize {
        let hashed = (stable_hash(&[&queue.tenant, &queue.name]) % self.placing as u64) as usize;
        if self.shards.len() == 1 || self.shards[hashed].has_queue(queue) {
            return hashed;
        }
        (0..self.shards.len())
            .find(|&i| i != hashed && self.shards[i].has_queue(queue))
            .unwrap_or(hashed)
    }

    fn of_queue(&self, queue: &QueueKey) -> &Shard {
        &self.shards[self.place(queue)]
    }

    /// The shard a task id names: its stripe, or shard 0 for an id from before ids named their
    /// shard (every such task is in `rota.db`, the only file there was). An id no shard gave
    /// (a stripe past the last shard) is looked for in shard 0, which answers not found.
    fn of_id(&self, id: TaskId) -> usize {
        shard_of(id, self.legacy_below, self.shards.len())
    }
}
