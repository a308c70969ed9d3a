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
mod registry;
mod request;
mod routes;
pub mod token;

pub use request::{authenticate, Caller};

pub use rota_core::auth::NewKey;

use crate::error::ErrorKind;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
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
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
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

impl Registry {
    /// The registry for `data`, keeping `old`'s limit counters and last-used times for the
    /// tenants and keys that remain.
    fn from_data(data: rota_store::AuthData, old: &Registry) -> Result<Registry, String> {
        let mut state = Registry::default();
        for t in data.tenants {
            let client = old
                .tenants
                .get(&t.name)
                .map(|e| e.client.clone())
                .unwrap_or_default();
            state
                .tenants
                .insert(t.name.clone(), Arc::new(TenantEntry { record: t, client }));
        }
        for k in data.keys {
            let hash = token::parse_hex32(&k.hash)
                .ok_or_else(|| format!("key `{}` has a malformed stored hash", k.id))?;
            let stored = k.last_used_at.map_or(0, |t| t.0);
            let (client, used) = match old.keys.get(&k.id) {
                Some(e) => (
                    e.client.clone(),
                    e.last_used.load(Ordering::Relaxed).max(stored),
                ),
                None => (Default::default(), stored),
            };
            state.keys.insert(
                k.id.clone(),
                Arc::new(KeyEntry {
                    record: k,
                    hash,
                    client,
                    last_used: AtomicI64::new(used),
                    persisted_last_used: AtomicI64::new(stored),
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
        Ok(state)
    }
}

pub struct Auth {
    config: AuthConfig,
    store: DynStore,
    clock: Arc<dyn Clock>,
    state: RwLock<Registry>,
    /// Servers sharing the store (1 on the embedded engine): each holds this share of every
    /// per-key and per-tenant limit.
    servers: AtomicUsize,
    /// Changes apply one at a time: check, write the store, then memory.
    changes: tokio::sync::Mutex<()>,
    env_admin: Option<[u8; 32]>,
    env_client: Arc<ClientState>,
    jwt: Option<Arc<jwt::JwtVerifier>>,
    jwt_clients: Mutex<HashMap<(String, String), Arc<ClientState>>>,
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    metrics::counter!("rota_auth_failures_total", "reason" => "unauthenticated").increment(1);
    ApiError::new(ErrorKind::Unauthenticated, "unauthorized", message)
}

fn not_found(what: &str, name: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        "not_found",
        format!("{what} `{name}` does not exist"),
    )
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Conflict, "conflict", message)
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
        let state = Registry::from_data(data, &Registry::default())?;
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
            servers: AtomicUsize::new(1),
            changes: tokio::sync::Mutex::new(()),
            env_client: Default::default(),
            jwt,
            jwt_clients: Mutex::new(HashMap::new()),
        }))
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Reloads tenants, keys and roles from the store (another server changed them), keeping
    /// each remaining key's and tenant's limit counters.
    pub async fn reload(&self) -> Result<(), String> {
        let _one = self.changes.lock().await;
        let data = self
            .store
            .load_auth()
            .await
            .map_err(|e| format!("cannot reload tenants and keys: {e}"))?;
        let fresh = Registry::from_data(data, &self.read())?;
        *self.write() = fresh;
        Ok(())
    }

    /// Sets how many servers share the store; limits are divided among them.
    pub fn set_servers(&self, n: usize) {
        self.servers.store(n.max(1), Ordering::Relaxed);
    }

    /// This server's share of `client`'s limits among the live servers, by demand (see
    /// [`limits::share_of`]); the whole limit on a single server.
    fn share(&self, e: Effective, client: &ClientState) -> Effective {
        let n = self.servers.load(Ordering::Relaxed).max(1) as u32;
        let mine = u64::from(client.last_demand.load(Ordering::Relaxed));
        let others = u64::from(client.others_demand.load(Ordering::Relaxed));
        let part = |v: u32| limits::share_of(v, n, mine, others);
        Effective {
            requests_per_minute: part(e.requests_per_minute),
            max_in_flight: part(e.max_in_flight),
        }
    }

    /// Every limited client's counters with the name other servers know it by.
    fn demand_clients(&self) -> Vec<(String, Arc<ClientState>)> {
        let st = self.read();
        let mut all: Vec<(String, Arc<ClientState>)> = Vec::new();
        all.extend(
            st.keys
                .iter()
                .map(|(id, k)| (format!("k/{id}"), k.client.clone())),
        );
        all.extend(
            st.tenants
                .iter()
                .map(|(name, t)| (format!("t/{name}"), t.client.clone())),
        );
        drop(st);
        let jwt = self.jwt_clients.lock().unwrap_or_else(|e| e.into_inner());
        all.extend(
            jwt.iter()
                .map(|((tenant, sub), c)| (format!("j/{tenant}/{sub}"), c.clone())),
        );
        all
    }

    /// Each client's requests since the last call (kept as the last second's demand), for the
    /// clients that had any.
    pub fn take_demand(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (name, c) in self.demand_clients() {
            let d = c.demand.swap(0, Ordering::Relaxed);
            c.last_demand.store(d, Ordering::Relaxed);
            if d > 0 {
                out.push((name, u64::from(d)));
            }
        }
        out
    }

    /// The other servers' demand by client, from [`rota_store::Store::exchange_demand`].
    pub fn set_others_demand(&self, others: &HashMap<String, u64>) {
        for (name, c) in self.demand_clients() {
            let d = others.get(&name).copied().unwrap_or(0);
            c.others_demand
                .store(u32::try_from(d).unwrap_or(u32::MAX), Ordering::Relaxed);
        }
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
                    self.share(self.config.key_limits.with(rec.limits), &entry.client),
                ),
                (
                    tenant.client.clone(),
                    self.share(
                        self.config.tenant_limits.with(tenant.record.limits),
                        &tenant.client,
                    ),
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
            (
                client.clone(),
                self.share(
                    self.config.key_limits.with(ClientLimits::default()),
                    &client,
                ),
            ),
            (
                tenant.client.clone(),
                self.share(
                    self.config.tenant_limits.with(tenant.record.limits),
                    &tenant.client,
                ),
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
}
