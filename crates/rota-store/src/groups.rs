//! Flow-control groups as the store keeps them: a group's own settings, and what the groups of
//! a queue hold now. The limits themselves are applied by each engine's claim (see
//! `rota_core::flow` for the rules and `docs/flow-control.md` for how they combine).

use crate::StoreResult;
use async_trait::async_trait;
use rota_core::flow::{GroupInfo, GroupSettings};
use rota_core::QueueKey;

pub use rota_core::flow_walk::MAX_GROUP_VISITS;

/// A page of a queue's groups, by name: the model's shape, which the HTTP API and the client
/// share.
pub use rota_core::flow::GroupPage;

#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Sets one group's own settings, creating the queue on first use; settings equal to the
    /// defaults remove the group's own row. Answers the group as it stands.
    async fn put_group(
        &self,
        queue: &QueueKey,
        group: &str,
        settings: GroupSettings,
    ) -> StoreResult<GroupInfo>;

    /// The queue's groups that have ready or running tasks or settings of their own, by name
    /// after `after`, at most `limit`.
    async fn groups(
        &self,
        queue: &QueueKey,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<GroupPage>;
}
