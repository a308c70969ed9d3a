//! Webhooks and deliveries. The fan-out is the `rota_events_fan_out` trigger (see schema.rs):
//! every statement that logs events inserts their deliveries in its transaction, matching each
//! webhook's filter kept as LIKE patterns beside its JSON.

use crate::events::{event_from_row, EVENT_COLUMNS};
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rota_core::events::{self, EventType};
use rota_core::webhooks::{after_attempt, Attempt, Delivery, DeliveryState, Webhook};
use rota_core::Timestamp;
use rota_store::{DeliveryFilter, DueDelivery, DueSkip, StoreError, StoreResult};
use std::collections::HashMap;

/// A `*` glob as a LIKE pattern (`\\` escapes).
fn like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len());
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The first of each pair, as one array parameter.
fn firsts(pairs: &[(String, String)]) -> Vec<&str> {
    pairs.iter().map(|(a, _)| a.as_str()).collect()
}

fn seconds(pairs: &[(String, String)]) -> Vec<&str> {
    pairs.iter().map(|(_, b)| b.as_str()).collect()
}

/// Why a delivery whose webhook is gone is dead.
const NO_SIGNER: &str =
    "no webhook signs this delivery (for a task result: the tenant has no callback secret)";

fn columns() -> String {
    format!(
        "{EVENT_COLUMNS}, id, tenant, webhook_id, dstate, attempts, next_at, last_status, \
         last_error, latency_ms, created_at, delivered_at, url"
    )
}

fn delivery_from_row(r: &tokio_postgres::Row) -> StoreResult<Delivery> {
    // The event's columns come first.
    let n = crate::events::EVENT_COLUMN_COUNT;
    let state: String = r.get(n + 3);
    Ok(Delivery {
        event: event_from_row(r)?,
        id: r.get(n),
        tenant: r.get(n + 1),
        webhook_id: r.get(n + 2),
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Unavailable(format!("unreadable delivery: {state}")))?,
        attempts: r.get::<_, i32>(n + 4).max(0) as u32,
        next_at: r.get::<_, Option<i64>>(n + 5).map(Timestamp),
        last_status: r.get::<_, Option<i32>>(n + 6).map(|s| s as u16),
        last_error: r.get(n + 7),
        latency_ms: r.get::<_, Option<i64>>(n + 8).map(|l| l.max(0) as u64),
        created_at: Timestamp(r.get(n + 9)),
        delivered_at: r.get::<_, Option<i64>>(n + 10).map(Timestamp),
        url: r.get(n + 11),
    })
}

fn parse(doc: &str) -> StoreResult<Webhook> {
    serde_json::from_str(doc)
        .map_err(|e| StoreError::Unavailable(format!("a stored webhook is not valid: {e}")))
}

