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
//! The rules are those of the embedded engine (rota-sqlite's writer/flow.rs), step for step:
//! positions are the ungrouped tasks ("") then the groups by name, round a ring; a position
//! takes up to its weight per turn; a refused position is skipped until the ring comes round
//! with nothing taken.

use crate::events::CURSOR;
use crate::rows::{queue_from_row, task_from_row, QUEUE_COLUMNS, QUEUE_COLUMN_COUNT, TASK_COLUMNS};
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rota_core::flow::{GroupLimits, GroupSettings, Turn};
use rota_core::{QueueKey, QueueSettings, Task, Timestamp};
use rota_store::{ClaimRequest, Claimed, StoreResult, MAX_GROUP_VISITS};
use std::collections::{HashMap, HashSet};
use tokio_postgres::types::ToSql;

/// One group as a claim sees it.
struct GroupState {
    limits: GroupLimits,
    running: u64,
    tat: i64,
    tat_changed: bool,
}

/// Why a position gave no task.
enum Refused {
    /// The group is held (paused, full, rate) or has no ready task of the kinds asked.
    Group,
    /// The queue's rate: nothing more may start anywhere in the queue now.
    QueueRate,
}

fn held(hold: &mut Option<Timestamp>, at: Timestamp) {
    *hold = Some(hold.map_or(at, |h| h.min(at)));
}

