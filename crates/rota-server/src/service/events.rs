//! Reading the event log: a caller sees its own tenant's events, only for the queues and kinds
//! it may read, and may wait for the next ones (woken by the commit that logs them).

use super::*;
use rota_core::events::{Event, EventFilter, EventType, Subject};
use rota_store::{EventKeep, EventPage};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// A read of the event log.
#[derive(Debug, Clone)]
pub struct EventQuery {
    /// Events after this cursor (0: from the oldest retained).
    pub after: i64,
    pub filter: EventFilter,
    pub limit: usize,
    /// How long to wait for an event when none is there yet.
    pub wait_ms: u64,
}

impl Service {
    pub async fn events(&self, caller: &Caller, q: EventQuery) -> ApiResult<EventPage> {
        let keep = self.check_event_query(caller, &q)?;
        self.next_events(caller, &q, &keep, q.after, q.wait_ms)
            .await
    }

    /// Refuses a query the limits do not allow; what the caller may see of the log otherwise.
    fn check_event_query(&self, caller: &Caller, q: &EventQuery) -> ApiResult<EventKeep> {
        let limits = self.limits();
        if q.limit == 0 || q.limit > limits.max_list {
            return Err(ApiError::bad_request(format!(
                "limit is {}; use 1 to {} (limits.max_list)",
                q.limit, limits.max_list
            )));
        }
        if q.wait_ms > limits.max_wait_ms {
            return Err(ApiError::invalid(format!(
                "wait_ms is {}; the limit is {} (limits.max_wait_ms)",
                q.wait_ms, limits.max_wait_ms
            )));
        }
        if q.after < 0 {
            return Err(ApiError::bad_request("after is a cursor, 0 or more"));
        }
        for t in &q.filter.types {
            if !EventType::ALL
                .iter()
                .any(|e| rota_core::auth::glob_match(t, e.as_str()))
            {
                let names: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                return Err(ApiError::invalid(format!(
                    "types: `{t}` matches no event type; types are {} (or patterns such as task.*)",
                    names.join(", ")
                )));
            }
        }
        let (caller, filter) = (caller.clone(), q.filter.clone());
        Ok(Arc::new(move |e| {
            filter.matches(e) && may_read_event(&caller, e)
        }))
    }

    /// The next events after `after` that `keep` accepts, waiting up to `wait_ms` for one.
    async fn next_events(
        &self,
        caller: &Caller,
        q: &EventQuery,
        keep: &EventKeep,
        mut after: i64,
        wait_ms: u64,
    ) -> ApiResult<EventPage> {
        let signal = self.store.event_signal();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            // Registered before the read, so a commit between the read and the wait wakes it.
            let woken = signal.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let page = self
                .store
                .events(&caller.tenant, after, q.limit, keep.clone())
                .await?;
            if !page.events.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(page);
            }
            if page.next_cursor > after {
                // Other events were passed over; look on before waiting.
                after = page.next_cursor;
                continue;
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.shutdown.cancelled() => return Ok(page),
            }
        }
    }
}

/// Whether the caller may read an event: `tasks:read` on its queue, its task kind, and what
/// it is about. The event log answers by it, and a webhook sends an event only if its owner
/// may read it by this rule when it is sent.
pub fn may_read_event(caller: &Caller, e: &Event) -> bool {
    caller.can(actions::TASKS_READ, &queue_resource(&e.queue))
        && caller.require_kinds([e.kind.as_str()]).is_ok()
        && may_read_subject(caller, e)
}

/// A schedule's events take leave to read the schedule; a delivery's, to read its webhook.
fn may_read_subject(caller: &Caller, e: &Event) -> bool {
    match &e.subject {
        None => true,
        Some(Subject::Schedule(name)) => {
            caller.can(actions::SCHEDULES_READ, &super::schedules::resource(name))
        }
        Some(Subject::Delivery { webhook_id, .. }) => caller.can(
            actions::WEBHOOKS_READ,
            &super::webhooks::resource(webhook_id),
        ),
    }
}

/// The longest one wait of a stream lasts before it checks its credential again.
const STREAM_WAIT_MS: u64 = 5_000;

/// An open event stream: the events after a cursor as they are committed, for as long as the
/// caller's credential holds and the server runs. Counts against
/// `limits.max_streams_per_tenant` until dropped.
pub struct EventFollow {
    service: Service,
    caller: Caller,
    query: EventQuery,
    keep: EventKeep,
    _slot: StreamSlot,
}

impl EventFollow {
    /// The next events (oldest first), or `None` when the stream ends: the server is shutting
    /// down or the caller's key was revoked, expired or deleted.
    pub async fn next(&mut self) -> Option<ApiResult<Vec<Event>>> {
        loop {
            if self.service.shutdown.is_cancelled() || !self.caller.still_valid() {
                return None;
            }
            let wait = STREAM_WAIT_MS.min(self.service.config.events.keepalive_ms);
            let page = self
                .service
                .next_events(
                    &self.caller,
                    &self.query,
                    &self.keep,
                    self.query.after,
                    wait,
                )
                .await;
            match page {
                Err(e) => return Some(Err(e)),
                Ok(page) => {
                    self.query.after = page.next_cursor;
                    if !page.events.is_empty() {
                        return Some(Ok(page.events));
                    }
                }
            }
        }
    }

    /// The cursor the stream has passed.
    pub fn cursor(&self) -> i64 {
        self.query.after
    }
}

/// A tenant's share of open streams, given back on drop.
struct StreamSlot {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    tenant: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.tenant);
            }
        }
    }
}

impl Service {
    /// Opens a stream of the events after `q.after` (see [`EventFollow`]).
    pub fn follow_events(&self, caller: &Caller, q: EventQuery) -> ApiResult<EventFollow> {
        let keep = self.check_event_query(caller, &q)?;
        let max = self.limits().max_streams_per_tenant;
        let slot = {
            let mut counts = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(caller.tenant.clone()).or_default();
            if *n >= max {
                return Err(ApiError::new(
                    crate::error::ErrorKind::Unavailable,
                    "too_many_streams",
                    format!(
                        "tenant `{}` has {max} event streams open on this server, its limit \
                     (limits.max_streams_per_tenant); close one or retry later",
                        caller.tenant
                    ),
                )
                .retry_after(5));
            }
            *n += 1;
            StreamSlot {
                counts: self.streams.clone(),
                tenant: caller.tenant.clone(),
            }
        };
        Ok(EventFollow {
            service: self.clone(),
            caller: caller.clone(),
            query: q,
            keep,
            _slot: slot,
        })
    }
}
