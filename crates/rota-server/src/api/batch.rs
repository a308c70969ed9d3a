//! Batch completion and failure: one outcome per item, each item authorised on its own.

use super::*;
use crate::auth::Caller;
use crate::error::ErrorKind;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{task_id, JsonBody};
use crate::AppState;
use axum::extract::State;
use rota_core::auth::actions;
use rota_store::StoreResult;
use serde::Deserialize;
use tasks::{authorize_task, completion, failure, record_outcomes, CompleteBody, FailBody};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItems<T> {
    pub items: Vec<T>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteItem {
    pub id: String,
    pub lease: String,
    #[schema(value_type = Option<serde_json::Value>)]
    pub result: Option<Json>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailItem {
    pub id: String,
    pub lease: String,
    pub error: String,
    pub retry_in_ms: Option<u64>,
    #[serde(default)]
    pub dead: bool,
    #[serde(default)]
    pub temporary: bool,
}

/// Checks a batch's size and turns each item into what the store takes, naming the item of
/// the first bad id; also returns the ids as sent, for the answer.
fn batch_items<I, O>(
    items: Vec<I>,
    limits: &Limits,
    id_of: impl Fn(&I) -> &String,
    convert: impl Fn(rota_core::TaskId, I) -> ApiResult<O>,
) -> ApiResult<(Vec<O>, Vec<String>)> {
    let n = items.len();
    if n == 0 {
        return Err(ApiError::invalid(
            "`items` is empty; send at least one item",
        ));
    }
    if n > limits.max_batch {
        return Err(ApiError::too_large(format!(
            "{n} items in one request; the limit is {} (limits.max_batch)",
            limits.max_batch
        )));
    }
    let mut ids = Vec::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    for (i, item) in items.into_iter().enumerate() {
        let raw = id_of(&item).clone();
        let id = task_id(&raw)
            .map_err(|e| ApiError::invalid(format!("items[{i}].id: {}", e.message)))?;
        out.push(convert(id, item)?);
        ids.push(raw);
    }
    Ok((out, ids))
}

/// Runs a batch on the items the caller may act on; the others answer 403 on their own.
async fn permitted<I>(
    st: &AppState,
    caller: &Caller,
    action: &str,
    items: Vec<I>,
    id_of: impl Fn(&I) -> rota_core::TaskId,
    run: impl AsyncFnOnce(Vec<I>) -> Vec<StoreResult<rota_core::Task>>,
) -> Vec<Result<rota_core::Task, ApiError>> {
    let mut refused: Vec<Option<ApiError>> = Vec::with_capacity(items.len());
    for item in &items {
        refused.push(
            match authorize_task(st, caller, action, id_of(item)).await {
                // An unknown task is the store's to report, in its place in the batch.
                Err(e) if e.kind == ErrorKind::Forbidden => Some(e),
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
    record_outcomes(&caller.tenant, &done);
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
    request_body(content = Object, description = "{\"items\": [{\"id\", \"lease\", \"result\"?}]}"),
    responses((status = 200, body = BatchOutcome), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn complete_batch(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<BatchItems<CompleteItem>>,
) -> ApiResult<axum::Json<BatchOutcome>> {
    let limits = &st.config.limits;
    let (items, ids) = batch_items(
        body.items,
        limits,
        |item| &item.id,
        |id, item| {
            let body = CompleteBody {
                lease: item.lease,
                result: item.result,
            };
            completion(id, body, limits)
        },
    )?;
    let out = permitted(
        &st,
        &caller,
        actions::TASKS_COMPLETE,
        items,
        |c| c.id,
        async |items| st.store.complete(&caller.tenant, items).await,
    )
    .await;
    Ok(axum::Json(outcomes(out, ids)))
}

#[utoipa::path(post, path = "/v1/tasks/fail", tag = "tasks",
    request_body(content = Object, description = "{\"items\": [{\"id\", \"lease\", \"error\", \"retry_in_ms\"?, \"dead\"?}]}"),
    responses((status = 200, body = BatchOutcome), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn fail_batch(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<BatchItems<FailItem>>,
) -> ApiResult<axum::Json<BatchOutcome>> {
    let limits = &st.config.limits;
    let (items, ids) = batch_items(
        body.items,
        limits,
        |item| &item.id,
        |id, item| {
            let body = FailBody {
                lease: item.lease,
                error: item.error,
                retry_in_ms: item.retry_in_ms,
                dead: item.dead,
                temporary: item.temporary,
            };
            failure(id, body, limits)
                .map_err(|e| ApiError::invalid(format!("items[].{}", e.message)))
        },
    )?;
    let out = permitted(
        &st,
        &caller,
        actions::TASKS_FAIL,
        items,
        |f| f.id,
        async |items| st.store.fail(&caller.tenant, items).await,
    )
    .await;
    Ok(axum::Json(outcomes(out, ids)))
}