/// A claim of one queue, inside the transaction that holds the queue's row.
struct FlowClaim<'c, C: GenericClient> {
    tx: &'c C,
    qid: i64,
    settings: QueueSettings,
    now: Timestamp,
    kinds: Vec<String>,
    /// Ids taken so far, in the order taken.
    picked: Vec<i64>,
    groups: HashMap<String, GroupState>,
    q_tat: i64,
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
            settings: queue.settings,
            now,
            kinds: req.kinds.clone(),
            picked: Vec::new(),
            groups: HashMap::new(),
            q_tat: queue.rate_tat_us,
        };
        let (hold, turn) = claim.run(req.max, turn, grouped).await?;
        let tasks = claim.lease(key, &req.worker, now, lease_ms).await?;
        claim.save(turn).await?;
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
            next_start_at: hold,
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

    /// Picks the tasks; answers when a rate lets the next start (if one held a ready task
    /// back) and where the round-robin stands after.
    async fn run(
        &mut self,
        max: usize,
        mut turn: Turn,
        grouped: bool,
    ) -> StoreResult<(Option<Timestamp>, Turn)> {
        let mut room = max;
        if let Some(c) = self.settings.concurrency {
            let running: i64 = self
                .one(
                    "SELECT count(*) FROM rota_tasks WHERE queue_id = $1 AND state = 2",
                    &[&self.qid],
                )
                .await?
                .get(0);
            let free = u64::from(c).saturating_sub(running.max(0) as u64);
            room = room.min(usize::try_from(free).unwrap_or(usize::MAX));
        }
        if room == 0 {
            return Ok((None, turn));
        }
        let mut hold: Option<Timestamp> = None;
        let mut idle: HashSet<String> = HashSet::new();
        let mut visits = 0usize;
        if !grouped {
            turn = Turn::default();
        }
        while self.picked.len() < room && visits < MAX_GROUP_VISITS {
            let stay = match &turn.group {
                Some(g) if grouped => {
                    let g = g.clone();
                    turn.taken < self.group(&g).await?.map_or(1, |g| g.limits.weight)
                }
                _ => false,
            };
            let position = match &turn.group {
                Some(g) if stay => g.clone(),
                _ if !grouped => String::new(),
                _ => match self.next_position(turn.group.as_deref()).await? {
                    Some(p) => {
                        turn = Turn {
                            group: Some(p.clone()),
                            taken: 0,
                        };
                        p
                    }
                    None => break,
                },
            };
            visits += 1;
            // A queue without groups takes all it may at once; a group one per step, so the
            // turns interleave.
            let want = if grouped { 1 } else { room - self.picked.len() };
            match self.take_from(&position, want).await? {
                Ok(n) => {
                    turn.taken = turn.taken.saturating_add(n);
                    idle.clear();
                }
                Err(Refused::QueueRate) => {
                    if let Some(r) = self.settings.rate {
                        held(&mut hold, r.next_at(self.q_tat));
                    }
                    break;
                }
                Err(Refused::Group) => {
                    if !grouped || !idle.insert(position.clone()) {
                        break; // round the whole ring with nothing taken
                    }
                    turn.taken = u32::MAX; // on to the next position
                }
            }
            if !grouped {
                turn = Turn::default();
            }
        }
        // Groups held by their rate say when they may start again.
        let rated: Vec<(String, i64, rota_core::flow::Rate)> = self
            .groups
            .iter()
            .filter_map(|(n, g)| g.limits.rate.map(|r| (n.clone(), g.tat, r)))
            .collect();
        for (name, tat, r) in rated {
            if r.take(tat, self.now).is_none() && self.has_ready(&name).await? {
                held(&mut hold, r.next_at(tat));
            }
        }
        if turn.taken == u32::MAX {
            turn.taken = 0;
        }
        Ok((hold, turn))
    }

    /// A group's state for this claim, read on first use; `None` for the tasks with no group.
    async fn group(&mut self, position: &str) -> StoreResult<Option<&mut GroupState>> {
        if position.is_empty() {
            return Ok(None);
        }
        if !self.groups.contains_key(position) {
            let row = self
                .opt(
                    "SELECT settings, rate_tat_us FROM rota_task_groups \
                     WHERE queue_id = $1 AND name = $2",
                    &[&self.qid, &position],
                )
                .await?;
            let (own, tat): (Option<GroupSettings>, i64) = match row {
                Some(r) => {
                    let s: Option<String> = r.get(0);
                    (s.and_then(|s| serde_json::from_str(&s).ok()), r.get(1))
                }
                None => (None, 0),
            };
            let limits = GroupLimits::of(own.as_ref(), &self.settings);
            let running = match limits.concurrency {
                Some(_) => {
                    let n: i64 = self
                        .one(
                            "SELECT count(*) FROM rota_tasks WHERE queue_id = $1 AND state = 2 \
                             AND grp = $2",
                            &[&self.qid, &position],
                        )
                        .await?
                        .get(0);
                    n.max(0) as u64
                }
                None => 0,
            };
            let state = GroupState {
                limits,
                running,
                tat,
                tat_changed: false,
            };
            self.groups.insert(position.to_owned(), state);
        }
        Ok(self.groups.get_mut(position))
    }

    /// The next position after `after` (`None`: before the first) that has ready tasks,
    /// round the ring; `None` when nothing in the queue is ready.
    async fn next_position(&self, after: Option<&str>) -> StoreResult<Option<String>> {
        if after.is_none() && self.has_ready("").await? {
            return Ok(Some(String::new()));
        }
        if let Some(g) = self.group_after(after.unwrap_or("")).await? {
            return Ok(Some(g));
        }
        // Round again from the start.
        if self.has_ready("").await? {
            return Ok(Some(String::new()));
        }
        self.group_after("").await
    }

    /// The first group by name after `after` with a ready task not taken yet.
    async fn group_after(&self, after: &str) -> StoreResult<Option<String>> {
        Ok(self
            .opt(
                "SELECT grp FROM rota_tasks WHERE queue_id = $1 AND state = 1 AND grp > $2 \
                 AND id <> ALL($3) ORDER BY grp LIMIT 1",
                &[&self.qid, &after, &self.picked],
            )
            .await?
            .map(|r| r.get(0)))
    }

    /// Whether the position ("" for the ungrouped tasks) has a ready task not taken yet.
    async fn has_ready(&self, position: &str) -> StoreResult<bool> {
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

    /// Takes up to `want` of the position's next tasks, as many as its limits and the queue's
    /// rate let start now; answers how many.
    async fn take_from(
        &mut self,
        position: &str,
        want: usize,
    ) -> StoreResult<Result<u32, Refused>> {
        let now = self.now;
        let mut want = want;
        if let Some(g) = self.group(position).await? {
            if g.limits.paused
                || g.limits
                    .concurrency
                    .is_some_and(|c| g.running >= u64::from(c))
            {
                return Ok(Err(Refused::Group));
            }
            if let Some(r) = g.limits.rate {
                if r.take(g.tat, now).is_none() {
                    return Ok(Err(Refused::Group));
                }
            }
            want = 1;
        }
        // How many the queue's rate lets start now.
        if let Some(r) = self.settings.rate {
            let (mut tat, mut allowed) = (self.q_tat, 0);
            while allowed < want {
                match r.take(tat, now) {
                    Some(next) => {
                        tat = next;
                        allowed += 1;
                    }
                    None => break,
                }
            }
            if allowed == 0 {
                return Ok(Err(if self.has_ready(position).await? {
                    Refused::QueueRate
                } else {
                    Refused::Group
                }));
            }
            want = allowed;
        }
        let ids = self.next_ready(position, want).await?;
        if ids.is_empty() {
            return Ok(Err(Refused::Group));
        }
        let n = ids.len();
        self.picked.extend(ids);
        if let Some(r) = self.settings.rate {
            for _ in 0..n {
                self.q_tat = r.take(self.q_tat, now).expect("counted above");
            }
        }
        if let Some(g) = self.group(position).await? {
            g.running += n as u64;
            if let Some(r) = g.limits.rate {
                g.tat = r.take(g.tat, now).expect("checked above");
                g.tat_changed = true;
            }
        }
        Ok(Ok(n as u32))
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
               lease_expires_at = $3, updated_at = $4 WHERE t.id = ANY($1) RETURNING t.*), \
             ev AS (INSERT INTO rota_events (tenant, cursor, at, queue, kind, task_id, attempt, \
               type, worker, due) \
               SELECT $5, {CURSOR}array_position($1, c.id)), $4, $6, c.kind, c.id, c.attempt, \
                 'task.claimed', $2, c.lease_expires_at FROM claimed c) \
             SELECT {TASK_COLUMNS} FROM claimed t CROSS JOIN (SELECT $6::text AS name) q"
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
    async fn save(&self, turn: Turn) -> StoreResult<()> {
        let taken = i32::try_from(turn.taken).unwrap_or(i32::MAX);
        self.exec(
            "UPDATE rota_queues SET rate_tat_us = $2, turn_group = $3, turn_taken = $4, \
             last_claim_at = $5 WHERE id = $1",
            &[&self.qid, &self.q_tat, &turn.group, &taken, &self.now.0],
        )
        .await?;
        let (names, tats): (Vec<&str>, Vec<i64>) = self
            .groups
            .iter()
            .filter(|(_, g)| g.tat_changed)
            .map(|(n, g)| (n.as_str(), g.tat))
            .unzip();
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
