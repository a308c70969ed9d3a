//! Dependencies between tasks, as one shard's writer keeps them (docs/workflows.md).
//!
//! A waiting task has a `task_waits` row per dependency that has not ended; the dependency's
//! shard has a `task_dependents` row saying whom to tell. When a task ends (its final outcome
//! is logged in the batch), the batch looks up its dependents before it commits: one in this
//! shard is released or cancelled in the same transaction; one in another shard gets a row in
//! `release_outbox`, which the store's relay carries there (`sharded/relay.rs`). Applying an
//! ending deletes the `task_waits` row first and does nothing if it was already gone, so the
//! relay may carry an ending twice (after a crash) and the dependent still moves once.

use super::ctx::{Ctx, Res};
use super::tasks::purge_at;
use super::{Batch, Remote};
use crate::rows::{errors_to_sql, state_from_sql};
use rota_core::workflow::{after_dependency, DependencyOutcome};
use rota_core::{events, TaskId, TaskState, Timestamp};
use rota_store::StoreResult;
use rusqlite::{params, OptionalExtension};

/// The dependency id of a hold: a workflow task waits on it until every shard holds its part.
pub const HOLD: TaskId = TaskId::NONE;

/// Whether this shard has ever had a dependent row: until then, no ending needs a look-up,
/// so tasks without dependencies pay nothing for them.
#[derive(Debug, Default)]
pub struct DepBook {
    pub known: bool,
}

impl DepBook {
    pub fn load(conn: &rusqlite::Connection) -> rusqlite::Result<Self> {
        let known = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM task_dependents) \
             OR EXISTS (SELECT 1 FROM task_waits)",
            [],
            |r| r.get(0),
        )?;
        Ok(DepBook { known })
    }
}

/// One ending bound for a dependent in another shard.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub task: TaskId,
    pub dep: TaskId,
    pub state: TaskState,
}

/// What a dependency's own shard answers when a dependent in another shard registers with
/// it: still live (the dependent will be told when it ends), or already ended (the state; a
/// task that is gone counts as cancelled).
pub type Registered = Option<TaskState>;