async fn write(c: &impl GenericClient, w: &Webhook) -> StoreResult<()> {
    let types: Vec<String> = w.filter.types.iter().map(|t| like(t)).collect();
    let queues: Vec<String> = w.filter.queues.iter().map(|q| like(q)).collect();
    c.execute(
        "INSERT INTO rota_webhooks (tenant, id, doc, enabled, type_likes, queue_likes) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, id) DO UPDATE SET \
         doc = EXCLUDED.doc, enabled = EXCLUDED.enabled, type_likes = EXCLUDED.type_likes, \
         queue_likes = EXCLUDED.queue_likes",
        &[
            &w.tenant,
            &w.id,
            &serde_json::to_string(w).expect("webhooks serialize"),
            &w.enabled,
            &types,
            &queues,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

async fn webhook(c: &impl GenericClient, tenant: &str, id: &str) -> StoreResult<Option<Webhook>> {
    c.query_opt(
        "SELECT doc FROM rota_webhooks WHERE tenant = $1 AND id = $2",
        &[&tenant, &id],
    )
    .await
    .map_err(db)?
    .map(|r| parse(r.get(0)))
    .transpose()
}

impl PostgresStore {
    pub(crate) async fn put_webhook_row(&self, w: Webhook) -> StoreResult<()> {
        let audit = rota_store::audit::take();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        crate::tasks::lock_tenant(&tx, &w.tenant, false).await?;
        let exists = tx
            .query_opt("SELECT 1 FROM rota_tenants WHERE name = $1", &[&w.tenant])
            .await
            .map_err(db)?
            .is_some();
        if !exists {
            return Err(StoreError::TenantNotFound(w.tenant.clone()));
        }
        write(&tx, &w).await?;
        crate::audit::write(&tx, audit.as_ref()).await?;
        tx.commit().await.map_err(db)
    }

    pub(crate) async fn webhook_rows(
        &self,
        tenant: &str,
        id: Option<&str>,
    ) -> StoreResult<Vec<Webhook>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT doc FROM rota_webhooks WHERE tenant = $1 \
                 AND ($2::text IS NULL OR id = $2) ORDER BY id",
                &[&tenant, &id],
            )
            .await
            .map_err(db)?;
        match id {
            Some(i) if rows.is_empty() => Err(StoreError::WebhookNotFound(i.to_owned())),
            _ => rows.iter().map(|r| parse(r.get(0))).collect(),
        }
    }

    pub(crate) async fn delete_webhook_row(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let audit = rota_store::audit::take();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let n = tx
            .execute(
                "DELETE FROM rota_webhooks WHERE tenant = $1 AND id = $2",
                &[&tenant, &id],
            )
            .await
            .map_err(db)?;
        if n == 0 {
            return Err(StoreError::WebhookNotFound(id.to_owned()));
        }
        tx.execute(
            "DELETE FROM rota_deliveries WHERE tenant = $1 AND webhook_id = $2",
            &[&tenant, &id],
        )
        .await
        .map_err(db)?;
        crate::audit::write(&tx, audit.as_ref()).await?;
        tx.commit().await.map_err(db)
    }

    pub(crate) async fn delivery_rows(
        &self,
        tenant: &str,
        f: DeliveryFilter,
    ) -> StoreResult<Vec<Delivery>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT {} FROM rota_deliveries WHERE tenant = $1 AND webhook_id = $2 \
                     AND ($3::text IS NULL OR dstate = $3) AND ($4::bigint IS NULL OR id < $4) \
                     ORDER BY id DESC LIMIT $5",
                    columns()
                ),
                &[
                    &tenant,
                    &f.webhook_id,
                    &f.state.map(|s| s.as_str()),
                    &f.before,
                    &(f.limit as i64),
                ],
            )
            .await
            .map_err(db)?;
        rows.iter().map(delivery_from_row).collect()
    }

    pub(crate) async fn due_delivery_rows(
        &self,
        now: Timestamp,
        limit: usize,
        skip: DueSkip,
    ) -> StoreResult<Vec<DueDelivery>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT id, tenant, webhook_id, url FROM rota_deliveries \
                 WHERE dstate IN ('pending', 'failed') AND next_at <= $1 \
                 AND tenant <> ALL($3::text[]) \
                 AND NOT (url IS NULL AND EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[]) \
                   AS w(t, id) WHERE w.t = tenant AND w.id = webhook_id)) \
                 AND NOT (url IS NOT NULL AND EXISTS (SELECT 1 FROM unnest($6::text[], \
                   $7::text[]) AS c(t, p) WHERE c.t = tenant AND left(url, length(c.p)) = c.p)) \
                 ORDER BY next_at LIMIT $2",
                &[
                    &now.0,
                    &(limit as i64),
                    &skip.tenants,
                    &firsts(&skip.webhooks),
                    &seconds(&skip.webhooks),
                    &firsts(&skip.callbacks),
                    &seconds(&skip.callbacks),
                ],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| DueDelivery {
                id: r.get(0),
                tenant: r.get(1),
                webhook_id: r.get(2),
                url: r.get(3),
            })
            .collect())
    }

    pub(crate) async fn take_delivery_rows(
        &self,
        ids: Vec<i64>,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<(Delivery, Webhook)>> {
        let client = self.conn().await?;
        let rows = client
            .query(
                &format!(
                    "UPDATE rota_deliveries SET attempts = attempts + 1, next_at = $3, \
                     updated_at = $2 WHERE id = ANY($1) AND dstate IN ('pending', 'failed') \
                     AND next_at <= $2 RETURNING {}",
                    columns()
                ),
                &[&ids, &now.0, &until.0],
            )
            .await
            .map_err(db)?;
        let mut hooks: HashMap<(String, String), Webhook> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let d = delivery_from_row(r)?;
            let key = (d.tenant.clone(), d.webhook_id.clone());
            if !hooks.contains_key(&key) {
                match webhook(&client, &key.0, &key.1).await? {
                    Some(w) => hooks.insert(key.clone(), w),
                    None => {
                        // No signer (a callback whose tenant has no callback secret).
                        client
                            .execute(
                                "UPDATE rota_deliveries SET dstate = 'dead', next_at = NULL, \
                                 last_error = $2 WHERE id = $1",
                                &[&d.id, &NO_SIGNER],
                            )
                            .await
                            .map_err(db)?;
                        continue;
                    }
                };
            }
            out.push((d, hooks[&key].clone()));
        }
        Ok(out)
    }

    pub(crate) async fn record_attempt_rows(
        &self,
        results: Vec<(i64, Attempt)>,
        now: Timestamp,
    ) -> StoreResult<Vec<Webhook>> {
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let mut disabled = Vec::new();
        let mut logged = Vec::new();
        for (id, a) in results {
            let Some(row) = tx
                .query_opt(
                    &format!(
                        "SELECT {} FROM rota_deliveries WHERE id = $1 FOR UPDATE",
                        columns()
                    ),
                    &[&id],
                )
                .await
                .map_err(db)?
            else {
                continue;
            };
            let d = delivery_from_row(&row)?;
            let (state, next) = after_attempt(d.attempts, &a, now);
            tx.execute(
                "UPDATE rota_deliveries SET dstate = $2, next_at = $3, last_status = $4, \
                 last_error = $5, latency_ms = $6, updated_at = $7, \
                 delivered_at = CASE WHEN $2 = 'delivered' THEN $7 ELSE delivered_at END \
                 WHERE id = $1",
                &[
                    &id,
                    &state.as_str(),
                    &next.map(|t| t.0),
                    &a.status.map(i32::from),
                    &a.error,
                    &(a.latency_ms as i64),
                    &now.0,
                ],
            )
            .await
            .map_err(db)?;
            let about = |ty, error| {
                let (hook, attempts) = (&d.webhook_id, d.attempts);
                let e = events::about_delivery(ty, &d.event, hook, d.id, attempts, error, now);
                (d.tenant.clone(), e)
            };
            if state == DeliveryState::Dead {
                logged.push(about(EventType::DeliveryDead, a.error.clone()));
            }
            let Some(mut w) = tx
                .query_opt(
                    "SELECT doc FROM rota_webhooks WHERE tenant = $1 AND id = $2 FOR UPDATE",
                    &[&d.tenant, &d.webhook_id],
                )
                .await
                .map_err(db)?
                .map(|r| parse(r.get(0)))
                .transpose()?
            else {
                continue;
            };
            let before = w.clone();
            if w.note_attempt(&a, now) {
                let reason = w.disabled_reason.clone();
                logged.push(about(EventType::WebhookDisabled, reason));
                disabled.push(w.clone());
            }
            if w != before {
                w.updated_at = now;
                write(&tx, &w).await?;
            }
        }
        crate::events::append(&tx, &logged, 0).await?;
        tx.commit().await.map_err(db)?;
        if !logged.is_empty() {
            self.announce_events(logged.iter().map(|(t, _)| t.as_str()));
        }
        Ok(disabled)
    }

    pub(crate) async fn retry_delivery_row(
        &self,
        tenant: &str,
        webhook_id: &str,
        id: i64,
    ) -> StoreResult<Delivery> {
        let audit = rota_store::audit::take();
        let now = self.now();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE rota_deliveries SET dstate = 'pending', next_at = $4, updated_at = $4 \
                     WHERE id = $1 AND tenant = $2 AND webhook_id = $3 RETURNING {}",
                    columns()
                ),
                &[&id, &tenant, &webhook_id, &now.0],
            )
            .await
            .map_err(db)?
            .ok_or(StoreError::DeliveryNotFound(id))?;
        let d = delivery_from_row(&row)?;
        crate::audit::write(&tx, audit.as_ref()).await?;
        tx.commit().await.map_err(db)?;
        // Wake the deliverer wherever it runs.
        self.announce_events([tenant]);
        Ok(d)
    }
}
