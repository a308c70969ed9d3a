//! Task operations: enqueue, claim (waiting for work), heartbeat, complete, fail, get, list,
//! and an operator's changes (cancel, retry, run now, kill, delete).

use super::*;
use crate::metrics as m;
use rota_core::{NewTask, OnDuplicate, QueueKey, Timestamp};
use rota_store::{
    Change, Completion, Enqueued, FailureReport, Heartbeat, ListFilter, Page, StoreResult,
};

/// The shortest pause between two reads of a task waited on (see [`Service::wait_final`]).
const RESULT_RECHECK: std::time::Duration = std::time::Duration::from_millis(5);

impl Service {
    /// Validates and enqueues tasks; each answer says whether a live task with the same unique
    /// key was returned instead. In a `batch`, messages name a task by its index
    /// (`tasks[3].kind`), otherwise `task.kind`.
    pub async fn enqueue(
        &self,
        caller: &Caller,
        queue: &str,
        mut tasks: Vec<NewTask>,
        batch: bool,
    ) -> ApiResult<Vec<Enqueued>> {
        let key = caller.queue(queue, actions::TASKS_ENQUEUE)?;
        let limits = self.limits();
        check_batch_size("tasks", "task", tasks.len(), limits)?;
        let now = self.clock.now();
        for (i, t) in tasks.iter_mut().enumerate() {
            let at = if batch {
                format!("tasks[{i}]")
            } else {
                "task".to_owned()
            };
            check_task(&at, t, now, limits)?;
            if let Some(url) = &mut t.callback_url {
                *url = crate::webhooks::target::check_form(url, &self.config.webhooks)
                    .map_err(|e| ApiError::invalid(format!("{at}.callback_url {e}")))?;
            }
        }
        if tasks.iter().any(|t| t.callback_url.is_some()) {
            self.require_callback_signer(caller).await?;
        }
        caller.require_kinds(tasks.iter().map(|t| t.kind.as_str()))?;
        if caller.principal.kinds.is_some() {
            self.require_replaceable_kinds(caller, &key, &tasks).await?;
        }
        let waits = tasks.iter().any(|t| !t.depends_on.is_empty());
        if waits {
            self.authorize_dependencies(caller, &tasks, batch).await?;
        }
        let spans = self.telemetry.enqueueing(&mut tasks);
        let out = match self.store.enqueue(&key, tasks).await {
            // A dependency gone since it was checked (or never checked, for a caller that may
            // read every queue): the request's error, 422 as the check would have said.
            Err(rota_store::StoreError::Invalid(m)) if waits => return Err(ApiError::invalid(m)),
            other => other?,
        };
        spans.stored(&caller.tenant, out.iter().map(|e| &e.task));
        let created = out.iter().filter(|e| !e.duplicate).count();
        m::tasks_enqueued(&caller.tenant, queue, created);
        Ok(out)
    }

    /// A credential limited to some kinds replaces only tasks of those kinds: a replacement
    /// rewrites the holder, as a cancel would end it. The holders are looked up before the
    /// enqueue, so a holder of another kind enqueued in between (by a caller allowed that
    /// kind) could still be replaced; only kind-limited callers pay for the look-up.
    async fn require_replaceable_kinds(
        &self,
        caller: &Caller,
        key: &QueueKey,
        tasks: &[NewTask],
    ) -> ApiResult<()> {
        let keys = tasks
            .iter()
            .filter(|t| t.on_duplicate == OnDuplicate::Replace)
            .filter_map(|t| t.unique_key.clone());
        for k in keys.collect::<std::collections::BTreeSet<_>>() {
            let filter = ListFilter {
                limit: 1,
                unique_key: Some(k),
                ..ListFilter::default()
            };
            let holders = match self.store.list(key, filter).await {
                Err(rota_store::StoreError::QueueNotFound(_)) => return Ok(()),
                other => other?.tasks,
            };
            caller.require_kinds(holders.iter().map(|t| t.kind.as_str()))?;
        }
        Ok(())
    }

    /// Extends a lease, optionally recording progress.
    pub async fn heartbeat(&self, caller: &Caller, hb: Heartbeat) -> ApiResult<Task> {
        let limits = self.limits();
        check_lease_ms("lease_ms", hb.lease_ms, limits)?;
        if let Some(p) = &hb.progress {
            check_json_size("progress", p, limits)?;
        }
        self.authorize_task(caller, actions::TASKS_HEARTBEAT, hb.id)
            .await?;
        Ok(self.store.heartbeat(&caller.tenant, hb).await?)
    }

