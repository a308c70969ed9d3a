//! Access-control writes (tenants, keys, roles, inbound webhooks, maintenance mode), events
//! that are no task's transition, and the readiness probe.

use super::ctx::{Ctx, Res};
use super::Batch;
use rota_core::events::Event;
use rota_store::AuthChange;
use rusqlite::{params, OptionalExtension};

/// Deletes the tenant and every row of it (queues, tasks and their dependency rows, events,
/// keys, roles, schedules, webhooks, deliveries, hooks, workflows); answers the ids its queues had.
pub(crate) fn delete_tenant_rows(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
) -> rusqlite::Result<Vec<i64>> {
    let queues: Vec<i64> = {
        let mut stmt = tx.prepare_cached("SELECT id FROM queues WHERE tenant = ?1")?;
        let rows = stmt.query_map(params![name], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for qid in &queues {
        // Dependency rows of its tasks first (those of other shards' tasks go with theirs).
        for sql in [
            "DELETE FROM task_dependents WHERE dep_id IN (SELECT id FROM tasks WHERE queue_id = ?1)",
            "DELETE FROM task_waits WHERE task_id IN (SELECT id FROM tasks WHERE queue_id = ?1)",
            "DELETE FROM release_outbox WHERE dep_id IN (SELECT id FROM tasks WHERE queue_id = ?1)",
        ] {
            tx.prepare_cached(sql)?.execute(params![qid])?;
        }
        tx.prepare_cached("DELETE FROM tasks WHERE queue_id = ?1")?
            .execute(params![qid])?;
        tx.prepare_cached("DELETE FROM task_groups WHERE queue_id = ?1")?
            .execute(params![qid])?;
    }
    crate::events::forget_tenant(tx, name)?;
    tx.execute("DELETE FROM queues WHERE tenant = ?1", params![name])?;
    tx.execute("DELETE FROM api_keys WHERE tenant = ?1", params![name])?;
    tx.execute("DELETE FROM roles WHERE tenant = ?1", params![name])?;
    tx.execute("DELETE FROM schedules WHERE tenant = ?1", params![name])?;
    tx.execute("DELETE FROM deliveries WHERE tenant = ?1", params![name])?;
    tx.execute("DELETE FROM webhooks WHERE tenant = ?1", params![name])?;
    tx.execute("DELETE FROM hooks WHERE tenant = ?1", params![name])?;
    tx.execute("DELETE FROM workflows WHERE tenant = ?1", params![name])?;
    tx.execute("DELETE FROM tenants WHERE name = ?1", params![name])?;
    Ok(queues)
}

impl Ctx<'_> {
    pub fn change_auth(&mut self, b: &mut Batch, change: &AuthChange) -> Res<()> {
        fn doc<T: serde::Serialize>(v: &T) -> String {
            serde_json::to_string(v).expect("auth records serialize")
        }
        let tx = self.tx();
        match change {
            AuthChange::PutTenant(t) => {
                tx.prepare_cached("INSERT OR REPLACE INTO tenants (name, doc) VALUES (?1, ?2)")?
                    .execute(params![t.name, doc(t)])?;
                tx.prepare_cached("DELETE FROM tenant_tombstones WHERE name = ?1")?
                    .execute(params![t.name])?;
                crate::identity::bump_generation(tx)?;
                b.delta.removed_tenants.remove(&t.name);
                b.delta.new_tenants.insert(t.name.clone());
            }
            AuthChange::DeleteTenant(name) => {
                let queues = delete_tenant_rows(tx, name)?;
                // Shard 0's row tells the other shards, when the store opens, to finish this
                // deletion should a crash cut it short (see sharded/reconcile.rs).
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO tenant_tombstones (name, deleted_at) VALUES (?1, ?2)",
                )?
                .execute(params![name, b.now.0])?;
                crate::identity::bump_generation(tx)?;
                for qid in &queues {
                    b.delta.counts.remove(qid);
                    b.delta.settings.remove(qid);
                    b.delta.last_claim_at.remove(qid);
                    b.ready.remove(qid);
                    self.flow.forget(*qid);
                }
                b.delta.new_queues.retain(|q| &q.key.tenant != name);
                b.events.retain(|l| {
                    !queues.contains(&l.queue_id) && l.tenant.as_deref() != Some(name.as_str())
                });
                b.delta.removed_queues.extend(queues);
                b.delta.new_tenants.remove(name);
                b.delta.removed_tenants.insert(name.clone());
                b.webhooks
                    .push(super::webhooks::CacheChange::DropTenant(name.clone()));
            }
            AuthChange::PutKey(k) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO api_keys (id, tenant, doc) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![k.id, k.tenant, doc(k)])?;
            }
            AuthChange::EndSessions { key, at } => {
                // Timestamps are stored as fixed-width UTC text, so text order is time order.
                let field = format!("$.{}", rota_core::auth::SESSIONS_VALID_FROM_FIELD);
                tx.prepare_cached(
                    "UPDATE api_keys SET doc = json_set(doc, ?2, ?3) WHERE id = ?1 \
                     AND (json_extract(doc, ?2) IS NULL OR json_extract(doc, ?2) < ?3)",
                )?
                .execute(params![key, field, at.to_string()])?;
            }
            AuthChange::TouchKeys(touched) => {
                let mut stmt = tx.prepare_cached(
                    "UPDATE api_keys SET doc = json_set(doc, '$.last_used_at', ?2) WHERE id = ?1",
                )?;
                for (id, at) in touched {
                    stmt.execute(params![id, at.to_string()])?;
                }
            }
            AuthChange::PutRole(r) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO roles (tenant, name, doc) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![r.tenant, r.name, doc(r)])?;
            }
            AuthChange::DeleteRole { tenant, name } => {
                tx.execute(
                    "DELETE FROM roles WHERE tenant = ?1 AND name = ?2",
                    params![tenant, name],
                )?;
            }
            AuthChange::SetMaintenance(Some(m)) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO settings (name, doc) VALUES ('maintenance', ?1)",
                )?
                .execute(params![doc(m)])?;
            }
            AuthChange::SetMaintenance(None) => {
                tx.execute("DELETE FROM settings WHERE name = 'maintenance'", [])?;
            }
            AuthChange::PutHook(h) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO hooks (id, tenant, doc) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![h.id, h.tenant, doc(h)])?;
            }
            AuthChange::DeleteHook { tenant, id } => {
                tx.execute(
                    "DELETE FROM hooks WHERE tenant = ?1 AND id = ?2",
                    params![tenant, id],
                )?;
            }
            AuthChange::KeyEvent {
                key,
                event,
                expect_notice,
            } => {
                if let Some(expected) = expect_notice {
                    let field = format!("$.{}", rota_core::auth::EXPIRY_NOTICE_FIELD);
                    let stored: Option<Option<String>> = tx
                        .prepare_cached("SELECT json_extract(doc, ?2) FROM api_keys WHERE id = ?1")?
                        .query_row(params![key.id, field], |r| r.get(0))
                        .optional()?;
                    // Gone, or its notice already moved on (another server logged it).
                    if stored.as_ref() != Some(expected) {
                        return Ok(Ok(()));
                    }
                }
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO api_keys (id, tenant, doc) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![key.id, key.tenant, doc(key)])?;
                b.log_tenant(&key.tenant, (**event).clone());
            }
        }
        Ok(Ok(()))
    }

    /// Logs events that are no task's transition, each in its queue (created if missing).
    pub fn log_events(&mut self, b: &mut Batch, tenant: &str, events: &[Event]) -> Res<()> {
        for e in events {
            let key = rota_core::QueueKey::new(tenant, e.queue.as_str());
            let qid = match self.lookup_or_create(b, &key)? {
                Ok((qid, _)) => qid,
                Err(e) => return Ok(Err(e)),
            };
            b.log_other(qid, e.clone());
        }
        Ok(Ok(()))
    }

    /// Writes one row (the time of this probe), so readiness learns whether commits succeed
    /// now: a full disk fails it even when no client is writing.
    pub fn probe(&mut self, b: &mut Batch) -> Res<()> {
        self.tx()
            .prepare_cached("INSERT OR REPLACE INTO probe (id, at) VALUES (1, ?1)")?
            .execute(params![b.now.0])?;
        Ok(Ok(()))
    }
}
