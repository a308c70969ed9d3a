//! Authentication: a token (an API key, a JWT or the admin token) becomes a [`Principal`] and
//! the clients whose limits it counts against; [`Auth::admit`] turns that into the [`Caller`] of
//! one request, for whichever front door received it.

use super::*;
use crate::error::ErrorKind;
use limits::{Permit, Refusal};

impl Auth {
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

    /// The caller a credential makes, acting in its own tenant or, for an admin, in `tenant`,
    /// admitted against its key's and tenant's limits: every front door calls this once per
    /// request and holds the permit until the request ends. `token` is ignored when access
    /// control is off (every caller is then an admin of tenant `default`).
    pub async fn admit(
        self: &Arc<Self>,
        token: Option<&str>,
        tenant: Option<&str>,
    ) -> ApiResult<(Caller, Permit)> {
        let (principal, clients) = if self.enabled() {
            let token =
                token.ok_or_else(|| unauthorized("no credentials: send an API key or a JWT"))?;
            self.authenticate_token(token).await?
        } else {
            (Principal::admin("anonymous (auth disabled)"), Vec::new())
        };
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