    /// Completes leased tasks: an error for the whole request when an item is malformed,
    /// otherwise one outcome per item (each authorised on its own).
    pub async fn complete(
        &self,
        caller: &Caller,
        items: Vec<Completion>,
        batch: bool,
    ) -> ApiResult<Vec<ApiResult<Task>>> {
        let limits = self.limits();
        check_batch_size("items", "item", items.len(), limits)?;
        for (i, c) in items.iter().enumerate() {
            if let Some(r) = &c.result {
                check_json_size(&field(batch, i, "result"), r, limits)?;
            }
        }
        let store = &self.store;
        Ok(self
            .permitted(
                caller,
                actions::TASKS_COMPLETE,
                items,
                |c| c.id,
                async |items| store.complete(&caller.tenant, items).await,
            )
            .await)
    }

    /// Fails leased tasks, as [`Service::complete`]; an over-long error is cut to
    /// `limits.max_error_len`.
    pub async fn fail(
        &self,
        caller: &Caller,
        mut items: Vec<FailureReport>,
        batch: bool,
    ) -> ApiResult<Vec<ApiResult<Task>>> {
        let limits = self.limits();
        check_batch_size("items", "item", items.len(), limits)?;
        for (i, f) in items.iter_mut().enumerate() {
            if let Some(ms) = f.retry_in_ms {
                limits
                    .check_delay(&field(batch, i, "retry_in_ms"), ms)
                    .map_err(ApiError::invalid)?;
            }
            truncate_error(&mut f.error, limits.max_error_len);
        }
        let store = &self.store;
        Ok(self
            .permitted(
                caller,
                actions::TASKS_FAIL,
                items,
                |f| f.id,
                async |items| store.fail(&caller.tenant, items).await,
            )
            .await)
    }

    /// Runs a batch on the items the caller may act on; the others answer 403 on their own.
    async fn permitted<I>(
        &self,
        caller: &Caller,
        action: &str,
        items: Vec<I>,
        id_of: impl Fn(&I) -> TaskId,
        run: impl AsyncFnOnce(Vec<I>) -> Vec<StoreResult<Task>>,
    ) -> Vec<ApiResult<Task>> {
        let began = std::time::SystemTime::now();
        let mut refused: Vec<Option<ApiError>> = Vec::with_capacity(items.len());
        for item in &items {
            refused.push(
                match self.authorize_task(caller, action, id_of(item)).await {
                    // An unknown task is the store's to report, in its place in the batch.
                    Err(e) if e.kind == crate::error::ErrorKind::Forbidden => Some(e),
                    _ => None,
                },
            );
        }
        let allowed: Vec<I> = items
            .into_iter()
            .zip(&refused)
            .filter(|(_, r)| r.is_none())
            .map(|(i, _)| i)
            .collect();
        let done = if allowed.is_empty() {
            Vec::new()
        } else {
            run(allowed).await
        };
        m::attempts_ended(&caller.tenant, done.iter().flatten());
        for t in done.iter().flatten() {
            self.telemetry.attempt_ended(&caller.tenant, t, began);
        }
        let mut done = done.into_iter();
        refused
            .into_iter()
            .map(|r| match r {
                Some(e) => Err(e),
                None => done
                    .next()
                    .expect("one outcome per allowed item")
                    .map_err(ApiError::from),
            })
            .collect()
    }

    /// One task, its lease token hidden from callers who may not act on it.
    pub async fn get(&self, caller: &Caller, id: TaskId) -> ApiResult<Task> {
        let mut task = self.store.get(&caller.tenant, id).await?;
        caller.require(actions::TASKS_READ, &queue_resource(&task.queue))?;
        hide_token_unless_allowed(caller, &mut task);
        Ok(task)
    }

    /// The live tasks holding `unique_key` in the caller's tenant, in the queues whose tasks it
    /// may read.
    pub async fn unique_holders(&self, caller: &Caller, unique_key: &str) -> ApiResult<Vec<Task>> {
        let mut found = self
            .store
            .unique_holders(&caller.tenant, unique_key)
            .await?;
        found.retain(|t| caller.can(actions::TASKS_READ, &queue_resource(&t.queue)));
        for t in &mut found {
            hide_token_unless_allowed(caller, t);
        }
        Ok(found)
    }

    /// The task once it is final (succeeded, dead or cancelled), or as it is when `wait_ms`
    /// ends first. Woken by commits that log the tenant's events, not by a timer; a burst of
    /// commits costs one read per [`RESULT_RECHECK`] at most.
    pub async fn wait_final(&self, caller: &Caller, id: TaskId, wait_ms: u64) -> ApiResult<Task> {
        check_wait_ms(wait_ms, self.limits())?;
        let signal = self.store.tenant_event_signal(&caller.tenant);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(wait_ms);
        loop {
            let woken = signal.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let task = self.get(caller, id).await?;
            if task.state.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(task);
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.shutdown.cancelled() => return Ok(task),
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(RESULT_RECHECK.min(left)).await;
        }
    }

