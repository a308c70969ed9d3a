//! Claims under flow control: a queue's concurrency and rate, its groups' limits, and the
//! groups' turns (docs/flow-control.md). A queue lives in one shard, so its writer alone
//! claims from it and every count it reads inside the batch's transaction is exact: the
//! queue's running tasks from the catalog plus this batch's changes, a group's from its
//! partial index (this batch's claims included, since they are rows of the same transaction).
//! Rate state (GCRA's TAT) is stored with the queue and the group in the same transaction.
//! The walk itself, the rules, is rota_core::flow_walk's, shared with PostgreSQL; this file
//! gives it its reads.
//!
//! What the writer keeps in memory between batches is only what may be lost: whether a queue
//! ever had grouped tasks (read again at open) and where its round-robin stands.

use super::ctx::{Ctx, Res};
use super::Batch;
use crate::rows::{task_from_row, TaskRow, TASK_COLUMNS};
use rota_core::flow::{GroupInfo, GroupSettings, Turn};
use rota_core::flow_walk::{ready_now, FlowReads, Walk};
use rota_core::{QueueKey, QueueSettings, Task, TaskState, Timestamp};
use rota_store::{ClaimRequest, Claimed};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{HashMap, HashSet};

// The walk's reads, each a probe of one partial index (the test below holds them to it: with
// no statistics SQLite once answered "any ungrouped task ready?" by scanning every ready task
// of the queue through tasks_queue_state, a million rows per probe behind a big group). The
// ORDER BY names the index's order, so the planner takes the index that has it.
const UNGROUPED_READY: &str = "SELECT 1 FROM tasks WHERE queue_id = ?1 AND state = 'ready' \
     AND grp IS NULL ORDER BY priority DESC, id LIMIT 1";
const GROUP_AFTER: &str = "SELECT grp FROM tasks WHERE queue_id = ?1 AND state = 'ready' \
     AND grp IS NOT NULL AND grp > ?2 ORDER BY grp LIMIT 1";
const GROUP_HAS_READY: &str = "SELECT 1 FROM tasks WHERE queue_id = ?1 AND state = 'ready' \
     AND grp = ?2 LIMIT 1";
const GROUP_RUNNING: &str = "SELECT count(*) FROM tasks WHERE queue_id = ?1 AND grp = ?2 \
     AND state = 'running'";

/// Per queue: whether it may have grouped tasks, and its turn.
#[derive(Debug, Default)]
pub struct FlowBook {
    queues: HashMap<i64, QueueFlow>,
    /// Set when the queues with groups could not be read at open: every queue is then claimed
    /// as if it had groups (slower, the same rules).
    all_grouped: bool,
}

#[derive(Debug, Default)]
struct QueueFlow {
    grouped: bool,
    turn: Turn,
}

impl FlowBook {
    /// The queues of this file that have grouped tasks (one index probe per queue).
    pub fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM queues")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut probe = conn.prepare(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE queue_id = ?1 AND grp IS NOT NULL)",
        )?;
        let mut book = FlowBook::default();
        for id in ids {
            if probe.query_row([id], |r| r.get::<_, bool>(0))? {
                book.mark_grouped(id);
            }
        }
        Ok(book)
    }
    pub fn all_grouped() -> Self {
        FlowBook {
            all_grouped: true,
            ..Default::default()
        }
    }
    pub fn grouped(&self, qid: i64) -> bool {
        self.all_grouped || self.queues.get(&qid).is_some_and(|q| q.grouped)
    }
    pub fn mark_grouped(&mut self, qid: i64) {
        self.queues.entry(qid).or_default().grouped = true;
    }
    pub fn forget(&mut self, qid: i64) {
        self.queues.remove(&qid);
    }
}

/// The walk's reads and leases, on the writer's transaction: a task taken is leased at once,
/// so the next read no longer sees it ready.
struct Reads<'c, 'a> {
    ctx: &'c Ctx<'a>,
    b: &'c mut Batch,
    key: &'c QueueKey,
    qid: i64,
    req: &'c ClaimRequest,
    expires: Timestamp,
    out: Vec<Task>,
    /// No ungrouped task is ready: nothing adds one while the claim runs (the writer is the
    /// shard's only writer), so the walk's every turn round the ring need not ask again.
    no_ungrouped: bool,
}

