//! Enqueue. A batch is one INSERT from arrays inside a transaction that first takes the
//! tenant's lock (shared; a tenant's deletion takes it exclusively, so it waits for enqueues
//! in flight and later ones find the queue gone). The four statements (BEGIN, the lock, the
//! INSERT, COMMIT) are sent together and answered in one round trip: the INSERT finds the
//! queue by name itself, so nothing it needs comes from an earlier answer. Only a queue's
//! first enqueue takes a second trip, to create the queue.

use crate::events::{Run, CURSOR, RUN_COLUMNS};
use crate::rows::{
    dep_policy_to_sql, ids_to_sql, state_to_sql, tags_to_sql, task_from_row, TASK_COLUMNS,
};
use crate::tasks::{lock_tenant, LOCK_SHARED};
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rota_core::lifecycle;
use rota_core::{NewTask, OnDuplicate, QueueKey, Task, TaskId, TaskState, Timestamp};
use rota_store::{Enqueued, StoreError, StoreResult};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use tokio_postgres::types::ToSql;

/// The INSERT: the queue by tenant and name, its default `max_attempts` for rows that give
/// none, and the new tasks' events (`task.enqueued` of the ready ones in one run, after the
/// others' rows); answers how many rows are ready and scheduled, for the wake-ups sent after
/// commit. Tasks without a unique key are inserted plainly: `ON CONFLICT` inserts each row
/// speculatively (a lock and one more WAL record per row, even when the arbiter index does
/// not cover it), which cost a quarter of the statement's time (issue 28). The first grouped
/// task of a queue marks it `grouped` (its claims then take the groups' turns, see flow.rs);
/// later ones write nothing more.
pub(crate) static INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH q AS (SELECT id, max_attempts FROM rota_queues \
       WHERE tenant = $1 AND name = $2), \
     u AS (SELECT * FROM unnest($4::bigint[], $5::text[], $6::text[], $7::int[], \
       $8::smallint[], $9::bigint[], $10::int[], $11::text[], $12::text[], $13::text[], \
       $14::text[], $15::text[], $16::smallint[], $17::bigint[], $18::bool[], $19::text[], \
       $20::text[]) \
       AS u(id, kind, payload, priority, state, run_at, max_attempts, unique_key, tags, \
         callback_url, grp, depends_on, dep_policy, workflow, has_dependents, traceparent, \
         tracestate)), \
     plain AS ({insert} WHERE u.unique_key IS NULL RETURNING id, state, kind, run_at, grp), \
     keyed AS ({insert} WHERE u.unique_key IS NOT NULL \
       ON CONFLICT (queue_id, unique_key) \
         WHERE unique_key IS NOT NULL AND state IN (0, 1, 2, 6) DO NOTHING \
       RETURNING id, state, kind, run_at, grp), \
     ins AS (SELECT * FROM plain UNION ALL SELECT * FROM keyed), \
     g AS (UPDATE rota_queues SET grouped = true WHERE id = (SELECT id FROM q) AND NOT grouped \
       AND EXISTS (SELECT 1 FROM ins WHERE grp IS NOT NULL)), \
     ev AS (INSERT INTO rota_events ({RUN_COLUMNS}) \
     SELECT $1, {CURSOR}$21 + row_number() OVER (ORDER BY id)), \
       $3, $2, kind, id, 0, CASE WHEN state = 6 THEN 'task.waiting' ELSE 'task.enqueued' END, \
       state, NULL, CASE WHEN state = 0 THEN run_at END, NULL, NULL, NULL, NULL \
     FROM ins WHERE state <> 1 \
     UNION ALL {run}) \
     SELECT (SELECT id FROM q), (SELECT max_attempts FROM q), array(SELECT id FROM ins), \
       (SELECT count(*) FROM ins WHERE state = 1), (SELECT count(*) FROM ins WHERE state = 0)",
        insert = "INSERT INTO rota_tasks (id, queue_id, kind, payload, priority, state, \
           run_at, attempt, max_attempts, created_at, updated_at, unique_key, tags, \
           callback_url, grp, depends_on, dep_policy, workflow, has_dependents, traceparent, \
           tracestate) \
         SELECT u.id, q.id, u.kind, u.payload, u.priority, u.state, u.run_at, 0, \
           COALESCE(u.max_attempts, q.max_attempts), $3, $3, u.unique_key, u.tags, \
           u.callback_url, u.grp, u.depends_on, u.dep_policy, u.workflow, u.has_dependents, \
           u.traceparent, u.tracestate FROM q, u",
        run = Run {
            tasks: "(SELECT id, kind, 0 AS attempt FROM ins WHERE state = 1)",
            order: "s.id",
            place: "$21 + (SELECT count(*) FROM ins WHERE state <> 1) + 1",
            per_queue: false,
            tenant: "$1",
            at: "$3",
            queue: "$2",
            ty: "'task.enqueued'",
            state: "1::smallint",
            worker: "NULL::text",
            due: "NULL::bigint",
        }
        .select()
    )
});