impl Ctx<'_> {
    /// The state of task `dep` if it is in this shard.
    pub fn local_state(&self, dep: TaskId) -> rusqlite::Result<Option<TaskState>> {
        let s: Option<String> = self
            .tx()
            .prepare_cached("SELECT state FROM tasks WHERE id = ?1")?
            .query_row([dep.as_i64()], |r| r.get(0))
            .optional()?;
        s.map(|s| state_from_sql(&s)).transpose()
    }

    /// Task `task` waits for `dep` (whose shard is told separately when it is another).
    pub fn add_wait(&mut self, task: TaskId, dep: TaskId) -> rusqlite::Result<()> {
        self.deps.known = true;
        self.tx()
            .prepare_cached("INSERT OR IGNORE INTO task_waits (task_id, dep_id) VALUES (?1, ?2)")?
            .execute(params![task.as_i64(), dep.as_i64()])?;
        Ok(())
    }

    /// `dep` (in this shard) tells `task` when it ends.
    pub fn add_dependent(&mut self, dep: TaskId, task: TaskId) -> rusqlite::Result<()> {
        self.deps.known = true;
        self.tx()
            .prepare_cached(
                "INSERT OR IGNORE INTO task_dependents (dep_id, task_id) VALUES (?1, ?2)",
            )?
            .execute(params![dep.as_i64(), task.as_i64()])?;
        Ok(())
    }

    /// Records what new task `id` waits for. Answers whether it waits at all, or the
    /// dependency that already ended in a way that cancels it (then nothing is recorded).
    /// A dependency in this shard is read here; one in another is as `remote` says (its shard
    /// is told by the caller after this commits).
    pub fn wait_for(
        &mut self,
        id: TaskId,
        t: &rota_core::NewTask,
        remote: &Remote,
    ) -> rusqlite::Result<(bool, Option<(TaskId, TaskState)>)> {
        let mut live_here = Vec::new();
        let mut live_there = Vec::new();
        for &dep in &t.depends_on {
            let ended = if remote.live.contains(&dep) {
                live_there.push(dep);
                continue;
            } else if let Some(&s) = remote.ended.get(&dep) {
                s
            } else {
                match self.local_state(dep)? {
                    Some(s) if s.is_final() => s,
                    Some(_) => {
                        live_here.push(dep);
                        continue;
                    }
                    // Gone since the caller looked: taken as cancelled.
                    None => TaskState::Cancelled,
                }
            };
            if after_dependency(ended, t.on_dependency_failure) == DependencyOutcome::Cancel {
                return Ok((false, Some((dep, ended))));
            }
        }
        for &dep in &live_here {
            self.add_wait(id, dep)?;
            self.add_dependent(dep, id)?;
        }
        for &dep in &live_there {
            self.add_wait(id, dep)?;
        }
        Ok((!live_here.is_empty() || !live_there.is_empty(), None))
    }

    /// Dependents in other shards register with their dependencies here: each pair is
    /// answered with the dependency's state if it already ended (or is gone), else it will tell
    /// the dependent when it does.
    pub fn register(&mut self, pairs: &[(TaskId, TaskId)]) -> Res<Vec<Registered>> {
        let mut out = Vec::with_capacity(pairs.len());
        for &(dep, task) in pairs {
            match self.local_state(dep)? {
                Some(s) if s.is_final() => out.push(Some(s)),
                Some(_) => {
                    self.add_dependent(dep, task)?;
                    out.push(None);
                }
                None => out.push(Some(TaskState::Cancelled)),
            }
        }
        Ok(Ok(out))
    }

    /// Applies endings of dependencies to dependents in this shard (carried by the relay, or
    /// answered by a registration).
    pub fn apply_endings(
        &mut self,
        b: &mut Batch,
        endings: &[(TaskId, TaskId, TaskState)],
    ) -> Res<()> {
        for &(task, dep, state) in endings {
            self.dependency_ended(b, task, dep, state)?;
        }
        Ok(Ok(()))
    }

    /// Dependency `dep` of `task` ended `state`: the wait goes, and the task is released when
    /// it was the last, or cancelled when the rule says so. Nothing happens when the wait was
    /// already gone (an ending applied twice).
    pub fn dependency_ended(
        &mut self,
        b: &mut Batch,
        task: TaskId,
        dep: TaskId,
        state: TaskState,
    ) -> rusqlite::Result<()> {
        let gone = self
            .tx()
            .prepare_cached("DELETE FROM task_waits WHERE task_id = ?1 AND dep_id = ?2")?
            .execute(params![task.as_i64(), dep.as_i64()])?;
        if gone == 0 {
            return Ok(());
        }
        if state == TaskState::Succeeded {
            // The common case, in as few statements as it takes: success satisfies whatever
            // the task's policy, so only whether it was the last wait matters.
            return self.satisfied(b, task);
        }
        let row: Option<(i64, String, Option<String>)> = self
            .tx()
            .prepare_cached("SELECT queue_id, state, dep_policy FROM tasks WHERE id = ?1")?
            .query_row([task.as_i64()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((qid, current, policy)) = row else {
            // The dependent was deleted: its other waits go with it.
            return self.drop_waits(task);
        };
        if state_from_sql(&current)? != TaskState::Waiting {
            return self.drop_waits(task);
        }
        let policy = match policy.as_deref() {
            Some("run") => rota_core::OnDependencyFailure::Run,
            _ => rota_core::OnDependencyFailure::Cancel,
        };
        match after_dependency(state, policy) {
            DependencyOutcome::Cancel => {
                self.drop_waits(task)?;
                self.cancel_waiting(b, qid, task, dep, state)
            }
            DependencyOutcome::Satisfied => {
                let more: bool = self
                    .tx()
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM task_waits WHERE task_id = ?1)")?
                    .query_row([task.as_i64()], |r| r.get(0))?;
                if more {
                    Ok(())
                } else {
                    self.release(b, qid, task)
                }
            }
        }
    }

    /// One of `task`'s dependencies succeeded (its wait is gone): the task is released if no
    /// wait is left and it still waits (one that was cancelled or deleted meanwhile is not).
    fn satisfied(&mut self, b: &mut Batch, task: TaskId) -> rusqlite::Result<()> {
        let more: bool = self
            .tx()
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM task_waits WHERE task_id = ?1)")?
            .query_row([task.as_i64()], |r| r.get(0))?;
        if more {
            return Ok(());
        }
        // Read, then updated by rowid (no RETURNING: SQLite buffers its rows in an ephemeral
        // table). The state is lifecycle::waiting_state's rule (scheduled until run_at).
        let row: Option<(i64, String, String, u32, i64)> = self
            .tx()
            .prepare_cached(
                "SELECT queue_id, state, kind, attempt, run_at FROM tasks WHERE id = ?1",
            )?
            .query_row([task.as_i64()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        let Some((qid, _, kind, attempt, run_at)) = row.filter(|r| r.1 == "waiting") else {
            return self.drop_waits(task);
        };
        let run_at = run_at.max(b.now.0);
        let to = rota_core::lifecycle::waiting_state(Timestamp(run_at), b.now);
        self.tx()
            .prepare_cached(
                "UPDATE tasks SET state = ?2, run_at = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![task.as_i64(), to.as_str(), run_at, b.now.0])?;
        b.delta.moved(qid, Some(TaskState::Waiting), Some(to));
        if to == TaskState::Ready {
            b.ready.insert(qid);
        } else {
            b.due(Timestamp(run_at));
        }
        let queue = self.queue_key(b, qid).map(|k| k.name).unwrap_or_default();
        let e = events::released_parts(
            task,
            (&queue, &kind),
            attempt,
            (to, Timestamp(run_at)),
            b.now,
        );
        b.log_other(qid, e);
        Ok(())
    }

    /// The waits of a task that no longer waits, but not its hold: a task of a workflow not yet
    /// committed stays found by its hold, so the part is dropped whole if the record never
    /// comes.
    fn drop_waits(&self, task: TaskId) -> rusqlite::Result<()> {
        self.tx()
            .prepare_cached("DELETE FROM task_waits WHERE task_id = ?1 AND dep_id <> 0")?
            .execute([task.as_i64()])?;
        Ok(())
    }

    /// A waiting task whose waits are all gone becomes ready (or scheduled).
    pub fn release(&mut self, b: &mut Batch, qid: i64, id: TaskId) -> rusqlite::Result<()> {
        let before = self.task_by_id(b, id.as_i64())?;
        let t = rota_core::workflow::released(&before, b.now);
        self.tx()
            .prepare_cached(
                "UPDATE tasks SET state = ?1, run_at = ?4, updated_at = ?2 WHERE id = ?3",
            )?
            .execute(params![t.state.as_str(), b.now.0, id.as_i64(), t.run_at.0])?;
        b.delta.moved(qid, Some(TaskState::Waiting), Some(t.state));
        if t.state == TaskState::Ready {
            b.ready.insert(qid);
        } else {
            b.due(t.run_at);
        }
        b.log(qid, events::released(&t), &t);
        Ok(())
    }

    /// A waiting task is cancelled because `dep` ended `state`; its own dependents hear of it
    /// as of any ending.
    pub fn cancel_waiting(
        &mut self,
        b: &mut Batch,
        qid: i64,
        id: TaskId,
        dep: TaskId,
        state: TaskState,
    ) -> rusqlite::Result<()> {
        let before = self.task_by_id(b, id.as_i64())?;
        let t = rota_core::workflow::cancelled_by_dependency(&before, dep, state, b.now);
        let purge = purge_at(b.now, self.settings_of(b, qid).retention_ms);
        self.tx()
            .prepare_cached(
                "UPDATE tasks SET state = 'cancelled', finished_at = ?1, updated_at = ?1, \
                 errors = ?2, purge_at = ?3 WHERE id = ?4",
            )?
            .execute(params![
                b.now.0,
                errors_to_sql(&t.errors),
                purge,
                id.as_i64()
            ])?;
        b.delta
            .moved(qid, Some(TaskState::Waiting), Some(TaskState::Cancelled));
        b.log(qid, events::dependency_cancelled(&t, b.now), &t);
        Ok(())
    }

    /// Before the batch commits: every task that ended in it tells its dependents, here at
    /// once (which may end more tasks, told in turn) or through the outbox.
    pub fn settle_endings(&mut self, b: &mut Batch) -> rusqlite::Result<()> {
        if !self.deps.known {
            b.ended.clear();
            return Ok(());
        }
        while let Some((dep, state)) = b.ended.pop() {
            // Read, then deleted by the same key: SQLite buffers a RETURNING clause's rows in
            // an ephemeral table, which costs more than the second look.
            let dependents: Vec<i64> = {
                let mut stmt = self
                    .tx()
                    .prepare_cached("SELECT task_id FROM task_dependents WHERE dep_id = ?1")?;
                let rows = stmt.query_map([dep.as_i64()], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            if dependents.is_empty() {
                continue;
            }
            self.tx()
                .prepare_cached("DELETE FROM task_dependents WHERE dep_id = ?1")?
                .execute([dep.as_i64()])?;
            for task in dependents {
                let task = TaskId::from_i64(task);
                let s = &self.shared;
                if crate::sharded::shard_of(task, s.legacy_below, s.shard_count) == s.shard {
                    self.dependency_ended(b, task, dep, state)?;
                } else {
                    self.tx()
                        .prepare_cached(
                            "INSERT INTO release_outbox (task_id, dep_id, dep_state) \
                             VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![task.as_i64(), dep.as_i64(), state.as_str()])?;
                    b.outbox = true;
                }
            }
        }
        Ok(())
    }

    /// The oldest endings waiting in the outbox.
    pub fn outbox(&self, limit: usize) -> Res<Vec<OutboxRow>> {
        let mut stmt = self.tx().prepare_cached(
            "SELECT id, task_id, dep_id, dep_state FROM release_outbox ORDER BY id LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, task, dep, state) = row?;
            out.push(OutboxRow {
                id,
                task: TaskId::from_i64(task),
                dep: TaskId::from_i64(dep),
                state: state_from_sql(&state)?,
            });
        }
        Ok(Ok(out))
    }

    /// Endings the relay has applied in their dependents' shards.
    pub fn drop_outbox(&self, ids: &[i64]) -> Res<()> {
        let mut stmt = self
            .tx()
            .prepare_cached("DELETE FROM release_outbox WHERE id = ?1")?;
        for id in ids {
            stmt.execute([id])?;
        }
        Ok(Ok(()))
    }
}

/// Whether `b` logged a task's ending its dependents must hear of: its final outcome, or its
/// deletion before it ended (which they take as a cancel).
pub fn ending(event: rota_core::events::EventType, state: TaskState) -> Option<TaskState> {
    use rota_core::events::EventType as E;
    match event {
        E::Succeeded => Some(TaskState::Succeeded),
        E::Dead => Some(TaskState::Dead),
        E::Cancelled => Some(TaskState::Cancelled),
        E::Deleted if !state.is_final() => Some(TaskState::Cancelled),
        E::LeaseExpired if state == TaskState::Dead => None, // its `task.dead` follows
        _ => None,
    }
}

/// The result type of [`Ctx::register`]'s op.
pub type RegisterResult = StoreResult<Vec<Registered>>;
