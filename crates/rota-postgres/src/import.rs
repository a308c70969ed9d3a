//! Writing another store's data as it is (`rota copy`): queues with their settings and tasks
//! in every state, with their ids, attempts, errors, results and leases. Access control goes
//! through [`rota_store::Store::change_auth`] like any other change.

use crate::rows::{
    dep_policy_to_sql, errors_to_sql, ids_to_sql, ms, state_to_sql, tags_to_sql, token_from_str,
    SettingsColumns, SETTINGS_COLUMNS,
};
use crate::{db, PostgresStore};
use rota_core::{QueueInfo, Task, TaskId};
use rota_store::{StoreError, StoreResult};
use tokio_postgres::types::ToSql;

/// What a database holds besides its schema, by table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Contents {
    /// Tenants other than `default` (which the schema creates).
    pub tenants: i64,
    pub keys: i64,
    pub roles: i64,
    pub queues: i64,
    pub tasks: i64,
}

impl Contents {
    pub fn is_empty(&self) -> bool {
        *self == Contents::default()
    }
}

impl PostgresStore {
    pub async fn contents(&self) -> StoreResult<Contents> {
        let client = self.conn().await?;
        let r = client
            .query_one(
                "SELECT (SELECT count(*) FROM rota_tenants WHERE name <> 'default'), \
                 (SELECT count(*) FROM rota_api_keys), (SELECT count(*) FROM rota_roles), \
                 (SELECT count(*) FROM rota_queues), (SELECT count(*) FROM rota_tasks)",
                &[],
            )
            .await
            .map_err(db)?;
        Ok(Contents {
            tenants: r.get(0),
            keys: r.get(1),
            roles: r.get(2),
            queues: r.get(3),
            tasks: r.get(4),
        })
    }

    /// Creates `tenant`'s queue `q` with its settings and times; returns its id.
    pub async fn import_queue(&self, tenant: &str, q: &QueueInfo) -> StoreResult<i64> {
        let client = self.conn().await?;
        let settings = SettingsColumns::new(&q.settings);
        let last_claim_at = q.last_claim_at.map(|t| t.0);
        let head: [&(dyn ToSql + Sync); 2] = [&tenant, &q.name];
        let tail: [&(dyn ToSql + Sync); 2] = [&q.created_at.0, &last_claim_at];
        let params = [&head[..], &settings.params(), &tail].concat();
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO rota_queues (tenant, name, {SETTINGS_COLUMNS}, created_at, \
                     last_claim_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                     $13, $14, $15) RETURNING id"
                ),
                &params,
            )
            .await
            .map_err(|e| match e.code() {
                Some(c) if *c == tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION => {
                    StoreError::TenantNotFound(tenant.to_owned())
                }
                _ => db(e),
            })?;
        Ok(row.get(0))
    }

    /// Inserts `tasks` (of the queue `queue_id`, whose finished tasks are kept for
    /// `retention_ms`) exactly as they are, in one statement; and moves the id blocks past
    /// them, so ids given out later never repeat one.
    pub async fn import_tasks(
        &self,
        queue_id: i64,
        retention_ms: u64,
        tasks: &[Task],
    ) -> StoreResult<()> {
        let mut c = ImportColumns::default();
        for t in tasks {
            c.push(t, retention_ms)?;
        }
        let Some(max_id) = c.id.iter().max().copied() else {
            return Ok(());
        };
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute(
            "INSERT INTO rota_tasks (id, queue_id, kind, payload, priority, state, run_at, \
               attempt, max_attempts, created_at, updated_at, finished_at, lease_worker, \
               lease_token, lease_expires_at, progress, result, errors, unique_key, tags, purge_at, \
               callback_url, grp, started_at, depends_on, dep_policy, workflow, traceparent, \
               tracestate) \
             SELECT u.id, $1::bigint, u.kind, u.payload, u.priority, u.state, u.run_at, u.attempt, \
               u.max_attempts, u.created_at, u.updated_at, u.finished_at, u.lease_worker, \
               u.lease_token, u.lease_expires_at, u.progress, u.result, u.errors, u.unique_key, \
               u.tags, u.purge_at, u.callback_url, u.grp, u.started_at, u.depends_on, \
               u.dep_policy, u.workflow, u.traceparent, u.tracestate \
             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::int[], $6::smallint[], \
               $7::bigint[], $8::int[], $9::int[], $10::bigint[], $11::bigint[], $12::bigint[], \
               $13::text[], $14::bigint[], $15::bigint[], $16::text[], $17::text[], $18::text[], \
               $19::text[], $20::text[], $21::bigint[], $22::text[], $23::text[], \
               $24::bigint[], $25::text[], $26::smallint[], $27::bigint[], $28::text[], \
               $29::text[]) \
             AS u(id, kind, payload, priority, state, run_at, attempt, max_attempts, created_at, \
               updated_at, finished_at, lease_worker, lease_token, lease_expires_at, progress, \
               result, errors, unique_key, tags, purge_at, callback_url, grp, started_at, \
               depends_on, dep_policy, workflow, traceparent, tracestate)",
            &[
                &queue_id,
                &c.id,
                &c.kind,
                &c.payload,
                &c.priority,
                &c.state,
                &c.run_at,
                &c.attempt,
                &c.max_attempts,
                &c.created_at,
                &c.updated_at,
                &c.finished_at,
                &c.lease_worker,
                &c.lease_token,
                &c.lease_expires_at,
                &c.progress,
                &c.result,
                &c.errors,
                &c.unique_key,
                &c.tags,
                &c.purge_at,
                &c.callback_url,
                &c.grp,
                &c.started_at,
                &c.depends_on,
                &c.dep_policy,
                &c.workflow,
                &c.traceparent,
                &c.tracestate,
            ],
        )
        .await
        .map_err(db)?;
        if c.grp.iter().any(Option::is_some) {
            // Claims of a queue with groups take their turns (see flow.rs).
            tx.execute(
                "UPDATE rota_queues SET grouped = true WHERE id = $1 AND NOT grouped",
                &[&queue_id],
            )
            .await
            .map_err(db)?;
        }
        tx.execute(
            "UPDATE rota_id_blocks SET next = GREATEST(next, $1::bigint + 1)",
            &[&max_id],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }
}

