//! Authentication, access control and per-client flow control.
//!
//! Every `/v1` request passes [`authenticate`]: the bearer token becomes a [`Principal`] (an
//! API key, a JWT from the configured identity provider, or the `ROTA_ADMIN_TOKEN`), the
//! principal's and its tenant's limits admit the request or refuse it (429/503 with
//! `Retry-After`), and handlers receive a [`Caller`] that answers "may this caller do `action` on
//! `resource`?" from the roles as they are at that moment.
//!
//! Tenants, keys and roles live in the store and, for speed, in memory here: every change goes
//! through [`Auth`], which writes the store first and then its memory, one change at a time.
//! Nothing caches a decision, so a revoked key or changed role applies to the next request.
//!
//! Architecture Invariant: a token never leaves this module except as the one-time answer to
//! key creation; errors and logs name keys by id only.

pub mod jwt;
pub mod limits;
mod routes;
pub mod token;

pub use rota_core::auth::NewKey;

use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use limits::{ClientState, Effective, Refusal};
use rota_core::auth::{
    allows_on_every_queue, builtin_rules, evaluate, glob_match, validate_name, ClientLimits,
    Decision, KeyRecord, RoleRecord, Rule, TenantRecord, ADMIN_ROLE,
};
use rota_core::{limits::validate_queue_name, Clock, QueueKey, Timestamp, DEFAULT_TENANT};
use rota_store::{AuthChange, DynStore};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The header with which an admin acts in another tenant.
pub const TENANT_HEADER: &str = "rota-tenant";

/// A secret that never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Default limits for a kind of client; 0 is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitDefaults {
    pub requests_per_minute: u32,
    pub max_in_flight: u32,
}

impl LimitDefaults {
    fn with(self, o: ClientLimits) -> Effective {
        Effective {
            requests_per_minute: o.requests_per_minute.unwrap_or(self.requests_per_minute),
            max_in_flight: o.max_in_flight.unwrap_or(self.max_in_flight),
        }
    }
}

/// `[auth]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Off makes every request an admin of tenant `default`: only for a trusted machine.
    pub enabled: bool,
    /// `ROTA_ADMIN_TOKEN`: an admin credential held only in memory. Never read from a file.
    #[serde(skip)]
    pub admin_token: Option<Secret>,
    /// Limits of each API key and JWT subject, unless the key sets its own.
    pub key_limits: LimitDefaults,
    /// Limits of each tenant as a whole, unless the tenant sets its own.
    pub tenant_limits: LimitDefaults,
    /// Accept JWTs from an identity provider.
    pub jwt: Option<jwt::JwtConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            admin_token: None,
            key_limits: LimitDefaults {
                requests_per_minute: 0,
                max_in_flight: 256,
            },
            tenant_limits: LimitDefaults {
                requests_per_minute: 0,
                max_in_flight: 1_024,
            },
            jwt: None,
        }
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.admin_token {
            if t.0.len() < 32 {
                return Err("ROTA_ADMIN_TOKEN must be at least 32 characters".into());
            }
        }
        if let Some(j) = &self.jwt {
            j.validate()?;
        }
        Ok(())
    }
}

/// Who is calling, once authenticated.
#[derive(Debug)]
pub struct Principal {
    /// The tenant the credential belongs to.
    pub tenant: String,
    /// How logs and errors name the caller: `key 3f2a...`, `jwt subject x`, `admin token`.
    pub label: String,
    pub key_id: Option<String>,
    pub roles: Vec<String>,
    /// Queue name patterns the credential is limited to; empty is every queue.
    pub queues: Vec<String>,
    /// Task kinds the credential may enqueue and claim; `None` is any.
    pub kinds: Option<Vec<String>>,
}

impl Principal {
    /// An admin of tenant `default` that is not an API key (the admin token, the first start,
    /// access control turned off).
    fn admin(label: &str) -> Principal {
        Principal {
            tenant: DEFAULT_TENANT.into(),
            label: label.into(),
            key_id: None,
            roles: vec![ADMIN_ROLE.into()],
            queues: vec![],
            kinds: None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN_ROLE)
    }
}

/// A principal and the clients whose limits its requests count against (itself, its tenant).
type Authenticated = (Principal, Vec<(Arc<ClientState>, Effective)>);

struct TenantEntry {
    record: TenantRecord,
    client: Arc<ClientState>,
}

struct KeyEntry {
    record: KeyRecord,
    hash: [u8; 32],
    client: Arc<ClientState>,
    last_used: AtomicI64,
    persisted_last_used: AtomicI64,
}

