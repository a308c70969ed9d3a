//! Workflows on PostgreSQL: the whole graph in one transaction (docs/workflows.md).

use crate::rows::{state_from_sql, task_from_row, TASK_COLUMNS};
use crate::spawn::{anchored, insert, Insert};
use crate::tasks::lock_tenant;
use crate::{db, PostgresStore};
use async_trait::async_trait;
use rota_core::lifecycle;
use rota_core::workflow::{Workflow, WorkflowKind};
use rota_core::{StateCounts, TaskId, TaskState, Timestamp};
use rota_store::{
    Spawn, Spawned, StoreError, StoreResult, Submission, WorkflowSpecTask, WorkflowStore,
};
use std::collections::HashMap;

type Names = Vec<(String, TaskId)>;

fn kind_of(batch: bool) -> WorkflowKind {
    if batch {
        WorkflowKind::Batch
    } else {
        WorkflowKind::Workflow
    }
}

/// The tasks of each of the workflows `ids`, counted by state.
async fn counts_of(
    client: &impl deadpool_postgres::GenericClient,
    ids: &[i64],
) -> StoreResult<HashMap<i64, StateCounts>> {
    let mut counts: HashMap<i64, StateCounts> = HashMap::new();
    for r in client
        .query(
            "SELECT workflow, state, count(*) FROM rota_tasks WHERE workflow = ANY($1) \
             GROUP BY workflow, state",
            &[&ids],
        )
        .await
        .map_err(db)?
    {
        let n: i64 = r.get(2);
        *counts
            .entry(r.get(0))
            .or_default()
            .get_mut(state_from_sql(r.get(1))?) = n as u64;
    }
    Ok(counts)
}

fn names_of(json: &str) -> StoreResult<Names> {
    serde_json::from_str(json).map_err(crate::rows::corrupt)
}

