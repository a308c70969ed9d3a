//! Webhooks: create, change, rotate and delete them, list their deliveries and send one again.
//! A webhook receives events of its tenant; its writer must be able to read those events
//! itself (`tasks:read` on the queues it covers), since the webhook hands them on.

use super::*;
use crate::webhooks::target;
use rota_core::events::EventFilter;
use rota_core::webhooks::{check_filter, Delivery, DeliveryState, Webhook, CALLBACKS_ID};
use rota_store::DeliveryFilter;

/// Webhooks one tenant may have.
pub const MAX_WEBHOOKS_PER_TENANT: usize = 100;
/// The longest webhook description, in bytes.
pub const MAX_WEBHOOK_DESCRIPTION: usize = 1_024;

/// A new webhook.
#[derive(Debug, Clone)]
pub struct WebhookInput {
    pub url: String,
    pub filter: EventFilter,
    pub description: Option<String>,
}

/// Changes to a webhook; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub filter_types: Option<Vec<String>>,
    pub filter_queues: Option<Vec<String>>,
    pub description: Option<String>,
    /// `true` also clears an automatic disabling and its failing streak.
    pub enabled: Option<bool>,
}

pub(super) fn resource(id: &str) -> String {
    format!("webhooks/{id}")
}

pub(super) fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut b)
        .expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// 409 for the callbacks signer where a webhook is meant.
fn not_the_signer(id: &str) -> ApiResult<()> {
    if id == CALLBACKS_ID {
        return Err(ApiError::new(
            crate::error::ErrorKind::Conflict,
            "conflict",
            "`callbacks` signs task results; manage its secret through /v1/callbacks",
        ));
    }
    Ok(())
}

/// A webhook's URL is often a credential itself (Slack, Teams and the like put the secret in
/// the path): a caller that may not change the webhook sees only its scheme and host.
pub fn redact_unless_writer(caller: &Caller, mut w: Webhook) -> Webhook {
    if !caller.can(actions::WEBHOOKS_WRITE, &resource(&w.id)) {
        w.url = redacted_url(&w.url);
    }
    w
}

/// `https://hooks.example.com/...`: the URL's origin, the rest hidden.
fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}/...", u.origin().ascii_serialization()),
        Err(_) => "(hidden)".into(),
    }
}

/// A signing secret: 32 random bytes, hex, with a prefix that says what it is.
fn new_secret() -> String {
    format!("whsec_{}", random_hex(32))
}

