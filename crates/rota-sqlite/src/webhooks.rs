//! Webhooks and deliveries: reads (any reader connection) and the row formats the writer
//! shares.

use crate::db_err;
use crate::events::{event_from_row, EVENT_COLUMNS};
use crate::shard::Shard;
use rota_core::webhooks::{Delivery, DeliveryState, Webhook};
use rota_core::Timestamp;
use rota_store::{DeliveryFilter, DueDelivery, DueSkip, StoreError, StoreResult};
use rusqlite::{params, Connection, Row};

/// A delivery's columns: its event's (as the events table has them), then its own.
pub(crate) fn delivery_columns() -> String {
    format!(
        "{EVENT_COLUMNS}, id, tenant, webhook_id, dstate, attempts, next_at, last_status, \
         last_error, latency_ms, created_at, delivered_at, url"
    )
}

pub(crate) fn delivery_from_row(r: &Row<'_>) -> StoreResult<Delivery> {
    // The event's columns come first.
    let n = crate::events::EVENT_COLUMN_COUNT;
    let get = |e: rusqlite::Error| StoreError::Unavailable(format!("unreadable delivery: {e}"));
    let state: String = r.get(n + 3).map_err(get)?;
    Ok(Delivery {
        event: event_from_row(r)?,
        id: r.get(n).map_err(get)?,
        tenant: r.get(n + 1).map_err(get)?,
        webhook_id: r.get(n + 2).map_err(get)?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Unavailable(format!("unreadable delivery: {state}")))?,
        attempts: r.get(n + 4).map_err(get)?,
        next_at: r.get::<_, Option<i64>>(n + 5).map_err(get)?.map(Timestamp),
        last_status: r.get(n + 6).map_err(get)?,
        last_error: r.get(n + 7).map_err(get)?,
        latency_ms: r.get(n + 8).map_err(get)?,
        created_at: Timestamp(r.get(n + 9).map_err(get)?),
        delivered_at: r.get::<_, Option<i64>>(n + 10).map_err(get)?.map(Timestamp),
        url: r.get(n + 11).map_err(get)?,
    })
}

pub(crate) fn webhook_from_doc(doc: &str) -> StoreResult<Webhook> {
    serde_json::from_str(doc)
        .map_err(|e| StoreError::Unavailable(format!("a stored webhook is not valid: {e}")))
}

/// Every webhook, for the writer's fan-out.
pub(crate) fn load_all(conn: &Connection) -> Result<Vec<Webhook>, String> {
    let mut stmt = conn
        .prepare("SELECT doc FROM webhooks")
        .map_err(|e| e.to_string())?;
    let docs: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| e.to_string())?;
    docs.iter()
        .map(|d| webhook_from_doc(d).map_err(|e| e.to_string()))
        .collect()
}

impl Shard {
    pub(crate) async fn read_webhooks(
        &self,
        tenant: &str,
        id: Option<&str>,
    ) -> StoreResult<Vec<Webhook>> {
        let (tenant, id) = (tenant.to_owned(), id.map(str::to_owned));
        self.read(move |conn, _| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT doc FROM webhooks WHERE tenant = ?1 AND (?2 IS NULL OR id = ?2) \
                     ORDER BY id",
                )
                .map_err(db_err)?;
            let docs: Vec<String> = stmt
                .query_map(params![tenant, id], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(db_err)?;
            match id {
                Some(i) if docs.is_empty() => Err(StoreError::WebhookNotFound(i)),
                _ => docs.iter().map(|d| webhook_from_doc(d)).collect(),
            }
        })
        .await
    }

    pub(crate) async fn read_deliveries(
        &self,
        tenant: &str,
        f: DeliveryFilter,
    ) -> StoreResult<Vec<Delivery>> {
        let tenant = tenant.to_owned();
        self.read(move |conn, _| {
            let sql = format!(
                "SELECT {} FROM deliveries WHERE tenant = ?1 AND webhook_id = ?2 \
                 AND (?3 IS NULL OR dstate = ?3) AND (?4 IS NULL OR id < ?4) \
                 ORDER BY id DESC LIMIT {}",
                delivery_columns(),
                f.limit
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            let mut rows = stmt
                .query(params![
                    tenant,
                    f.webhook_id,
                    f.state.map(|s| s.as_str()),
                    f.before
                ])
                .map_err(db_err)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(db_err)? {
                out.push(delivery_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn read_due_deliveries(
        &self,
        now: Timestamp,
        limit: usize,
        skip: DueSkip,
    ) -> StoreResult<Vec<DueDelivery>> {
        self.read(move |conn, _| {
            // One condition per thing left out (at most a few hundred: each is a full bound
            // of attempts in flight), its values bound as parameters.
            let mut sql = "SELECT id, tenant, webhook_id, url FROM deliveries \
                           WHERE dstate IN ('pending', 'failed') AND next_at <= ?"
                .to_owned();
            let mut values: Vec<rusqlite::types::Value> = vec![now.0.into()];
            // Nothing left out is the usual pass (one runs after every commit that logs events):
            // its text never varies, so it keeps its compiled statement instead of compiling
            // it at every pass.
            let cacheable =
                skip.tenants.is_empty() && skip.webhooks.is_empty() && skip.callbacks.is_empty();
            for t in skip.tenants {
                sql += " AND tenant <> ?";
                values.push(t.into());
            }
            for (t, id) in skip.webhooks {
                sql += " AND NOT (url IS NULL AND tenant = ? AND webhook_id = ?)";
                values.extend([t.into(), id.into()]);
            }
            for (t, p) in skip.callbacks {
                // Origins are ASCII, so the byte length is the character length.
                sql += " AND NOT (url IS NOT NULL AND tenant = ? AND substr(url, 1, ?) = ?)";
                values.extend([t.into(), (p.len() as i64).into(), p.into()]);
            }
            // The limit is part of the text (a bound LIMIT makes SQLite compile the cached
            // statement again at every step: measured, 4,406 times in 2,500 cycles).
            sql += &format!(" ORDER BY next_at LIMIT {limit}");
            let (mut cached, mut plain);
            let stmt: &mut rusqlite::Statement = if cacheable {
                cached = conn.prepare_cached(&sql).map_err(db_err)?;
                &mut cached
            } else {
                plain = conn.prepare(&sql).map_err(db_err)?;
                &mut plain
            };
            stmt.query_map(rusqlite::params_from_iter(values), |r| {
                Ok(DueDelivery {
                    id: r.get(0)?,
                    tenant: r.get(1)?,
                    webhook_id: r.get(2)?,
                    url: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(db_err)
        })
        .await
    }
}
