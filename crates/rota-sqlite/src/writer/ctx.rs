//! The state one batch's ops work with, how they find queues (as the batch sees them), and the
//! queue-level writes: settings, purge, last claim times.

use super::Batch;
use crate::catalog::QueueEntry;
use crate::rows::{task_from_row, TaskRow, TASK_COLUMNS};
use crate::Shared;
use rota_core::{IdGenerator, QueueKey, QueuePatch, QueueSettings, Task, TaskState};
use rota_store::{StoreError, StoreResult};
use rusqlite::{params, Transaction};

pub(crate) struct Ctx<'a> {
    pub tx: &'a Transaction<'a>,
    pub shared: &'a Shared,
    pub ids: &'a mut IdGenerator,
    pub flow: &'a mut super::flow::FlowBook,
    pub deps: &'a mut super::deps::DepBook,
}

/// An op's outcome: `Err` is a failed statement (the batch is applied again without the op),
/// `Ok(Err)` is the op's own refusal (not found, lease lost, …).
pub(crate) type Res<T> = rusqlite::Result<StoreResult<T>>;

/// A queue named by id or by key.
#[derive(Clone, Copy)]
enum Which<'a> {
    Id(i64),
    Key(&'a QueueKey),
}

impl<'a> Ctx<'a> {
    pub fn new(
        tx: &'a Transaction<'a>,
        shared: &'a Shared,
        ids: &'a mut IdGenerator,
        flow: &'a mut super::flow::FlowBook,
        deps: &'a mut super::deps::DepBook,
    ) -> Self {
        Ctx {
            tx,
            shared,
            ids,
            flow,
            deps,
        }
    }

