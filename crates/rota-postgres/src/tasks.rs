//! Task writes. The common paths are one statement each (autocommit): an enqueue batch is one
//! INSERT from arrays, a claim one UPDATE of rows picked `FOR UPDATE SKIP LOCKED`, a batch of
//! completions one UPDATE guarded by the lease. Refusals are explained afterwards by reading
//! the row and asking rota-core's `check_lease`. Failures, cancels and retries are in
//! `outcomes.rs`.

use crate::listen::{DUE, READY};
use crate::rows::{
    ms, state_to_sql, tags_to_sql, task_from_row, token_from_str, QUEUE_COLUMNS, TASK_COLUMNS,
};
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rota_core::lifecycle;
use rota_core::{NewTask, QueueKey, Task, TaskId, TaskState, Timestamp};
use rota_store::{ClaimRequest, Completion, Enqueued, Heartbeat, StoreError, StoreResult};
use std::collections::{HashMap, HashSet};
use tokio_postgres::error::SqlState;

fn payload(key: &QueueKey) -> String {
    format!("{}/{}", key.tenant, key.name)
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
        let mut client = self.conn().await?;
        let mut out: Vec<Option<Enqueued>> = vec![None; tasks.len()];
        let mut pending: Vec<(usize, TaskId)> = fresh.into_iter().zip(ids).collect();
        for _round in 0..5 {
            // The tenant's lock, shared, before anything is read: a tenant's deletion takes it
            // exclusively, so it waits for enqueues in flight and later ones see it done.
            let tx = client.transaction().await.map_err(db)?;
            lock_tenant(&tx, &key.tenant, false).await?;
            let (qid, settings) = self.queue_for_write(&tx, key, now).await?;
            let mut cols = EnqueueColumns::default();
            for (i, id) in &pending {
                let t = &tasks[*i];
                let run_at = t.run_at.unwrap_or(now);
                cols.push(
                    *id,
                    t,
                    run_at,
                    lifecycle::waiting_state(run_at, now),
                    t.max_attempts.unwrap_or(settings.max_attempts),
                );
            }
            let stmt = tx
                .prepare_cached(
                    "WITH q AS (SELECT id FROM rota_queues WHERE id = $1), \
                     ins AS (INSERT INTO rota_tasks (id, queue_id, kind, payload, priority, state, \
                       run_at, attempt, max_attempts, created_at, updated_at, unique_key, tags) \
                     SELECT u.id, q.id, u.kind, u.payload, u.priority, u.state, u.run_at, 0, \
                       u.max_attempts, $2, $2, u.unique_key, u.tags \
                     FROM q, unnest($3::bigint[], $4::text[], $5::text[], $6::int[], \
                       $7::smallint[], $8::bigint[], $9::int[], $10::text[], $11::text[]) \
                       AS u(id, kind, payload, priority, state, run_at, max_attempts, unique_key, tags) \
                     ON CONFLICT (queue_id, unique_key) \
                       WHERE unique_key IS NOT NULL AND state IN (0, 1, 2) DO NOTHING \
                     RETURNING id, state), \
                     r AS (SELECT pg_notify('rota_ready', $12) FROM (SELECT 1 FROM ins WHERE state = 1 LIMIT 1) x), \
                     d AS (SELECT pg_notify('rota_due', '') FROM (SELECT 1 FROM ins WHERE state = 0 LIMIT 1) x) \
                     SELECT (SELECT count(*) FROM q), array(SELECT id FROM ins), \
                       (SELECT count(*) FROM r), (SELECT count(*) FROM d)",
                )
                .await
                .map_err(db)?;
            let row = tx
                .query_one(
                    &stmt,
                    &[
                        &qid,
                        &now.0,
                        &cols.id,
                        &cols.kind,
                        &cols.payload,
                        &cols.priority,
                        &cols.state,
                        &cols.run_at,
                        &cols.max_attempts,
                        &cols.unique_key,
                        &cols.tags,
                        &payload(key),
                    ],
                )
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            let queue_found: i64 = row.get(0);
            if queue_found == 0 {
                // The queue was deleted with its tenant between the lookup and the insert;
                // the next round's lookup finds out whether the tenant still exists.
                continue;
            }
            let inserted: HashSet<i64> = row.get::<_, Vec<i64>>(1).into_iter().collect();
            let (r, d): (i64, i64) = (row.get(2), row.get(3));
            if r > 0 {
                self.shared.signals.notify(key);
            }
            if d > 0 {
                self.shared.maintenance.notify_waiters();
            }
            let mut conflicted = Vec::new();
            for (n, (i, id)) in pending.iter().enumerate() {
                if inserted.contains(&id.as_i64()) {
                    out[*i] = Some(Enqueued {
                        task: cols.task(n, &tasks[*i], key, now),
                        duplicate: false,
                    });
                } else {
                    conflicted.push((*i, *id));
                }
            }
            if conflicted.is_empty() {
                pending.clear();
                break;
            }
            // Each conflict is a live task holding the key: return it as the duplicate. A
            // holder that finished in the meantime freed its key: insert again.
            let keys: Vec<&str> = conflicted
                .iter()
                .filter_map(|(i, _)| tasks[*i].unique_key.as_deref())
                .collect();
            let holders = client
                .query(
                    &format!(
                        "SELECT {TASK_COLUMNS} FROM rota_tasks t JOIN rota_queues q ON q.id = t.queue_id \
                         WHERE t.queue_id = $1 AND t.unique_key = ANY($2) AND t.state IN (0, 1, 2)"
                    ),
                    &[&qid, &keys],
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
            pending = Vec::new();
            for (i, id) in conflicted {
                let k = tasks[i].unique_key.as_deref().unwrap_or_default();
                match by_key.get(k) {
                    Some(t) => {
                        out[i] = Some(Enqueued {
                            task: t.clone(),
                            duplicate: true,
                        })
                    }
                    None => pending.push((i, id)),
                }
            }
            if pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            return Err(StoreError::Unavailable(
                "the queue or its unique keys kept changing under this enqueue; try again".into(),
            ));
        }
        let mut result = Vec::with_capacity(tasks.len());
        for (i, slot) in out.iter().enumerate() {
            let e = match (slot, same_as[i]) {
                (Some(e), _) => e.clone(),
                (None, Some(j)) => Enqueued {
                    task: out[j]
                        .as_ref()
                        .expect("the first of a key is decided")
                        .task
                        .clone(),
                    duplicate: true,
                },
                (None, None) => unreachable!("every task is decided"),
            };
            result.push(e);
        }
        Ok(result)
    }

    /// The queue's id and settings, creating it (with default settings) on first use; refuses
    /// a tenant that does not exist and a tenant at its queue limit.
    pub(crate) async fn queue_for_write(
        &self,
        client: &impl GenericClient,
        key: &QueueKey,
        now: Timestamp,
    ) -> StoreResult<(i64, rota_core::QueueSettings)> {
        let select = format!(
            "SELECT {QUEUE_COLUMNS} FROM rota_queues q WHERE q.tenant = $1 AND q.name = $2"
        );
        for _ in 0..3 {
            if let Some(row) = client
                .query_opt(&select, &[&key.tenant, &key.name])
                .await
                .map_err(db)?
            {
                let q = crate::rows::queue_from_row(&row, 0)?;
                return Ok((q.id, q.settings));
            }
            let count: i64 = client
                .query_one(
                    "SELECT count(*) FROM rota_queues WHERE tenant = $1",
                    &[&key.tenant],
                )
                .await
                .map_err(db)?
                .get(0);
            if count as usize >= self.options.max_queues_per_tenant {
                return Err(StoreError::LimitReached(format!(
                    "tenant `{}` already has {count} queues, the most limits.max_queues_per_tenant \
                     allows; purge or reuse queues, or raise the limit",
                    key.tenant
                )));
            }
            let s = rota_core::QueueSettings::default();
            let created = client
                .query_opt(
                    "INSERT INTO rota_queues (tenant, name, max_attempts, backoff_base_ms, \
                     backoff_max_ms, lease_ms, retention_ms, paused, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (tenant, name) DO NOTHING RETURNING id",
                    &[
                        &key.tenant,
                        &key.name,
                        &(s.max_attempts as i32),
                        &ms(s.backoff.base_ms),
                        &ms(s.backoff.max_ms),
                        &ms(s.lease_ms),
                        &ms(s.retention_ms),
                        &s.paused,
                        &now.0,
                    ],
                )
                .await;
            match created {
                Ok(Some(row)) => return Ok((row.get(0), s)),
                Ok(None) => continue, // created by someone else just now: read it
                Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                    return Err(StoreError::TenantNotFound(key.tenant.clone()))
                }
                Err(e) => return Err(db(e)),
            }
        }
        Err(StoreError::TenantNotFound(key.tenant.clone()))
    }

    pub(crate) async fn claim_tasks(
        &self,
        key: &QueueKey,
        req: ClaimRequest,
    ) -> StoreResult<Vec<Task>> {
        let now = self.now();
        let client = self.lease_conn().await?;
        let kinds = if req.kinds.is_empty() {
            ""
        } else {
            "AND t.kind = ANY($7)"
        };
        let sql = format!(
            "WITH p AS (SELECT $1::text AS tenant, $2::text AS name, $3::bigint AS max, \
               $4::text AS worker, $5::bigint AS now, $6::bigint AS lease_ms), \
             q AS (SELECT id, lease_ms FROM rota_queues \
               WHERE tenant = $1 AND name = $2 AND NOT paused), \
             touch AS (UPDATE rota_queues SET last_claim_at = $5 WHERE tenant = $1 AND name = $2 \
               AND (last_claim_at IS NULL OR last_claim_at < $5 - 1000 OR last_claim_at > $5)), \
             picked AS (SELECT t.id FROM rota_tasks t \
               WHERE t.queue_id = (SELECT id FROM q) AND t.state = 1 {kinds} \
               ORDER BY t.priority DESC, t.id LIMIT $3 FOR UPDATE SKIP LOCKED), \
             claimed AS (UPDATE rota_tasks t SET state = 2, attempt = t.attempt + 1, \
               lease_worker = $4, lease_token = ((random() - 0.5) * 1.8e19)::bigint, \
               lease_expires_at = $5 + COALESCE($6, (SELECT lease_ms FROM q)), updated_at = $5 \
               FROM picked WHERE t.id = picked.id RETURNING t.*) \
             SELECT {TASK_COLUMNS} FROM claimed t CROSS JOIN (SELECT $2::text AS name) q"
        );
        let stmt = client.prepare_cached(&sql).await.map_err(db)?;
        let max = i64::try_from(req.max).unwrap_or(i64::MAX);
        let lease_ms = req.lease_ms.map(ms);
        let rows = if req.kinds.is_empty() {
            client
                .query(
                    &stmt,
                    &[&key.tenant, &key.name, &max, &req.worker, &now.0, &lease_ms],
                )
                .await
        } else {
            client
                .query(
                    &stmt,
                    &[
                        &key.tenant,
                        &key.name,
                        &max,
                        &req.worker,
                        &now.0,
                        &lease_ms,
                        &req.kinds,
                    ],
                )
                .await
        }
        .map_err(db)?;
        let mut tasks = rows
            .iter()
            .map(|r| task_from_row(r).map(|(_, t)| t))
            .collect::<StoreResult<Vec<Task>>>()?;
        tasks.sort_by_key(|t| (std::cmp::Reverse(t.priority), t.id));
        if !tasks.is_empty() {
            // Lease expiries are due times for the maintenance leader, which wakes at least
            // every maintenance interval; nothing to announce.
            self.shared.maintenance.notify_waiters();
        }
        Ok(tasks)
    }

    /// Why `token` does not hold `id`'s lease in `tenant` (after a guarded write matched no
    /// row): rota-core's rule applied to the row as it is now.
    async fn refusal(
        &self,
        client: &impl GenericClient,
        tenant: &str,
        id: TaskId,
        token: &str,
    ) -> StoreResult<StoreError> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM rota_tasks t JOIN rota_queues q ON q.id = t.queue_id \
                     WHERE t.id = $1 AND q.tenant = $2"
                ),
                &[&id.as_i64(), &tenant],
            )
            .await
            .map_err(db)?;
        let Some(row) = row else {
            return Ok(StoreError::TaskNotFound(id));
        };
        let (_, t) = task_from_row(&row)?;
        Ok(
            match lifecycle::check_lease(t.state, t.lease.as_ref(), token, self.now()) {
                Err(loss) => StoreError::LeaseLost(id, loss),
                // It holds now but did not when written: someone else's change came between.
                Ok(()) => StoreError::LeaseLost(id, rota_core::lifecycle::LeaseLoss::Replaced),
            },
        )
    }

    pub(crate) async fn heartbeat_task(&self, tenant: &str, hb: Heartbeat) -> StoreResult<Task> {
        let now = self.now();
        let client = self.lease_conn().await?;
        let sql = format!(
            "WITH u AS (UPDATE rota_tasks t SET \
               lease_expires_at = $3 + COALESCE($4, q.lease_ms), \
               progress = COALESCE($5, t.progress), updated_at = $3 \
             FROM rota_queues q WHERE t.id = $1 AND t.lease_token = $2 AND t.state = 2 \
               AND t.lease_expires_at - $3 > 0 AND q.id = t.queue_id AND q.tenant = $6 \
             RETURNING t.*, q.name AS qname) \
             SELECT {} FROM u t CROSS JOIN LATERAL (SELECT t.qname AS name) q",
            TASK_COLUMNS
        );
        let stmt = client.prepare_cached(&sql).await.map_err(db)?;
        let progress = hb.progress.as_ref().map(|p| p.get());
        let row = client
            .query_opt(
                &stmt,
                &[
                    &hb.id.as_i64(),
                    &token_from_str(&hb.lease),
                    &now.0,
                    &hb.lease_ms.map(ms),
                    &progress,
                    &tenant,
                ],
            )
            .await
            .map_err(db)?;
        match row {
            Some(r) => Ok(task_from_row(&r)?.1),
            None => Err(self.refusal(&client, tenant, hb.id, &hb.lease).await?),
        }
    }

    pub(crate) async fn complete_tasks(
        &self,
        tenant: &str,
        items: Vec<Completion>,
    ) -> StoreResult<Vec<StoreResult<Task>>> {
        let now = self.now();
        let client = self.conn().await?;
        let ids: Vec<i64> = items.iter().map(|i| i.id.as_i64()).collect();
        let tokens: Vec<Option<i64>> = items.iter().map(|i| token_from_str(&i.lease)).collect();
        let results: Vec<Option<&str>> = items
            .iter()
            .map(|i| i.result.as_ref().map(|r| r.get()))
            .collect();
        // Found by primary key: `id = ANY` leads the plan, and the state and expiry tests are
        // written so that no index on them can (the running-lease index made the planner visit
        // every running task once per item, 537 ms for a batch of 1,000; the (queue, state)
        // index every running task of the queue).
        let sql = format!(
            "WITH u AS (UPDATE rota_tasks t SET state = 3, result = i.result, finished_at = $1, \
               updated_at = $1, lease_worker = NULL, lease_token = NULL, lease_expires_at = NULL, \
               purge_at = $1 + q.retention_ms \
             FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS i(id, token, result), \
               rota_queues q \
             WHERE t.id = ANY($2) AND t.id = i.id AND t.lease_token = i.token \
               AND t.state::int = 2 AND t.lease_expires_at - $1 > 0 \
               AND q.id = t.queue_id AND q.tenant = $5 \
             RETURNING t.*, q.name AS qname) \
             SELECT {} FROM u t CROSS JOIN LATERAL (SELECT t.qname AS name) q",
            TASK_COLUMNS
        );
        let stmt = client.prepare_cached(&sql).await.map_err(db)?;
        let rows = client
            .query(&stmt, &[&now.0, &ids, &tokens, &results, &tenant])
            .await
            .map_err(db)?;
        let mut done: HashMap<TaskId, Task> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let (_, t) = task_from_row(r)?;
            done.insert(t.id, t);
        }
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            match done.remove(&item.id) {
                Some(t) => out.push(Ok(t)),
                None => out.push(Err(self
                    .refusal(&client, tenant, item.id, &item.lease)
                    .await?)),
            }
        }
        Ok(out)
    }

    pub(crate) async fn get_task(&self, tenant: &str, id: TaskId) -> StoreResult<Task> {
        let client = self.conn().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM rota_tasks t JOIN rota_queues q ON q.id = t.queue_id \
                 WHERE t.id = $1 AND q.tenant = $2"
            ))
            .await
            .map_err(db)?;
        let row = client
            .query_opt(&stmt, &[&id.as_i64(), &tenant])
            .await
            .map_err(db)?
            .ok_or(StoreError::TaskNotFound(id))?;
        Ok(task_from_row(&row)?.1)
    }
}

