//! Tenants, API keys and custom roles: each change is checked, written to the store, and only
//! then applied to the in-memory registry, one change at a time.

use super::*;
use crate::error::ErrorKind;
use rota_core::auth::{RotateKey, DEFAULT_ROTATION_GRACE_MS, MAX_ROTATION_GRACE_MS};
use rota_core::events::{self, EventType};

impl Auth {
    // ---- tenants ---------------------------------------------------------------------------

    pub fn tenant_exists(&self, name: &str) -> bool {
        self.read().tenants.contains_key(name)
    }

    pub fn tenants(&self) -> Vec<TenantRecord> {
        let mut v: Vec<TenantRecord> = self
            .read()
            .tenants
            .values()
            .map(|t| t.record.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn tenant(&self, name: &str) -> ApiResult<TenantRecord> {
        self.read()
            .tenants
            .get(name)
            .map(|t| t.record.clone())
            .ok_or_else(|| not_found("tenant", name))
    }

    pub async fn create_tenant(
        &self,
        name: &str,
        limits: ClientLimits,
        event_retention_ms: Option<u64>,
    ) -> ApiResult<TenantRecord> {
        validate_name("tenant name", name).map_err(ApiError::invalid)?;
        if let Some(ms) = event_retention_ms {
            check_event_retention(ms).map_err(ApiError::invalid)?;
        }
        let _one = self.changes.lock().await;
        if self.tenant_exists(name) {
            return Err(conflict(format!("tenant `{name}` already exists")));
        }
        let record = TenantRecord {
            name: name.to_owned(),
            created_at: self.clock.now(),
            limits,
            event_retention_ms,
        };
        self.put_tenant(record, Default::default()).await
    }

    /// Writes a tenant to the store, then to memory, keeping its live counters.
    async fn put_tenant(
        &self,
        record: TenantRecord,
        client: Arc<ClientState>,
    ) -> ApiResult<TenantRecord> {
        self.store
            .change_auth(AuthChange::PutTenant(record.clone()))
            .await?;
        let entry = Arc::new(TenantEntry {
            record: record.clone(),
            client,
        });
        self.write().tenants.insert(record.name.clone(), entry);
        Ok(record)
    }

    pub async fn update_tenant(&self, name: &str, patch: &TenantPatch) -> ApiResult<TenantRecord> {
        patch.check().map_err(ApiError::invalid)?;
        let _one = self.changes.lock().await;
        let old = self
            .read()
            .tenants
            .get(name)
            .cloned()
            .ok_or_else(|| not_found("tenant", name))?;
        let mut record = old.record.clone();
        patch.apply(&mut record);
        self.put_tenant(record, old.client.clone()).await
    }

    pub async fn delete_tenant(&self, caller: &Principal, name: &str) -> ApiResult<()> {
        let _one = self.changes.lock().await;
        if !self.tenant_exists(name) {
            return Err(not_found("tenant", name));
        }
        if caller.tenant == name {
            return Err(conflict(format!(
                "tenant `{name}` holds the credential making this request; delete it with a key of another tenant"
            )));
        }
        let holds_admin = self
            .read()
            .keys
            .values()
            .any(|k| k.record.tenant == name && k.record.roles.iter().any(|r| r == ADMIN_ROLE));
        if holds_admin && !self.admin_remains(|r| r.tenant == name) {
            return Err(Self::last_admin(&format!("tenant `{name}` holds")));
        }
        self.store
            .change_auth(AuthChange::DeleteTenant(name.to_owned()))
            .await?;
        let mut st = self.write();
        st.tenants.remove(name);
        st.keys.retain(|_, k| k.record.tenant != name);
        st.roles.remove(name);
        st.hooks.retain(|_, h| h.tenant != name);
        Ok(())
    }

    // ---- keys ------------------------------------------------------------------------------

    /// The tenant of key `id`, if it exists.
    pub fn key_tenant(&self, id: &str) -> Option<String> {
        self.read().keys.get(id).map(|k| k.record.tenant.clone())
    }

    pub(super) fn key_view(k: &KeyEntry) -> KeyRecord {
        let mut r = k.record.clone();
        let used = k.last_used.load(Ordering::Relaxed);
        r.last_used_at = (used > 0).then_some(Timestamp(used));
        r
    }

    pub fn keys(&self, tenant: &str) -> Vec<KeyRecord> {
        let st = self.read();
        let mut v: Vec<KeyRecord> = st
            .keys
            .values()
            .filter(|k| k.record.tenant == tenant)
            .map(|k| Self::key_view(k))
            .collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    /// The key, if it exists in `tenant`; another tenant's key does not exist.
    pub fn key(&self, tenant: &str, id: &str) -> ApiResult<KeyRecord> {
        self.read()
            .keys
            .get(id)
            .filter(|k| k.record.tenant == tenant)
            .map(|k| Self::key_view(k))
            .ok_or_else(|| not_found("API key", id))
    }

    fn check_roles(&self, caller: &Principal, tenant: &str, roles: &[String]) -> ApiResult<()> {
        if roles.is_empty() {
            return Err(ApiError::invalid(
                "roles is empty; give at least one role (admin, tenant-admin, producer, worker, reader or a custom role)",
            ));
        }
        if roles.len() > MAX_ROLES_PER_KEY {
            return Err(ApiError::invalid(format!(
                "roles has {} entries; the limit is {MAX_ROLES_PER_KEY}",
                roles.len()
            )));
        }
        let st = self.read();
        for r in roles {
            if r == ADMIN_ROLE && !caller.is_admin() {
                return Err(ApiError::new(
                    ErrorKind::Forbidden,
                    "forbidden",
                    "only an admin can grant the `admin` role",
                ));
            }
            let custom = st.roles.get(tenant).is_some_and(|m| m.contains_key(r));
            if builtin_rules(r).is_none() && !custom {
                return Err(ApiError::invalid(format!(
                    "role `{r}` does not exist in tenant `{tenant}`; create it with PUT /v1/roles/{r} or use a built-in role"
                )));
            }
        }
        Ok(())
    }

    pub async fn create_key(
        &self,
        caller: &Principal,
        tenant: &str,
        spec: NewKey,
    ) -> ApiResult<(KeyRecord, String)> {
        let now = self.clock.now();
        if let Some(n) = &spec.name {
            if n.is_empty() || n.len() > 128 {
                return Err(ApiError::invalid("name must be 1 to 128 characters"));
            }
        }
        if spec.queues.len() > MAX_QUEUE_PATTERNS {
            return Err(ApiError::invalid(format!(
                "queues has {} patterns; the limit is {MAX_QUEUE_PATTERNS}",
                spec.queues.len()
            )));
        }
        for pat in &spec.queues {
            validate_queue_name(&pat.replace('*', "x"))
                .map_err(|e| ApiError::invalid(format!("queues: {e} (`*` is a wildcard)")))?;
        }
        // Keys expire within the same horizon as every other time (limits.max_delay_ms's
        // ceiling), so a stored time is always a real date.
        let horizon = rota_core::Limits {
            max_delay_ms: rota_core::limits::MAX_DELAY_CEILING_MS,
            ..Default::default()
        };
        let expires_at = match (spec.expires_at, spec.expires_in_s) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "set expires_at or expires_in_s, not both",
                ))
            }
            (Some(t), None) => Some(t),
            (None, Some(s)) => {
                let ms = s.saturating_mul(1000);
                horizon
                    .check_delay("expires_in_s (in ms)", ms)
                    .map_err(ApiError::invalid)?;
                Some(now.plus_ms(ms as i64))
            }
            (None, None) => None,
        };
        if let Some(t) = expires_at {
            if t <= now {
                return Err(ApiError::invalid("expires_at is in the past"));
            }
            horizon
                .check_time("expires_at", t, now)
                .map_err(ApiError::invalid)?;
        }
        let _one = self.changes.lock().await;
        if !self.tenant_exists(tenant) {
            return Err(not_found("tenant", tenant));
        }
        self.check_roles(caller, tenant, &spec.roles)?;
        if self.keys(tenant).len() >= MAX_KEYS_PER_TENANT {
            return Err(conflict(format!(
                "tenant `{tenant}` has {MAX_KEYS_PER_TENANT} keys, the limit; revoke unused keys"
            )));
        }
        let (secret, id) = token::generate();
        let record = KeyRecord {
            id: id.clone(),
            tenant: tenant.to_owned(),
            name: spec.name,
            hash: token::Stored::of(&secret).to_text(),
            roles: spec.roles,
            queues: spec.queues,
            expires_at,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            limits: spec.limits,
            sessions_valid_from: None,
            previous_hash: None,
            previous_until: None,
            expiry_notice: None,
            rotated_at: None,
        };
        self.put_key(record.clone(), None).await?;
        Ok((record, secret))
    }

    /// Writes a key, with the `key.*` event it makes (in the same transaction).
    async fn put_key(&self, record: KeyRecord, event: Option<events::Event>) -> ApiResult<()> {
        // The audit entry of the change (if one waits) names the key and how it is now.
        rota_store::audit::amend(|e| {
            e.target = format!("keys/{}", record.id);
            e.after = Some(serde_json::json!({
                "name": record.name,
                "roles": record.roles,
                "queues": record.queues,
                "expires_at": record.expires_at,
                "revoked_at": record.revoked_at,
                "previous_until": record.previous_until,
            }));
        });
        let change = match event {
            Some(e) => AuthChange::KeyEvent {
                key: Box::new(record.clone()),
                event: Box::new(e),
                expect_notice: None,
            },
            None => AuthChange::PutKey(Box::new(record.clone())),
        };
        self.store.change_auth(change).await?;
        self.remember_key(record);
        Ok(())
    }

    /// Puts a stored key into memory.
    pub(super) fn remember_key(&self, record: KeyRecord) {
        let secrets = Secrets::of(&record).expect("hashes are made here");
        let mut st = self.write();
        let (client, used) = match st.keys.get(&record.id) {
            Some(old) => (old.client.clone(), old.last_used.load(Ordering::Relaxed)),
            None => (Default::default(), 0),
        };
        st.keys.insert(
            record.id.clone(),
            Arc::new(KeyEntry {
                record,
                secrets,
                client,
                last_used: AtomicI64::new(used),
                persisted_last_used: AtomicI64::new(used),
            }),
        );
    }

    /// Whether an active admin key would remain without the keys `gone` picks.
    fn admin_remains(&self, gone: impl Fn(&KeyRecord) -> bool) -> bool {
        let now = self.clock.now();
        self.read().keys.values().any(|k| {
            let r = &k.record;
            r.revoked_at.is_none()
                && r.expires_at.is_none_or(|e| e > now)
                && r.roles.iter().any(|role| role == ADMIN_ROLE)
                && !gone(r)
        })
    }

    fn last_admin(what: &str) -> ApiError {
        conflict(format!(
            "{what} the last active admin key, and without one nobody could manage tenants or \
             keys again; create another admin key first (rota key create --role admin). If \
             every admin key is lost, stop the server and run `rota recover-admin`"
        ))
    }

    /// Revokes a key of `tenant` for good; the next request with it is refused. The last
    /// active admin key cannot be revoked.
    pub async fn revoke_key(&self, tenant: &str, id: &str) -> ApiResult<KeyRecord> {
        let _one = self.changes.lock().await;
        let mut record = self.key(tenant, id)?;
        let is_admin = record.roles.iter().any(|r| r == ADMIN_ROLE);
        if record.revoked_at.is_none() && is_admin && !self.admin_remains(|r| r.id == id) {
            return Err(Self::last_admin(&format!("key `{id}` is")));
        }
        if record.revoked_at.is_none() {
            let now = self.clock.now();
            record.revoked_at = Some(now);
            let revoked = events::about_key(EventType::KeyRevoked, id, now, None);
            self.put_key(record.clone(), Some(revoked)).await?;
        }
        Ok(record)
    }

    /// Gives a key of `tenant` a new secret (same id, roles, queues, limits and expiry) and
    /// answers it with its new token. The old secret is accepted for `grace_ms` more (default
    /// a day, at most 72 hours; 0 refuses it at once). A second rotation within the grace
    /// ends the first one's: only the secret just replaced stays valid.
    pub async fn rotate_key(
        &self,
        tenant: &str,
        id: &str,
        spec: RotateKey,
    ) -> ApiResult<(KeyRecord, String)> {
        let grace = spec.grace_ms.unwrap_or(DEFAULT_ROTATION_GRACE_MS);
        if grace > MAX_ROTATION_GRACE_MS {
            return Err(ApiError::invalid(format!(
                "grace_ms is {grace}; the most is {MAX_ROTATION_GRACE_MS} (72 hours)"
            )));
        }
        let _one = self.changes.lock().await;
        let mut record = self.key(tenant, id)?;
        let now = self.clock.now();
        if record.revoked_at.is_some() {
            return Err(conflict(format!(
                "key `{id}` is revoked; a revoked key is never valid again, so create a new one"
            )));
        }
        if record.expires_at.is_some_and(|e| e <= now) {
            return Err(conflict(format!(
                "key `{id}` expired; a rotation keeps the expiry, so create a new key"
            )));
        }
        let token = token::generate_for(id);
        let old = std::mem::replace(&mut record.hash, token::Stored::of(&token).to_text());
        (record.previous_hash, record.previous_until) = if grace > 0 {
            (Some(old), Some(now.plus_ms(grace as i64)))
        } else {
            (None, None)
        };
        record.rotated_at = Some(now);
        let rotated = events::about_key(EventType::KeyRotated, id, now, record.previous_until);
        self.put_key(record.clone(), Some(rotated)).await?;
        Ok((record, token))
    }

    /// A new admin key in tenant `default`: the first one of a new store (`rota serve`), or
    /// one made offline when every admin key is lost (`rota recover-admin`).
    pub async fn create_admin_key(&self, name: &str) -> ApiResult<(KeyRecord, String)> {
        let admin = Principal::admin("bootstrap");
        let spec = NewKey {
            name: Some(name.into()),
            roles: vec![ADMIN_ROLE.into()],
            ..Default::default()
        };
        self.create_key(&admin, DEFAULT_TENANT, spec).await
    }

    /// The first admin key of a store that has no key, created by exactly one of several
    /// servers starting together on one database. `None` when another server created one
    /// first (its keys are then loaded).
    pub async fn create_first_admin_key(
        &self,
        name: &str,
    ) -> ApiResult<Option<(KeyRecord, String)>> {
        let (secret, id) = token::generate();
        let record = KeyRecord {
            id,
            tenant: DEFAULT_TENANT.to_owned(),
            name: Some(name.into()),
            hash: token::Stored::of(&secret).to_text(),
            roles: vec![ADMIN_ROLE.into()],
            queues: vec![],
            expires_at: None,
            created_at: self.clock.now(),
            last_used_at: None,
            revoked_at: None,
            limits: ClientLimits::default(),
            sessions_valid_from: None,
            previous_hash: None,
            previous_until: None,
            expiry_notice: None,
            rotated_at: None,
        };
        let one = self.changes.lock().await;
        if !self.store.put_first_key(record.clone()).await? {
            drop(one);
            self.reload()
                .await
                .map_err(|e| ApiError::from(rota_store::StoreError::Unavailable(e)))?;
            return Ok(None);
        }
        self.remember_key(record.clone());
        Ok(Some((record, secret)))
    }

    /// Writes changed `last_used_at` times to the store.
    pub async fn flush_last_used(&self) {
        let touched: Vec<(String, Timestamp)> = {
            let st = self.read();
            st.keys
                .values()
                .filter_map(|k| {
                    let used = k.last_used.load(Ordering::Relaxed);
                    let old = k.persisted_last_used.swap(used, Ordering::Relaxed);
                    (used > old).then(|| (k.record.id.clone(), Timestamp(used)))
                })
                .collect()
        };
        if touched.is_empty() {
            return;
        }
        if let Err(e) = self.store.change_auth(AuthChange::TouchKeys(touched)).await {
            tracing::warn!(error = %e, "cannot record when keys were last used");
        }
    }

    // ---- roles -----------------------------------------------------------------------------

    pub fn roles(&self, tenant: &str) -> Vec<RoleRecord> {
        let st = self.read();
        let mut v: Vec<RoleRecord> = st
            .roles
            .get(tenant)
            .map(|m| m.values().map(|r| (**r).clone()).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub async fn put_role(
        &self,
        tenant: &str,
        name: &str,
        rules: Vec<Rule>,
    ) -> ApiResult<(RoleRecord, bool)> {
        validate_name("role name", name).map_err(ApiError::invalid)?;
        if builtin_rules(name).is_some() {
            return Err(conflict(format!(
                "`{name}` is a built-in role and cannot be changed; choose another name"
            )));
        }
        if rules.is_empty() || rules.len() > MAX_RULES_PER_ROLE {
            return Err(ApiError::invalid(format!(
                "rules has {} entries; give 1 to {MAX_RULES_PER_ROLE}",
                rules.len()
            )));
        }
        for (i, r) in rules.iter().enumerate() {
            r.validate()
                .map_err(|e| ApiError::invalid(format!("rules[{i}]: {e}")))?;
            if r.resource.starts_with("tenants/") && r.effect == rota_core::auth::Effect::Allow {
                return Err(ApiError::invalid(format!(
                    "rules[{i}]: tenants can only be managed by the built-in admin role"
                )));
            }
        }
        let _one = self.changes.lock().await;
        if !self.tenant_exists(tenant) {
            return Err(not_found("tenant", tenant));
        }
        let record = RoleRecord {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            rules,
            updated_at: self.clock.now(),
        };
        self.store
            .change_auth(AuthChange::PutRole(record.clone()))
            .await?;
        let created = self
            .write()
            .roles
            .entry(tenant.to_owned())
            .or_default()
            .insert(name.to_owned(), Arc::new(record.clone()))
            .is_none();
        Ok((record, created))
    }

    pub async fn delete_role(&self, tenant: &str, name: &str) -> ApiResult<()> {
        let _one = self.changes.lock().await;
        let exists = self
            .read()
            .roles
            .get(tenant)
            .is_some_and(|m| m.contains_key(name));
        if !exists {
            return Err(not_found("role", name));
        }
        let users: Vec<String> = self
            .keys(tenant)
            .into_iter()
            .filter(|k| k.revoked_at.is_none() && k.roles.iter().any(|r| r == name))
            .map(|k| k.id)
            .collect();
        if !users.is_empty() {
            return Err(conflict(format!(
                "role `{name}` is held by {} key(s) ({}); revoke them or create keys without it first",
                users.len(),
                users.join(", ")
            )));
        }
        self.store
            .change_auth(AuthChange::DeleteRole {
                tenant: tenant.to_owned(),
                name: name.to_owned(),
            })
            .await?;
        if let Some(m) = self.write().roles.get_mut(tenant) {
            m.remove(name);
        }
        Ok(())
    }
}
