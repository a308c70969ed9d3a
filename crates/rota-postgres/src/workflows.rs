//! Workflows on PostgreSQL: the whole graph in one transaction (docs/workflows.md).

use crate::enqueue::{EnqueueColumns, INSERT};
use crate::rows::{state_from_sql, task_from_row, TASK_COLUMNS};
use crate::tasks::lock_tenant;
use crate::{db, PostgresStore};
use async_trait::async_trait;
use rota_core::lifecycle;
use rota_core::workflow::{Workflow, WorkflowKind};
use rota_core::{QueueKey, StateCounts, TaskId, TaskState, Timestamp};
use rota_store::{StoreError, StoreResult, WorkflowSpecTask, WorkflowStore};
use std::collections::{BTreeMap, HashMap};

type Names = Vec<(String, TaskId)>;

fn kind_of(batch: bool) -> WorkflowKind {
    if batch {
        WorkflowKind::Batch
    } else {
        WorkflowKind::Workflow
    }
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
        kind: WorkflowKind,
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
        let mut by_queue: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, t) in spec.iter().enumerate() {
            by_queue.entry(t.queue.as_str()).or_default().push(i);
        }
        let mut client = self.conn().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_tenant(&tx, tenant, false).await?;
        let mut stored = Vec::with_capacity(spec.len());
        let mut tasks_of: Vec<(QueueKey, Vec<rota_core::NewTask>)> = Vec::new();
        for (queue, members) in &by_queue {
            let key = QueueKey::new(tenant, *queue);
            self.queue_for_write(&tx, &key, now).await?;
            let mut cols = EnqueueColumns::default();
            let mut news = Vec::with_capacity(members.len());
            for &i in members {
                let t = &spec[i];
                let mut task = t.task.clone();
                task.depends_on = t.after.iter().map(|&j| ids[j]).collect();
                task.workflow = Some(wf.clone());
                let state = if task.depends_on.is_empty() {
                    lifecycle::waiting_state(task.run_at.unwrap_or(now), now)
                } else {
                    TaskState::Waiting
                };
                cols.push_as(ids[i], &task, now, state, has_dependents[i]);
                news.push((i, task, state));
            }
            let logged = stored.len() as i64;
            let row = tx
                .query_one(INSERT.as_str(), &cols.params(&key, &now.0, &logged))
                .await
                .map_err(db)?;
            let inserted: Vec<i64> = row.get(2);
            if inserted.len() != members.len() {
                return Err(StoreError::Conflict(format!(
                    "a task of queue `{queue}` has a unique key another live task holds; \
                     a workflow is stored whole or not at all"
                )));
            }
            let default_max_attempts = row.get::<_, i32>(1).max(0) as u32;
            let mut plain = Vec::with_capacity(news.len());
            for (i, task, state) in news {
                let max = task.max_attempts.unwrap_or(default_max_attempts);
                let mut t = lifecycle::enqueued(ids[i], queue, &task, max, now);
                t.state = state;
                stored.push(t);
                plain.push(task);
            }
            tasks_of.push((key, plain));
        }
        let (mut waiter, mut dep) = (Vec::new(), Vec::new());
        for (i, t) in spec.iter().enumerate() {
            for &j in &t.after {
                waiter.push(ids[i].as_i64());
                dep.push(ids[j].as_i64());
            }
        }
        if !waiter.is_empty() {
            tx.execute(
                "INSERT INTO rota_task_waits (task_id, dep_id) \
                 SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
                &[&waiter, &dep],
            )
            .await
            .map_err(db)?;
        }
        let names: Names = spec
            .iter()
            .zip(&ids)
            .map(|(t, id)| (t.name.clone(), *id))
            .collect();
        let callback = (kind == WorkflowKind::Batch)
            .then(|| ids.last().map(|c| c.as_i64()))
            .flatten();
        tx.execute(
            "INSERT INTO rota_workflows (id, tenant, created_at, names, callback) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &id.as_i64(),
                &tenant,
                &now.0,
                &serde_json::to_string(&names).expect("names serialize"),
                &callback,
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        for (key, tasks) in &tasks_of {
            self.after_enqueue(key, tasks, now);
        }
        Ok(Workflow::assemble(id, kind, now, &names, stored))
    }

    async fn workflow(&self, tenant: &str, id: TaskId) -> StoreResult<Workflow> {
        let client = self.conn().await?;
        let row = client
            .query_opt(
                "SELECT created_at, names, callback IS NOT NULL FROM rota_workflows \
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
        Ok(Workflow::assemble(
            id,
            kind_of(row.get(2)),
            Timestamp(row.get(0)),
            &names,
            tasks,
        ))
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