/// Takes the tenant's advisory lock for this transaction: shared by writes that may create
/// queues or tasks, exclusive for the tenant's deletion.
pub(crate) async fn lock_tenant(
    tx: &impl GenericClient,
    tenant: &str,
    exclusive: bool,
) -> StoreResult<()> {
    let sql = if exclusive {
        "SELECT pg_advisory_xact_lock(1919906913, hashtext($1))"
    } else {
        "SELECT pg_advisory_xact_lock_shared(1919906913, hashtext($1))"
    };
    tx.execute(sql, &[&tenant]).await.map_err(db)?;
    Ok(())
}

/// Sends `rota_ready` for each `tenant/queue` and `rota_due` if `due`, within the transaction
/// (delivered at its commit).
pub(crate) async fn notify_in(
    tx: &impl GenericClient,
    ready: &[String],
    due: bool,
) -> StoreResult<()> {
    if !ready.is_empty() {
        tx.execute(
            &format!("SELECT pg_notify('{READY}', x) FROM unnest($1::text[]) x"),
            &[&ready],
        )
        .await
        .map_err(db)?;
    }
    if due {
        tx.execute(&format!("SELECT pg_notify('{DUE}', '')"), &[])
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// The columns of an enqueue's INSERT, as arrays.
#[derive(Default)]
struct EnqueueColumns {
    id: Vec<i64>,
    kind: Vec<String>,
    payload: Vec<String>,
    priority: Vec<i32>,
    state: Vec<i16>,
    run_at: Vec<i64>,
    max_attempts: Vec<i32>,
    unique_key: Vec<Option<String>>,
    tags: Vec<Option<String>>,
}

impl EnqueueColumns {
    fn push(
        &mut self,
        id: TaskId,
        t: &NewTask,
        run_at: Timestamp,
        state: TaskState,
        max_attempts: u32,
    ) {
        self.id.push(id.as_i64());
        self.kind.push(t.kind.clone());
        self.payload.push(t.payload.get().to_owned());
        self.priority.push(t.priority);
        self.state.push(state_to_sql(state));
        self.run_at.push(run_at.0);
        self.max_attempts.push(max_attempts as i32);
        self.unique_key.push(t.unique_key.clone());
        self.tags.push(tags_to_sql(&t.tags));
    }

    /// The `n`th row as the task it stored.
    fn task(&self, n: usize, t: &NewTask, key: &QueueKey, now: Timestamp) -> Task {
        Task {
            id: TaskId::from_i64(self.id[n]),
            queue: key.name.clone(),
            kind: t.kind.clone(),
            payload: t.payload.clone(),
            priority: t.priority,
            state: crate::rows::state_from_sql(self.state[n]).expect("a state we wrote"),
            attempt: 0,
            max_attempts: self.max_attempts[n] as u32,
            run_at: Timestamp(self.run_at[n]),
            created_at: now,
            updated_at: now,
            finished_at: None,
            lease: None,
            progress: None,
            result: None,
            errors: Vec::new(),
            unique_key: t.unique_key.clone(),
            tags: t.tags.clone(),
        }
    }
}
