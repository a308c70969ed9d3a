//! Webhook writes: the webhooks themselves, deliveries made from each batch's events (the
//! fan-out, in the batch's transaction), attempts taken and recorded, and manual retries.

use super::ctx::{Ctx, Res};
use super::Batch;
use crate::webhooks::{delivery_columns, delivery_from_row, webhook_from_doc};
use rota_core::events::{self, EventType};
use rota_core::webhooks::{
    after_attempt, is_outcome, Attempt, Delivery, DeliveryState, Webhook, CALLBACKS_ID,
};
use rota_core::{QueueKey, Timestamp};
use rota_store::StoreError;
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::HashMap;

/// Why a delivery whose webhook is gone is dead.
pub(crate) const NO_SIGNER: &str =
    "no webhook signs this delivery (for a task result: the tenant has no callback secret)";

/// The writer's copy of every webhook, by tenant, for the fan-out.
pub(crate) type WebhookCache = HashMap<String, Vec<Webhook>>;

/// A change to the cache, applied after the batch commits.
pub(crate) enum CacheChange {
    Put(Box<Webhook>),
    Delete { tenant: String, id: String },
    DropTenant(String),
}

pub(crate) fn apply(cache: &mut WebhookCache, change: CacheChange) {
    match change {
        CacheChange::Put(w) => {
            let w = *w;
            let list = cache.entry(w.tenant.clone()).or_default();
            match list.iter_mut().find(|x| x.id == w.id) {
                Some(x) => *x = w,
                None => list.push(w),
            }
        }
        CacheChange::Delete { tenant, id } => {
            if let Some(list) = cache.get_mut(&tenant) {
                list.retain(|w| w.id != id);
                // An empty cache lets the fan-out skip every batch at once.
                if list.is_empty() {
                    cache.remove(&tenant);
                }
            }
        }
        CacheChange::DropTenant(t) => {
            cache.remove(&t);
        }
    }
}

/// One delivery per event a webhook wants, and one per final outcome of a task with a callback
/// URL, its own or its queue's (to the tenant's `callbacks` signer), each copying the event;
/// answers how many. `target_of` gives a queue's tenant and default callback URL.
pub(crate) fn fan_out(
    tx: &Transaction<'_>,
    cache: &WebhookCache,
    ids: &std::sync::atomic::AtomicI64,
    events: &[super::Logged],
    target_of: impl Fn(i64) -> Option<(String, Option<String>)>,
) -> rusqlite::Result<usize> {
    // No webhook and no callback signer anywhere: nothing to deliver.
    if cache.is_empty() {
        return Ok(0);
    }
    let mut made = 0;
    for super::Logged {
        queue_id,
        event: e,
        callback,
        tenant,
    } in events
    {
        let target = match tenant {
            Some(t) => Some((t.clone(), None)),
            None => target_of(*queue_id),
        };
        let Some((tenant, queue_callback)) = target else {
            continue;
        };
        let hooks = cache.get(&tenant).map(Vec::as_slice).unwrap_or_default();
        // A result is signed by the tenant's `callbacks` webhook; none, no delivery.
        let signer = hooks.iter().any(|w| w.id == CALLBACKS_ID);
        let callback = if is_outcome(e.event_type) {
            callback.clone().or(queue_callback)
        } else {
            None
        };
        let targets = hooks
            .iter()
            .filter(|w| w.wants(e))
            .map(|w| (w.id.as_str(), None))
            .chain(
                callback
                    .as_deref()
                    .filter(|_| signer)
                    .map(|url| (CALLBACKS_ID, Some(url))),
            );
        for (webhook_id, url) in targets {
            tx.prepare_cached(
                "INSERT INTO deliveries (cursor, at, queue, kind, task_id, attempt, type, state, \
                 worker, error, due, subject, tenant, webhook_id, url, dstate, attempts, next_at, \
                 created_at, updated_at, id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
                 ?11, ?12, ?13, ?14, ?15, 'pending', 0, ?2, ?2, ?2, ?16)",
            )?
            .execute(params![
                e.cursor,
                e.at.0,
                e.queue,
                e.kind,
                e.task_id.as_i64(),
                e.attempt,
                e.event_type.as_str(),
                e.state.map(|s| s.as_str()),
                e.worker,
                e.error,
                e.due.map(|d| d.0),
                e.subject.as_ref().map(|s| s.to_column()),
                tenant,
                webhook_id,
                url,
                ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            ])?;
            made += 1;
        }
    }
    Ok(made)
}