/// A debounce (`on_duplicate: replace`): the holder `$13`, if it still waits to run (scheduled
/// or ready), takes the new task's fields (rota_core::lifecycle::replaced: `max_attempts` of
/// NULL is the queue's, `grp` of NULL keeps the holder's), marks the queue `grouped` if it
/// brings the first group, and logs `task.replaced`; answers the row as it is now, or nothing
/// when the holder no longer waits.
static REPLACE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH q AS (SELECT id, name, max_attempts FROM rota_queues \
       WHERE tenant = $1 AND name = $2), \
     up AS (UPDATE rota_tasks t SET kind = $4, payload = $5, priority = $6, state = $7, \
       run_at = $8, max_attempts = COALESCE($9, q.max_attempts), updated_at = $3, tags = $10, \
       callback_url = $11, grp = COALESCE($12, t.grp), traceparent = $14, tracestate = $15 \
     FROM q WHERE t.id = $13 AND t.queue_id = q.id AND t.state IN (0, 1) \
     RETURNING {TASK_COLUMNS}), \
     g AS (UPDATE rota_queues SET grouped = true WHERE id = (SELECT id FROM q) AND NOT grouped \
       AND EXISTS (SELECT 1 FROM up WHERE grp IS NOT NULL)), \
     ev AS (INSERT INTO rota_events (tenant, cursor, at, queue, kind, task_id, attempt, type, \
       state, due) \
     SELECT $1, {CURSOR}1), $3, $2, kind, id, attempt, 'task.replaced', state, \
       CASE WHEN state = 0 THEN run_at END \
     FROM up) \
     SELECT * FROM up"
    )
});

/// What one INSERT round did.
struct Inserted {
    queue_id: i64,
    default_max_attempts: u32,
    ids: HashSet<i64>,
}

