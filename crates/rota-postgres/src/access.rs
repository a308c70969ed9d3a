//! Tenants, keys, roles and inbound webhooks, and events that are no task's transition. Every
//! access change but a last-used touch sends `rota_auth` in its
//! transaction, so every server reloads access control right after the commit.
//!
//! Deleting a tenant takes the tenant's advisory lock exclusively before deleting anything;
//! every write that may create queues or tasks holds it shared for its transaction (and reads
//! the queue only after taking it), so the delete waits for writes in progress and every later
//! write finds the tenant gone. Nothing of a deleted tenant remains or comes back. (A row lock
//! on the queue, `FOR KEY SHARE`, did the same but made concurrent enqueues share MultiXacts:
//! 2.1 ms per enqueue under 64 clients.)

use crate::listen::AUTH;
use crate::{db, PostgresStore};
use rota_store::{AuthChange, AuthData, StoreError, StoreResult};
use serde::de::DeserializeOwned;

fn parse<T: DeserializeOwned>(what: &str, doc: &str) -> StoreResult<T> {
    serde_json::from_str(doc)
        .map_err(|e| StoreError::Unavailable(format!("unreadable {what} record: {e}")))
}

fn doc<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("auth records serialize")
}

impl PostgresStore {
    pub(crate) async fn load_access(&self) -> StoreResult<AuthData> {
        let client = self.conn().await?;
        let mut data = AuthData::default();
        for r in client
            .query("SELECT doc FROM rota_tenants ORDER BY name", &[])
            .await
            .map_err(db)?
        {
            data.tenants.push(parse("tenant", r.get(0))?);
        }
        for r in client
            .query("SELECT doc FROM rota_api_keys ORDER BY id", &[])
            .await
            .map_err(db)?
        {
            data.keys.push(parse("key", r.get(0))?);
        }
        for r in client
            .query("SELECT doc FROM rota_roles ORDER BY tenant, name", &[])
            .await
            .map_err(db)?
        {
            data.roles.push(parse("role", r.get(0))?);
        }
        for r in client
            .query("SELECT doc FROM rota_hooks ORDER BY tenant, id", &[])
            .await
            .map_err(db)?
        {
            data.hooks.push(parse("hook", r.get(0))?);
        }
        if let Some(r) = client
            .query_opt(
                "SELECT doc FROM rota_settings WHERE name = 'maintenance'",
                &[],
            )
            .await
            .map_err(db)?
        {
            data.maintenance = Some(parse("maintenance", r.get(0))?);
        }
        Ok(data)
    }

    pub(crate) async fn find_access_key(
        &self,
        id: &str,
    ) -> StoreResult<Option<rota_core::auth::KeyRecord>> {
        let client = self.conn().await?;
        let row = client
            .query_opt("SELECT doc FROM rota_api_keys WHERE id = $1", &[&id])
            .await
            .map_err(db)?;
        row.map(|r| parse("key", r.get(0))).transpose()
    }