    /// A page of a queue's tasks, newest first.
    pub async fn list(&self, caller: &Caller, queue: &str, filter: ListFilter) -> ApiResult<Page> {
        let key = caller.queue(queue, actions::TASKS_READ)?;
        let max = self.limits().max_list;
        if filter.limit == 0 || filter.limit > max {
            return Err(ApiError::bad_request(format!(
                "limit is {}; use 1 to {max} (limits.max_list)",
                filter.limit
            )));
        }
        let mut page = self.store.list(&key, filter).await?;
        for t in &mut page.tasks {
            hide_token_unless_allowed(caller, t);
        }
        Ok(page)
    }

    /// An operator's change to one task: cancel (`tasks:cancel`), retry or run now
    /// (`tasks:retry`), kill (`tasks:cancel`), delete (`queues:purge`). Answers the task as it is
    /// after, or as it was before a delete.
    pub async fn change(&self, caller: &Caller, id: TaskId, mut change: Change) -> ApiResult<Task> {
        if let Change::Kill { reason } = &mut change {
            truncate_error(reason, self.limits().max_error_len);
        }
        let action = match change {
            Change::Cancel | Change::Kill { .. } => actions::TASKS_CANCEL,
            Change::Retry | Change::RunNow => actions::TASKS_RETRY,
            Change::Delete => actions::QUEUES_PURGE,
        };
        self.authorize_task(caller, action, id).await?;
        let counted = matches!(change, Change::Cancel | Change::Kill { .. });
        let what = match &change {
            Change::Cancel => "task.cancel",
            Change::Kill { .. } => "task.kill",
            Change::Retry => "task.retry",
            Change::RunNow => "task.run_now",
            Change::Delete => "task.delete",
        };
        let after = match &change {
            Change::Kill { reason } => Some(serde_json::json!({ "reason": reason })),
            _ => None,
        };
        let entry = audit::with(caller.audit(what, format!("tasks/{id}")), None, after);
        let t = audit::audited(entry, self.store.change(&caller.tenant, id, change)).await?;
        if counted {
            m::task_outcome(&caller.tenant, &t);
        }
        Ok(t)
    }
}

/// `items[3].result` in a batch, `result` alone.
fn field(batch: bool, i: usize, name: &str) -> String {
    if batch {
        format!("items[{i}].{name}")
    } else {
        name.to_owned()
    }
}

fn truncate_error(error: &mut String, max: usize) {
    if error.len() > max {
        let mut cut = max;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
        error.push_str("… (truncated)");
    }
}

/// The rules every new task must keep, whichever door it came through; `at` names it.
pub fn check_task(at: &str, t: &NewTask, now: Timestamp, limits: &Limits) -> ApiResult<()> {
    check_name(&format!("{at}.kind"), &t.kind, limits)?;
    check_json_size(&format!("{at}.payload"), &t.payload, limits)?;
    if let Some(run_at) = t.run_at {
        limits
            .check_time(&format!("{at}.run_at"), run_at, now)
            .map_err(ApiError::invalid)?;
    }
    check_max_attempts(&format!("{at}.max_attempts"), t.max_attempts)?;
    if let Some(k) = &t.unique_key {
        check_name(&format!("{at}.unique_key"), k, limits)?;
    } else if t.on_duplicate == OnDuplicate::Replace {
        return Err(ApiError::invalid(format!(
            "{at}.on_duplicate: `replace` needs a unique_key to find the task to replace"
        )));
    }
    if let Some(g) = &t.group {
        check_name(&format!("{at}.group"), g, limits)?;
    }
    if !t.depends_on.is_empty() && t.on_duplicate == OnDuplicate::Replace {
        return Err(ApiError::invalid(format!(
            "{at}.on_duplicate: `replace` cannot be used with depends_on (a replaced task would \
             not wait for the new dependencies); use `keep`"
        )));
    }
    if t.tags.len() > limits.max_tags {
        return Err(ApiError::invalid(format!(
            "{at}.tags has {} tags; the limit is {} (limits.max_tags)",
            t.tags.len(),
            limits.max_tags
        )));
    }
    for tag in &t.tags {
        check_name(&format!("{at}.tags[]"), tag, limits)?;
    }
    rota_core::trace::check(at, t.traceparent.as_deref(), t.tracestate.as_deref())
        .map_err(ApiError::invalid)
}
