//! Claims under flow control (docs/flow-control.md): a queue's concurrency and rate, its
//! groups' limits, and the groups' turns.
//!
//! A queue with neither limits nor grouped tasks is claimed by tasks.rs's one statement. Any
//! other claim is a transaction that first locks the queue's row (`FOR NO KEY UPDATE`): the
//! claims of one limited queue, from every server, take turns, and each counts what runs
//! (read committed: every statement after the lock sees the claims committed before it), so a
//! limit is a fact of the database, not a server's share. Rate state (GCRA's TAT) and where
//! the round-robin stands are columns of the queue's row and of its groups' rows, written in
//! the same transaction. Enqueues, completions and the one-statement claims of other queues do
//! not wait for the lock.
//!
//! The walk, the rules, is rota_core::flow_walk's, shared with the embedded engine; this file
//! gives it its reads. A claim picks ids first (each read skips those picked) and leases them
//! all in one UPDATE at the end.

use crate::events::{Run, RUN_COLUMNS};
use crate::flow_ahead::{Ahead, Scope};
use crate::rows::{queue_from_row, task_from_row, QUEUE_COLUMNS, QUEUE_COLUMN_COUNT, TASK_COLUMNS};
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rota_core::flow::{GroupSettings, Turn};
use rota_core::flow_walk::{FlowReads, Walk};
use rota_core::{QueueKey, QueueSettings, Task, Timestamp};
use rota_store::{ClaimRequest, Claimed, StoreError, StoreResult};
use std::collections::HashMap;
use tokio_postgres::types::ToSql;

/// A claim of one queue, inside the transaction that holds the queue's row.
struct FlowClaim<'c, C: GenericClient> {
    tx: &'c C,
    qid: i64,
    kinds: Vec<String>,
    /// Ids taken so far, in the order taken.
    picked: Vec<i64>,
    /// The groups read ahead round the ring.
    ahead: Ahead,
}

impl PostgresStore {
    /// Leases tasks of a queue that has limits or groups (see the module's comment); answers
    /// them in the order taken and, when a rate held a ready task back, when the next may
    /// start.
    pub(crate) async fn claim_flow(
        &self,
        key: &QueueKey,
        req: &ClaimRequest,
    ) -> StoreResult<Claimed> {
        let now = self.now();
        let mut client = self.lease_conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let lock = tx
            .prepare_cached(&format!(
                "SELECT {QUEUE_COLUMNS}, q.turn_group, q.turn_taken, q.grouped FROM rota_queues q \
                 WHERE q.tenant = $1 AND q.name = $2 FOR NO KEY UPDATE"
            ))
            .await
            .map_err(db)?;
        let Some(row) = tx
            .query_opt(&lock, &[&key.tenant, &key.name])
            .await
            .map_err(db)?
        else {
            return Ok(Claimed::default());
        };
        let queue = queue_from_row(&row, 0)?;
        if queue.settings.paused {
            return Ok(Claimed::default());
        }
        let turn = Turn {
            group: row.get(QUEUE_COLUMN_COUNT),
            taken: row.get::<_, i32>(QUEUE_COLUMN_COUNT + 1).max(0) as u32,
        };
        let grouped: bool = row.get(QUEUE_COLUMN_COUNT + 2);
        let lease_ms = req.lease_ms.unwrap_or(queue.settings.lease_ms);
        let mut claim = FlowClaim {
            tx: &tx,
            qid: queue.id,
            kinds: req.kinds.clone(),
            picked: Vec::new(),
            ahead: Ahead::default(),
        };
        let room = claim.room(&queue.settings, req.max).await?;
        let mut walk = Walk::new(&queue.settings, now, grouped, queue.rate_tat_us);
        let walked = walk.run(&mut claim, room, turn).await?;
        let tasks = claim.lease(key, &req.worker, now, lease_ms).await?;
        claim.save(&walk, walked.turn, now).await?;
        tx.commit().await.map_err(db)?;
        if !tasks.is_empty() {
            self.announce_events([key.tenant.as_str()]);
            if let Some(at) = tasks
                .iter()
                .filter_map(|t| t.lease.as_ref().map(|l| l.expires_at))
                .min()
            {
                self.due_at(at);
            }
        }
        Ok(Claimed {
            tasks,
            next_start_at: walked.hold,
        })
    }
}