    pub(crate) async fn change_access(&self, change: AuthChange) -> StoreResult<()> {
        let audit = rota_store::audit::take();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let mut announce = true;
        // The tenant whose event this change logs, if it logs one.
        let mut logged = None;
        match &change {
            AuthChange::PutTenant(t) => {
                tx.execute(
                    "INSERT INTO rota_tenants (name, doc) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET doc = EXCLUDED.doc",
                    &[&t.name, &doc(t)],
                )
                .await
                .map_err(db)?;
            }
            AuthChange::DeleteTenant(name) => {
                crate::tasks::lock_tenant(&tx, name, true).await?;
                tx.execute(
                    "SELECT 1 FROM rota_tenants WHERE name = $1 FOR UPDATE",
                    &[name],
                )
                .await
                .map_err(db)?;
                tx.execute(
                    "SELECT 1 FROM rota_queues WHERE tenant = $1 FOR UPDATE",
                    &[name],
                )
                .await
                .map_err(db)?;
                tx.execute(
                    "DELETE FROM rota_task_waits WHERE task_id IN (SELECT t.id FROM rota_tasks t \
                     WHERE t.queue_id IN (SELECT id FROM rota_queues WHERE tenant = $1))",
                    &[name],
                )
                .await
                .map_err(db)?;
                tx.execute(
                    "DELETE FROM rota_tasks WHERE queue_id IN \
                     (SELECT id FROM rota_queues WHERE tenant = $1)",
                    &[name],
                )
                .await
                .map_err(db)?;
                for sql in [
                    "DELETE FROM rota_task_groups WHERE queue_id IN \
                     (SELECT id FROM rota_queues WHERE tenant = $1)",
                    "DELETE FROM rota_events WHERE tenant = $1",
                    "DELETE FROM rota_queues WHERE tenant = $1",
                    "DELETE FROM rota_api_keys WHERE tenant = $1",
                    "DELETE FROM rota_roles WHERE tenant = $1",
                    "DELETE FROM rota_schedules WHERE tenant = $1",
                    "DELETE FROM rota_deliveries WHERE tenant = $1",
                    "DELETE FROM rota_webhooks WHERE tenant = $1",
                    "DELETE FROM rota_hooks WHERE tenant = $1",
                    "DELETE FROM rota_workflows WHERE tenant = $1",
                    "DELETE FROM rota_tenants WHERE name = $1",
                ] {
                    tx.execute(sql, &[name]).await.map_err(db)?;
                }
            }
            AuthChange::PutKey(k) => {
                tx.execute(
                    "INSERT INTO rota_api_keys (id, tenant, doc) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, doc = EXCLUDED.doc",
                    &[&k.id, &k.tenant, &doc(k)],
                )
                .await
                .map_err(db)?;
            }
            AuthChange::EndSessions { key, at } => {
                // Timestamps are stored as fixed-width UTC text, so byte order ("C") is time
                // order whatever the database's collation.
                let field = rota_core::auth::SESSIONS_VALID_FROM_FIELD;
                tx.execute(
                    &format!(
                        "UPDATE rota_api_keys SET doc = jsonb_set(doc::jsonb, '{{{field}}}', \
                         to_jsonb($2::text))::text WHERE id = $1 \
                         AND (doc::jsonb->>'{field}' IS NULL \
                              OR doc::jsonb->>'{field}' < $2::text COLLATE \"C\")"
                    ),
                    &[key, &at.to_string()],
                )
                .await
                .map_err(db)?;
            }
            AuthChange::TouchKeys(touched) => {
                announce = false;
                let ids: Vec<&str> = touched.iter().map(|(id, _)| id.as_str()).collect();
                let at: Vec<String> = touched.iter().map(|(_, at)| at.to_string()).collect();
                tx.execute(
                    "UPDATE rota_api_keys k SET doc = jsonb_set(k.doc::jsonb, '{last_used_at}', \
                     to_jsonb(u.at))::text FROM unnest($1::text[], $2::text[]) AS u(id, at) \
                     WHERE k.id = u.id",
                    &[&ids, &at],
                )
                .await
                .map_err(db)?;
            }
            AuthChange::PutRole(r) => {
                tx.execute(
                    "INSERT INTO rota_roles (tenant, name, doc) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant, name) DO UPDATE SET doc = EXCLUDED.doc",
                    &[&r.tenant, &r.name, &doc(r)],
                )
                .await
                .map_err(db)?;
            }
            AuthChange::DeleteRole { tenant, name } => {
                tx.execute(
                    "DELETE FROM rota_roles WHERE tenant = $1 AND name = $2",
                    &[tenant, name],
                )
                .await
                .map_err(db)?;
            }
            AuthChange::SetMaintenance(Some(m)) => {
                tx.execute(
                    "INSERT INTO rota_settings (name, doc) VALUES ('maintenance', $1) \
                     ON CONFLICT (name) DO UPDATE SET doc = EXCLUDED.doc",
                    &[&doc(m)],
                )
                .await
                .map_err(db)?;
            }
            AuthChange::SetMaintenance(None) => {
                tx.execute("DELETE FROM rota_settings WHERE name = 'maintenance'", &[])
                    .await
                    .map_err(db)?;
            }
            AuthChange::PutHook(h) => {
                tx.execute(
                    "INSERT INTO rota_hooks (id, tenant, doc) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, doc = EXCLUDED.doc",
                    &[&h.id, &h.tenant, &doc(h)],
                )
                .await
                .map_err(db)?;
            }
            AuthChange::DeleteHook { tenant, id } => {
                tx.execute(
                    "DELETE FROM rota_hooks WHERE tenant = $1 AND id = $2",
                    &[tenant, id],
                )
                .await
                .map_err(db)?;
            }
            AuthChange::KeyEvent {
                key,
                event,
                expect_notice,
            } => {
                // The tenant's lock first, as every write that adds its rows takes it.
                crate::tasks::lock_tenant(&tx, &key.tenant, false).await?;
                if let Some(expected) = expect_notice {
                    let field = rota_core::auth::EXPIRY_NOTICE_FIELD;
                    let stored: Option<Option<String>> = tx
                        .query_opt(
                            &format!(
                                "SELECT doc::jsonb->>'{field}' FROM rota_api_keys \
                                 WHERE id = $1 FOR UPDATE"
                            ),
                            &[&key.id],
                        )
                        .await
                        .map_err(db)?
                        .map(|r| r.get(0));
                    // Gone, or its notice already moved on (another server logged it).
                    if stored.as_ref() != Some(expected) {
                        return Ok(());
                    }
                }
                tx.execute(
                    "INSERT INTO rota_api_keys (id, tenant, doc) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, doc = EXCLUDED.doc",
                    &[&key.id, &key.tenant, &doc(key)],
                )
                .await
                .map_err(db)?;
                crate::events::append(&tx, &[(key.tenant.clone(), (**event).clone())], 0).await?;
                logged = Some(key.tenant.clone());
            }
        }
        if announce {
            tx.execute(&format!("SELECT pg_notify('{AUTH}', '')"), &[])
                .await
                .map_err(db)?;
        }
        crate::audit::write(&tx, audit.as_ref()).await?;
        tx.commit().await.map_err(db)?;
        if let Some(tenant) = logged {
            self.announce_events([tenant.as_str()]);
        }
        Ok(())
    }

