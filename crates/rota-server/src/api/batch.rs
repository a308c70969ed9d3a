//! Batch completion and failure: one outcome per item, each item authorised on its own (by
//! the service).

use super::*;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{task_id, JsonBody};
use crate::AppState;
use axum::extract::State;
use rota_store::Completion;
use serde::Deserialize;
use tasks::FailBody;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, bound = "T: Deserialize<'de>")]
pub struct BatchItems<T> {
    #[serde(deserialize_with = "rota_core::objects::objects")]
    pub items: Vec<T>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteItem {
    #[schema(value_type = schema::TaskIdText)]
    pub id: String,
    pub lease: String,
    #[schema(value_type = Option<serde_json::Value>)]
    pub result: Option<Json>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailItem {
    #[schema(value_type = schema::TaskIdText)]
    pub id: String,
    pub lease: String,
    pub error: String,
    #[schema(value_type = Option<schema::DelayMs>)]
    pub retry_in_ms: Option<u64>,
    #[serde(default)]
    pub dead: bool,
    #[serde(default)]
    pub temporary: bool,
}

/// Parses each item's id, naming the first bad one; also returns the ids as sent, for the
/// answer. (The batch's size and the items' fields are the service's to check.)
fn batch_items<I, O>(
    items: Vec<I>,
    id_of: impl Fn(&I) -> &String,
    convert: impl Fn(rota_core::TaskId, I) -> O,
) -> ApiResult<(Vec<O>, Vec<String>)> {
    let mut ids = Vec::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let raw = id_of(&item).clone();
        let id = task_id(&raw)
            .map_err(|e| ApiError::invalid(format!("items[{i}].id: {}", e.message)))?;
        out.push(convert(id, item));
        ids.push(raw);
    }
    Ok((out, ids))
}

fn outcomes(out: Vec<Result<rota_core::Task, ApiError>>, ids: Vec<String>) -> BatchOutcome {
    let items = out
        .into_iter()
        .zip(ids)
        .map(|(r, id)| match r {
            Ok(t) => ItemOutcome {
                id,
                ok: true,
                state: Some(t.state),
                error: None,
            },
            Err(e) => ItemOutcome {
                id,
                ok: false,
                state: None,
                error: Some(e.detail()),
            },
        })
        .collect();
    BatchOutcome { items }
}

#[utoipa::path(post, path = "/v1/tasks/complete", tag = "tasks",
    request_body = schema::CompleteBatch,
    responses((status = 200, body = BatchOutcome), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn complete_batch(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<BatchItems<CompleteItem>>,
) -> ApiResult<axum::Json<BatchOutcome>> {
    let (items, ids) = batch_items(
        body.items,
        |item| &item.id,
        |id, item| Completion {
            id,
            lease: item.lease,
            result: item.result,
        },
    )?;
    let out = st.service.complete(&caller, items, true).await?;
    Ok(axum::Json(outcomes(out, ids)))
}

#[utoipa::path(post, path = "/v1/tasks/fail", tag = "tasks",
    request_body = schema::FailBatch,
    responses((status = 200, body = BatchOutcome), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn fail_batch(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<BatchItems<FailItem>>,
) -> ApiResult<axum::Json<BatchOutcome>> {
    let (items, ids) = batch_items(
        body.items,
        |item| &item.id,
        |id, item| {
            FailBody {
                lease: item.lease,
                error: item.error,
                retry_in_ms: item.retry_in_ms,
                dead: item.dead,
                temporary: item.temporary,
            }
            .into_report(id)
        },
    )?;
    let out = st.service.fail(&caller, items, true).await?;
    Ok(axum::Json(outcomes(out, ids)))
}