#[async_trait]
impl WorkflowStore for PostgresStore {
    async fn tasks_by_id(&self, tenant: &str, ids: &[TaskId]) -> StoreResult<Vec<rota_core::Task>> {
        let ids: Vec<i64> = ids.iter().map(|i| i.as_i64()).collect();
        let client = self.conn().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM rota_tasks t JOIN rota_queues q \
                     ON q.id = t.queue_id WHERE t.id = ANY($1) AND q.tenant = $2"
                ),
                &[&ids, &tenant],
            )
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| task_from_row(r).map(|(_, t)| t))
            .collect()
    }

    async fn batch_callbacks(
        &self,
        tenant: &str,
        ids: &[TaskId],
    ) -> StoreResult<HashMap<TaskId, TaskId>> {
        let ids: Vec<i64> = ids.iter().map(|i| i.as_i64()).collect();
        let client = self.conn().await?;
        let rows = client
            .query(
                "SELECT id, callback FROM rota_workflows WHERE id = ANY($1) AND tenant = $2 \
                 AND callback IS NOT NULL",
                &[&ids, &tenant],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| (TaskId::from_i64(r.get(0)), TaskId::from_i64(r.get(1))))
            .collect())
    }

    async fn submit_workflow(
        &self,
        tenant: &str,
        spec: Vec<WorkflowSpecTask>,
        kind: Submission,
    ) -> StoreResult<Workflow> {
        let now = self.now();
        let mut ids = self.new_ids(spec.len() + 1, now).await?;
        let id = ids.pop().expect("the workflow's id");
        let wf = id.to_string();
        let mut has_dependents = vec![false; spec.len()];
        for t in &spec {
            for &j in &t.after {
                has_dependents[j] = true;
            }
        }
        let callback = (kind.kind() == WorkflowKind::Batch).then(|| ids[ids.len() - 1]);
        let anchored = callback.filter(|_| kind.open());
        let names: Names = spec
            .iter()
            .zip(&ids)
            .map(|(t, id)| (t.name.clone(), *id))
            .collect();
        let (mut waiter, mut dep) = (Vec::new(), Vec::new());
        for (i, t) in spec.iter().enumerate() {
            for &j in &t.after {
                waiter.push(ids[i].as_i64());
                dep.push(ids[j].as_i64());
            }
        }
        if let Some(cb) = anchored {
            waiter.push(cb.as_i64());
            dep.push(id.as_i64());
        }
        let items: Vec<Insert> = spec
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let mut task = t.task;
                task.depends_on = t.after.iter().map(|&j| ids[j]).collect();
                task.workflow = Some(wf.clone());
                let state = if task.depends_on.is_empty() && anchored != Some(ids[i]) {
                    lifecycle::waiting_state(task.run_at.unwrap_or(now), now)
                } else {
                    TaskState::Waiting
                };
                Insert {
                    id: ids[i],
                    queue: t.queue,
                    task,
                    state,
                    has_dependents: has_dependents[i],
                }
            })
            .collect();
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_tenant(&tx, tenant, false).await?;
        let (stored, tasks_of) = insert(self, &tx, tenant, items, now).await?;
        if !waiter.is_empty() {
            crate::deps::insert_waits(&tx, &waiter, &dep).await?;
        }
        tx.execute(
            "INSERT INTO rota_workflows (id, tenant, created_at, names, callback) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &id.as_i64(),
                &tenant,
                &now.0,
                &serde_json::to_string(&names).expect("names serialize"),
                &callback.map(TaskId::as_i64),
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        for (key, tasks) in &tasks_of {
            self.after_enqueue(key, tasks, now);
        }
        let mut out = Workflow::assemble(id, kind.kind(), now, &names, stored);
        out.open = callback.map(|_| kind.open());
        Ok(out)
    }

    async fn add_to_batch(
        &self,
        tenant: &str,
        batch: TaskId,
        tasks: Vec<(String, rota_core::NewTask)>,
    ) -> StoreResult<Vec<rota_core::Task>> {
        self.add_batch_tasks(tenant, batch, tasks).await
    }

    async fn close_batch(&self, tenant: &str, batch: TaskId) -> StoreResult<()> {
        self.close_open_batch(tenant, batch).await
    }

    async fn spawn(&self, tenant: &str, spawn: Spawn) -> StoreResult<Spawned> {
        self.spawn_tasks(tenant, spawn).await
    }

    async fn workflow(&self, tenant: &str, id: TaskId) -> StoreResult<Workflow> {
        let client = self.conn().await?;
        let row = client
            .query_opt(
                "SELECT created_at, names, callback FROM rota_workflows \
                 WHERE id = $1 AND tenant = $2",
                &[&id.as_i64(), &tenant],
            )
            .await
            .map_err(db)?
            .ok_or(StoreError::WorkflowNotFound(id))?;
        let names = names_of(row.get(1))?;
        let rows = client
            .query(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM rota_tasks t JOIN rota_queues q \
                     ON q.id = t.queue_id WHERE t.workflow = $1 AND q.tenant = $2"
                ),
                &[&id.as_i64(), &tenant],
            )
            .await
            .map_err(db)?;
        let tasks = rows
            .iter()
            .map(|r| task_from_row(r).map(|(_, t)| t))
            .collect::<StoreResult<Vec<_>>>()?;
        let callback: Option<i64> = row.get(2);
        let mut wf = Workflow::assemble(
            id,
            kind_of(callback.is_some()),
            Timestamp(row.get(0)),
            &names,
            tasks,
        );
        if let Some(cb) = callback {
            wf.open = Some(anchored(&client, TaskId::from_i64(cb), id).await?);
        }
        Ok(wf)
    }

    async fn workflows(
        &self,
        tenant: &str,
        before: Option<TaskId>,
        limit: usize,
    ) -> StoreResult<Vec<Workflow>> {
        let client = self.conn().await?;
        let rows = client
            .query(
                "SELECT id, created_at, callback IS NOT NULL FROM rota_workflows \
                 WHERE tenant = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                &[
                    &tenant,
                    &before.map_or(i64::MAX, TaskId::as_i64),
                    &(limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await
            .map_err(db)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let mut counts = counts_of(&client, &ids).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let id: i64 = r.get(0);
                Workflow::listed(
                    TaskId::from_i64(id),
                    kind_of(r.get(2)),
                    Timestamp(r.get(1)),
                    counts.remove(&id).unwrap_or_default(),
                )
            })
            .collect())
    }
}

