//! Reading the event log: a caller sees its own tenant's events, only for the queues and kinds
//! it may read, and may wait for the next ones (woken by the commit that logs them, of its
//! tenant only). `streams.rs` follows the log for as long as a stream stays open.

use super::*;
use rota_core::events::{Event, EventFilter, EventType, Subject};
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
        let keep = self.check_event_query(caller, &q)?;
        self.next_events(caller, &q, &keep, q.after, q.wait_ms)
            .await
    }

    /// Refuses a query the limits do not allow; what the caller may see of the log otherwise.
    pub(super) fn check_event_query(
        &self,
        caller: &Caller,
        q: &EventQuery,
    ) -> ApiResult<EventKeep> {
        let limits = self.limits();
        if q.limit == 0 || q.limit > limits.max_list {
            return Err(ApiError::bad_request(format!(
                "limit is {}; use 1 to {} (limits.max_list)",
                q.limit, limits.max_list
            )));
        }
        check_wait_ms(q.wait_ms, limits)?;
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
    /// Woken only by commits that log the caller's tenant's events, and then reading at most
    /// once per `events.min_read_interval_ms`, so a burst of commits costs one read.
    pub(super) async fn next_events(
        &self,
        caller: &Caller,
        q: &EventQuery,
        keep: &EventKeep,
        mut after: i64,
        wait_ms: u64,
    ) -> ApiResult<EventPage> {
        let signal = self.store.tenant_event_signal(&caller.tenant);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        let gap = Duration::from_millis(self.config.events.min_read_interval_ms);
        loop {
            // Registered before the read, so a commit between the read and the wait wakes it.
            let woken = signal.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let read_at = tokio::time::Instant::now();
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
            // Commits that land meanwhile are read with this one (the wait is registered
            // anew before the next read, and what committed before it is read by it).
            tokio::select! {
                _ = tokio::time::sleep_until((read_at + gap).min(deadline)) => {}
                _ = self.shutdown.cancelled() => return Ok(page),
            }
        }
    }
}

/// Whether the caller may read an event: `tasks:read` on its queue, its task kind, and what
/// it is about. The event log answers by it, and a webhook sends an event only if its owner
/// may read it by this rule when it is sent.
pub fn may_read_event(caller: &Caller, e: &Event) -> bool {
    match &e.subject {
        // An API key's events are in no queue: reading them is reading the key.
        Some(Subject::Key(id)) => caller.can(actions::KEYS_READ, &format!("keys/{id}")),
        _ => {
            caller.can(actions::TASKS_READ, &queue_resource(&e.queue))
                && caller.require_kinds([e.kind.as_str()]).is_ok()
                && may_read_subject(caller, e)
        }
    }
}

/// A schedule's events take leave to read the schedule; a delivery's, to read its webhook; a
/// hook's, to read the hook; a workflow's, what its last task's queue asks (checked above).
fn may_read_subject(caller: &Caller, e: &Event) -> bool {
    match &e.subject {
        None | Some(Subject::Workflow(_)) => true,
        Some(Subject::Schedule(name)) => {
            caller.can(actions::SCHEDULES_READ, &super::schedules::resource(name))
        }
        Some(Subject::Delivery { webhook_id, .. }) => caller.can(
            actions::WEBHOOKS_READ,
            &super::webhooks::resource(webhook_id),
        ),
        Some(Subject::Hook { hook_id, .. }) => {
            caller.can(actions::HOOKS_READ, &crate::hooks::resource(hook_id))
        }
        // Answered by `may_read_event` before the queue is asked.
        Some(Subject::Key(_)) => false,
    }
}
