//! Flow-control groups: one group's own settings, and a queue's groups with what holds them
//! back. The shapes are rota-core's (`rota_core::flow`).

use crate::{processes, Client, Result};
use reqwest::Method;
use rota_core::flow::{GroupInfo, GroupPage, GroupSettings};

impl Client {
    /// Sets one group's own settings (`GroupSettings::default()` removes them); answers the
    /// group as it stands.
    pub async fn put_group(
        &self,
        queue: &str,
        group: &str,
        settings: &GroupSettings,
    ) -> Result<GroupInfo> {
        let path = format!("/v1/queues/{queue}/groups/{}", processes::escape(group));
        self.call(Method::PUT, &path, Some(settings), Self::TIMEOUT)
            .await
    }

    /// A page of the queue's groups by name after `after` (the previous page's `next`), at
    /// most `limit` (the server's default, 100, when `None`).
    pub async fn groups(
        &self,
        queue: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<GroupPage> {
        let mut q = vec![];
        if let Some(a) = after {
            q.push(format!("after={}", processes::escape(a)));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let path = format!("/v1/queues/{queue}/groups?{}", q.join("&"));
        self.call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await
    }
}
