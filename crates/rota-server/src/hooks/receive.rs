//! One request to an inbound webhook, from its bytes to its task: bounded per address and per
//! hook, verified by the hook's provider rule, turned into a payload, enqueued as the hook's
//! owner is now, and logged (`hook.received`, or `hook.rejected` with the reason).

use super::verify::{self, Rejection};
use super::{HookRequest, Outcome};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::service::Service;
use rota_core::events::{Event, EventType, Subject};
use rota_core::hooks::HookRecord;
use rota_core::{NewTask, OnDependencyFailure, OnDuplicate, Task, TaskId, Timestamp};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// A request as the HTTP door hands it over.
pub struct Inbound<'a> {
    pub hook_id: &'a str,
    pub addr: IpAddr,
    /// Headers by lowercase name.
    pub header: &'a (dyn Fn(&str) -> Option<String> + Send + Sync),
    /// `None` when it was larger than `hooks.max_body_bytes`.
    pub body: Option<&'a [u8]>,
}

/// A request that became a task (or found the task an earlier delivery of it made).
pub struct Received {
    pub task: Task,
    pub duplicate: bool,
}

/// Rejections a hook logs as events per minute at most (each server); the rest are counted.
const LOGGED_REJECTIONS_PER_MINUTE: u32 = 60;

impl Service {
    pub async fn receive_hook(&self, auth: &Arc<Auth>, req: Inbound<'_>) -> ApiResult<Received> {
        let cfg = &self.config.hooks;
        let now = self.clock.now();
        if let Some(wait) =
            self.hooks
                .address_refused_too_often(req.addr, now, cfg.rejected_per_address_per_minute)
        {
            metrics::counter!("rota_hook_requests_total", "outcome" => "throttled").increment(1);
            return Err(ApiError::new(
                ErrorKind::RateLimited,
                "rate_limited",
                "too many refused requests from this address; wait and retry",
            )
            .retry_after(wait));
        }
        let Some(hook) = auth.hook(req.hook_id) else {
            self.hooks.note_refused(req.addr, now);
            metrics::counter!("rota_hook_requests_total", "outcome" => "unknown").increment(1);
            return Err(ApiError::new(
                ErrorKind::NotFound,
                "not_found",
                format!("hook `{}` does not exist", req.hook_id),
            ));
        };
        match self.admit_hook_request(auth, &hook, &req, now).await {
            Ok((r, delivery)) => {
                self.remember(&hook, &req, now, Ok(&r), delivery.clone());
                let outcome = if r.duplicate { "duplicate" } else { "received" };
                metrics::counter!("rota_hook_requests_total", "outcome" => outcome).increment(1);
                let mut e = event(EventType::HookReceived, &hook, r.task.id, delivery, now);
                e.state = Some(r.task.state);
                if let Err(err) = self.store.log_events(&hook.tenant, vec![e]).await {
                    // The task is enqueued; only its event is missing.
                    tracing::warn!(hook = %hook.id, error = %err, "hook.received not logged");
                }
                Ok(r)
            }
            Err((e, delivery)) if e.kind == ErrorKind::Unavailable => {
                // The server's trouble, not the request's: the provider retries.
                self.remember(&hook, &req, now, Err(&e), delivery);
                Err(e)
            }
            Err((e, delivery)) if e.kind == ErrorKind::RateLimited => {
                // A signed request over the hook's bound: its sender is not at fault, so it is
                // neither counted against its address nor logged one by one.
                self.remember(&hook, &req, now, Err(&e), delivery);
                metrics::counter!("rota_hook_requests_total", "outcome" => "throttled")
                    .increment(1);
                Err(e)
            }
            Err((e, delivery)) => {
                self.hooks.note_refused(req.addr, now);
                self.remember(&hook, &req, now, Err(&e), delivery.clone());
                metrics::counter!("rota_hook_requests_total", "outcome" => "rejected").increment(1);
                if self
                    .hooks
                    .log_rejection(&hook.id, now, LOGGED_REJECTIONS_PER_MINUTE)
                {
                    let mut ev = event(EventType::HookRejected, &hook, TaskId::NONE, delivery, now);
                    ev.error = Some(format!("{}: {}", e.code, e.message));
                    if let Err(err) = self.store.log_events(&hook.tenant, vec![ev]).await {
                        tracing::warn!(hook = %hook.id, error = %err, "hook.rejected not logged");
                    }
                }
                Err(e)
            }
        }
    }

