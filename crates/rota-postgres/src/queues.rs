//! Queue reads and changes: statistics (counted from the tasks, so they are right whichever
//! server wrote), listing, settings, purge.

use crate::rows::{
    ms, queue_from_row, state_from_sql, task_from_row, QueueRow, SettingsColumns, QUEUE_COLUMNS,
    TASK_COLUMNS,
};
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rota_core::{QueueInfo, QueueKey, QueuePatch, StateCounts, TaskId, TaskState};
use rota_store::{ListFilter, Page, QueueOverview, StoreError, StoreResult};
use std::collections::HashMap;
use tokio_postgres::types::ToSql;

impl PostgresStore {
    /// Queues (of one tenant, or all; one by name) with their statistics, ordered by tenant
    /// and name.
    pub(crate) async fn queue_infos(
        &self,
        tenant: Option<&str>,
        name: Option<&str>,
    ) -> StoreResult<Vec<(String, QueueInfo)>> {
        let client = self.conn().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {QUEUE_COLUMNS} FROM rota_queues q \
                     WHERE ($1::text IS NULL OR q.tenant = $1) AND ($2::text IS NULL OR q.name = $2) \
                     ORDER BY q.tenant, q.name"
                ),
                &[&tenant, &name],
            )
            .await
            .map_err(db)?;
        let queues = rows
            .iter()
            .map(|r| queue_from_row(r, 0))
            .collect::<StoreResult<Vec<QueueRow>>>()?;
        self.with_stats(&client, queues).await
    }

    /// Each queue's counts by state and oldest ready task, in two statements for all of them.
    async fn with_stats(
        &self,
        client: &impl GenericClient,
        queues: Vec<QueueRow>,
    ) -> StoreResult<Vec<(String, QueueInfo)>> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = queues.iter().map(|q| q.id).collect();
        let counts = client
            .query(
                "SELECT queue_id, state, count(*) FROM rota_tasks WHERE queue_id = ANY($1) \
                 GROUP BY queue_id, state",
                &[&ids],
            )
            .await
            .map_err(db)?;
        let mut by_queue: HashMap<i64, StateCounts> = HashMap::new();
        for r in &counts {
            let state = state_from_sql(r.get(1))?;
            let n: i64 = r.get(2);
            *by_queue.entry(r.get(0)).or_default().get_mut(state) = n as u64;
        }
        // The oldest ready task of each queue that has one: one index probe per queue.
        let oldest = client
            .query(
                "SELECT q.id, (SELECT t.run_at FROM rota_tasks t WHERE t.queue_id = q.id \
                 AND t.state = 1 ORDER BY t.queue_id, t.state, t.id LIMIT 1) \
                 FROM unnest($1::bigint[]) AS q(id)",
                &[&ids],
            )
            .await
            .map_err(db)?;
        let oldest: HashMap<i64, Option<i64>> =
            oldest.iter().map(|r| (r.get(0), r.get(1))).collect();
        let now = self.now();
        Ok(queues
            .into_iter()
            .map(|q| {
                let counts = by_queue.get(&q.id).copied().unwrap_or_default();
                let info = q.info(counts, oldest.get(&q.id).copied().flatten(), now);
                (q.tenant, info)
            })
            .collect())
    }

    pub(crate) async fn overview(&self, max: usize) -> StoreResult<QueueOverview> {
        let client = self.conn().await?;
        let rows = client
            .query(
                "SELECT queue_id, state, count(*) FROM rota_tasks GROUP BY queue_id, state",
                &[],
            )
            .await
            .map_err(db)?;
        let mut counts: HashMap<i64, StateCounts> = HashMap::new();
        for r in &rows {
            let state = state_from_sql(r.get(1))?;
            let n: i64 = r.get(2);
            *counts.entry(r.get(0)).or_default().get_mut(state) = n as u64;
        }
        let all = client
            .query(&format!("SELECT {QUEUE_COLUMNS} FROM rota_queues q"), &[])
            .await
            .map_err(db)?;
        let mut queues = all
            .iter()
            .map(|r| queue_from_row(r, 0))
            .collect::<StoreResult<Vec<QueueRow>>>()?;
        let live = |q: &QueueRow| {
            let c = counts.get(&q.id).copied().unwrap_or_default();
            c.scheduled + c.ready + c.running
        };
        if queues.len() > max {
            queues.select_nth_unstable_by_key(max, |q| std::cmp::Reverse(live(q)));
        }
        let split = queues.len().min(max);
        let others = queues.split_off(split);
        let mut rest = StateCounts::default();
        for q in &others {
            rest.add(&counts.get(&q.id).copied().unwrap_or_default());
        }
        queues.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        let top = self.with_stats(&client, queues).await?;
        Ok(QueueOverview {
            top,
            rest,
            rest_queues: others.len(),
        })
    }

    pub(crate) async fn update_queue_settings(
        &self,
        key: &QueueKey,
        patch: QueuePatch,
    ) -> StoreResult<QueueInfo> {
        let audit = rota_store::audit::take();
        let now = self.now();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        crate::tasks::lock_tenant(&tx, &key.tenant, false).await?;
        self.queue_for_write(&tx, key, now).await?;
        let row = tx
            .query_one(
                &format!(
                    "SELECT {QUEUE_COLUMNS} FROM rota_queues q \
                     WHERE q.tenant = $1 AND q.name = $2 FOR NO KEY UPDATE"
                ),
                &[&key.tenant, &key.name],
            )
            .await
            .map_err(db)?;
        let q = queue_from_row(&row, 0)?;
        let mut s = q.settings.clone();
        patch.apply(&mut s);
        let settings = SettingsColumns::new(&s);
        let params = [&[&q.id as &(dyn ToSql + Sync)][..], &settings.params()].concat();
        tx.execute(
            "UPDATE rota_queues SET max_attempts = $2, backoff_base_ms = $3, backoff_max_ms = $4, \
             lease_ms = $5, retention_ms = $6, paused = $7, callback_url = $8, concurrency = $9, \
             rate = $10, group_concurrency = $11, group_rate = $12 WHERE id = $1",
            &params,
        )
        .await
        .map_err(db)?;
        if s.retention_ms != q.settings.retention_ms {
            // Finished tasks are deleted by their purge time: move it with the retention.
            tx.execute(
                "UPDATE rota_tasks SET purge_at = finished_at + $2 \
                 WHERE queue_id = $1 AND finished_at IS NOT NULL",
                &[&q.id, &ms(s.retention_ms)],
            )
            .await
            .map_err(db)?;
        }
        let resumed = q.settings.paused && !s.paused;
        crate::audit::write(&tx, audit.as_ref()).await?;
        tx.commit().await.map_err(db)?;
        if s.retention_ms != q.settings.retention_ms {
            // Purge times moved: the elected maintenance plans its next pass again.
            self.shared.notifier.due();
        }
        if resumed {
            self.shared.signals.notify(key);
            self.shared.notifier.ready(&key.tenant, &key.name);
        }
        self.queue_infos(Some(&key.tenant), Some(&key.name))
            .await?
            .pop()
            .map(|(_, q)| q)
            .ok_or_else(|| StoreError::QueueNotFound(key.name.clone()))
    }

    pub(crate) async fn purge_tasks(&self, key: &QueueKey, state: TaskState) -> StoreResult<u64> {
        let audit = rota_store::audit::take();
        let now = self.now();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let qid: Option<i64> = tx
            .query_opt(
                "SELECT id FROM rota_queues WHERE tenant = $1 AND name = $2",
                &[&key.tenant, &key.name],
            )
            .await
            .map_err(db)?
            .map(|r| r.get(0));
        let Some(qid) = qid else {
            return Err(StoreError::QueueNotFound(key.name.clone()));
        };
        // Releases still pending for the tasks about to go are done first, in this
        // transaction, by the states they ended in.
        let pending: Vec<i64> = tx
            .query(
                "SELECT id FROM rota_tasks WHERE queue_id = $1 AND state = $2 AND has_dependents",
                &[&qid, &crate::rows::state_to_sql(state)],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let release = if pending.is_empty() {
            Default::default()
        } else {
            self.release_in(&tx, pending, Vec::new(), now).await?
        };
        let n = tx
            .execute(
                "DELETE FROM rota_tasks WHERE queue_id = $1 AND state = $2",
                &[&qid, &crate::rows::state_to_sql(state)],
            )
            .await
            .map_err(db)?;
        crate::events::append(&tx, &release.0, 0).await?;
        crate::audit::write(&tx, audit.as_ref()).await?;
        tx.commit().await.map_err(db)?;
        self.after_release(&release.0, &release.1);
        Ok(n)
    }

    pub(crate) async fn list_tasks(&self, key: &QueueKey, filter: ListFilter) -> StoreResult<Page> {
        let client = self.conn().await?;
        let qid: i64 = client
            .query_opt(
                "SELECT id FROM rota_queues WHERE tenant = $1 AND name = $2",
                &[&key.tenant, &key.name],
            )
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::QueueNotFound(key.name.clone()))?
            .get(0);
        let limit = filter.limit.max(1);
        let mut sql = format!(
            "SELECT {TASK_COLUMNS} FROM rota_tasks t JOIN rota_queues q ON q.id = t.queue_id \
             WHERE t.queue_id = $1"
        );
        let state = filter.state.map(crate::rows::state_to_sql);
        let before = filter.before.map(TaskId::as_i64);
        let fetch = (limit + 1) as i64;
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&qid, &fetch];
        if let Some(s) = &state {
            args.push(s);
            sql.push_str(&format!(" AND t.state = ${}", args.len()));
        }
        if let Some(k) = &filter.kind {
            args.push(k);
            sql.push_str(&format!(" AND t.kind = ${}", args.len()));
        }
        if let Some(k) = &filter.unique_key {
            args.push(k);
            // The live states as literals, so a generic plan may use the partial index.
            sql.push_str(&format!(
                " AND t.unique_key = ${} AND t.state IN ({}, {}, {})",
                args.len(),
                crate::rows::state_to_sql(TaskState::Scheduled),
                crate::rows::state_to_sql(TaskState::Ready),
                crate::rows::state_to_sql(TaskState::Running),
            ));
        }
        if let Some(b) = &before {
            args.push(b);
            sql.push_str(&format!(" AND t.id < ${}", args.len()));
        }
        sql.push_str(" ORDER BY t.id DESC LIMIT $2");
        let rows = client.query(&sql, &args).await.map_err(db)?;
        let mut tasks = rows
            .iter()
            .map(|r| task_from_row(r).map(|(_, t)| t))
            .collect::<StoreResult<Vec<_>>>()?;
        let next_cursor = if tasks.len() > limit {
            tasks.truncate(limit);
            tasks.last().map(|t| t.id)
        } else {
            None
        };
        Ok(Page { tasks, next_cursor })
    }
}