#[derive(Default)]
struct Registry {
    tenants: HashMap<String, Arc<TenantEntry>>,
    keys: HashMap<String, Arc<KeyEntry>>,
    /// tenant -> role name -> rules
    roles: HashMap<String, HashMap<String, Arc<RoleRecord>>>,
}

pub struct Auth {
    config: AuthConfig,
    store: DynStore,
    clock: Arc<dyn Clock>,
    state: RwLock<Registry>,
    /// Changes apply one at a time: check, write the store, then memory.
    changes: tokio::sync::Mutex<()>,
    env_admin: Option<[u8; 32]>,
    env_client: Arc<ClientState>,
    jwt: Option<Arc<jwt::JwtVerifier>>,
    jwt_clients: Mutex<HashMap<(String, String), Arc<ClientState>>>,
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    metrics::counter!("rota_auth_failures_total", "reason" => "unauthenticated").increment(1);
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn not_found(what: &str, name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("{what} `{name}` does not exist"),
    )
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", message)
}

const MAX_ROLES_PER_KEY: usize = 16;
const MAX_RULES_PER_ROLE: usize = 100;
const MAX_KEYS_PER_TENANT: usize = 10_000;
const MAX_QUEUE_PATTERNS: usize = 64;
/// `last_used_at` is written to the store this often (and at shutdown), not per request.
pub const TOUCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl Auth {
    /// Loads tenants, keys and roles from the store.
    pub async fn load(
        store: DynStore,
        clock: Arc<dyn Clock>,
        config: AuthConfig,
    ) -> Result<Arc<Auth>, String> {
        config.validate()?;
        let data = store
            .load_auth()
            .await
            .map_err(|e| format!("cannot load tenants and keys: {e}"))?;
        let mut state = Registry::default();
        for t in data.tenants {
            state.tenants.insert(
                t.name.clone(),
                Arc::new(TenantEntry {
                    record: t,
                    client: Default::default(),
                }),
            );
        }
        for k in data.keys {
            let hash = token::parse_hex32(&k.hash)
                .ok_or_else(|| format!("key `{}` has a malformed stored hash", k.id))?;
            let used = k.last_used_at.map_or(0, |t| t.0);
            state.keys.insert(
                k.id.clone(),
                Arc::new(KeyEntry {
                    record: k,
                    hash,
                    client: Default::default(),
                    last_used: AtomicI64::new(used),
                    persisted_last_used: AtomicI64::new(used),
                }),
            );
        }
        for r in data.roles {
            state
                .roles
                .entry(r.tenant.clone())
                .or_default()
                .insert(r.name.clone(), Arc::new(r));
        }
        let jwt = config
            .jwt
            .clone()
            .map(|c| jwt::JwtVerifier::new(c).map(Arc::new))
            .transpose()?;
        Ok(Arc::new(Auth {
            env_admin: config.admin_token.as_ref().map(|t| token::hash(&t.0)),
            config,
            store,
            clock,
            state: RwLock::new(state),
            changes: tokio::sync::Mutex::new(()),
            env_client: Default::default(),
            jwt,
            jwt_clients: Mutex::new(HashMap::new()),
        }))
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the store holds no API key at all (a first start).
    pub fn has_no_keys(&self) -> bool {
        self.read().keys.is_empty()
    }

    // ---- authentication -------------------------------------------------------------------

    async fn authenticate_token(&self, token: &str) -> ApiResult<Authenticated> {
        let now = self.clock.now();
        let hash = token::hash(token);
        if let Some(h) = &self.env_admin {
            if token::same(&hash, h) {
                let p = Principal::admin("admin token");
                let unlimited = Effective::default();
                return Ok((p, vec![(self.env_client.clone(), unlimited)]));
            }
        }
        if let Some(id) = token::key_id(token) {
            let st = self.read();
            let entry = st
                .keys
                .get(id)
                .filter(|k| token::same(&hash, &k.hash))
                .ok_or_else(|| unauthorized("the API key is not valid"))?;
            let rec = &entry.record;
            if let Some(at) = rec.revoked_at {
                return Err(unauthorized(format!("API key `{id}` was revoked at {at}")));
            }
            if let Some(exp) = rec.expires_at.filter(|exp| *exp <= now) {
                return Err(unauthorized(format!("API key `{id}` expired at {exp}")));
            }
            let tenant = st
                .tenants
                .get(&rec.tenant)
                .ok_or_else(|| unauthorized("the API key's tenant no longer exists"))?;
            // Coarse on purpose: one store per second at most, shared cache line or not.
            if now.0 - entry.last_used.load(Ordering::Relaxed) >= 1_000 {
                entry.last_used.store(now.0, Ordering::Relaxed);
            }
            let clients = vec![
                (
                    entry.client.clone(),
                    self.config.key_limits.with(rec.limits),
                ),
                (
                    tenant.client.clone(),
                    self.config.tenant_limits.with(tenant.record.limits),
                ),
            ];
            let p = Principal {
                tenant: rec.tenant.clone(),
                label: format!("key {id}"),
                key_id: Some(id.to_owned()),
                roles: rec.roles.clone(),
                queues: rec.queues.clone(),
                kinds: None,
            };
            return Ok((p, clients));
        }
        if let Some(v) = &self.jwt {
            if token.split('.').count() == 3 {
                let id = v.verify(token).await.map_err(unauthorized)?;
                return self.jwt_principal(id);
            }
        }
        Err(unauthorized("the token is not a valid API key or JWT"))
    }

    fn jwt_principal(&self, id: jwt::JwtIdentity) -> ApiResult<Authenticated> {
        let st = self.read();
        let tenant = st.tenants.get(&id.tenant).ok_or_else(|| {
            unauthorized(format!(
                "the JWT names tenant `{}`, which does not exist",
                id.tenant
            ))
        })?;
        for r in &id.roles {
            if r == ADMIN_ROLE {
                return Err(unauthorized(
                    "a JWT cannot carry the `admin` role; use an API key",
                ));
            }
            let custom = st.roles.get(&id.tenant).is_some_and(|m| m.contains_key(r));
            if builtin_rules(r).is_none() && !custom {
                return Err(unauthorized(format!(
                    "the JWT's role `{r}` does not exist in tenant `{}`",
                    id.tenant
                )));
            }
        }
        let client = {
            let mut m = self.jwt_clients.lock().unwrap_or_else(|e| e.into_inner());
            // Bounded: forgetting counters only ever loosens limits for a moment.
            if m.len() > 100_000 {
                m.clear();
            }
            m.entry((id.tenant.clone(), id.subject.clone()))
                .or_default()
                .clone()
        };
        let clients = vec![
            (client, self.config.key_limits.with(ClientLimits::default())),
            (
                tenant.client.clone(),
                self.config.tenant_limits.with(tenant.record.limits),
            ),
        ];
        let p = Principal {
            tenant: id.tenant,
            label: format!("jwt subject {}", id.subject),
            key_id: None,
            roles: id.roles,
            queues: vec![],
            kinds: id.kinds,
        };
        Ok((p, clients))
    }

    // ---- authorization --------------------------------------------------------------------

    /// Deny wins across all the principal's roles; a role that no longer exists grants nothing.
    fn decide(&self, p: &Principal, action: &str, resource: &str) -> Decision {
        if let Some(queue) = resource.strip_prefix("queues/") {
            if !p.queues.is_empty() && !p.queues.iter().any(|pat| glob_match(pat, queue)) {
                return Decision::NotAllowed;
            }
        }
        let st = self.read();
        let custom = st.roles.get(&p.tenant);
        let mut allowed = false;
        for role in &p.roles {
            let rules: &[Rule] = match builtin_rules(role) {
                Some(r) => r,
                None => match custom.and_then(|m| m.get(role)) {
                    Some(r) => &r.rules,
                    None => continue,
                },
            };
            match evaluate(rules, action, resource) {
                Decision::Denied => return Decision::Denied,
                Decision::Allowed => allowed = true,
                Decision::NotAllowed => {}
            }
        }
        if allowed {
            Decision::Allowed
        } else {
            Decision::NotAllowed
        }
    }

    /// Whether some rule of the principal's roles allows `action` on some queue.
    fn may_on_some_queue(&self, p: &Principal, action: &str) -> bool {
        let st = self.read();
        let custom = st.roles.get(&p.tenant);
        p.roles.iter().any(|role| {
            let rules = builtin_rules(role)
                .or_else(|| custom.and_then(|m| m.get(role)).map(|r| r.rules.as_slice()))
                .unwrap_or(&[]);
            rules.iter().any(|r| {
                r.effect == rota_core::auth::Effect::Allow
                    && glob_match(&r.action, action)
                    && (glob_match(&r.resource, "queues/x") || r.resource.starts_with("queues/"))
            })
        })
    }

    fn on_every_queue(&self, p: &Principal, action: &str) -> bool {
        if !p.queues.is_empty() {
            return false;
        }
        let st = self.read();
        let custom = st.roles.get(&p.tenant);
        let rules = p.roles.iter().flat_map(|role| {
            builtin_rules(role)
                .or_else(|| custom.and_then(|m| m.get(role)).map(|r| r.rules.as_slice()))
                .unwrap_or(&[])
        });
        allows_on_every_queue(rules, action)
    }

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

    pub async fn create_tenant(&self, name: &str, limits: ClientLimits) -> ApiResult<TenantRecord> {
        validate_name("tenant name", name).map_err(ApiError::invalid)?;
        let _one = self.changes.lock().await;
        if self.tenant_exists(name) {
            return Err(conflict(format!("tenant `{name}` already exists")));
        }
        let record = TenantRecord {
            name: name.to_owned(),
            created_at: self.clock.now(),
            limits,
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

    pub async fn update_tenant(&self, name: &str, limits: ClientLimits) -> ApiResult<TenantRecord> {
        let _one = self.changes.lock().await;
        let old = self
            .read()
            .tenants
            .get(name)
            .cloned()
            .ok_or_else(|| not_found("tenant", name))?;
        let record = TenantRecord {
            limits,
            ..old.record.clone()
        };
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
        Ok(())
    }

    // ---- keys ------------------------------------------------------------------------------

    fn key_view(k: &KeyEntry) -> KeyRecord {
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
                    StatusCode::FORBIDDEN,
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
            hash: token::hash_hex(&secret),
            roles: spec.roles,
            queues: spec.queues,
            expires_at,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            limits: spec.limits,
        };
        self.put_key(record.clone()).await?;
        Ok((record, secret))
    }

    async fn put_key(&self, record: KeyRecord) -> ApiResult<()> {
        self.store
            .change_auth(AuthChange::PutKey(record.clone()))
            .await?;
        let hash = token::parse_hex32(&record.hash).expect("hashes are made here");
        let mut st = self.write();
        let (client, used) = match st.keys.get(&record.id) {
            Some(old) => (old.client.clone(), old.last_used.load(Ordering::Relaxed)),
            None => (Default::default(), 0),
        };
        st.keys.insert(
            record.id.clone(),
            Arc::new(KeyEntry {
                record,
                hash,
                client,
                last_used: AtomicI64::new(used),
                persisted_last_used: AtomicI64::new(used),
            }),
        );
        Ok(())
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
            record.revoked_at = Some(self.clock.now());
            self.put_key(record.clone()).await?;
        }
        Ok(record)
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

// ---- the request path -------------------------------------------------------------------------

/// The authenticated caller of a request and the tenant it acts in.
#[derive(Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    /// The caller's own tenant, or, for an admin, the one named by the `Rota-Tenant` header.
    pub tenant: String,
    auth: Arc<Auth>,
    /// The live counters the request counts against: its credential's, then its tenant's.
    clients: Arc<[Arc<ClientState>]>,
}

impl Caller {
    pub(crate) fn body_clients(&self) -> &[Arc<ClientState>] {
        &self.clients
    }

    /// One of the tenant's parse slots (none to take when access control is off).
    pub(crate) async fn parse_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let tenant = self.clients.last()?;
        tenant.parsing.acquire().await.ok()
    }

    pub fn can(&self, action: &str, resource: &str) -> bool {
        self.auth.decide(&self.principal, action, resource) == Decision::Allowed
    }

    /// 403 naming the missing permission unless the caller holds it.
    pub fn require(&self, action: &str, resource: &str) -> ApiResult<()> {
        match self.auth.decide(&self.principal, action, resource) {
            Decision::Allowed => Ok(()),
            decision => {
                metrics::counter!("rota_auth_failures_total", "reason" => "forbidden").increment(1);
                let why = if decision == Decision::Denied {
                    " (a rule of its roles denies it)".to_owned()
                } else if resource.starts_with("queues/") && !self.principal.queues.is_empty() {
                    format!(
                        " (it is limited to queues {})",
                        self.principal.queues.join(", ")
                    )
                } else {
                    String::new()
                };
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "{} lacks permission `{action}` on `{resource}`{why}",
                        self.principal.label
                    ),
                ))
            }
        }
    }

    /// The queue `name` of the acting tenant, once the caller may do `action` on it.
    pub fn queue(&self, name: &str, action: &str) -> ApiResult<QueueKey> {
        validate_queue_name(name).map_err(ApiError::bad_request)?;
        self.require(action, &rota_core::auth::queue_resource(name))?;
        Ok(QueueKey::new(self.tenant.clone(), name))
    }

    /// 403 unless some queue exists on which the caller may do `action` (for by-id task
    /// routes, checked before the task is known).
    pub fn require_on_some_queue(&self, action: &str) -> ApiResult<()> {
        if self.auth.may_on_some_queue(&self.principal, action) {
            return Ok(());
        }
        metrics::counter!("rota_auth_failures_total", "reason" => "forbidden").increment(1);
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} lacks permission `{action}` on every queue",
                self.principal.label
            ),
        ))
    }

    /// Whether `action` is allowed on every queue, so a task need not be looked up first.
    pub fn on_every_queue(&self, action: &str) -> bool {
        self.auth.on_every_queue(&self.principal, action)
    }

    /// 403 unless the caller may handle tasks of all these kinds.
    pub fn require_kinds<'a>(&self, kinds: impl IntoIterator<Item = &'a str>) -> ApiResult<()> {
        if let Some(allowed) = &self.principal.kinds {
            for k in kinds {
                if !allowed.iter().any(|a| a == k) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!(
                            "{} may only handle task kinds {}, not `{k}`",
                            self.principal.label,
                            allowed.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Tenant management and acting across tenants take the built-in admin role.
    pub fn require_admin(&self, action: &str, resource: &str) -> ApiResult<()> {
        if !self.principal.is_admin() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{} lacks permission `{action}` on `{resource}` (only the admin role manages tenants)",
                    self.principal.label
                ),
            ));
        }
        self.require(action, resource)
    }

    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the route is not behind authentication",
            )
        })
    }
}

