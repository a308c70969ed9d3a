//! Task routes: enqueue, claim (long-poll), heartbeat, complete, fail, get, list, cancel, retry.

use super::*;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{task_id, ApiPath, ApiQuery, JsonBody};
use crate::{metrics as m, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rota_core::auth::{actions, queue_resource};
use rota_store::{ClaimRequest, Completion, FailureReport, Heartbeat, ListFilter, StoreResult};
use serde::Deserialize;
use std::time::Duration;

#[utoipa::path(post, path = "/v1/queues/{queue}/tasks", tag = "tasks",
    params(("queue" = String, Path, description = "queue name, [A-Za-z0-9._-]{1,128}")),
    request_body = TaskInput,
    responses(
        (status = 201, description = "created; a batch answers {\"tasks\": [...]}", body = EnqueuedTask),
        (status = 200, description = "every task was a duplicate of a live task", body = EnqueuedTask),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn enqueue(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
    JsonBody(body): JsonBody<TaskInput>,
) -> ApiResult<Response> {
    let key = caller.queue(&queue, actions::TASKS_ENQUEUE)?;
    let limits = &st.config.limits;
    let now = st.clock.now();
    let (inputs, is_batch) = body.into_batch(limits)?;
    let mut tasks = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let at = if is_batch {
            format!("tasks[{i}]")
        } else {
            "task".to_owned()
        };
        tasks.push(input.validate(&at, now, limits)?);
    }
    caller.require_kinds(tasks.iter().map(|t| t.kind.as_str()))?;
    let out = st.store.enqueue(&key, tasks).await?;
    let created = out.iter().filter(|e| !e.duplicate).count();
    m::tasks_enqueued(&caller.tenant, &queue, created);
    let status = if created > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut views = out.into_iter().map(|e| EnqueuedTask {
        task: e.task,
        duplicate: e.duplicate,
    });
    Ok(if is_batch {
        (
            status,
            axum::Json(EnqueuedBatch {
                tasks: views.collect(),
            }),
        )
            .into_response()
    } else {
        let one = views.next().expect("one task in, one out");
        (status, axum::Json(one)).into_response()
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Who claims: shown in the lease and in lease-expiry errors.
    pub worker: String,
    /// Only these kinds; absent or empty means any.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Most tasks to return, 1 to limits.max_claim. Default 1.
    pub max: Option<usize>,
    /// Wait up to this long for a task when none is ready. Default 0.
    pub wait_ms: Option<u64>,
    /// Lease length. Default: the queue's `lease_ms`.
    pub lease_ms: Option<u64>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Claimed {
    pub tasks: Vec<rota_core::Task>,
}

pub fn check_lease_ms(lease_ms: Option<u64>, limits: &rota_core::Limits) -> ApiResult<()> {
    if let Some(l) = lease_ms {
        if l < limits.min_lease_ms || l > limits.max_lease_ms {
            return Err(ApiError::invalid(format!(
                "lease_ms is {l}; use {} to {} (limits.min_lease_ms, limits.max_lease_ms)",
                limits.min_lease_ms, limits.max_lease_ms
            )));
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/queues/{queue}/claim", tag = "tasks",
    params(("queue" = String, Path)), request_body = ClaimBody,
    responses((status = 200, body = Claimed), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn claim(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
    JsonBody(mut body): JsonBody<ClaimBody>,
) -> ApiResult<axum::Json<Claimed>> {
    let key = caller.queue(&queue, actions::TASKS_CLAIM)?;
    let limits = &st.config.limits;
    check_name("worker", &body.worker, limits)?;
    if body.kinds.len() > limits.max_claim_kinds {
        return Err(ApiError::invalid(format!(
            "kinds has {} entries; the limit is {} (limits.max_claim_kinds)",
            body.kinds.len(),
            limits.max_claim_kinds
        )));
    }
    for k in &body.kinds {
        check_name("kinds[]", k, limits)?;
    }
    // A credential limited to some kinds claims only those (its own list is not held to the
    // request limit on `kinds`: the operator's identity provider set it).
    match &caller.principal.kinds {
        Some(allowed) if body.kinds.is_empty() => body.kinds = allowed.clone(),
        _ => caller.require_kinds(body.kinds.iter().map(String::as_str))?,
    }
    let max = body.max.unwrap_or(1);
    if max == 0 || max > limits.max_claim {
        return Err(ApiError::invalid(format!(
            "max is {max}; use 1 to {} (limits.max_claim)",
            limits.max_claim
        )));
    }
    let wait_ms = body.wait_ms.unwrap_or(0);
    if wait_ms > limits.max_wait_ms {
        return Err(ApiError::invalid(format!(
            "wait_ms is {wait_ms}; the limit is {} (limits.max_wait_ms)",
            limits.max_wait_ms
        )));
    }
    check_lease_ms(body.lease_ms, limits)?;
    let req = ClaimRequest {
        worker: body.worker,
        kinds: body.kinds,
        max,
        lease_ms: body.lease_ms,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let signal = st.store.ready_signal(&key);
    loop {
        // Register for the wake-up before looking, so a task enqueued between the look and the
        // wait still wakes this claim.
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let tasks = st.store.claim(&key, req.clone()).await?;
        if !tasks.is_empty() || wait_ms == 0 {
            m::tasks_claimed(&caller.tenant, &queue, tasks.len());
            return Ok(axum::Json(Claimed { tasks }));
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => break,
            _ = st.shutdown.cancelled() => break,
        }
    }
    Ok(axum::Json(Claimed { tasks: Vec::new() }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    /// The lease token from the claim.
    pub lease: String,
    /// New lease length from now. Default: the queue's `lease_ms`.
    pub lease_ms: Option<u64>,
    /// Any JSON describing progress; kept on the task.
    #[schema(value_type = Option<serde_json::Value>)]
    pub progress: Option<Json>,
}

#[utoipa::path(post, path = "/v1/tasks/{id}/heartbeat", tag = "tasks",
    params(("id" = String, Path)), request_body = HeartbeatBody,
    responses((status = 200, body = rota_core::Task), (status = 404, body = ErrorBody),
        (status = 409, description = "lease_lost", body = ErrorBody)))]
pub async fn heartbeat(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<HeartbeatBody>,
) -> ApiResult<axum::Json<rota_core::Task>> {
    let id = task_id(&id)?;
    let limits = &st.config.limits;
    check_lease_ms(body.lease_ms, limits)?;
    if let Some(p) = &body.progress {
        check_json_size("progress", p, limits)?;
    }
    authorize_task(&st, &caller, actions::TASKS_HEARTBEAT, id).await?;
    let hb = Heartbeat {
        id,
        lease: body.lease,
        lease_ms: body.lease_ms,
        progress: body.progress,
    };
    Ok(axum::Json(st.store.heartbeat(&caller.tenant, hb).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    pub lease: String,
    /// Any JSON; kept on the task.
    #[schema(value_type = Option<serde_json::Value>)]
    pub result: Option<Json>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    pub lease: String,
    /// What went wrong; kept in the task's `errors`.
    pub error: String,
    /// Retry after this delay instead of the queue's backoff.
    pub retry_in_ms: Option<u64>,
    /// Do not retry: the task goes dead now.
    #[serde(default)]
    pub dead: bool,
    /// A temporary failure (a dependency was down): recorded, but the attempt does not count
    /// toward `max_attempts`.
    #[serde(default)]
    pub temporary: bool,
}

pub(super) fn completion(
    id: rota_core::TaskId,
    body: CompleteBody,
    limits: &Limits,
) -> ApiResult<Completion> {
    if let Some(r) = &body.result {
        check_json_size("result", r, limits)?;
    }
    Ok(Completion {
        id,
        lease: body.lease,
        result: body.result,
    })
}

pub(super) fn failure(
    id: rota_core::TaskId,
    body: FailBody,
    limits: &Limits,
) -> ApiResult<FailureReport> {
    if let Some(ms) = body.retry_in_ms {
        limits
            .check_delay("retry_in_ms", ms)
            .map_err(ApiError::invalid)?;
    }
    let mut error = body.error;
    if error.len() > limits.max_error_len {
        let mut cut = limits.max_error_len;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
        error.push_str("… (truncated)");
    }
    Ok(FailureReport {
        id,
        lease: body.lease,
        error,
        retry_in_ms: body.retry_in_ms,
        dead: body.dead,
        temporary: body.temporary,
    })
}

pub(super) fn record_outcomes(tenant: &str, queue_of: &[StoreResult<rota_core::Task>]) {
    for t in queue_of.iter().flatten() {
        m::task_outcome(tenant, &t.queue, t.state);
    }
}

#[utoipa::path(post, path = "/v1/tasks/{id}/complete", tag = "tasks",
    params(("id" = String, Path)), request_body = CompleteBody,
    responses((status = 200, body = rota_core::Task), (status = 404, body = ErrorBody),
        (status = 409, description = "lease_lost", body = ErrorBody)))]
pub async fn complete(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<CompleteBody>,
) -> ApiResult<axum::Json<rota_core::Task>> {
    let item = completion(task_id(&id)?, body, &st.config.limits)?;
    authorize_task(&st, &caller, actions::TASKS_COMPLETE, item.id).await?;
    let out = st.store.complete(&caller.tenant, vec![item]).await;
    record_outcomes(&caller.tenant, &out);
    Ok(axum::Json(out.into_iter().next().expect("one outcome")?))
}

#[utoipa::path(post, path = "/v1/tasks/{id}/fail", tag = "tasks",
    params(("id" = String, Path)), request_body = FailBody,
    responses((status = 200, body = rota_core::Task), (status = 404, body = ErrorBody),
        (status = 409, description = "lease_lost", body = ErrorBody)))]
pub async fn fail(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<FailBody>,
) -> ApiResult<axum::Json<rota_core::Task>> {
    let item = failure(task_id(&id)?, body, &st.config.limits)?;
    authorize_task(&st, &caller, actions::TASKS_FAIL, item.id).await?;
    let out = st.store.fail(&caller.tenant, vec![item]).await;
    record_outcomes(&caller.tenant, &out);
    Ok(axum::Json(out.into_iter().next().expect("one outcome")?))
}

/// 403 unless the caller may do `action` on the queue of task `id`, and handle its kind. Looks
/// the task up only when the caller's roles do not allow `action` on every queue or its
/// credential is limited to some kinds.
pub(super) async fn authorize_task(
    st: &AppState,
    caller: &Caller,
    action: &str,
    id: rota_core::TaskId,
) -> ApiResult<()> {
    if caller.on_every_queue(action) && caller.principal.kinds.is_none() {
        return Ok(());
    }
    let task = st.store.get(&caller.tenant, id).await?;
    caller.require(action, &queue_resource(&task.queue))?;
    caller.require_kinds([task.kind.as_str()])
}

/// A lease token proves the lease: only a caller who may complete the task sees it (a reader,
/// a producer, or a worker limited to other kinds sees the lease without its token).
fn hide_token_unless_allowed(caller: &Caller, task: &mut rota_core::Task) {
    if let Some(lease) = task.lease.as_mut() {
        let may_act = caller.can(actions::TASKS_COMPLETE, &queue_resource(&task.queue))
            && caller.require_kinds([task.kind.as_str()]).is_ok();
        if !may_act {
            lease.token.clear();
        }
    }
}

#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = rota_core::Task), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<rota_core::Task>> {
    let mut task = st.store.get(&caller.tenant, task_id(&id)?).await?;
    caller.require(actions::TASKS_READ, &queue_resource(&task.queue))?;
    hide_token_unless_allowed(&caller, &mut task);
    Ok(axum::Json(task))
}

#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = rota_core::Task), (status = 404, body = ErrorBody),
        (status = 409, description = "already final", body = ErrorBody)))]
pub async fn cancel(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<rota_core::Task>> {
    let id = task_id(&id)?;
    authorize_task(&st, &caller, actions::TASKS_CANCEL, id).await?;
    let t = st.store.cancel(&caller.tenant, id).await?;
    m::task_outcome(&caller.tenant, &t.queue, t.state);
    Ok(axum::Json(t))
}

#[utoipa::path(post, path = "/v1/tasks/{id}/retry", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = rota_core::Task), (status = 404, body = ErrorBody),
        (status = 409, description = "not dead or cancelled", body = ErrorBody)))]
pub async fn retry(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<rota_core::Task>> {
    let id = task_id(&id)?;
    authorize_task(&st, &caller, actions::TASKS_RETRY, id).await?;
    Ok(axum::Json(st.store.retry(&caller.tenant, id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only tasks in this state.
    pub state: Option<String>,
    /// Only tasks of this kind.
    pub kind: Option<String>,
    /// Page size, 1 to limits.max_list. Default 100.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/queues/{queue}/tasks", tag = "tasks",
    params(("queue" = String, Path), ListParams),
    responses((status = 200, body = TaskList), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(queue): ApiPath<String>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<axum::Json<TaskList>> {
    let key = caller.queue(&queue, actions::TASKS_READ)?;
    let limits = &st.config.limits;
    let state = p
        .state
        .map(|s| s.parse::<TaskState>())
        .transpose()
        .map_err(ApiError::bad_request)?;
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > limits.max_list {
        return Err(ApiError::bad_request(format!(
            "limit is {limit}; use 1 to {} (limits.max_list)",
            limits.max_list
        )));
    }
    let before = p
        .cursor
        .map(|c| task_id(&c))
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("cursor: {}", e.message)))?;
    let page = st
        .store
        .list(
            &key,
            ListFilter {
                state,
                kind: p.kind,
                limit,
                before,
            },
        )
        .await?;
    let mut tasks = page.tasks;
    for t in &mut tasks {
        hide_token_unless_allowed(&caller, t);
    }
    Ok(axum::Json(TaskList {
        tasks,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}
