//! Reading the event log: a caller sees its own tenant's events, only for the queues and kinds
//! it may read, and may wait for the next ones (woken by the commit that logs them).

use super::*;
use rota_core::events::{EventFilter, EventType};
use rota_store::{EventKeep, EventPage};
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
        let keep: EventKeep = {
            let (caller, filter) = (caller.clone(), q.filter.clone());
            Arc::new(move |e| {
                filter.matches(e)
                    && caller.can(actions::TASKS_READ, &queue_resource(&e.queue))
                    && caller.require_kinds([e.kind.as_str()]).is_ok()
            })
        };
        let signal = self.store.event_signal();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(q.wait_ms);
        let mut after = q.after;
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