impl PostgresStore {
    pub(crate) async fn enqueue_tasks(
        &self,
        key: &QueueKey,
        tasks: Vec<NewTask>,
    ) -> StoreResult<Vec<Enqueued>> {
        let now = self.now();
        // Within one request a repeated unique key is the first task's duplicate.
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut same_as: Vec<Option<usize>> = Vec::with_capacity(tasks.len());
        for (i, t) in tasks.iter().enumerate() {
            let earlier = t.unique_key.as_deref().and_then(|k| first.get(k).copied());
            if earlier.is_none() {
                if let Some(k) = t.unique_key.as_deref() {
                    first.insert(k, i);
                }
            }
            same_as.push(earlier);
        }
        let fresh: Vec<usize> = (0..tasks.len()).filter(|i| same_as[*i].is_none()).collect();
        let ids = self.new_ids(fresh.len(), now).await?;
        let mut client = self.task_conn().await?;
        let mut out: Vec<Option<Enqueued>> = vec![None; tasks.len()];
        let mut pending: Vec<(usize, TaskId)> = fresh.into_iter().zip(ids).collect();
        for _round in 0..5 {
            let mut cols = EnqueueColumns::default();
            for (i, id) in &pending {
                cols.push(*id, &tasks[*i], now);
            }
            let Some(done) = self.insert(&client, key, &cols, now).await? else {
                // The queue's first enqueue (or its tenant was deleted meanwhile, which
                // creating it finds out).
                self.create_queue(&mut client, key, now).await?;
                continue;
            };
            let mut conflicted = Vec::new();
            for (n, (i, id)) in pending.iter().enumerate() {
                if done.ids.contains(&id.as_i64()) {
                    let task = cols.task(n, &tasks[*i], key, now, done.default_max_attempts);
                    out[*i] = Some(Enqueued::created(task));
                } else {
                    conflicted.push((*i, *id));
                }
            }
            pending = self
                .duplicates(&client, done.queue_id, &tasks, conflicted, &mut out)
                .await?;
            if pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            return Err(StoreError::Unavailable(
                "the queue or its unique keys kept changing under this enqueue; try again".into(),
            ));
        }
        // The entries take effect in order: each key's latest task, for the entries after it
        // (a repeated key, or a replacement of the holder found above).
        let mut result = Vec::with_capacity(tasks.len());
        let mut latest: HashMap<&str, Task> = HashMap::new();
        for (i, t) in tasks.iter().enumerate() {
            let decided = out[i].take();
            let Some(k) = t.unique_key.as_deref() else {
                result.push(decided.expect("a task without a key is decided"));
                continue;
            };
            let e = match decided {
                Some(e) if !e.duplicate => e,
                // A holder found by the INSERT, or this request's own task of the key.
                other => {
                    let holder = match other {
                        Some(e) => e.task,
                        None => latest
                            .get(k)
                            .cloned()
                            .expect("the first of a key is decided"),
                    };
                    self.on_duplicate(&client, key, holder, t, now).await?
                }
            };
            latest.insert(k, e.task.clone());
            result.push(e);
        }
        Ok(result)
    }

    /// A task whose key `holder` holds: kept, or replaced when `on_duplicate: replace` finds
    /// the holder still waiting. A holder that stopped waiting since it was read is read again
    /// and kept if live; one that finished frees the key, and the task is enqueued anew.
    async fn on_duplicate(
        &self,
        client: &deadpool_postgres::Object,
        key: &QueueKey,
        holder: Task,
        t: &NewTask,
        now: Timestamp,
    ) -> StoreResult<Enqueued> {
        if t.on_duplicate != OnDuplicate::Replace || !rota_core::replaceable(holder.state) {
            return Ok(Enqueued::kept(holder));
        }
        if let Some(task) = self.replace(client, key, holder.id, t, now).await? {
            return Ok(Enqueued::replaced(task));
        }
        let now_held = self.get_task(&key.tenant, holder.id).await;
        match now_held {
            Ok(h) if !h.state.is_final() => Ok(Enqueued::kept(h)),
            Ok(_) | Err(StoreError::TaskNotFound(_)) => {
                let again = Box::pin(self.enqueue_tasks(key, vec![t.clone()])).await?;
                Ok(again.into_iter().next().expect("one task in, one out"))
            }
            Err(e) => Err(e),
        }
    }

