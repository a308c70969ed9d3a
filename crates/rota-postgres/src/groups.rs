//! A queue's flow-control groups: their own settings and what they hold now. Names come from
//! three places, each walked by index seeks (`grp > $2 … LIMIT 1`), so a page costs its
//! length in seeks whatever the number of tasks: groups with ready tasks, groups with running
//! tasks, and groups with settings of their own.

use crate::rows::{queue_from_row, QUEUE_COLUMNS};
use crate::{db, PostgresStore};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rota_core::flow::{GroupInfo, GroupRow, GroupSettings};
use rota_core::{QueueKey, QueueSettings, Timestamp};
use rota_store::{GroupPage, GroupStore, StoreError, StoreResult};

/// One group as it stands: counts, the limits in force, what holds it.
async fn group_info(
    client: &impl GenericClient,
    qid: i64,
    name: &str,
    queue: &QueueSettings,
    now: Timestamp,
) -> StoreResult<GroupInfo> {
    let stmt = client
        .prepare_cached(
            "SELECT (SELECT settings FROM rota_task_groups WHERE queue_id = $1 AND name = $2), \
             COALESCE((SELECT rate_tat_us FROM rota_task_groups \
               WHERE queue_id = $1 AND name = $2), 0), \
             (SELECT count(*) FROM rota_tasks WHERE queue_id = $1 AND state = 1 AND grp = $2), \
             (SELECT min(created_at) FROM rota_tasks \
               WHERE queue_id = $1 AND state = 1 AND grp = $2), \
             (SELECT count(*) FROM rota_tasks WHERE queue_id = $1 AND state = 2 AND grp = $2)",
        )
        .await
        .map_err(db)?;
    let r = client.query_one(&stmt, &[&qid, &name]).await.map_err(db)?;
    let row = GroupRow {
        own: r
            .get::<_, Option<String>>(0)
            .and_then(|s| serde_json::from_str(&s).ok()),
        tat_us: r.get(1),
        ready: r.get::<_, i64>(2).max(0) as u64,
        oldest_ready_created: r.get::<_, Option<i64>>(3).map(Timestamp),
        running: r.get::<_, i64>(4).max(0) as u64,
    };
    Ok(GroupInfo::new(name, row, queue, now))
}

impl PostgresStore {
    /// The queue's id and settings; `QueueNotFound` when it does not exist.
    async fn queue_settings(
        &self,
        client: &impl GenericClient,
        key: &QueueKey,
    ) -> StoreResult<(i64, QueueSettings)> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT {QUEUE_COLUMNS} FROM rota_queues q WHERE q.tenant = $1 AND q.name = $2"
                ),
                &[&key.tenant, &key.name],
            )
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::QueueNotFound(key.name.clone()))?;
        let q = queue_from_row(&row, 0)?;
        Ok((q.id, q.settings))
    }
}

#[async_trait]
impl GroupStore for PostgresStore {
    async fn put_group(
        &self,
        key: &QueueKey,
        group: &str,
        settings: GroupSettings,
    ) -> StoreResult<GroupInfo> {
        let audit = rota_store::audit::take();
        let now = self.now();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        crate::tasks::lock_tenant(&tx, &key.tenant, false).await?;
        let (qid, queue) = self.queue_for_write(&tx, key, now).await?;
        let doc = (!settings.is_default())
            .then(|| serde_json::to_string(&settings).expect("settings serialize"));
        tx.execute(
            "INSERT INTO rota_task_groups (queue_id, name, settings) VALUES ($1, $2, $3) \
             ON CONFLICT (queue_id, name) DO UPDATE SET settings = excluded.settings",
            &[&qid, &group, &doc],
        )
        .await
        .map_err(db)?;
        let info = group_info(&tx, qid, group, &queue, now).await?;
        crate::audit::write(&tx, audit.as_ref()).await?;
        tx.commit().await.map_err(db)?;
        // A group resumed or given more room may have tasks to start.
        self.shared.signals.notify(key);
        self.shared.notifier.ready(&key.tenant, &key.name);
        Ok(info)
    }

    async fn groups(
        &self,
        key: &QueueKey,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<GroupPage> {
        let now = self.now();
        let client = self.conn().await?;
        let (qid, queue) = self.queue_settings(&client, key).await?;
        let sources = [
            "SELECT grp FROM rota_tasks WHERE queue_id = $1 AND state = 1 AND grp > $2 \
             ORDER BY grp LIMIT 1",
            "SELECT grp FROM rota_tasks WHERE queue_id = $1 AND state = 2 AND grp > $2 \
             ORDER BY grp LIMIT 1",
            "SELECT name FROM rota_task_groups WHERE queue_id = $1 AND settings IS NOT NULL \
             AND name > $2 ORDER BY name LIMIT 1",
        ];
        let mut names: Vec<String> = Vec::new();
        for sql in sources {
            let stmt = client.prepare_cached(sql).await.map_err(db)?;
            let mut from = after.unwrap_or("").to_owned();
            for _ in 0..limit {
                let Some(row) = client.query_opt(&stmt, &[&qid, &from]).await.map_err(db)? else {
                    break;
                };
                let next: String = row.get(0);
                names.push(next.clone());
                from = next;
            }
        }
        names.sort();
        names.dedup();
        names.truncate(limit);
        let mut groups = Vec::with_capacity(names.len());
        for n in &names {
            groups.push(group_info(&client, qid, n, &queue, now).await?);
        }
        let next = (groups.len() == limit && limit > 0).then(|| names[limit - 1].clone());
        Ok(GroupPage { groups, next })
    }
}
