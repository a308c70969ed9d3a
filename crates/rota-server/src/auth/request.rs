//! The request path: the `authenticate` middleware in front of every `/v1` route, and the
//! [`Caller`] handlers ask for permissions.

use super::*;
use crate::error::ErrorKind;

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
                    ErrorKind::Forbidden,
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
            ErrorKind::Forbidden,
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
                        ErrorKind::Forbidden,
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
                ErrorKind::Forbidden,
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
                ErrorKind::Internal,
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