impl PostgresStore {
    /// Logs `workflow.*` for workflows whose tasks have all ended. Each pass looks at a bounded
    /// page of the running workflows, walking on from where the last stopped (so many running
    /// workflows cost each pass the same), and answers whether there may be more. Servers
    /// racing on one workflow serialize on its record's row, so its event is logged once.
    pub(crate) async fn end_workflows(&self, now: Timestamp) -> StoreResult<bool> {
        use std::sync::atomic::Ordering;
        let limit = rota_core::workflow::RECORDS_PER_PASS as i64;
        let after = self.shared.end_mark.load(Ordering::Relaxed);
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        let page: Vec<i64> = tx
            .query(
                "SELECT id FROM rota_workflows WHERE ended_at IS NULL AND id > $1 \
                 ORDER BY id LIMIT $2",
                &[&after, &limit],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let full = page.len() as i64 == limit;
        let next = if full { page[page.len() - 1] } else { 0 };
        self.shared.end_mark.store(next, Ordering::Relaxed);
        if page.is_empty() {
            return Ok(false);
        }
        let rows = tx
            .query(
                "SELECT w.id, w.tenant, w.names, w.callback FROM rota_workflows w \
                 WHERE w.id = ANY($1) AND w.ended_at IS NULL AND NOT EXISTS \
                   (SELECT 1 FROM rota_tasks t WHERE t.workflow = w.id AND t.state IN (0, 1, 2, 6)) \
                 ORDER BY w.id FOR UPDATE OF w SKIP LOCKED",
                &[&page],
            )
            .await
            .map_err(db)?;
        if rows.is_empty() {
            // Nothing ended on this page: the next page waits for the next pass, not now.
            return Ok(false);
        }
        let mut ended: Vec<(i64, String, Option<TaskId>)> = Vec::with_capacity(rows.len());
        for r in &rows {
            let callback: Option<i64> = r.get(3);
            let last = rota_core::workflow::event_task(
                callback.map(TaskId::from_i64),
                &names_of(r.get(2))?,
            );
            ended.push((r.get(0), r.get(1), last));
        }
        let ids: Vec<i64> = ended.iter().map(|e| e.0).collect();
        let mut counts = counts_of(&tx, &ids).await?;
        let lasts: Vec<i64> = ended
            .iter()
            .filter_map(|e| e.2.map(TaskId::as_i64))
            .collect();
        let tasks: HashMap<TaskId, rota_core::Task> = tx
            .query(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM rota_tasks t JOIN rota_queues q \
                     ON q.id = t.queue_id WHERE t.id = ANY($1)"
                ),
                &[&lasts],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| task_from_row(r).map(|(_, t)| (t.id, t)))
            .collect::<StoreResult<_>>()?;
        let mut logged = Vec::new();
        for (id, tenant, last) in &ended {
            let state =
                rota_core::workflow::WorkflowState::of(&counts.remove(id).unwrap_or_default());
            // None when retention already removed its tasks.
            let event = last.and_then(|l| tasks.get(&l)).and_then(|t| {
                rota_core::events::workflow_ended(TaskId::from_i64(*id), state, t, now)
            });
            if let Some(e) = event {
                logged.push((tenant.clone(), e));
            }
        }
        tx.execute(
            "UPDATE rota_workflows SET ended_at = $1 WHERE id = ANY($2)",
            &[&now.0, &ids],
        )
        .await
        .map_err(db)?;
        crate::events::append(&tx, &logged, 0).await?;
        tx.commit().await.map_err(db)?;
        self.announce_events(logged.iter().map(|(t, _)| t.as_str()));
        Ok(full)
    }
}