impl Service {
    /// 422 unless the tenant has a callback secret to sign task results with.
    pub(super) async fn require_callback_signer(&self, caller: &Caller) -> ApiResult<()> {
        match self.store.webhooks(&caller.tenant, Some(CALLBACKS_ID)).await {
            Ok(_) => Ok(()),
            Err(rota_store::StoreError::WebhookNotFound(_)) => Err(ApiError::invalid(format!(
                "callback_url needs tenant `{}`'s callback secret, which signs the results: \
                 create it with POST /v1/callbacks/rotate-secret (or rota webhook callbacks-secret)",
                caller.tenant
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's callback signer, if it has one.
    pub async fn callback_signer(&self, caller: &Caller) -> ApiResult<Option<Webhook>> {
        caller.require(actions::WEBHOOKS_READ, &resource(CALLBACKS_ID))?;
        match self
            .store
            .webhooks(&caller.tenant, Some(CALLBACKS_ID))
            .await
        {
            Ok(mut w) => Ok(Some(w.remove(0))),
            Err(rota_store::StoreError::WebhookNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the tenant's callback secret, or rotates it (the old one signs on for
    /// `grace_ms`); the signer with its new secret.
    pub async fn rotate_callback_secret(
        &self,
        caller: &Caller,
        grace_ms: Option<u64>,
    ) -> ApiResult<Webhook> {
        caller.require(actions::WEBHOOKS_WRITE, &resource(CALLBACKS_ID))?;
        // Checked here too: the first secret has no predecessor to keep, but a bad grace is
        // refused all the same.
        if let Some(grace) = grace_ms {
            self.limits()
                .check_delay("grace_ms", grace)
                .map_err(ApiError::invalid)?;
        }
        if self.callback_signer(caller).await?.is_some() {
            return self.rotate_secret(caller, CALLBACKS_ID, grace_ms).await;
        }
        let now = self.clock.now();
        let mut w = Webhook::new(
            &caller.tenant,
            CALLBACKS_ID.to_owned(),
            String::new(),
            EventFilter::default(),
            Some("signs task results sent to their callback_url".into()),
            new_secret(),
            now,
        );
        // Never matched against events; it only signs.
        w.enabled = false;
        let entry = caller.audit("webhook.create", resource(CALLBACKS_ID));
        audit::audited(entry, self.store.put_webhook(w.clone())).await?;
        Ok(w)
    }

    /// The caller may read every event the filter lets through.
    fn check_webhook_reads(&self, caller: &Caller, filter: &EventFilter) -> ApiResult<()> {
        if caller.principal.kinds.is_some() {
            return Err(ApiError::new(
                crate::error::ErrorKind::Forbidden,
                "forbidden",
                "a credential limited to some task kinds cannot create webhooks (a webhook \
                 receives every kind)",
            ));
        }
        if filter.queues.is_empty() {
            return caller.require(actions::TASKS_READ, "queues/*");
        }
        for q in &filter.queues {
            caller.require(actions::TASKS_READ, &queue_resource(q))?;
        }
        Ok(())
    }

    async fn check_webhook(
        &self,
        caller: &Caller,
        url: &str,
        filter: &EventFilter,
    ) -> ApiResult<()> {
        check_filter(filter).map_err(ApiError::invalid)?;
        for q in &filter.queues {
            check_name("queues[]", q, self.limits())?;
        }
        self.check_webhook_reads(caller, filter)?;
        target::check(url, &self.config.webhooks)
            .await
            .map_err(ApiError::invalid)?;
        Ok(())
    }

    pub(super) fn check_description(d: &Option<String>) -> ApiResult<()> {
        match d {
            Some(d) if d.len() > MAX_WEBHOOK_DESCRIPTION => Err(ApiError::invalid(format!(
                "description is {} bytes; the limit is {MAX_WEBHOOK_DESCRIPTION}",
                d.len()
            ))),
            _ => Ok(()),
        }
    }

    /// A new webhook, with its secret (shown this once).
    pub async fn create_webhook(&self, caller: &Caller, input: WebhookInput) -> ApiResult<Webhook> {
        caller.require(actions::WEBHOOKS_WRITE, "webhooks/*")?;
        Self::check_description(&input.description)?;
        self.check_webhook(caller, &input.url, &input.filter)
            .await?;
        let existing = self.store.webhooks(&caller.tenant, None).await?;
        if existing.len() >= MAX_WEBHOOKS_PER_TENANT {
            return Err(ApiError::new(
                crate::error::ErrorKind::Conflict,
                "limit_reached",
                format!(
                    "tenant `{}` has {MAX_WEBHOOKS_PER_TENANT} webhooks, the most it may have",
                    caller.tenant
                ),
            ));
        }
        let now = self.clock.now();
        let mut w = Webhook::new(
            &caller.tenant,
            format!("wh_{}", random_hex(8)),
            input.url,
            input.filter,
            input.description,
            new_secret(),
            now,
        );
        w.owner = Some(caller.as_owner());
        let entry = audit::with(
            caller.audit("webhook.create", resource(&w.id)),
            None,
            Some(audited_view(&w)),
        );
        audit::audited(entry, self.store.put_webhook(w.clone())).await?;
        Ok(w)
    }

    /// The webhooks the caller may read (URLs redacted unless it may change them).
    pub async fn webhooks(&self, caller: &Caller) -> ApiResult<Vec<Webhook>> {
        let all = self.store.webhooks(&caller.tenant, None).await?;
        Ok(all
            .into_iter()
            .filter(|w| w.id != CALLBACKS_ID)
            .filter(|w| caller.can(actions::WEBHOOKS_READ, &resource(&w.id)))
            .map(|w| redact_unless_writer(caller, w))
            .collect())
    }

    pub async fn webhook(&self, caller: &Caller, id: &str) -> ApiResult<Webhook> {
        not_the_signer(id)?;
        caller.require(actions::WEBHOOKS_READ, &resource(id))?;
        let w = self
            .store
            .webhooks(&caller.tenant, Some(id))
            .await?
            .remove(0);
        Ok(redact_unless_writer(caller, w))
    }

    pub async fn update_webhook(
        &self,
        caller: &Caller,
        id: &str,
        patch: WebhookPatch,
    ) -> ApiResult<Webhook> {
        not_the_signer(id)?;
        caller.require(actions::WEBHOOKS_WRITE, &resource(id))?;
        let mut w = self
            .store
            .webhooks(&caller.tenant, Some(id))
            .await?
            .remove(0);
        let before = audited_view(&w);
        if let Some(u) = patch.url {
            w.url = u;
        }
        if let Some(t) = patch.filter_types {
            w.filter.types = t;
        }
        if let Some(q) = patch.filter_queues {
            w.filter.queues = q;
        }
        if patch.description.is_some() {
            Self::check_description(&patch.description)?;
            w.description = patch.description;
        }
        if let Some(e) = patch.enabled {
            w.enabled = e;
            if e {
                w.disabled_reason = None;
                w.failing_since = None;
            }
        }
        self.check_webhook(caller, &w.url, &w.filter).await?;
        // Its writer now answers for what it hands on.
        w.owner = Some(caller.as_owner());
        w.updated_at = self.clock.now();
        let entry = audit::with(
            caller.audit("webhook.update", resource(id)),
            Some(before),
            Some(audited_view(&w)),
        );
        audit::audited(entry, self.store.put_webhook(w.clone())).await?;
        Ok(w)
    }

    pub async fn delete_webhook(&self, caller: &Caller, id: &str) -> ApiResult<()> {
        not_the_signer(id)?;
        caller.require(actions::WEBHOOKS_WRITE, &resource(id))?;
        let entry = caller.audit("webhook.delete", resource(id));
        Ok(audit::audited(entry, self.store.delete_webhook(&caller.tenant, id)).await?)
    }

    /// A new secret (returned this once); the old one keeps signing for `grace_ms`.
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        id: &str,
        grace_ms: Option<u64>,
    ) -> ApiResult<Webhook> {
        not_the_signer(id)?;
        self.rotate_secret(caller, id, grace_ms).await
    }

    async fn rotate_secret(
        &self,
        caller: &Caller,
        id: &str,
        grace_ms: Option<u64>,
    ) -> ApiResult<Webhook> {
        caller.require(actions::WEBHOOKS_WRITE, &resource(id))?;
        let grace = grace_ms.unwrap_or(self.config.webhooks.rotation_grace_ms);
        self.limits()
            .check_delay("grace_ms", grace)
            .map_err(ApiError::invalid)?;
        let mut w = self
            .store
            .webhooks(&caller.tenant, Some(id))
            .await?
            .remove(0);
        // The secret can sign what the webhook hands on: rotating it takes what writing the
        // webhook takes, reading every event it covers (the signer covers none).
        if id != CALLBACKS_ID {
            self.check_webhook_reads(caller, &w.filter)?;
        }
        let now = self.clock.now();
        let old = std::mem::replace(&mut w.secret, new_secret());
        (w.previous_secret, w.previous_until) =
            rota_core::webhooks::keep_for_grace(old, grace, now);
        w.updated_at = now;
        let entry = audit::with(
            caller.audit("webhook.rotate_secret", resource(id)),
            None,
            Some(serde_json::json!({ "grace_ms": grace })),
        );
        audit::audited(entry, self.store.put_webhook(w.clone())).await?;
        Ok(w)
    }

    pub async fn deliveries(
        &self,
        caller: &Caller,
        id: &str,
        state: Option<DeliveryState>,
        limit: usize,
        before: Option<i64>,
    ) -> ApiResult<Vec<Delivery>> {
        caller.require(actions::WEBHOOKS_READ, &resource(id))?;
        let max = self.limits().max_list;
        if limit == 0 || limit > max {
            return Err(ApiError::bad_request(format!(
                "limit is {limit}; use 1 to {max} (limits.max_list)"
            )));
        }
        // 404 for a webhook that does not exist, not an empty list.
        self.store.webhooks(&caller.tenant, Some(id)).await?;
        let f = DeliveryFilter {
            webhook_id: id.to_owned(),
            state,
            limit,
            before,
        };
        Ok(self.store.deliveries(&caller.tenant, f).await?)
    }

    pub async fn retry_delivery(
        &self,
        caller: &Caller,
        id: &str,
        delivery: i64,
    ) -> ApiResult<Delivery> {
        caller.require(actions::WEBHOOKS_WRITE, &resource(id))?;
        let entry = audit::with(
            caller.audit("delivery.retry", resource(id)),
            None,
            Some(serde_json::json!({ "delivery": delivery })),
        );
        let retried = self.store.retry_delivery(&caller.tenant, id, delivery);
        Ok(audit::audited(entry, retried).await?)
    }
}

/// What the audit log keeps of a webhook: never its secrets, and of its URL only the origin
/// (a path or query may carry a token).
fn audited_view(w: &Webhook) -> serde_json::Value {
    let origin = reqwest::Url::parse(&w.url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    serde_json::json!({
        "url_origin": origin,
        "filter": w.filter,
        "enabled": w.enabled,
        "description": w.description,
    })
}
