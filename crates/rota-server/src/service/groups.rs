//! Flow-control groups: one group's own settings, and a queue's groups with what holds them.

use super::*;
use rota_core::flow::{GroupInfo, GroupSettings};
use rota_store::GroupPage;

impl Service {
    /// Sets one group's own settings (creating the queue when it does not exist yet, as queue
    /// settings do); the defaults clear them.
    pub async fn put_group(
        &self,
        caller: &Caller,
        queue: &str,
        group: &str,
        settings: GroupSettings,
    ) -> ApiResult<GroupInfo> {
        let key = caller.queue(queue, actions::QUEUES_UPDATE)?;
        check_name("group", group, self.limits())?;
        settings.check().map_err(ApiError::invalid)?;
        let entry = audit::with(
            caller.audit(
                "group.put",
                format!("{}/groups/{group}", queue_resource(queue)),
            ),
            None,
            audit::json(&settings),
        );
        Ok(audit::audited(entry, self.store.put_group(&key, group, settings)).await?)
    }

    /// A page of the queue's groups by name, after `after`.
    pub async fn groups(
        &self,
        caller: &Caller,
        queue: &str,
        after: Option<&str>,
        limit: usize,
    ) -> ApiResult<GroupPage> {
        let key = caller.queue(queue, actions::QUEUES_READ)?;
        let limits = self.limits();
        if limit == 0 || limit > limits.max_list {
            return Err(ApiError::invalid(format!(
                "limit is {limit}; use 1 to {} (limits.max_list)",
                limits.max_list
            )));
        }
        if let Some(a) = after {
            check_name("after", a, limits)?;
        }
        Ok(self.store.groups(&key, after, limit).await?)
    }
}
