//! Inbound webhooks' administration: who may create, see, change, rotate and delete them. A
//! hook's writer must be able to enqueue into its queue and kind, and each request enqueues as
//! that writer is at the time (`hooks/receive.rs`), so a hook never lets anyone do more than
//! the credential that set it up.

use super::*;
use crate::hooks::resource;
use rota_core::hooks::{self, HookRecord, Verify};
use rota_core::{QueueKey, QueuePatch};

/// What a caller asks of a new hook.
#[derive(Debug, Clone)]
pub struct HookInput {
    pub name: String,
    pub queue: String,
    pub kind: String,
    pub verify: Verify,
    /// `None`: one is made.
    pub secret: Option<String>,
    pub description: Option<String>,
}

/// A change to a hook: only the fields present change.
#[derive(Debug, Clone, Default)]
pub struct HookPatch {
    pub queue: Option<String>,
    pub kind: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

fn new_hook_secret() -> String {
    super::webhooks::random_hex(32)
}

impl Service {
    /// 403 unless the caller may enqueue tasks of `kind` into `queue`; creates the queue so the
    /// hook's events have one to be logged in.
    async fn check_hook_target(&self, caller: &Caller, queue: &str, kind: &str) -> ApiResult<()> {
        let key: QueueKey = caller.queue(queue, actions::TASKS_ENQUEUE)?;
        caller.require_kinds([kind])?;
        self.store.update_queue(&key, QueuePatch::default()).await?;
        Ok(())
    }

    /// A new hook, with its secret (shown this once).
    pub async fn create_hook(&self, caller: &Caller, input: HookInput) -> ApiResult<HookRecord> {
        caller.require(actions::HOOKS_WRITE, "hooks/*")?;
        let limits = self.limits();
        hooks::validate(
            &input.name,
            &input.queue,
            &input.kind,
            input.secret.as_deref(),
            limits.max_name_len,
        )
        .map_err(ApiError::invalid)?;
        Self::check_description(&input.description)?;
        // Before the queue is made: a refused create changes nothing (put_hook checks again,
        // under the lock that orders writes).
        caller
            .auth()
            .check_hook_name(&caller.tenant, &input.name, "")?;
        self.check_hook_target(caller, &input.queue, &input.kind)
            .await?;
        let now = self.clock.now();
        let h = HookRecord {
            id: format!("hk_{}", super::webhooks::random_hex(10)),
            tenant: caller.tenant.clone(),
            name: input.name,
            queue: input.queue,
            kind: input.kind,
            verify: input.verify,
            secret: input.secret.unwrap_or_else(new_hook_secret),
            previous_secret: None,
            previous_until: None,
            enabled: true,
            description: input.description,
            owner: Some(caller.as_owner()),
            created_at: now,
            updated_at: now,
        };
        let entry = audit::with(
            caller.audit("hook.create", resource(&h.id)),
            None,
            Some(audited_view(&h)),
        );
        audit::audited(entry, caller.auth().put_hook(h.clone())).await?;
        Ok(h)
    }

    /// The hooks the caller may see.
    pub fn hooks(&self, caller: &Caller) -> Vec<HookRecord> {
        caller
            .auth()
            .hooks(&caller.tenant)
            .into_iter()
            .filter(|h| caller.can(actions::HOOKS_READ, &resource(&h.id)))
            .collect()
    }

    pub fn hook(&self, caller: &Caller, id: &str) -> ApiResult<HookRecord> {
        caller.require(actions::HOOKS_READ, &resource(id))?;
        caller.auth().tenant_hook(&caller.tenant, id)
    }

    pub async fn update_hook(
        &self,
        caller: &Caller,
        id: &str,
        patch: HookPatch,
    ) -> ApiResult<HookRecord> {
        caller.require(actions::HOOKS_WRITE, &resource(id))?;
        let mut h = caller.auth().tenant_hook(&caller.tenant, id)?;
        let before = audited_view(&h);
        Self::check_description(&patch.description)?;
        if let Some(q) = patch.queue {
            h.queue = q;
        }
        if let Some(k) = patch.kind {
            h.kind = k;
        }
        hooks::validate(&h.name, &h.queue, &h.kind, None, self.limits().max_name_len)
            .map_err(ApiError::invalid)?;
        // The writer becomes the hook's owner, so it must be able to do what the hook does.
        self.check_hook_target(caller, &h.queue, &h.kind).await?;
        if patch.description.is_some() {
            h.description = patch.description;
        }
        if let Some(e) = patch.enabled {
            h.enabled = e;
        }
        h.owner = Some(caller.as_owner());
        h.updated_at = self.clock.now();
        let entry = audit::with(
            caller.audit("hook.update", resource(id)),
            Some(before),
            Some(audited_view(&h)),
        );
        audit::audited(entry, caller.auth().put_hook(h.clone())).await?;
        Ok(h)
    }

    /// A new secret (given, or made and shown once); the old one keeps proving requests for
    /// `grace_ms` (default `webhooks.rotation_grace_ms`, at most 72 hours).
    pub async fn rotate_hook_secret(
        &self,
        caller: &Caller,
        id: &str,
        grace_ms: Option<u64>,
        secret: Option<String>,
    ) -> ApiResult<HookRecord> {
        caller.require(actions::HOOKS_WRITE, &resource(id))?;
        let grace = grace_ms.unwrap_or(self.config.webhooks.rotation_grace_ms);
        let max = rota_core::auth::MAX_ROTATION_GRACE_MS;
        if grace > max {
            return Err(ApiError::invalid(format!(
                "grace_ms is {grace}; the most is {max} (72 hours)"
            )));
        }
        if let Some(s) = &secret {
            hooks::validate_secret(s).map_err(ApiError::invalid)?;
        }
        let mut h = caller.auth().tenant_hook(&caller.tenant, id)?;
        let now = self.clock.now();
        let old = std::mem::replace(&mut h.secret, secret.unwrap_or_else(new_hook_secret));
        (h.previous_secret, h.previous_until) =
            rota_core::webhooks::keep_for_grace(old, grace, now);
        h.updated_at = now;
        let entry = audit::with(
            caller.audit("hook.rotate_secret", resource(id)),
            None,
            Some(serde_json::json!({ "grace_ms": grace })),
        );
        audit::audited(entry, caller.auth().put_hook(h.clone())).await?;
        Ok(h)
    }

    pub async fn delete_hook(&self, caller: &Caller, id: &str) -> ApiResult<()> {
        caller.require(actions::HOOKS_WRITE, &resource(id))?;
        let entry = caller.audit("hook.delete", resource(id));
        audit::audited(entry, caller.auth().delete_hook(&caller.tenant, id)).await?;
        self.hooks.forget(id);
        Ok(())
    }

    /// The hook's recent requests on this server, newest first.
    pub fn hook_requests(
        &self,
        caller: &Caller,
        id: &str,
    ) -> ApiResult<Vec<crate::hooks::HookRequest>> {
        self.hook(caller, id)?;
        Ok(self.hooks.recent(id))
    }
}

/// What the audit log keeps of a hook: never its secrets.
fn audited_view(h: &HookRecord) -> serde_json::Value {
    serde_json::json!({
        "name": h.name,
        "queue": h.queue,
        "kind": h.kind,
        "verify": h.verify,
        "enabled": h.enabled,
        "description": h.description,
    })
}
