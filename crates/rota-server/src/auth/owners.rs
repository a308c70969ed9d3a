//! Webhook owners: the credential that wrote a webhook, recorded with it, and made again into
//! a caller when a delivery is sent, so each event is checked against what that credential
//! may read at that moment (a revoked key, a changed role or a deny rule apply at once).

use super::*;
use rota_core::webhooks::WebhookOwner;

impl Caller {
    /// The credential behind this caller, as a webhook records its writer.
    pub fn as_owner(&self) -> WebhookOwner {
        let p = &self.principal;
        WebhookOwner {
            label: p.label.clone(),
            key_id: p.key_id.clone(),
            tenant: p.tenant.clone(),
            roles: p.roles.clone(),
            queues: p.queues.clone(),
            scope: p.scope.clone(),
        }
    }
}

impl Auth {
    /// The caller a webhook's owner is now, acting in `tenant`: an API key as its record is
    /// now (refused when revoked, expired or its tenant gone); a JWT subject or the admin
    /// token with the roles and queues it had when it wrote the webhook, as those roles are
    /// defined now. The error says why it no longer holds.
    pub fn owner_caller(
        self: &Arc<Self>,
        owner: &WebhookOwner,
        tenant: &str,
    ) -> Result<Caller, String> {
        let principal = match &owner.key_id {
            Some(id) => {
                let st = self.read();
                let entry = st
                    .keys
                    .get(id)
                    .ok_or_else(|| format!("API key `{id}` no longer exists"))?;
                let rec = &entry.record;
                credentials::key_holds(&st, rec, self.clock.now())?;
                let mut p = credentials::key_principal_of(rec, owner.label.clone());
                p.scope = owner.scope.clone();
                p
            }
            None => Principal {
                tenant: owner.tenant.clone(),
                label: owner.label.clone(),
                key_id: None,
                roles: owner.roles.clone(),
                queues: owner.queues.clone(),
                kinds: None,
                expires_at: None,
                token_expires_at: None,
                scope: owner.scope.clone(),
            },
        };
        // No limits to count against: the deliverer is not a request.
        Ok(Caller::new(principal, tenant.to_owned(), self.clone(), &[]))
    }
}