fn bearer(headers: &HeaderMap) -> ApiResult<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            unauthorized(
                "no credentials: send `Authorization: Bearer <token>` (an API key or a JWT)",
            )
        })?;
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

fn refusal(p: &Principal, r: Refusal) -> ApiError {
    let who = |i: usize| {
        if i == 0 {
            p.label.clone()
        } else {
            format!("tenant `{}`", p.tenant)
        }
    };
    let client = |i: usize| if i == 0 { "client" } else { "tenant" };
    match r {
        Refusal::Rate {
            who: i,
            limit,
            retry_after,
        } => {
            metrics::counter!("rota_rate_limited_total", "tenant" => p.tenant.clone(), "scope" => client(i))
                .increment(1);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "{} made {limit} requests in the last minute, its limit; retry in {retry_after} s",
                    who(i)
                ),
            )
            .retry_after(retry_after)
        }
        Refusal::InFlight { who: i, limit } => {
            metrics::counter!("rota_concurrency_limited_total", "tenant" => p.tenant.clone(), "scope" => client(i))
                .increment(1);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_in_flight",
                format!(
                    "{} has {limit} requests in flight, its limit; retry when one finishes",
                    who(i)
                ),
            )
            .retry_after(1)
        }
    }
}

/// The middleware in front of every `/v1` route.
pub async fn authenticate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let auth = st.auth.clone();
    let (principal, clients) = if auth.enabled() {
        let token = match bearer(req.headers()) {
            Ok(t) => t,
            Err(e) => return e.into_response(),
        };
        match auth.authenticate_token(token).await {
            Ok(found) => found,
            Err(e) => return e.into_response(),
        }
    } else {
        let p = Principal::admin("anonymous (auth disabled)");
        (p, Vec::new())
    };
    let tenant = match req.headers().get(TENANT_HEADER).map(|v| v.to_str()) {
        None => principal.tenant.clone(),
        Some(Ok(t)) if t == principal.tenant => principal.tenant.clone(),
        // Outside one's tenant nothing exists, not even the tenant.
        Some(Ok(t)) if !principal.is_admin() || !auth.tenant_exists(t) => {
            return not_found("tenant", t).into_response()
        }
        Some(Ok(t)) => t.to_owned(),
        Some(Err(_)) => {
            return ApiError::bad_request("the Rota-Tenant header is not text").into_response()
        }
    };
    let now_s = auth.clock.now().0.div_euclid(1000);
    let permit = match limits::admit(&clients, now_s) {
        Ok(p) => p,
        Err(r) => return refusal(&principal, r).into_response(),
    };
    let caller = Caller {
        principal: Arc::new(principal),
        tenant,
        auth,
        clients: clients.iter().map(|(c, _)| c.clone()).collect(),
    };
    // Refused from the method and path alone, before a byte of the body is read.
    if let Err(e) = routes::precheck(&caller, &mut req).await {
        drop(permit);
        return e.into_response();
    }
    req.extensions_mut().insert(caller);
    let resp = next.run(req).await;
    drop(permit);
    resp
}
