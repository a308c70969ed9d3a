//! Reads of a queue's flow-control groups, on any connection (the writer's transaction answers
//! `put_group` with them, a read connection lists them). Names come from three places, each
//! walked by index seeks (`grp > ?` … `LIMIT 1`), so a page costs its length in seeks whatever
//! the number of tasks: groups with ready tasks, groups with running tasks, and groups with
//! settings of their own.

use rota_core::flow::{GroupInfo, GroupRow, GroupSettings};
use rota_core::{QueueSettings, Timestamp};
use rota_store::GroupPage;
use rusqlite::{params, Connection, OptionalExtension};

/// One group as it stands: counts, the limits in force, what holds it.
pub fn group_info(
    conn: &Connection,
    qid: i64,
    name: &str,
    queue: &QueueSettings,
    now: Timestamp,
) -> rusqlite::Result<GroupInfo> {
    let (own, tat): (Option<GroupSettings>, i64) = conn
        .prepare_cached(
            "SELECT settings, rate_tat_us FROM task_groups WHERE queue_id = ?1 AND name = ?2",
        )?
        .query_row(params![qid, name], |r| {
            let s: Option<String> = r.get(0)?;
            Ok((s.and_then(|s| serde_json::from_str(&s).ok()), r.get(1)?))
        })
        .optional()?
        .unwrap_or((None, 0));
    let (ready, oldest): (u64, Option<i64>) = conn
        .prepare_cached(
            "SELECT count(*), min(created_at) FROM tasks WHERE queue_id = ?1 \
             AND state = 'ready' AND grp = ?2",
        )?
        .query_row(params![qid, name], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let running: u64 = conn
        .prepare_cached(
            "SELECT count(*) FROM tasks WHERE queue_id = ?1 AND state = 'running' AND grp = ?2",
        )?
        .query_row(params![qid, name], |r| r.get(0))?;
    let row = GroupRow {
        own,
        tat_us: tat,
        ready,
        running,
        oldest_ready_created: oldest.map(Timestamp),
    };
    Ok(GroupInfo::new(name, row, queue, now))
}

/// A page of the queue's groups by name after `after`.
pub fn group_page(
    conn: &Connection,
    qid: i64,
    queue: &QueueSettings,
    after: Option<&str>,
    limit: usize,
    now: Timestamp,
) -> rusqlite::Result<GroupPage> {
    let sources = [
        "SELECT grp FROM tasks WHERE queue_id = ?1 AND state = 'ready' AND grp IS NOT NULL \
         AND grp > ?2 ORDER BY grp LIMIT 1",
        "SELECT grp FROM tasks WHERE queue_id = ?1 AND state = 'running' AND grp IS NOT NULL \
         AND grp > ?2 ORDER BY grp LIMIT 1",
        "SELECT name FROM task_groups WHERE queue_id = ?1 AND settings IS NOT NULL \
         AND name > ?2 ORDER BY name LIMIT 1",
    ];
    let mut names: Vec<String> = Vec::new();
    for sql in sources {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut from = after.unwrap_or("").to_owned();
        for _ in 0..limit {
            let Some(next) = stmt
                .query_row(params![qid, from], |r| r.get::<_, String>(0))
                .optional()?
            else {
                break;
            };
            names.push(next.clone());
            from = next;
        }
    }
    names.sort();
    names.dedup();
    names.truncate(limit);
    let groups = names
        .iter()
        .map(|n| group_info(conn, qid, n, queue, now))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next = (groups.len() == limit && limit > 0).then(|| names[limit - 1].clone());
    Ok(GroupPage { groups, next })
}

#[async_trait::async_trait]
impl rota_store::GroupStore for crate::shard::Shard {
    async fn put_group(
        &self,
        queue: &rota_core::QueueKey,
        group: &str,
        settings: GroupSettings,
    ) -> rota_store::StoreResult<GroupInfo> {
        let (q, g) = (queue.clone(), group.to_owned());
        self.send(|r| crate::writer::Op::PutGroup(q, g, settings, r))
            .await?
    }

    async fn groups(
        &self,
        queue: &rota_core::QueueKey,
        after: Option<&str>,
        limit: usize,
    ) -> rota_store::StoreResult<GroupPage> {
        let (queue, after) = (queue.clone(), after.map(str::to_owned));
        self.read(move |conn, shared| {
            let (qid, settings) = {
                let cat = shared.catalog.read().unwrap_or_else(|e| e.into_inner());
                let q = cat
                    .by_key(&queue)
                    .ok_or_else(|| rota_store::StoreError::QueueNotFound(queue.name.clone()))?;
                (q.id, q.settings.clone())
            };
            let now = shared.clock.now();
            group_page(conn, qid, &settings, after.as_deref(), limit, now).map_err(crate::db_err)
        })
        .await
    }
}