impl<C: GenericClient> FlowClaim<'_, C> {
    async fn one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<tokio_postgres::Row> {
        let stmt = self.tx.prepare_cached(sql).await.map_err(db)?;
        self.tx.query_one(&stmt, params).await.map_err(db)
    }

    async fn exec(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let stmt = self.tx.prepare_cached(sql).await.map_err(db)?;
        self.tx.execute(&stmt, params).await.map_err(db)
    }

    async fn opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<tokio_postgres::Row>> {
        let stmt = self.tx.prepare_cached(sql).await.map_err(db)?;
        self.tx.query_opt(&stmt, params).await.map_err(db)
    }

    /// How many the claim may take: `max`, less what the queue's concurrency has no room for.
    async fn room(&self, settings: &QueueSettings, max: usize) -> StoreResult<usize> {
        let Some(c) = settings.concurrency else {
            return Ok(max);
        };
        let running: i64 = self
            .one(
                "SELECT count(*) FROM rota_tasks WHERE queue_id = $1 AND state = 2",
                &[&self.qid],
            )
            .await?
            .get(0);
        let free = u64::from(c).saturating_sub(running.max(0) as u64);
        Ok(max.min(usize::try_from(free).unwrap_or(usize::MAX)))
    }

    /// The position's first `n` ready tasks not taken yet, by priority then age, of the kinds
    /// asked; locked (skipping any another transaction holds, such as a cancel's).
    async fn next_ready(&self, position: &str, n: usize) -> StoreResult<Vec<i64>> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let select = |filter: &str| {
            format!(
                "SELECT id FROM rota_tasks WHERE queue_id = $1 AND state = 1 AND id <> ALL($2) \
                 AND {filter} ORDER BY priority DESC, id LIMIT $3 FOR UPDATE SKIP LOCKED"
            )
        };
        let (sql, kinds) = (self.kinds.is_empty(), &self.kinds);
        let stmt = match (position.is_empty(), sql) {
            (true, true) => select("grp IS NULL"),
            (true, false) => select("grp IS NULL AND kind = ANY($4)"),
            (false, true) => select("grp = $4"),
            (false, false) => select("grp = $4 AND kind = ANY($5)"),
        };
        let stmt = self.tx.prepare_cached(&stmt).await.map_err(db)?;
        let rows = match (position.is_empty(), kinds.is_empty()) {
            (true, true) => self.tx.query(&stmt, &[&self.qid, &self.picked, &n]).await,
            (true, false) => {
                self.tx
                    .query(&stmt, &[&self.qid, &self.picked, &n, kinds])
                    .await
            }
            (false, true) => {
                self.tx
                    .query(&stmt, &[&self.qid, &self.picked, &n, &position])
                    .await
            }
            (false, false) => {
                self.tx
                    .query(&stmt, &[&self.qid, &self.picked, &n, &position, kinds])
                    .await
            }
        }
        .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Leases the picked tasks and logs their claims, in the order taken.
    async fn lease(
        &self,
        key: &QueueKey,
        worker: &str,
        now: Timestamp,
        lease_ms: u64,
    ) -> StoreResult<Vec<Task>> {
        if self.picked.is_empty() {
            return Ok(Vec::new());
        }
        let expires = now.plus_ms(crate::rows::ms(lease_ms)).0;
        let sql = format!(
            "WITH claimed AS (UPDATE rota_tasks t SET state = 2, attempt = t.attempt + 1, \
               lease_worker = $2, lease_token = ((random() - 0.5) * 1.8e19)::bigint, \
               lease_expires_at = $3, updated_at = $4, started_at = $4 \
               WHERE t.id = ANY($1) AND t.state = 1 \
               RETURNING t.*), \
             ev AS (INSERT INTO rota_events ({RUN_COLUMNS}) {run}) \
             SELECT {TASK_COLUMNS} FROM claimed t CROSS JOIN (SELECT $6::text AS name) q",
            run = Run::claimed("$5", "$4", "$6", "$2", "array_position($1, s.id)").select()
        );
        let stmt = self.tx.prepare_cached(&sql).await.map_err(db)?;
        let rows = self
            .tx
            .query(
                &stmt,
                &[
                    &self.picked,
                    &worker,
                    &expires,
                    &now.0,
                    &key.tenant,
                    &key.name,
                ],
            )
            .await
            .map_err(db)?;
        let order: HashMap<i64, usize> = self
            .picked
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        let mut tasks = rows
            .iter()
            .map(|r| task_from_row(r).map(|(_, t)| t))
            .collect::<StoreResult<Vec<Task>>>()?;
        tasks.sort_by_key(|t| order.get(&t.id.as_i64()).copied());
        Ok(tasks)
    }

    /// Stores the rates' state and the turn, in the claim's transaction.
    async fn save(&self, walk: &Walk<'_>, turn: Turn, now: Timestamp) -> StoreResult<()> {
        let taken = i32::try_from(turn.taken).unwrap_or(i32::MAX);
        self.exec(
            "UPDATE rota_queues SET rate_tat_us = $2, turn_group = $3, turn_taken = $4, \
             last_claim_at = $5 WHERE id = $1",
            &[&self.qid, &walk.q_tat, &turn.group, &taken, &now.0],
        )
        .await?;
        let (names, tats): (Vec<&str>, Vec<i64>) = walk.moved_tats().unzip();
        if !names.is_empty() {
            self.exec(
                "INSERT INTO rota_task_groups (queue_id, name, rate_tat_us) \
                 SELECT $1, n, t FROM unnest($2::text[], $3::bigint[]) AS u(n, t) \
                 ON CONFLICT (queue_id, name) DO UPDATE SET rate_tat_us = excluded.rate_tat_us",
                &[&self.qid, &names, &tats],
            )
            .await?;
        }
        Ok(())
    }
}