    /// Creates the first admin key, unless a key exists: under an advisory lock, so of several
    /// servers starting at once exactly one creates it. `true` when this call created it.
    pub(crate) async fn put_first(&self, key: rota_core::auth::KeyRecord) -> StoreResult<bool> {
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&crate::schema::BOOTSTRAP_LOCK],
        )
        .await
        .map_err(db)?;
        let any: i64 = tx
            .query_one("SELECT count(*) FROM rota_api_keys", &[])
            .await
            .map_err(db)?
            .get(0);
        if any > 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO rota_api_keys (id, tenant, doc) VALUES ($1, $2, $3)",
            &[&key.id, &key.tenant, &doc(&key)],
        )
        .await
        .map_err(db)?;
        tx.execute(&format!("SELECT pg_notify('{AUTH}', '')"), &[])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    /// Logs events that are no task's transition (see `EventLog::log_events`), holding the
    /// tenant's lock shared like every write that adds rows of a tenant.
    pub(crate) async fn log_other_events(
        &self,
        tenant: &str,
        events: Vec<rota_core::events::Event>,
    ) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        crate::tasks::lock_tenant(&tx, tenant, false).await?;
        // Each event's queue exists after, as on every engine (and the tenant is checked).
        let queues: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e.queue.as_str()).collect();
        let now = rota_core::Timestamp(events[0].at.0);
        for q in queues {
            self.queue_for_write(&tx, &rota_core::QueueKey::new(tenant, q), now)
                .await?;
        }
        let logged: Vec<(String, rota_core::events::Event)> =
            events.into_iter().map(|e| (tenant.to_owned(), e)).collect();
        crate::events::append(&tx, &logged, 0).await?;
        tx.commit().await.map_err(db)?;
        self.announce_events([tenant]);
        Ok(())
    }
}