    /// Runs [`REPLACE`] on `holder` under the tenant's lock (as an enqueue takes it, so a
    /// tenant's deletion never misses the event it logs): the task as replaced, or `None` when
    /// the holder no longer waits.
    async fn replace(
        &self,
        client: &deadpool_postgres::Object,
        key: &QueueKey,
        holder: TaskId,
        t: &NewTask,
        now: Timestamp,
    ) -> StoreResult<Option<Task>> {
        let (lock, replace) = tokio::join!(
            client.prepare_cached(LOCK_SHARED),
            client.prepare_cached(&REPLACE)
        );
        let (lock, replace) = (lock.map_err(db)?, replace.map_err(db)?);
        let run_at = t.run_at.unwrap_or(now);
        let state = lifecycle::waiting_state(run_at, now);
        let max_attempts = t.max_attempts.map(|m| m.min(i32::MAX as u32) as i32);
        let tags = tags_to_sql(&t.tags);
        let lock_params: [&(dyn ToSql + Sync); 1] = [&key.tenant];
        let params: [&(dyn ToSql + Sync); 15] = [
            &key.tenant,
            &key.name,
            &now.0,
            &t.kind,
            &t.payload.get(),
            &t.priority,
            &state_to_sql(state),
            &run_at.0,
            &max_attempts,
            &tags,
            &t.callback_url,
            &t.group,
            &holder.as_i64(),
            &t.traceparent,
            &t.tracestate,
        ];
        let (begin, locked, rows, commit) = tokio::join!(
            client.batch_execute("BEGIN"),
            client.execute(&lock, &lock_params),
            client.query(&replace, &params),
            client.batch_execute("COMMIT"),
        );
        begin.map_err(db)?;
        locked.map_err(db)?;
        let rows = rows.map_err(db)?;
        commit.map_err(db)?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let (_, task) = task_from_row(row)?;
        self.announce_events([key.tenant.as_str()]);
        if task.state == TaskState::Ready {
            self.shared.signals.notify(key);
            self.shared.notifier.ready(&key.tenant, &key.name);
        } else {
            self.shared.notifier.due();
            self.due_at(task.run_at);
        }
        Ok(Some(task))
    }

    /// BEGIN, the tenant's lock, the INSERT and COMMIT, sent together. `None` when the queue
    /// does not exist (nothing was written). A failed statement aborts the transaction, and
    /// the COMMIT after it then rolls back, so the connection is left outside a transaction
    /// whatever happened.
    async fn insert(
        &self,
        client: &deadpool_postgres::Object,
        key: &QueueKey,
        cols: &EnqueueColumns,
        now: Timestamp,
    ) -> StoreResult<Option<Inserted>> {
        let (lock, insert) = tokio::join!(
            client.prepare_cached(LOCK_SHARED),
            client.prepare_cached(&INSERT)
        );
        let (lock, insert) = (lock.map_err(db)?, insert.map_err(db)?);
        // Each request is written when its future is first polled, and `join!` polls them in
        // order: one write, one round trip.
        let lock_params: [&(dyn ToSql + Sync); 1] = [&key.tenant];
        let insert_params = cols.params(key, &now.0, &0);
        let (begin, locked, row, commit) = tokio::join!(
            client.batch_execute("BEGIN"),
            client.execute(&lock, &lock_params),
            client.query_one(&insert, &insert_params),
            client.batch_execute("COMMIT"),
        );
        begin.map_err(db)?;
        locked.map_err(db)?;
        let row = row.map_err(db)?;
        commit.map_err(db)?;
        let Some(queue_id) = row.get::<_, Option<i64>>(0) else {
            return Ok(None);
        };
        let (ready, due): (i64, i64) = (row.get(3), row.get(4));
        if ready + due > 0 {
            self.announce_events([key.tenant.as_str()]);
        }
        if ready > 0 {
            self.shared.signals.notify(key);
            self.shared.notifier.ready(&key.tenant, &key.name);
        }
        if due > 0 {
            self.shared.notifier.due();
            if let Some(at) = cols.run_at.iter().min() {
                self.due_at(Timestamp(*at));
            }
        }
        Ok(Some(Inserted {
            queue_id,
            default_max_attempts: row.get::<_, i32>(1).max(0) as u32,
            ids: row.get::<_, Vec<i64>>(2).into_iter().collect(),
        }))
    }