impl FlowReads for Reads<'_, '_> {
    type Error = rusqlite::Error;
    async fn group_row(&mut self, group: &str) -> rusqlite::Result<(Option<GroupSettings>, i64)> {
        self.ctx.group_row(self.qid, group)
    }
    async fn group_running(&mut self, group: &str) -> rusqlite::Result<u64> {
        self.ctx
            .tx()
            .prepare_cached(GROUP_RUNNING)?
            .query_row(params![self.qid, group], |r| r.get(0))
    }
    async fn has_ready(&mut self, position: &str) -> rusqlite::Result<bool> {
        if position.is_empty() && self.no_ungrouped {
            return Ok(false);
        }
        let mut stmt;
        let mut rows = if position.is_empty() {
            stmt = self.ctx.tx().prepare_cached(UNGROUPED_READY)?;
            stmt.query(params![self.qid])?
        } else {
            stmt = self.ctx.tx().prepare_cached(GROUP_HAS_READY)?;
            stmt.query(params![self.qid, position])?
        };
        let ready = rows.next()?.is_some();
        if position.is_empty() && !ready {
            self.no_ungrouped = true;
        }
        Ok(ready)
    }
    async fn group_after(&mut self, after: &str) -> rusqlite::Result<Option<String>> {
        self.ctx
            .tx()
            .prepare_cached(GROUP_AFTER)?
            .query_row(params![self.qid, after], |r| r.get(0))
            .optional()
    }
    async fn take(&mut self, position: &str, n: usize) -> rusqlite::Result<usize> {
        // Many at once (a queue with limits and no groups): one read of the first `n`, as the
        // claim of a queue without limits does, instead of a read per task.
        let rows = if n > 1 && self.req.kinds.is_empty() {
            self.ctx.first_ready(self.qid, position, n)?
        } else {
            Vec::new()
        };
        let mut rows = rows.into_iter();
        let mut taken = 0;
        while taken < n {
            let row = match rows.next() {
                Some(row) => row,
                None if n > 1 && self.req.kinds.is_empty() => break,
                None => match self.ctx.next_ready(self.qid, position, &self.req.kinds)? {
                    Some(row) => row,
                    None => break,
                },
            };
            let task = self.ctx.lease_row(
                self.b,
                self.key,
                self.qid,
                row,
                &self.req.worker,
                self.expires,
            )?;
            self.out.push(task);
            taken += 1;
        }
        Ok(taken)
    }
}

