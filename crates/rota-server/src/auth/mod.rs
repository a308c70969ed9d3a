//! Authentication, access control and per-client flow control.
//!
//! Every request, through any front door, passes [`Auth::admit`] (for HTTP, in the
//! [`authenticate`] middleware in front of every `/v1` route): the token becomes a [`Principal`]
//! (an API key, a JWT from the configured identity provider, or the `ROTA_ADMIN_TOKEN`), the
//! principal's and its tenant's limits admit the request or refuse it (rate limited, or
//! unavailable with a retry-after), and the service receives a [`Caller`] that answers "may this
//! caller do `action` on `resource`?" from the roles as they are at that moment.
//!
//! Tenants, keys and roles live in the store and, for speed, in memory here: every change goes
//! through [`Auth`], which writes the store first and then its memory, one change at a time.
//! Nothing caches a decision, so a revoked key or changed role applies to the next request.
//!
//! Architecture Invariant: a token never leaves this module except as the one-time answer to
//! key creation; errors and logs name keys by id only.

mod caller;
mod config;
mod credentials;
mod decide;
mod hooks;
pub mod jwt;
pub mod limits;
mod lookup;
mod maintenance;
mod notices;
mod oauth;
mod owners;
mod registry;
mod request;
mod routes;
mod shares;
mod tickets;
pub mod token;

pub use caller::Caller;
pub use config::{AuthConfig, LimitDefaults, Secret};
pub use credentials::Credential;
pub use lookup::MISSING_TTL;
pub use oauth::{Issued, OAuthError};
pub use request::{authenticate, BySessionCookie, STREAM_ROUTE, WEBSOCKET_ROUTE};
pub use tickets::{CLOCK_SKEW_MS, SESSION_TTL_MS, TICKET_TTL_MS};

pub use rota_core::auth::NewKey;

use crate::error::ErrorKind;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use limits::{ClientState, Effective};
use rota_core::auth::{
    allows_on_every_queue, builtin_rules, check_event_retention, evaluate, glob_match,
    validate_name, ClientLimits, Decision, KeyRecord, RoleRecord, Rule, TenantPatch, TenantRecord,
    ADMIN_ROLE,
};
use rota_core::maintenance::Maintenance;
use rota_core::{limits::validate_queue_name, Clock, QueueKey, Timestamp, DEFAULT_TENANT};
use rota_store::{AuthChange, DynStore};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// How a JWT's caller is named: this, then its subject.
pub(crate) const JWT_LABEL: &str = "jwt subject ";

/// How the `ROTA_ADMIN_TOKEN` caller is named.
const ADMIN_TOKEN_LABEL: &str = "admin token";

/// The header with which an admin acts in another tenant.
pub const TENANT_HEADER: &str = "rota-tenant";

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
    /// When the credential stops being valid, on the server's clock: a key's `expires_at`,
    /// a dashboard session's end. Open streams end then.
    pub expires_at: Option<Timestamp>,
    /// When a JWT stops being accepted (`exp` with the leeway) on the system's clock, which
    /// the verifier measures it by.
    pub token_expires_at: Option<Timestamp>,
    /// An OAuth access token's scope: of what its key may do, only this.
    pub scope: Option<rota_core::auth::Scope>,
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
            expires_at: None,
            token_expires_at: None,
            scope: None,
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
    secrets: Secrets,
    client: Arc<ClientState>,
    last_used: AtomicI64,
    persisted_last_used: AtomicI64,
}

/// A key's stored hashes: its secret's, and the one before the last rotation with the end
/// of its grace.
#[derive(Clone, Copy)]
struct Secrets {
    hash: token::Stored,
    previous: Option<(token::Stored, Timestamp)>,
}

impl Secrets {
    fn of(record: &KeyRecord) -> Result<Secrets, String> {
        let hash = token::Stored::parse(&record.hash)
            .ok_or_else(|| format!("key `{}` has a malformed stored hash", record.id))?;
        let previous = match (&record.previous_hash, record.previous_until) {
            (Some(h), Some(until)) => Some((
                token::Stored::parse(h)
                    .ok_or_else(|| format!("key `{}` has a malformed previous hash", record.id))?,
                until,
            )),
            _ => None,
        };
        Ok(Secrets { hash, previous })
    }

    /// Whether `token` is the key's secret, or its secret before the last rotation while the
    /// rotation's grace lasts (the end excluded).
    fn proven_by(&self, token: &str, now: Timestamp) -> bool {
        self.hash.matches(token)
            || self
                .previous
                .is_some_and(|(h, until)| now < until && h.matches(token))
    }

    /// [`Secrets::proven_by`] for a Faktory proof's verifier.
    fn verified_by(&self, v: token::Stored, now: Timestamp) -> bool {
        self.hash == v
            || self
                .previous
                .is_some_and(|(h, until)| now < until && h == v)
    }
}

#[derive(Default)]
struct Registry {
    tenants: HashMap<String, Arc<TenantEntry>>,
    keys: HashMap<String, Arc<KeyEntry>>,
    /// tenant -> role name -> rules
    roles: HashMap<String, HashMap<String, Arc<RoleRecord>>>,
    /// Inbound webhooks by id (of every tenant: `POST /hooks/{id}` names no tenant).
    hooks: HashMap<String, Arc<rota_core::hooks::HookRecord>>,
    maintenance: Option<Maintenance>,
}

impl Registry {
    /// The registry for `data`, keeping `old`'s limit counters and last-used times for the
    /// tenants and keys that remain.
    fn from_data(data: rota_store::AuthData, old: &Registry) -> Result<Registry, String> {
        let mut state = Registry {
            maintenance: data.maintenance,
            ..Registry::default()
        };
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
            let secrets = Secrets::of(&k)?;
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
                    secrets,
                    client,
                    last_used: AtomicI64::new(used),
                    persisted_last_used: AtomicI64::new(stored),
                }),
            );
        }
        for h in data.hooks {
            state.hooks.insert(h.id.clone(), Arc::new(h));
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
    env_admin: Option<token::Stored>,
    env_client: Arc<ClientState>,
    jwt: Option<Arc<jwt::JwtVerifier>>,
    jwt_clients: Mutex<HashMap<(String, String), Arc<ClientState>>>,
    /// Signs and checks dashboard sessions and event tickets.
    signing: tickets::Signing,
    /// Sign and check OAuth access tokens (derived from the same secrets).
    tokens: oauth::TokenKeys,
    /// Failed token requests, by address and client id.
    oauth_attempts: oauth::Attempts,
    /// The admin token has no stored record: its sessions' `sessions_valid_from` (ms) is kept
    /// here, by this server only.
    admin_sessions_from: AtomicI64,
    /// Reads of keys another server created moments ago.
    lookups: lookup::Lookups,
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
        let signing = tickets::Signing::new(&config);
        Ok(Arc::new(Auth {
            tokens: oauth::TokenKeys::new(&signing),
            oauth_attempts: Default::default(),
            signing,
            admin_sessions_from: AtomicI64::new(i64::MIN),
            lookups: Default::default(),
            env_admin: config.admin_token.as_ref().map(|t| token::Stored::of(&t.0)),
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
        self.lookups.forget_missing();
        Ok(())
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
}