/// The columns of an import's INSERT, as arrays.
#[derive(Default)]
struct ImportColumns {
    id: Vec<i64>,
    kind: Vec<String>,
    payload: Vec<String>,
    priority: Vec<i32>,
    state: Vec<i16>,
    run_at: Vec<i64>,
    attempt: Vec<i32>,
    max_attempts: Vec<i32>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    finished_at: Vec<Option<i64>>,
    lease_worker: Vec<Option<String>>,
    lease_token: Vec<Option<i64>>,
    lease_expires_at: Vec<Option<i64>>,
    progress: Vec<Option<String>>,
    result: Vec<Option<String>>,
    errors: Vec<Option<String>>,
    unique_key: Vec<Option<String>>,
    tags: Vec<Option<String>>,
    purge_at: Vec<Option<i64>>,
    callback_url: Vec<Option<String>>,
    grp: Vec<Option<String>>,
    started_at: Vec<Option<i64>>,
    depends_on: Vec<Option<String>>,
    dep_policy: Vec<Option<i16>>,
    workflow: Vec<Option<i64>>,
    traceparent: Vec<Option<String>>,
    tracestate: Vec<Option<String>>,
}

impl ImportColumns {
    fn push(&mut self, t: &Task, retention_ms: u64) -> StoreResult<()> {
        let lease = match &t.lease {
            Some(l) => Some((
                l.worker.clone(),
                token_from_str(&l.token).ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "task {}: lease token `{}` is not one this engine can hold",
                        t.id, l.token
                    ))
                })?,
                l.expires_at.0,
            )),
            None => None,
        };
        let small = |v: u32| v.min(i32::MAX as u32) as i32;
        self.id.push(t.id.as_i64());
        self.kind.push(t.kind.clone());
        self.payload.push(t.payload.get().to_owned());
        self.priority.push(t.priority);
        self.state.push(state_to_sql(t.state));
        self.run_at.push(t.run_at.0);
        self.attempt.push(small(t.attempt));
        self.max_attempts.push(small(t.max_attempts));
        self.created_at.push(t.created_at.0);
        self.updated_at.push(t.updated_at.0);
        self.finished_at.push(t.finished_at.map(|f| f.0));
        self.lease_worker.push(lease.as_ref().map(|l| l.0.clone()));
        self.lease_token.push(lease.as_ref().map(|l| l.1));
        self.lease_expires_at.push(lease.as_ref().map(|l| l.2));
        self.progress
            .push(t.progress.as_ref().map(|p| p.get().to_owned()));
        self.result
            .push(t.result.as_ref().map(|r| r.get().to_owned()));
        self.errors.push(errors_to_sql(&t.errors));
        self.unique_key.push(t.unique_key.clone());
        self.tags.push(tags_to_sql(&t.tags));
        self.callback_url.push(t.callback_url.clone());
        self.grp.push(t.group.clone());
        self.started_at.push(t.started_at.map(|s| s.0));
        self.traceparent.push(t.traceparent.clone());
        self.tracestate.push(t.tracestate.clone());
        self.depends_on.push(ids_to_sql(&t.depends_on));
        self.dep_policy
            .push(dep_policy_to_sql(t.on_dependency_failure));
        self.workflow.push(
            t.workflow
                .as_deref()
                .and_then(|w| w.parse::<TaskId>().ok())
                .map(TaskId::as_i64),
        );
        self.purge_at.push(
            t.state
                .is_final()
                .then(|| t.finished_at.unwrap_or(t.updated_at).0 + ms(retention_ms)),
        );
        Ok(())
    }
}