    /// Everything between finding the hook and its task; an error comes with the delivery id
    /// when it was known by then.
    async fn admit_hook_request(
        &self,
        auth: &Arc<Auth>,
        hook: &HookRecord,
        req: &Inbound<'_>,
        now: Timestamp,
    ) -> Result<(Received, Option<String>), (ApiError, Option<String>)> {
        let cfg = &self.config.hooks;
        let body = req.body.ok_or_else(|| {
            let e = ApiError::new(
                ErrorKind::TooLarge,
                "body_too_large",
                format!(
                    "the body is larger than {} bytes (hooks.max_body_bytes)",
                    cfg.max_body_bytes
                ),
            );
            (e, None)
        })?;
        // Proven first: who cannot sign learns nothing of the hook, not even that it is off.
        let window = i64::from(cfg.replay_window_s);
        let verified = verify::verify(hook, req.header, body, now, window)
            .map_err(|r| (unauthenticated(r), None))?;
        let delivery = verified.delivery.clone();
        let fail = |e: ApiError| (e, delivery.clone());
        if !hook.enabled {
            return Err(fail(ApiError::new(
                ErrorKind::Forbidden,
                "hook_disabled",
                format!(
                    "hook `{}` is disabled; enable it to take requests",
                    hook.name
                ),
            )));
        }
        // Only signed requests take from the hook's bound, so a flood of forged ones (bounded
        // per address) cannot use up what its provider sends.
        let limit = cfg.per_hook_per_minute;
        if let Err(wait) = self.hooks.take(&hook.id, now, limit) {
            return Err(fail(
                ApiError::new(
                    ErrorKind::RateLimited,
                    "rate_limited",
                    format!(
                        "hook `{}` took its {limit} requests of this minute \
                         (hooks.per_hook_per_minute)",
                        hook.name
                    ),
                )
                .retry_after(wait),
            ));
        }
        if let Some(m) = auth.maintenance(now).filter(|m| m.refuses(now)) {
            return Err(fail(crate::maintenance::refusal(&m, now)));
        }
        let payload = payload(req, body, verified).map_err(fail)?;
        let owner = hook.owner.as_ref().ok_or_else(|| {
            fail(ApiError::new(
                ErrorKind::Forbidden,
                "forbidden",
                "the hook has no owner; update it to make the updater its owner",
            ))
        })?;
        let caller = auth.owner_caller(owner, &hook.tenant).map_err(|why| {
            fail(ApiError::new(
                ErrorKind::Forbidden,
                "forbidden",
                format!("the hook's owner ({}) no longer holds: {why}", owner.label),
            ))
        })?;
        let traceparent =
            (req.header)("traceparent").filter(|t| rota_core::trace::check_traceparent(t).is_ok());
        let task = NewTask {
            kind: hook.kind.clone(),
            payload,
            priority: 0,
            run_at: None,
            max_attempts: None,
            unique_key: delivery.as_deref().map(|d| hook.unique_key(d)),
            on_duplicate: OnDuplicate::Keep,
            tags: Vec::new(),
            callback_url: None,
            group: None,
            depends_on: Vec::new(),
            on_dependency_failure: OnDependencyFailure::Cancel,
            workflow: None,
            tracestate: traceparent
                .as_ref()
                .and((req.header)("tracestate"))
                .filter(|s| rota_core::trace::check_tracestate(s).is_ok()),
            traceparent,
        };
        let mut out = self
            .enqueue(&caller, &hook.queue, vec![task], false)
            .await
            .map_err(fail)?;
        let e = out.remove(0);
        Ok((
            Received {
                task: e.task,
                duplicate: e.duplicate,
            },
            delivery,
        ))
    }

    fn remember(
        &self,
        hook: &HookRecord,
        req: &Inbound<'_>,
        now: Timestamp,
        outcome: Result<&Received, &ApiError>,
        delivery: Option<String>,
    ) {
        let (outcome, status, reason, task_id) = match outcome {
            Ok(r) if r.duplicate => (Outcome::Duplicate, 200, None, Some(r.task.id)),
            Ok(r) => (Outcome::Received, 202, None, Some(r.task.id)),
            Err(e) => (
                Outcome::Rejected,
                e.kind.http_status().as_u16(),
                Some(format!("{}: {}", e.code, e.message)),
                None,
            ),
        };
        self.hooks.remember(
            &hook.id,
            HookRequest {
                at: now,
                outcome,
                status,
                reason,
                delivery,
                task_id,
                address: req.addr.to_string(),
            },
        );
    }
}

fn unauthenticated(r: Rejection) -> ApiError {
    ApiError::new(ErrorKind::Unauthenticated, r.code, r.message)
}

fn event(
    ty: EventType,
    hook: &HookRecord,
    task_id: TaskId,
    delivery: Option<String>,
    at: Timestamp,
) -> Event {
    Event {
        cursor: 0,
        event_type: ty,
        at,
        queue: hook.queue.clone(),
        kind: hook.kind.clone(),
        task_id,
        attempt: 0,
        state: None,
        worker: None,
        error: None,
        due: None,
        subject: Some(Subject::Hook {
            hook_id: hook.id.clone(),
            delivery,
        }),
    }
}

/// The task's payload: `{"body": <JSON kept as JSON, anything else as text>, "headers":
/// {<the provider's event and delivery headers>}}`.
fn payload(
    req: &Inbound<'_>,
    body: &[u8],
    verified: verify::Verified,
) -> ApiResult<rota_core::Json> {
    let content_type = (req.header)("content-type").unwrap_or_default();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let is_json = media == "application/json" || media.ends_with("+json");
    let body: Value = if is_json {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the body is sent as {media} but is not JSON: {e}"))
        })?
    } else {
        let text = std::str::from_utf8(body).map_err(|_| {
            ApiError::new(
                ErrorKind::BadRequest,
                "bad_request",
                format!("the body ({media}) is not UTF-8 text; send JSON or text"),
            )
        })?;
        Value::String(text.to_owned())
    };
    let v = json!({ "body": body, "headers": verified.headers });
    let raw = serde_json::value::to_raw_value(&v).expect("a JSON value serializes");
    Ok(raw)
}
