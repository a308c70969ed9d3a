//! The [`Caller`]: who makes a request, the tenant it acts in, and the answers to "may it do
//! `action` on `resource`?" from the roles as they are at that moment.

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
    /// Where the request came from, for the audit log.
    pub origin: Arc<crate::audit::Origin>,
}

impl Caller {
    pub(super) fn new(
        principal: Principal,
        tenant: String,
        auth: Arc<Auth>,
        clients: &[(Arc<ClientState>, Effective)],
    ) -> Caller {
        Caller {
            principal: Arc::new(principal),
            tenant,
            auth,
            clients: clients.iter().map(|(c, _)| c.clone()).collect(),
            origin: Default::default(),
        }
    }

    /// The caller of a request that came with `headers` from `peer`.
    pub fn from_peer(
        mut self,
        headers: &axum::http::HeaderMap,
        peer: Option<std::net::SocketAddr>,
    ) -> Caller {
        self.origin = Arc::new(crate::audit::Origin::of(headers, peer));
        self
    }

    /// The server's clock, as the caller's credentials are judged by it.
    pub(crate) fn now(&self) -> Timestamp {
        self.auth.clock.now()
    }

    pub(crate) fn body_clients(&self) -> &[Arc<ClientState>] {
        &self.clients
    }

    /// One of the tenant's parse slots (none to take when access control is off).
    pub(crate) async fn parse_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let tenant = self.clients.last()?;
        tenant.parsing.acquire().await.ok()
    }

    /// Whether the credential still holds (see [`Auth::still_valid`]).
    pub fn still_valid(&self) -> bool {
        self.auth.still_valid(&self.principal)
    }

    /// Milliseconds until the credential expires (0 or less: it has), or `None` if it does
    /// not: the sooner of [`Principal::expires_at`] on the server's clock and
    /// [`Principal::token_expires_at`] on the system's.
    pub fn ms_left(&self) -> Option<i64> {
        let by_clock = self
            .principal
            .expires_at
            .map(|at| at.0 - self.auth.clock.now().0);
        let by_system = self.principal.token_expires_at.map(|at| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            at.0 - now
        });
        match (by_clock, by_system) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
                } else if let Some(s) = self
                    .principal
                    .scope
                    .as_ref()
                    .filter(|s| !s.allows(action, resource))
                {
                    format!(" (its access token's scope is `{}`)", s.render())
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
