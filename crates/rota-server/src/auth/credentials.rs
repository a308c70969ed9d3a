//! Authentication: a token (an API key, a JWT or the admin token) becomes a [`Principal`] and
//! the clients whose limits it counts against; [`Auth::admit`] turns that into the [`Caller`] of
//! one request, for whichever front door received it.

use super::*;
use crate::error::ErrorKind;
use limits::{Permit, Refusal};

/// A credential as a front door received it.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// A bearer token: an API key, a JWT or the admin token.
    Token(&'a str),
    /// A Faktory client's password proof ([`token::proof`]); `key` names the key it matched
    /// before, so that later requests on the connection need not search.
    FaktoryProof {
        proof: [u8; 32],
        key: Option<&'a str>,
    },
    /// An event-stream ticket ([`super::tickets`]); it names the tenant it acts in.
    Ticket(&'a str),
    /// A dashboard session cookie ([`super::tickets`]).
    Session(&'a str),
}

impl<'a> From<&'a str> for Credential<'a> {
    fn from(token: &'a str) -> Self {
        Credential::Token(token)
    }
}

impl Auth {
    /// The principal a credential proves, and the tenant it names when it names one.
    async fn authenticate(
        &self,
        cred: Credential<'_>,
    ) -> ApiResult<(Authenticated, Option<String>)> {
        match cred {
            Credential::Token(token) => Ok((self.authenticate_token(token).await?, None)),
            Credential::FaktoryProof { proof, key } => {
                Ok((self.authenticate_proof(&proof, key)?, None))
            }
            Credential::Ticket(ticket) => {
                self.learn_signer(super::tickets::signer_of(ticket)).await?;
                let (a, tenant) = self.authenticate_ticket(ticket)?;
                Ok((a, Some(tenant)))
            }
            Credential::Session(session) => {
                self.learn_signer(super::tickets::signer_of(session))
                    .await?;
                Ok((self.authenticate_session(session)?, None))
            }
        }
    }

    pub(super) async fn authenticate_token(&self, token: &str) -> ApiResult<Authenticated> {
        if self.env_admin.is_some_and(|h| h.matches(token)) {
            return Ok(self.env_admin_principal());
        }
        if let Some(id) = token::key_id(token) {
            // A key another server created moments ago is read from the store first.
            if !self.learn_key(id).await? {
                return Err(unauthorized("the API key is not valid"));
            }
            let now = self.clock.now();
            let proven = |st: &Registry| {
                st.keys
                    .get(id)
                    .is_some_and(|k| k.secrets.proven_by(token, now))
            };
            // Rotated on another server moments ago: read it again (bounded per key).
            if !proven(&self.read()) && !self.refresh_key(id, token).await? {
                return Err(unauthorized("the API key is not valid"));
            }
            let st = self.read();
            let entry = st
                .keys
                .get(id)
                .filter(|k| k.secrets.proven_by(token, now))
                .ok_or_else(|| unauthorized("the API key is not valid"))?;
            return self.key_principal(&st, entry);
        }
        if self.is_access_token(token) {
            return self.authenticate_access_token(token).await;
        }
        if let Some(v) = &self.jwt {
            if token.split('.').count() == 3 {
                let id = v.verify(token).await.map_err(unauthorized)?;
                return self.jwt_principal(id);
            }
        }
        Err(unauthorized("the token is not a valid API key or JWT"))
    }

    /// A Faktory password proof: the admin token's, or a key's whose stored hash is the proof's
    /// verifier (keys made before the Faktory door, and JWTs, cannot sign in this way).
    fn authenticate_proof(&self, proof: &[u8; 32], hint: Option<&str>) -> ApiResult<Authenticated> {
        let v = token::Stored::Verifier(token::verifier(proof));
        if self.env_admin.is_some_and(|h| h == v) {
            return Ok(self.env_admin_principal());
        }
        let st = self.read();
        let now = self.clock.now();
        let entry = match hint.and_then(|id| st.keys.get(id)) {
            Some(e) if e.secrets.verified_by(v, now) => Some(e),
            _ => st.keys.values().find(|e| e.secrets.verified_by(v, now)),
        };
        let entry = entry.ok_or_else(|| {
            unauthorized(
                "the password is not a valid Rota API key (keys made before the Faktory door \
                 cannot sign in over it; make a new key)",
            )
        })?;
        self.key_principal(&st, entry)
    }

    pub(super) fn env_admin_principal(&self) -> Authenticated {
        let p = Principal::admin(ADMIN_TOKEN_LABEL);
        (p, vec![(self.env_client.clone(), Effective::default())])
    }

    /// The principal of a key whose secret was proven: refused when revoked, expired or its
    /// tenant is gone ([`key_holds`]).
    pub(super) fn key_principal(
        &self,
        st: &Registry,
        entry: &KeyEntry,
    ) -> ApiResult<Authenticated> {
        let now = self.clock.now();
        let rec = &entry.record;
        let id = &rec.id;
        let tenant = key_holds(st, rec, now).map_err(unauthorized)?;
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
        Ok((key_principal_of(rec, format!("key {id}")), clients))
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
            label: format!("{}{}", super::JWT_LABEL, id.subject),
            key_id: None,
            roles: id.roles,
            queues: vec![],
            kinds: id.kinds,
            expires_at: None,
            // The verifier accepts the whole last second (it compares whole seconds).
            token_expires_at: Some(Timestamp(
                id.expires_unix_s.saturating_add(1).saturating_mul(1_000),
            )),
            scope: None,
        };
        Ok((p, clients))
    }

    /// The caller a credential makes, acting in its own tenant or, for an admin, in `tenant`,
    /// admitted against its key's and tenant's limits: every front door calls this once per
    /// request and holds the permit until the request ends. The credential is ignored when
    /// access control is off (every caller is then an admin of tenant `default`).
    pub async fn admit(
        self: &Arc<Self>,
        cred: Option<Credential<'_>>,
        tenant: Option<&str>,
    ) -> ApiResult<(Caller, Permit)> {
        let (principal, clients, named) = if self.enabled() {
            let cred =
                cred.ok_or_else(|| unauthorized("no credentials: send an API key or a JWT"))?;
            let ((principal, clients), named) = self.authenticate(cred).await?;
            (principal, clients, named)
        } else {
            let named = match cred {
                Some(Credential::Ticket(t)) => {
                    super::tickets::Ticket::parse(t).map(|t| t.tenant.to_owned())
                }
                _ => None,
            };
            (
                Principal::admin("anonymous (auth disabled)"),
                Vec::new(),
                named,
            )
        };
        let tenant = named.as_deref().or(tenant);
        let tenant = match tenant {
            None => principal.tenant.clone(),
            Some(t) if t == principal.tenant => principal.tenant.clone(),
            // Outside one's tenant nothing exists, not even the tenant.
            Some(t) if !principal.is_admin() || !self.tenant_exists(t) => {
                return Err(not_found("tenant", t))
            }
            Some(t) => t.to_owned(),
        };
        let now_s = self.clock.now().0.div_euclid(1000);
        let permit = limits::admit(&clients, now_s).map_err(|r| refusal(&principal, r))?;
        let caller = Caller::new(principal, tenant, self.clone(), &clients);
        Ok((caller, permit))
    }
}