    pub fn tx(&self) -> &Transaction<'_> {
        self.tx
    }

    /// Reads a queue as this batch sees it: one created in this batch, else the catalog's.
    fn queue_entry<T>(
        &self,
        b: &Batch,
        which: Which<'_>,
        read: impl FnOnce(&QueueEntry) -> T,
    ) -> Option<T> {
        if let Which::Id(id) = which {
            if b.delta.removed_queues.contains(&id) {
                return None;
            }
        }
        let fresh = b.delta.new_queues.iter().find(|e| match which {
            Which::Id(id) => e.id == id,
            Which::Key(key) => &e.key == key,
        });
        if let Some(e) = fresh {
            return Some(read(e));
        }
        let cat = self
            .shared
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner());
        match which {
            Which::Id(id) => cat.by_id(id),
            Which::Key(key) => cat.by_key(key),
        }
        .filter(|e| !b.delta.removed_queues.contains(&e.id))
        .map(read)
    }

    /// The queue's id and settings as this batch sees them.
    pub fn lookup(&self, b: &Batch, key: &QueueKey) -> Option<(i64, QueueSettings)> {
        let id = self.queue_entry(b, Which::Key(key), |q| q.id)?;
        Some((id, self.settings_of(b, id)))
    }

    pub fn queue_key(&self, b: &Batch, queue_id: i64) -> Option<QueueKey> {
        self.queue_entry(b, Which::Id(queue_id), |q| q.key.clone())
    }

    /// The queue's tenant and default callback URL, for the fan-out.
    pub fn fan_out_target(&self, b: &Batch, queue_id: i64) -> Option<(String, Option<String>)> {
        let tenant = self.queue_key(b, queue_id)?.tenant;
        let callback = match b.delta.settings.get(&queue_id) {
            Some(changed) => changed.callback_url.clone(),
            None => self
                .queue_entry(b, Which::Id(queue_id), |q| q.settings.callback_url.clone())
                .flatten(),
        };
        Some((tenant, callback))
    }

    pub fn settings_of(&self, b: &Batch, queue_id: i64) -> QueueSettings {
        match b.delta.settings.get(&queue_id) {
            Some(changed) => changed.clone(),
            None => self
                .queue_entry(b, Which::Id(queue_id), |q| q.settings.clone())
                .unwrap_or_default(),
        }
    }

    /// Whether `tenant` exists as this batch sees it. Checked here, inside the writer, so a
    /// request authenticated just before its tenant was deleted cannot recreate its data.
    fn tenant_exists(&self, b: &Batch, tenant: &str) -> bool {
        if b.delta.removed_tenants.contains(tenant) {
            return false;
        }
        b.delta.new_tenants.contains(tenant)
            || self
                .shared
                .tenants
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(tenant)
    }

    /// The queue, created with default settings if it does not exist yet and the tenant may
    /// have one more.
    pub fn lookup_or_create(
        &mut self,
        b: &mut Batch,
        key: &QueueKey,
    ) -> rusqlite::Result<StoreResult<(i64, QueueSettings)>> {
        if !self.tenant_exists(b, &key.tenant) {
            return Ok(Err(StoreError::TenantNotFound(key.tenant.clone())));
        }
        if let Some(found) = self.lookup(b, key) {
            return Ok(Ok(found));
        }
        let max = self.shared.max_queues_per_tenant;
        if let Err(have) = self.shared.quota.take(&key.tenant, self.shared.shard, max) {
            return Ok(Err(StoreError::LimitReached(format!(
                "tenant `{}` has {have} queues, its limit (limits.max_queues_per_tenant = {max}); use an existing queue, or delete tasks of unused queues and ask an operator to raise the limit",
                key.tenant
            ))));
        }
        let settings = QueueSettings::default();
        let json = serde_json::to_string(&settings).expect("settings serialize");
        let id: i64 = self.tx().query_row(
            "INSERT INTO queues (tenant, name, settings, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            params![key.tenant, key.name, json, b.now.0],
            |r| r.get(0),
        )?;
        b.delta.new_queues.push(QueueEntry {
            id,
            key: key.clone(),
            settings: settings.clone(),
            created_at: b.now,
            last_claim_at: None,
            counts: Default::default(),
        });
        Ok(Ok((id, settings)))
    }

    /// The task with its queue name filled in.
    pub fn named(&self, b: &Batch, row: TaskRow) -> Task {
        let mut t = row.task;
        if let Some(k) = self.queue_key(b, row.queue_id) {
            t.queue = k.name;
        }
        t
    }

    pub fn task_by_id(&self, b: &Batch, id: i64) -> rusqlite::Result<Task> {
        let row = self
            .tx()
            .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
            .query_row([id], task_from_row)?;
        Ok(self.named(b, row))
    }

    pub fn update_returning(
        &self,
        b: &Batch,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> rusqlite::Result<Task> {
        let mut stmt = self.tx().prepare_cached(sql)?;
        let row = stmt.query_row(params, task_from_row)?;
        Ok(self.named(b, row))
    }

    pub fn update_queue(
        &mut self,
        b: &mut Batch,
        key: &QueueKey,
        patch: &QueuePatch,
    ) -> super::ctx::Res<()> {
        let (qid, mut settings) = match self.lookup_or_create(b, key)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        let was_paused = settings.paused;
        let old_retention = settings.retention_ms;
        patch.apply(&mut settings);
        let json = serde_json::to_string(&settings).expect("settings serialize");
        self.tx().execute(
            "UPDATE queues SET settings = ?1 WHERE id = ?2",
            params![json, qid],
        )?;
        if settings.retention_ms != old_retention {
            // Finished tasks carry their deletion time; a new retention moves it.
            let n = self.tx().execute(
                "UPDATE tasks SET purge_at = finished_at + ?1 \
                 WHERE queue_id = ?2 AND finished_at IS NOT NULL",
                params![settings.retention_ms as i64, qid],
            )?;
            if n > 0 {
                b.due(b.now);
            }
        }
        if let Some(q) = b.delta.new_queues.iter_mut().find(|q| q.id == qid) {
            q.settings = settings.clone();
        }
        b.delta.settings.insert(qid, settings.clone());
        if was_paused && !settings.paused {
            b.ready.insert(qid);
        }
        Ok(Ok(()))
    }

    pub fn purge(&mut self, b: &mut Batch, key: &QueueKey, state: TaskState) -> Res<u64> {
        let Some((qid, _)) = self.lookup(b, key) else {
            return Ok(Err(StoreError::QueueNotFound(key.name.clone())));
        };
        let n = self.tx().execute(
            "DELETE FROM tasks WHERE queue_id = ?1 AND state = ?2",
            params![qid, state.as_str()],
        )?;
        b.delta.counts.entry(qid).or_default()[state.index()] -= n as i64;
        Ok(Ok(n as u64))
    }

    pub fn persist_last_claims(&self, b: &Batch) -> rusqlite::Result<()> {
        if b.delta.last_claim_at.is_empty() {
            return Ok(());
        }
        let mut stmt = self
            .tx()
            .prepare_cached("UPDATE queues SET last_claim_at = ?1 WHERE id = ?2")?;
        for (qid, t) in &b.delta.last_claim_at {
            stmt.execute(params![t.0, qid])?;
        }
        Ok(())
    }
}