    /// Enqueues `tasks` inside the caller's transaction (which holds the tenant's lock),
    /// creating the queue if missing: the ids of the tasks, inserted or the live holders of
    /// their unique keys (`None` when a holder finished meanwhile). The caller announces the
    /// enqueue after commit ([`Self::after_enqueue`]).
    pub(crate) async fn enqueue_in(
        &self,
        tx: &impl GenericClient,
        key: &QueueKey,
        tasks: &[NewTask],
        now: Timestamp,
    ) -> StoreResult<Vec<Option<TaskId>>> {
        let (queue_id, _) = self.queue_for_write(tx, key, now).await?;
        let ids = self.new_ids(tasks.len(), now).await?;
        let mut cols = EnqueueColumns::default();
        for (t, id) in tasks.iter().zip(&ids) {
            cols.push(*id, t, now);
        }
        let row = tx
            .query_one(INSERT.as_str(), &cols.params(key, &now.0, &0))
            .await
            .map_err(db)?;
        let inserted: HashSet<i64> = row.get::<_, Vec<i64>>(2).into_iter().collect();
        let keys: Vec<&str> = tasks
            .iter()
            .zip(&ids)
            .filter(|(_, id)| !inserted.contains(&id.as_i64()))
            .filter_map(|(t, _)| t.unique_key.as_deref())
            .collect();
        let holders: HashMap<String, i64> = tx
            .query(
                "SELECT unique_key, id FROM rota_tasks WHERE queue_id = $1 \
                 AND unique_key = ANY($2) AND state IN (0, 1, 2, 6)",
                &[&queue_id, &keys],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(tasks
            .iter()
            .zip(&ids)
            .map(|(t, id)| {
                if inserted.contains(&id.as_i64()) {
                    Some(*id)
                } else {
                    let k = t.unique_key.as_deref()?;
                    holders.get(k).map(|h| TaskId::from_i64(*h))
                }
            })
            .collect())
    }

    /// Wakes what an enqueue into `key` committed may concern: event readers, claims waiting
    /// on the queue, maintenance for scheduled tasks.
    pub(crate) fn after_enqueue(&self, key: &QueueKey, tasks: &[NewTask], now: Timestamp) {
        self.announce_events([key.tenant.as_str()]);
        self.shared.signals.notify(key);
        self.shared.notifier.ready(&key.tenant, &key.name);
        if let Some(at) = tasks
            .iter()
            .filter_map(|t| t.run_at)
            .filter(|t| *t > now)
            .min()
        {
            self.shared.notifier.due();
            self.due_at(at);
        }
    }

    /// Creates the queue (default settings) under the tenant's lock; refuses a tenant that
    /// does not exist and one at its queue limit.
    async fn create_queue(
        &self,
        client: &mut deadpool_postgres::Object,
        key: &QueueKey,
        now: Timestamp,
    ) -> StoreResult<()> {
        let tx = client.transaction().await.map_err(db)?;
        lock_tenant(&tx, &key.tenant, false).await?;
        self.queue_for_write(&tx, key, now).await?;
        tx.commit().await.map_err(db)
    }

    /// Each conflicted task's live holder of its unique key, returned as the duplicate; the
    /// tasks whose holder finished in the meantime (freeing the key) are returned to insert
    /// again.
    async fn duplicates(
        &self,
        client: &deadpool_postgres::Object,
        queue_id: i64,
        tasks: &[NewTask],
        conflicted: Vec<(usize, TaskId)>,
        out: &mut [Option<Enqueued>],
    ) -> StoreResult<Vec<(usize, TaskId)>> {
        if conflicted.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = conflicted
            .iter()
            .filter_map(|(i, _)| tasks[*i].unique_key.as_deref())
            .collect();
        let holders = client
            .query(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM rota_tasks t JOIN rota_queues q ON q.id = t.queue_id \
                     WHERE t.queue_id = $1 AND t.unique_key = ANY($2) AND t.state IN (0, 1, 2, 6)"
                ),
                &[&queue_id, &keys],
            )
            .await
            .map_err(db)?;
        let mut by_key: HashMap<String, Task> = HashMap::new();
        for h in &holders {
            let (_, t) = task_from_row(h)?;
            if let Some(k) = t.unique_key.clone() {
                by_key.insert(k, t);
            }
        }
        let mut again = Vec::new();
        for (i, id) in conflicted {
            let k = tasks[i].unique_key.as_deref().unwrap_or_default();
            match by_key.get(k) {
                Some(t) => out[i] = Some(Enqueued::kept(t.clone())),
                None => again.push((i, id)),
            }
        }
        Ok(again)
    }
}