impl<C: GenericClient> FlowClaim<'_, C> {
    fn scope(&self) -> Scope<'_> {
        Scope {
            qid: self.qid,
            kinds: &self.kinds,
            picked: &self.picked,
        }
    }
}

impl<C: GenericClient> FlowReads for FlowClaim<'_, C> {
    type Error = StoreError;

    async fn group_row(&mut self, group: &str) -> StoreResult<(Option<GroupSettings>, i64)> {
        if let Some(h) = self.ahead.head(group) {
            return Ok((h.settings.clone(), h.tat));
        }
        let row = self
            .opt(
                "SELECT settings, rate_tat_us FROM rota_task_groups \
                 WHERE queue_id = $1 AND name = $2",
                &[&self.qid, &group],
            )
            .await?;
        Ok(match row {
            Some(r) => {
                let s: Option<String> = r.get(0);
                (s.and_then(|s| serde_json::from_str(&s).ok()), r.get(1))
            }
            None => (None, 0),
        })
    }

    async fn group_running(&mut self, group: &str) -> StoreResult<u64> {
        if let Some(h) = self.ahead.head(group) {
            return Ok(h.running);
        }
        let n: i64 = self
            .one(
                "SELECT count(*) FROM rota_tasks WHERE queue_id = $1 AND state = 2 AND grp = $2",
                &[&self.qid, &group],
            )
            .await?
            .get(0);
        Ok(n.max(0) as u64)
    }

    async fn has_ready(&mut self, position: &str) -> StoreResult<bool> {
        if !position.is_empty() {
            let mut ahead = std::mem::take(&mut self.ahead);
            let known = ahead.has_ready(self.tx, &self.scope(), position).await;
            self.ahead = ahead;
            if let Some(ready) = known? {
                return Ok(ready);
            }
        }
        let row = if position.is_empty() {
            self.one(
                "SELECT EXISTS (SELECT 1 FROM rota_tasks WHERE queue_id = $1 AND state = 1 \
                 AND grp IS NULL AND id <> ALL($2))",
                &[&self.qid, &self.picked],
            )
            .await?
        } else {
            self.one(
                "SELECT EXISTS (SELECT 1 FROM rota_tasks WHERE queue_id = $1 AND state = 1 \
                 AND grp = $3 AND id <> ALL($2))",
                &[&self.qid, &self.picked, &position],
            )
            .await?
        };
        Ok(row.get(0))
    }

    async fn group_after(&mut self, after: &str) -> StoreResult<Option<String>> {
        let mut ahead = std::mem::take(&mut self.ahead);
        let next = ahead.group_after(self.tx, &self.scope(), after).await;
        self.ahead = ahead;
        next
    }

    async fn take(&mut self, position: &str, n: usize) -> StoreResult<usize> {
        let ids = if position.is_empty() {
            None
        } else {
            let mut ahead = std::mem::take(&mut self.ahead);
            let ids = ahead.take(self.tx, &self.scope(), position, n).await;
            self.ahead = ahead;
            ids?
        };
        let ids = match ids {
            Some(ids) => ids,
            None => self.next_ready(position, n).await?,
        };
        let taken = ids.len();
        self.picked.extend(ids);
        Ok(taken)
    }
}