impl Ctx<'_> {
    /// Sets one group's own settings (the defaults clear them); wakes the queue's claims, since
    /// a group resumed or given more room may have tasks to start.
    pub fn put_group(
        &mut self,
        b: &mut Batch,
        key: &QueueKey,
        name: &str,
        settings: &GroupSettings,
    ) -> Res<GroupInfo> {
        let (qid, queue) = match self.lookup_or_create(b, key)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        let doc = (!settings.is_default())
            .then(|| serde_json::to_string(settings).expect("settings serialize"));
        self.tx()
            .prepare_cached(
                "INSERT INTO task_groups (queue_id, name, settings) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (queue_id, name) DO UPDATE SET settings = excluded.settings",
            )?
            .execute(params![qid, name, doc])?;
        b.ready.insert(qid);
        Ok(Ok(crate::groups::group_info(
            self.tx(),
            qid,
            name,
            &queue,
            b.now,
        )?))
    }

    /// The queue's running tasks as this batch sees them.
    fn running(&self, b: &Batch, qid: i64) -> u64 {
        let committed = self
            .shared
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_id(qid)
            .map_or(0, |q| q.counts.running);
        let delta = b
            .delta
            .counts
            .get(&qid)
            .map_or(0, |c| c[TaskState::Running.index()]);
        committed.saturating_add_signed(delta)
    }

    /// Leases tasks of a queue that has limits or groups; answers them in the order taken
    /// and, when a rate held a ready task back, when the next may start.
    pub(super) fn claim_flow(
        &mut self,
        b: &mut Batch,
        key: &QueueKey,
        qid: i64,
        settings: &QueueSettings,
        req: &ClaimRequest,
    ) -> rusqlite::Result<Claimed> {
        let mut room = req.max;
        if let Some(c) = settings.concurrency {
            let free = u64::from(c).saturating_sub(self.running(b, qid));
            room = room.min(usize::try_from(free).unwrap_or(usize::MAX));
        }
        if room == 0 {
            return Ok(Claimed::default());
        }
        let expires = b
            .now
            .plus_ms(req.lease_ms.unwrap_or(settings.lease_ms) as i64);
        let q_tat: i64 = match settings.rate {
            Some(_) => {
                self.tx()
                    .query_row("SELECT rate_tat_us FROM queues WHERE id = ?1", [qid], |r| {
                        r.get(0)
                    })?
            }
            None => 0,
        };
        let grouped = self.flow.grouped(qid);
        let turn = match self.flow.queues.get(&qid) {
            Some(q) if grouped => q.turn.clone(),
            _ => Turn::default(),
        };
        let now = b.now;
        let mut walk = Walk::new(settings, now, grouped, q_tat);
        let mut reads = Reads {
            ctx: self,
            b,
            key,
            qid,
            req,
            expires,
            out: Vec::new(),
            no_ungrouped: false,
        };
        let walked = ready_now(walk.run(&mut reads, room, turn))?;
        let out = reads.out;
        if grouped {
            self.flow.queues.entry(qid).or_default().turn = walked.turn;
        }
        if walk.q_tat != q_tat {
            self.tx()
                .prepare_cached("UPDATE queues SET rate_tat_us = ?1 WHERE id = ?2")?
                .execute(params![walk.q_tat, qid])?;
        }
        let mut save = self.tx().prepare_cached(
            "INSERT INTO task_groups (queue_id, name, rate_tat_us) VALUES (?1, ?2, ?3) \
             ON CONFLICT (queue_id, name) DO UPDATE SET rate_tat_us = excluded.rate_tat_us",
        )?;
        for (name, tat) in walk.moved_tats() {
            save.execute(params![qid, name, tat])?;
        }
        if !out.is_empty() {
            b.due(expires);
        }
        Ok(Claimed {
            tasks: out,
            next_start_at: walked.hold,
        })
    }

    /// A group's own settings and rate state (defaults and none when it has no row).
    pub(super) fn group_row(
        &self,
        qid: i64,
        group: &str,
    ) -> rusqlite::Result<(Option<GroupSettings>, i64)> {
        let row: Option<(Option<String>, i64)> = self
            .tx()
            .prepare_cached(
                "SELECT settings, rate_tat_us FROM task_groups WHERE queue_id = ?1 AND name = ?2",
            )?
            .query_row(params![qid, group], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((settings, tat)) = row else {
            return Ok((None, 0));
        };
        Ok((settings.and_then(|s| serde_json::from_str(&s).ok()), tat))
    }

    /// The position's first `n` ready tasks by priority then age, read in one statement (no
    /// bound LIMIT: see the plain claim in tasks.rs).
    fn first_ready(&self, qid: i64, position: &str, n: usize) -> rusqlite::Result<Vec<TaskRow>> {
        let select = |filter: &str| {
            format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE queue_id = ?1 AND state = 'ready' \
                 AND {filter} ORDER BY priority DESC, id"
            )
        };
        let tx = self.tx();
        let mut stmt;
        let rows = if position.is_empty() {
            stmt = tx.prepare_cached(&select("grp IS NULL"))?;
            stmt.query_map(params![qid], task_from_row)?
        } else {
            stmt = tx.prepare_cached(&select("grp = ?2"))?;
            stmt.query_map(params![qid, position], task_from_row)?
        };
        rows.take(n).collect()
    }

    /// The position's first ready task by priority then age, of the kinds asked.
    fn next_ready(
        &self,
        qid: i64,
        position: &str,
        kinds: &[String],
    ) -> rusqlite::Result<Option<TaskRow>> {
        let tx = self.tx();
        let one = |kind: Option<&String>| -> rusqlite::Result<Option<TaskRow>> {
            let select = |filter: &str| {
                format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE queue_id = ?1 AND state = 'ready' \
                     AND {filter} ORDER BY priority DESC, id LIMIT 1"
                )
            };
            let mut stmt;
            let mut rows = match (position.is_empty(), kind) {
                (true, None) => {
                    stmt = tx.prepare_cached(&select("grp IS NULL"))?;
                    stmt.query(params![qid])?
                }
                (true, Some(k)) => {
                    stmt = tx.prepare_cached(&select("grp IS NULL AND kind = ?2"))?;
                    stmt.query(params![qid, k])?
                }
                (false, None) => {
                    stmt = tx.prepare_cached(&select("grp = ?2"))?;
                    stmt.query(params![qid, position])?
                }
                (false, Some(k)) => {
                    stmt = tx.prepare_cached(&select("grp = ?2 AND kind = ?3"))?;
                    stmt.query(params![qid, position, k])?
                }
            };
            rows.next()?.map(task_from_row).transpose()
        };
        if kinds.is_empty() {
            return one(None);
        }
        let mut best: Option<TaskRow> = None;
        for k in kinds.iter().collect::<HashSet<_>>() {
            if let Some(r) = one(Some(k))? {
                let key = |r: &TaskRow| (std::cmp::Reverse(r.task.priority), r.task.id);
                if best.as_ref().is_none_or(|b| key(&r) < key(b)) {
                    best = Some(r);
                }
            }
        }
        Ok(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each read of the walk probes the partial index made for it, whatever the data: a plan
    /// that scans the queue's ready tasks costs a claim behind a big group minutes.
    #[test]
    fn the_walks_reads_use_their_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let next = |filter: &str| {
            format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE queue_id = ?1 AND state = 'ready' \
                 AND {filter} ORDER BY priority DESC, id LIMIT 1"
            )
        };
        let cases = [
            (UNGROUPED_READY.to_owned(), "tasks_ready "),
            (GROUP_AFTER.to_owned(), "tasks_ready "),
            (GROUP_HAS_READY.to_owned(), "tasks_ready "),
            (GROUP_RUNNING.to_owned(), "tasks_running_group "),
            (next("grp IS NULL"), "tasks_ready "),
            (next("grp IS NULL AND kind = ?2"), "tasks_ready_kind "),
            (next("grp = ?2"), "tasks_ready "),
            (next("grp = ?2 AND kind = ?3"), "tasks_ready "),
        ];
        for (sql, index) in cases {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("; ");
            assert!(
                plan.contains(&format!("USING INDEX {index}"))
                    || plan.contains(&format!("USING COVERING INDEX {index}")),
                "{sql}\n  plan: {plan}\n  expected index {index}"
            );
            assert!(!plan.contains("SCAN tasks"), "{sql}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
    }
}