/// The columns of an enqueue's INSERT, as arrays.
#[derive(Default)]
pub(crate) struct EnqueueColumns {
    id: Vec<i64>,
    kind: Vec<String>,
    payload: Vec<String>,
    priority: Vec<i32>,
    state: Vec<i16>,
    run_at: Vec<i64>,
    /// `None`: the queue's default.
    max_attempts: Vec<Option<i32>>,
    unique_key: Vec<Option<String>>,
    tags: Vec<Option<String>>,
    callback_url: Vec<Option<String>>,
    grp: Vec<Option<String>>,
    depends_on: Vec<Option<String>>,
    dep_policy: Vec<Option<i16>>,
    workflow: Vec<Option<i64>>,
    has_dependents: Vec<bool>,
    traceparent: Vec<Option<String>>,
    tracestate: Vec<Option<String>>,
}

impl EnqueueColumns {
    /// The INSERT's parameters, in its order; its events take the places after `logged`
    /// (events earlier statements of the transaction logged).
    pub(crate) fn params<'a>(
        &'a self,
        key: &'a QueueKey,
        now: &'a i64,
        logged: &'a i64,
    ) -> [&'a (dyn ToSql + Sync); 21] {
        [
            &key.tenant,
            &key.name,
            now,
            &self.id,
            &self.kind,
            &self.payload,
            &self.priority,
            &self.state,
            &self.run_at,
            &self.max_attempts,
            &self.unique_key,
            &self.tags,
            &self.callback_url,
            &self.grp,
            &self.depends_on,
            &self.dep_policy,
            &self.workflow,
            &self.has_dependents,
            &self.traceparent,
            &self.tracestate,
            logged,
        ]
    }

    fn push(&mut self, id: TaskId, t: &NewTask, now: Timestamp) {
        let state = lifecycle::waiting_state(t.run_at.unwrap_or(now), now);
        self.push_as(id, t, now, state, false);
    }

    /// A row in `state` (a waiting task's, say), `has_dependents` when a task of the same
    /// submission waits for it.
    pub(crate) fn push_as(
        &mut self,
        id: TaskId,
        t: &NewTask,
        now: Timestamp,
        state: TaskState,
        has_dependents: bool,
    ) {
        let run_at = t.run_at.unwrap_or(now);
        self.id.push(id.as_i64());
        self.kind.push(t.kind.clone());
        self.payload.push(t.payload.get().to_owned());
        self.priority.push(t.priority);
        self.state.push(state_to_sql(state));
        self.depends_on.push(ids_to_sql(&t.depends_on));
        self.dep_policy
            .push(dep_policy_to_sql(t.on_dependency_failure));
        self.workflow.push(
            t.workflow
                .as_deref()
                .and_then(|w| w.parse::<TaskId>().ok())
                .map(TaskId::as_i64),
        );
        self.has_dependents.push(has_dependents);
        self.run_at.push(run_at.0);
        self.max_attempts
            .push(t.max_attempts.map(|m| m.min(i32::MAX as u32) as i32));
        self.unique_key.push(t.unique_key.clone());
        self.tags.push(tags_to_sql(&t.tags));
        self.callback_url.push(t.callback_url.clone());
        self.grp.push(t.group.clone());
        self.traceparent.push(t.traceparent.clone());
        self.tracestate.push(t.tracestate.clone());
    }

    /// The `n`th row as the task it stored.
    fn task(
        &self,
        n: usize,
        t: &NewTask,
        key: &QueueKey,
        now: Timestamp,
        default_max_attempts: u32,
    ) -> Task {
        let max_attempts = self.max_attempts[n].map_or(default_max_attempts, |m| m as u32);
        lifecycle::enqueued(
            TaskId::from_i64(self.id[n]),
            &key.name,
            t,
            max_attempts,
            now,
        )
    }
}
