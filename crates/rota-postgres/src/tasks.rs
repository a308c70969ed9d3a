//! Task writes after enqueue (`enqueue.rs`). The common paths are one statement each
//! (autocommit): a claim one UPDATE of rows picked `FOR UPDATE SKIP LOCKED`, a batch of
//! completions one UPDATE guarded by the lease. Refusals are explained afterwards by reading
//! the row and asking rota-core's `check_lease`. Failures, cancels and retries are in
//! `outcomes.rs`.

use crate::events::{Run, RUN_COLUMNS};
use crate::rows::{
    ms, state_to_sql, task_from_row, token_from_str, SettingsColumns, QUEUE_COLUMNS,
    SETTINGS_COLUMNS, TASK_COLUMNS, TASK_COLUMN_COUNT,
};
use crate::{db, PostgresStore};
use deadpool_postgres::GenericClient;
use rota_core::lifecycle;
use rota_core::{QueueKey, Task, TaskId, TaskState, Timestamp};
use rota_store::{ClaimRequest, Claimed, Completion, Heartbeat, StoreError, StoreResult};
use std::collections::HashMap;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

impl PostgresStore {
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
            let settings = SettingsColumns::new(&s);
            let head: [&(dyn ToSql + Sync); 2] = [&key.tenant, &key.name];
            let params = [&head[..], &settings.params(), &[&now.0]].concat();
            let created = client
                .query_opt(
                    &format!(
                        "INSERT INTO rota_queues (tenant, name, {SETTINGS_COLUMNS}, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                         ON CONFLICT (tenant, name) DO NOTHING RETURNING id"
                    ),
                    &params,
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

    /// Leases the queue's next ready tasks. A queue with neither limits nor grouped tasks is
    /// claimed by one statement; when that statement finds the queue limited (it claims
    /// nothing then), flow.rs claims.
    pub(crate) async fn claim_tasks(
        &self,
        key: &QueueKey,
        req: ClaimRequest,
    ) -> StoreResult<Claimed> {
        let tasks = self.claim_plain(key, &req).await?;
        if !tasks.is_empty() {
            return Ok(Claimed {
                tasks,
                next_start_at: None,
            });
        }
        let client = self.lease_conn().await?;
        let stmt = client
            .prepare_cached(
                "SELECT grouped OR concurrency IS NOT NULL OR rate IS NOT NULL \
                 FROM rota_queues WHERE tenant = $1 AND name = $2 AND NOT paused",
            )
            .await
            .map_err(db)?;
        let limited = client
            .query_opt(&stmt, &[&key.tenant, &key.name])
            .await
            .map_err(db)?
            .is_some_and(|r| r.get::<_, bool>(0));
        drop(client);
        if limited {
            return self.claim_flow(key, &req).await;
        }
        Ok(Claimed::default())
    }

    /// The one-statement claim of a queue with neither limits nor grouped tasks (nothing for
    /// any other queue).
    async fn claim_plain(&self, key: &QueueKey, req: &ClaimRequest) -> StoreResult<Vec<Task>> {
        let now = self.now();
        let client = self.lease_conn().await?;
        let kinds = if req.kinds.is_empty() {
            ""
        } else {
            "AND t.kind = ANY($7)"
        };
        // Generic plans (see lib.rs) cannot see `max`: they guess a tenth of the table. The
        // picked ids are therefore handed to the UPDATE as an array, which only the primary
        // key can serve; joined to `picked`, a table of a million rows got a hash join over
        // all of it (seconds per claim).
        let sql = format!(
            "WITH p AS (SELECT $1::text AS tenant, $2::text AS name, $3::bigint AS max, \
               $4::text AS worker, $5::bigint AS now, $6::bigint AS lease_ms), \
             q AS (SELECT id, lease_ms FROM rota_queues \
               WHERE tenant = $1 AND name = $2 AND NOT paused AND NOT grouped \
               AND concurrency IS NULL AND rate IS NULL), \
             touch AS (UPDATE rota_queues SET last_claim_at = $5 WHERE tenant = $1 AND name = $2 \
               AND (last_claim_at IS NULL OR last_claim_at < $5 - 1000 OR last_claim_at > $5)), \
             picked AS (SELECT t.id FROM rota_tasks t \
               WHERE t.queue_id = (SELECT id FROM q) AND t.state = 1 AND t.grp IS NULL {kinds} \
               ORDER BY t.priority DESC, t.id LIMIT $3 FOR UPDATE SKIP LOCKED), \
             claimed AS (UPDATE rota_tasks t SET state = 2, attempt = t.attempt + 1, \
               lease_worker = $4, lease_token = ((random() - 0.5) * 1.8e19)::bigint, \
               lease_expires_at = $5 + COALESCE($6, (SELECT lease_ms FROM q)), updated_at = $5, \
               started_at = $5 WHERE t.id = ANY(ARRAY(SELECT id FROM picked)) RETURNING t.*), \
             ev AS (INSERT INTO rota_events ({RUN_COLUMNS}) {run}) \
             SELECT {TASK_COLUMNS} FROM claimed t CROSS JOIN (SELECT $2::text AS name) q",
            run = Run::claimed("$1", "$5", "$2", "$4", "s.priority DESC, s.id").select()
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
        if !rows.is_empty() {
            self.announce_events([key.tenant.as_str()]);
        }
        let mut tasks = rows
            .iter()
            .map(|r| task_from_row(r).map(|(_, t)| t))
            .collect::<StoreResult<Vec<Task>>>()?;
        tasks.sort_by_key(|t| (std::cmp::Reverse(t.priority), t.id));
        // A lease's expiry is a due time for maintenance (another server's leader wakes at
        // least every maintenance interval).
        if let Some(at) = tasks
            .iter()
            .filter_map(|t| t.lease.as_ref().map(|l| l.expires_at))
            .min()
        {
            self.due_at(at);
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
            // Found by primary key whatever the statistics said when the plan was made: the
            // state test does not match the running-lease index's predicate (planned on an
            // empty table, that index led, visiting every running task).
            "WITH u AS (UPDATE rota_tasks t SET \
               lease_expires_at = $3 + COALESCE($4, q.lease_ms), \
               progress = COALESCE($5, t.progress), updated_at = $3 \
             FROM rota_queues q WHERE t.id = $1 AND t.lease_token = $2 AND t.state::int = 2 \
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
        let client = self.task_conn().await?;
        let ids: Vec<i64> = items.iter().map(|i| i.id.as_i64()).collect();
        let tokens: Vec<Option<i64>> = items.iter().map(|i| token_from_str(&i.lease)).collect();
        let results: Vec<Option<&str>> = items
            .iter()
            .map(|i| i.result.as_ref().map(|r| r.get()))
            .collect();
        // Each item's row is found by primary key from the array (a nested loop over the
        // unnest), whatever the table's statistics were when the connection made its generic
        // plan. So nothing else may lead the plan: the state and expiry tests are written so
        // that no index on them matches (the running-lease index made the planner visit every
        // running task once per item, 537 ms for a batch of 1,000); the queue is read by
        // subqueries, not joined (planned on a nearly empty table, the join led from the
        // tenant's queues through every task of the queue, 580 buffers per completion); and no
        // `id = ANY($2)` beside the join (its generic plan scans the array once per matched
        // row, 225 ms for 1,000).
        let sql = format!(
            "WITH u AS (UPDATE rota_tasks t SET state = 3, result = i.result, finished_at = $1, \
               updated_at = $1, lease_worker = NULL, lease_token = NULL, lease_expires_at = NULL, \
               purge_at = $1 + (SELECT q.retention_ms FROM rota_queues q WHERE q.id = t.queue_id) \
             FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS i(id, token, result) \
             WHERE t.id = i.id AND t.lease_token = i.token \
               AND t.state::int = 2 AND t.lease_expires_at - $1 > 0 \
               AND (SELECT q.tenant FROM rota_queues q WHERE q.id = t.queue_id) = $5 \
             RETURNING t.*), \
             ev AS (INSERT INTO rota_events ({RUN_COLUMNS}) {run}) \
             SELECT {TASK_COLUMNS}, q.concurrency IS NOT NULL OR q.grouped, t.has_dependents \
             FROM u t JOIN rota_queues q ON q.id = t.queue_id",
            run = Run {
                tasks: "u",
                order: "s.id",
                place: "1",
                per_queue: true,
                tenant: "$5",
                at: "$1",
                queue: "(SELECT q.name FROM rota_queues q WHERE q.id = r.queue_id)",
                ty: "'task.succeeded'",
                state: "NULL::smallint",
                worker: "NULL::text",
                due: "NULL::bigint",
            }
            .select()
        );
        let stmt = client.prepare_cached(&sql).await.map_err(db)?;
        let rows = client
            .query(&stmt, &[&now.0, &ids, &tokens, &results, &tenant])
            .await
            .map_err(db)?;
        if !rows.is_empty() {
            self.announce_events([tenant]);
        }
        // A completion in a queue with a concurrency (its own or its groups') makes room:
        // waiting claims look again.
        let freed: std::collections::BTreeSet<&str> = rows
            .iter()
            .filter(|r| r.get::<_, bool>(TASK_COLUMN_COUNT))
            .map(|r| r.get::<_, &str>(20))
            .collect();
        for queue in freed {
            self.freed(tenant, queue);
        }
        // Tasks others wait for: their waiters are released now (maintenance does it if this
        // server stops first).
        let waited_on: Vec<i64> = rows
            .iter()
            .filter(|r| r.get::<_, bool>(TASK_COLUMN_COUNT + 1))
            .map(|r| r.get(0))
            .collect();
        self.release(waited_on, Vec::new()).await;
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
        let client = self.task_conn().await?;
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

    pub(crate) async fn unique_holders(
        &self,
        tenant: &str,
        unique_key: &str,
    ) -> StoreResult<Vec<Task>> {
        let client = self.task_conn().await?;
        // The live states as literals, so that the partial unique index serves each queue.
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM rota_tasks t JOIN rota_queues q ON q.id = t.queue_id \
                 WHERE q.tenant = $1 AND t.unique_key = $2 AND t.state IN ({}, {}, {})",
                state_to_sql(TaskState::Scheduled),
                state_to_sql(TaskState::Ready),
                state_to_sql(TaskState::Running),
            ))
            .await
            .map_err(db)?;
        let rows = client
            .query(&stmt, &[&tenant, &unique_key])
            .await
            .map_err(db)?;
        rows.iter().map(|r| Ok(task_from_row(r)?.1)).collect()
    }
}

pub(crate) const LOCK_SHARED: &str =
    "SELECT pg_advisory_xact_lock_shared(1919906913, hashtext($1))";
const LOCK_EXCLUSIVE: &str = "SELECT pg_advisory_xact_lock(1919906913, hashtext($1))";

/// Takes the tenant's advisory lock for this transaction: shared by writes that may create
/// queues or tasks, exclusive for the tenant's deletion.
pub(crate) async fn lock_tenant(
    tx: &impl GenericClient,
    tenant: &str,
    exclusive: bool,
) -> StoreResult<()> {
    let stmt = tx
        .prepare_cached(if exclusive {
            LOCK_EXCLUSIVE
        } else {
            LOCK_SHARED
        })
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&tenant]).await.map_err(db)?;
    Ok(())
}
