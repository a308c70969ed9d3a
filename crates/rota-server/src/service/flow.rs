//! What a queue's flow-control limits hold back now (`GET /v1/queues/{queue}`'s `flow`, the
//! dashboard's queue page, `/metrics` and `rota doctor`), built from the store's own reads of
//! the queue and its groups, so every engine answers it alike.

use super::*;
use rota_core::flow_stats::{FlowStats, FlowTally};
use rota_core::{QueueInfo, QueueKey, QueueStats};
use rota_store::{Store, StoreResult};

/// Groups one look reads at most (in pages of [`GROUP_PAGE`]): a queue with more counts the
/// first ones by name and says so (`groups_complete: false`), so the cost of a queue's stats
/// does not grow with its number of groups.
pub const MAX_FLOW_SCAN_GROUPS: usize = 1_000;
const GROUP_PAGE: usize = 250;

impl Service {
    /// One queue with its flow stats.
    pub async fn queue_stats(&self, caller: &Caller, queue: &str) -> ApiResult<QueueStats> {
        let key = caller.queue(queue, actions::QUEUES_READ)?;
        let info = self.store.queue(&key).await?;
        let flow = flow_stats(&*self.store, &key, &info, self.limits().max_flow_groups).await?;
        Ok(QueueStats { queue: info, flow })
    }
}

/// A queue's flow stats, listing its `top` busiest groups. A queue with no group limits
/// still has groups to show (tasks that name one), so groups are read whenever any exist.
pub async fn flow_stats(
    store: &dyn Store,
    key: &QueueKey,
    info: &QueueInfo,
    top: usize,
) -> StoreResult<FlowStats> {
    let mut tally = FlowTally::new(info, top);
    let mut after: Option<String> = None;
    let mut read = 0;
    loop {
        let page = store.groups(key, after.as_deref(), GROUP_PAGE).await?;
        read += page.groups.len();
        tally.add(page.groups);
        match page.next {
            None => return Ok(tally.finish(true)),
            Some(_) if read >= MAX_FLOW_SCAN_GROUPS => return Ok(tally.finish(false)),
            next => after = next,
        }
    }
}