fn doc(w: &Webhook) -> String {
    serde_json::to_string(w).expect("webhooks serialize")
}

impl Ctx<'_> {
    fn write_webhook(&self, b: &mut Batch, w: &Webhook) -> rusqlite::Result<()> {
        self.tx()
            .prepare_cached(
                "INSERT OR REPLACE INTO webhooks (tenant, id, doc) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![w.tenant, w.id, doc(w)])?;
        b.webhooks.push(CacheChange::Put(Box::new(w.clone())));
        Ok(())
    }

    fn webhook(&self, tenant: &str, id: &str) -> Res<Webhook> {
        let doc: Option<String> = self
            .tx()
            .prepare_cached("SELECT doc FROM webhooks WHERE tenant = ?1 AND id = ?2")?
            .query_row(params![tenant, id], |r| r.get(0))
            .optional()?;
        Ok(match doc {
            None => Err(StoreError::WebhookNotFound(id.to_owned())),
            Some(d) => webhook_from_doc(&d),
        })
    }

    fn delivery(&self, id: i64) -> Res<Delivery> {
        let sql = format!(
            "SELECT {} FROM deliveries WHERE id = ?1",
            delivery_columns()
        );
        let mut stmt = self.tx().prepare_cached(&sql)?;
        let mut rows = stmt.query(params![id])?;
        Ok(match rows.next()? {
            Some(r) => delivery_from_row(r),
            None => Err(StoreError::DeliveryNotFound(id)),
        })
    }

    pub fn put_webhook(&mut self, b: &mut Batch, w: &Webhook) -> Res<()> {
        let exists = self
            .shared
            .tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&w.tenant);
        if !exists {
            return Ok(Err(StoreError::TenantNotFound(w.tenant.clone())));
        }
        self.write_webhook(b, w)?;
        crate::identity::bump_generation(self.tx())?;
        Ok(Ok(()))
    }

    /// Takes the health another shard's attempts gave a webhook (its failing streak, and a
    /// disable), leaving the rest of this copy as it is: a change the webhook's owner made
    /// meanwhile is not undone.
    pub fn note_webhook_health(&mut self, b: &mut Batch, from: &Webhook) -> Res<()> {
        let Ok(mut w) = self.webhook(&from.tenant, &from.id)? else {
            return Ok(Ok(())); // deleted meanwhile
        };
        let before = w.clone();
        w.failing_since = from.failing_since;
        if !from.enabled {
            w.enabled = false;
            w.disabled_reason = from.disabled_reason.clone();
        }
        if w != before {
            w.updated_at = from.updated_at;
            self.write_webhook(b, &w)?;
        }
        Ok(Ok(()))
    }

    pub fn delete_webhook(&mut self, b: &mut Batch, tenant: &str, id: &str) -> Res<()> {
        let n = self
            .tx()
            .prepare_cached("DELETE FROM webhooks WHERE tenant = ?1 AND id = ?2")?
            .execute(params![tenant, id])?;
        if n == 0 {
            return Ok(Err(StoreError::WebhookNotFound(id.to_owned())));
        }
        self.tx()
            .prepare_cached("DELETE FROM deliveries WHERE tenant = ?1 AND webhook_id = ?2")?
            .execute(params![tenant, id])?;
        crate::identity::bump_generation(self.tx())?;
        b.webhooks.push(CacheChange::Delete {
            tenant: tenant.to_owned(),
            id: id.to_owned(),
        });
        Ok(Ok(()))
    }

    pub fn take_deliveries(
        &mut self,
        ids: &[i64],
        now: Timestamp,
        until: Timestamp,
    ) -> Res<Vec<(Delivery, Webhook)>> {
        let mut out = Vec::new();
        let mut hooks: HashMap<(String, String), Webhook> = HashMap::new();
        for id in ids {
            let n = self
                .tx()
                .prepare_cached(
                    "UPDATE deliveries SET attempts = attempts + 1, next_at = ?3, updated_at = ?2 \
                     WHERE id = ?1 AND dstate IN ('pending', 'failed') AND next_at <= ?2",
                )?
                .execute(params![id, now.0, until.0])?;
            if n == 0 {
                continue;
            }
            let d = match self.delivery(*id)? {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
            let key = (d.tenant.clone(), d.webhook_id.clone());
            if !hooks.contains_key(&key) {
                match self.webhook(&key.0, &key.1)? {
                    Ok(w) => hooks.insert(key.clone(), w),
                    Err(_) => {
                        // No signer (a callback whose tenant has no callback secret).
                        self.tx()
                            .prepare_cached(
                                "UPDATE deliveries SET dstate = 'dead', next_at = NULL, \
                                 last_error = ?2 WHERE id = ?1",
                            )?
                            .execute(params![id, NO_SIGNER])?;
                        continue;
                    }
                };
            }
            out.push((d, hooks[&key].clone()));
        }
        Ok(Ok(out))
    }

    pub fn record_attempts(
        &mut self,
        b: &mut Batch,
        results: &[(i64, Attempt)],
        now: Timestamp,
    ) -> Res<Vec<(Webhook, bool)>> {
        // Each webhook the attempts changed, and whether they disabled it.
        let mut changed: Vec<(Webhook, bool)> = Vec::new();
        for (id, a) in results {
            let d = match self.delivery(*id)? {
                Ok(d) => d,
                // Deleted with its webhook meanwhile.
                Err(_) => continue,
            };
            let (state, next) = after_attempt(d.attempts, a, now);
            self.tx()
                .prepare_cached(
                    "UPDATE deliveries SET dstate = ?2, next_at = ?3, last_status = ?4, \
                     last_error = ?5, latency_ms = ?6, updated_at = ?7, \
                     delivered_at = CASE WHEN ?2 = 'delivered' THEN ?7 ELSE delivered_at END \
                     WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    state.as_str(),
                    next.map(|t| t.0),
                    a.status,
                    a.error,
                    a.latency_ms as i64,
                    now.0
                ])?;
            let key = QueueKey::new(d.tenant.clone(), d.event.queue.clone());
            let queue_id = self.lookup(b, &key).map(|(id, _)| id);
            let about = |ty, error| {
                let (hook, attempts) = (&d.webhook_id, d.attempts);
                events::about_delivery(ty, &d.event, hook, d.id, attempts, error, now)
            };
            if let (DeliveryState::Dead, Some(qid)) = (state, queue_id) {
                b.log_other(qid, about(EventType::DeliveryDead, a.error.clone()));
            }
            let Ok(mut w) = self.webhook(&d.tenant, &d.webhook_id)? else {
                continue;
            };
            let before = w.clone();
            let disabled = w.note_attempt(a, now);
            if disabled {
                if let Some(qid) = queue_id {
                    let reason = w.disabled_reason.clone();
                    b.log_other(qid, about(EventType::WebhookDisabled, reason));
                }
            }
            if w != before {
                w.updated_at = now;
                self.write_webhook(b, &w)?;
                match changed
                    .iter_mut()
                    .find(|(c, _)| c.tenant == w.tenant && c.id == w.id)
                {
                    Some(c) => *c = (w, c.1 || disabled),
                    None => changed.push((w, disabled)),
                }
            }
        }
        Ok(Ok(changed))
    }

    pub fn retry_delivery(
        &mut self,
        tenant: &str,
        webhook_id: &str,
        id: i64,
        now: Timestamp,
    ) -> Res<Delivery> {
        let n = self
            .tx()
            .prepare_cached(
                "UPDATE deliveries SET dstate = 'pending', next_at = ?4, updated_at = ?4 \
                 WHERE id = ?1 AND tenant = ?2 AND webhook_id = ?3",
            )?
            .execute(params![id, tenant, webhook_id, now.0])?;
        if n == 0 {
            return Ok(Err(StoreError::DeliveryNotFound(id)));
        }
        self.delivery(id)
    }
}