/// When a dashboard session (`rds_<key>_<expires ms>_<mac>`, made by `tickets.rs`) ends.
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
                ErrorKind::RateLimited,
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
                ErrorKind::Unavailable,
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

/// The principal a key record stands for (checked by [`key_holds`] first), named `label`.
pub(super) fn key_principal_of(rec: &KeyRecord, label: String) -> Principal {
    Principal {
        tenant: rec.tenant.clone(),
        label,
        key_id: Some(rec.id.clone()),
        roles: rec.roles.clone(),
        queues: rec.queues.clone(),
        kinds: None,
        expires_at: rec.expires_at,
        token_expires_at: None,
        scope: None,
    }
}

/// A key's tenant, unless the key no longer holds: revoked, expired, or its tenant gone. The
/// message says which.
pub(super) fn key_holds<'a>(
    st: &'a Registry,
    rec: &KeyRecord,
    now: Timestamp,
) -> Result<&'a Arc<TenantEntry>, String> {
    let id = &rec.id;
    if let Some(at) = rec.revoked_at {
        return Err(format!("API key `{id}` was revoked at {at}"));
    }
    if let Some(exp) = rec.expires_at.filter(|exp| *exp <= now) {
        return Err(format!("API key `{id}` expired at {exp}"));
    }
    st.tenants
        .get(&rec.tenant)
        .ok_or_else(|| "the API key's tenant no longer exists".to_owned())
}
