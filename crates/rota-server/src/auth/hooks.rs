//! Inbound webhooks as access control keeps them: in the store with the keys and roles, and
//! in memory on every server (reloaded with them when another server changes one), so a
//! request to `POST /hooks/{id}` finds its hook without a read.

use super::*;
use rota_core::hooks::{HookRecord, MAX_HOOKS_PER_TENANT};

impl Auth {
    /// Hook `id` of any tenant.
    pub fn hook(&self, id: &str) -> Option<Arc<HookRecord>> {
        self.read().hooks.get(id).cloned()
    }

    /// The tenant's hooks by name.
    pub fn hooks(&self, tenant: &str) -> Vec<HookRecord> {
        let mut v: Vec<HookRecord> = self
            .read()
            .hooks
            .values()
            .filter(|h| h.tenant == tenant)
            .map(|h| (**h).clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The tenant's hook `id` (404 when it has none by that id).
    pub fn tenant_hook(&self, tenant: &str, id: &str) -> ApiResult<HookRecord> {
        match self.hook(id) {
            Some(h) if h.tenant == tenant => Ok((*h).clone()),
            _ => Err(not_found("hook", id)),
        }
    }

    /// 409 when another hook of `tenant` (not `id`) is named `name`.
    pub fn check_hook_name(&self, tenant: &str, name: &str, id: &str) -> ApiResult<()> {
        let st = self.read();
        let taken = st
            .hooks
            .values()
            .find(|h| h.tenant == tenant && h.name == name && h.id != id);
        match taken {
            Some(other) => Err(conflict(format!(
                "hook `{name}` already exists (id {}); choose another name",
                other.id
            ))),
            None => Ok(()),
        }
    }

    /// Stores a new or changed hook: its tenant must exist, its name be free in the tenant,
    /// and a new one fit under [`MAX_HOOKS_PER_TENANT`].
    pub async fn put_hook(&self, record: HookRecord) -> ApiResult<()> {
        let _one = self.changes.lock().await;
        if !self.tenant_exists(&record.tenant) {
            return Err(not_found("tenant", &record.tenant));
        }
        self.check_hook_name(&record.tenant, &record.name, &record.id)?;
        {
            let st = self.read();
            let mine = st.hooks.values().filter(|h| h.tenant == record.tenant);
            if !st.hooks.contains_key(&record.id) && mine.count() >= MAX_HOOKS_PER_TENANT {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    "limit_reached",
                    format!(
                        "tenant `{}` has {MAX_HOOKS_PER_TENANT} hooks, the most it may have",
                        record.tenant
                    ),
                ));
            }
        }
        self.store
            .change_auth(AuthChange::PutHook(Box::new(record.clone())))
            .await?;
        self.write()
            .hooks
            .insert(record.id.clone(), Arc::new(record));
        Ok(())
    }

    pub async fn delete_hook(&self, tenant: &str, id: &str) -> ApiResult<()> {
        let _one = self.changes.lock().await;
        self.tenant_hook(tenant, id)?;
        self.store
            .change_auth(AuthChange::DeleteHook {
                tenant: tenant.to_owned(),
                id: id.to_owned(),
            })
            .await?;
        self.write().hooks.remove(id);
        Ok(())
    }
}
