//! A running task spawns tasks and waits for them (docs/workflows.md, "Spawning tasks").

use super::workflows::AddedTasks;
use super::*;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{task_id, ApiPath, JsonBody};
use crate::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpawnBody {
    /// The lease the task runs under (its claim's `lease.token`).
    pub lease: String,
    /// The tasks to add, as a batch's members are given (a queue each), at least one.
    #[serde(deserialize_with = "rota_core::objects::objects")]
    pub tasks: Vec<workflows::WorkflowTaskInput>,
    /// What a spawned task that ends dead or cancelled does to this task: `cancel` it (the
    /// default), or `run` it anyway (its next claim shows how each ended).
    pub on_dependency_failure: Option<OnDependencyFailure>,
}

/// The spawner as it stands (waiting for the tasks; released already if they all ended) and
/// the tasks it spawned, in the order given.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpawnedTasks {
    pub task: rota_core::Task,
    pub tasks: Vec<rota_core::Task>,
}

#[utoipa::path(post, path = "/v1/tasks/{id}/spawn", tag = "tasks",
    params(("id" = schema::TaskIdText, Path)), request_body = SpawnBody,
    responses(
        (status = 201, description = "the tasks stored; the task gave up its lease and waits for them, then runs again (the same attempt) with their results in its claim's `dependencies`", body = SpawnedTasks),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`task_cancelled` or `lease_lost`: nothing is stored", body = ErrorBody),
        (status = 422, description = "a bad task, or more than 10,000 dependencies in all: nothing is stored", body = ErrorBody)))]
pub async fn spawn(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<SpawnBody>,
) -> ApiResult<Response> {
    let id = task_id(&id)?;
    let added = AddedTasks { tasks: body.tasks };
    let tasks = added.members(st.clock.now(), &st.config.limits)?;
    let policy = body.on_dependency_failure.unwrap_or_default();
    let out = st
        .service
        .spawn(&caller, id, body.lease, tasks, policy)
        .await?;
    let body = SpawnedTasks {
        task: out.task,
        tasks: out.tasks,
    };
    Ok((axum::http::StatusCode::CREATED, axum::Json(body)).into_response())
}
