//! Open event streams (SSE and WebSocket): each follows its tenant's log as commits log events,
//! until the server stops or its credential ends (revoked, deleted, or at its expiry: the
//! key's `expires_at`, the JWT's `exp`, the dashboard session's end). Streams are counted per
//! tenant (`limits.max_streams_per_tenant`) and in all (`limits.max_streams`).

use super::*;
use crate::error::ErrorKind;
use rota_core::events::Event;
use rota_store::EventKeep;
use std::collections::HashMap;
use std::sync::Mutex;

/// The longest one wait of a stream lasts before it checks its credential again.
const STREAM_WAIT_MS: u64 = 5_000;

/// The streams open on this server.
#[derive(Default)]
pub(super) struct OpenStreams {
    per_tenant: HashMap<String, usize>,
    total: usize,
}

/// An open event stream: the events after a cursor as they are committed, for as long as the
/// caller's credential holds and the server runs. Counts against the stream limits until
/// dropped.
pub struct EventFollow {
    service: Service,
    caller: Caller,
    query: EventQuery,
    keep: EventKeep,
    _slot: StreamSlot,
}

impl EventFollow {
    /// The next events (oldest first), or `None` when the stream ends: the server is shutting
    /// down, or the caller's credential expired or was revoked or deleted.
    pub async fn next(&mut self) -> Option<ApiResult<Vec<Event>>> {
        loop {
            if self.service.shutdown.is_cancelled() || !self.caller.still_valid() {
                return None;
            }
            let mut wait = STREAM_WAIT_MS.min(self.service.config.events.keepalive_ms);
            if let Some(left) = self.caller.ms_left() {
                if left <= 0 {
                    return None;
                }
                // Awake at the expiry, not up to a wait later.
                wait = wait.min(left as u64);
            }
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

/// A stream's place in the counts, given back on drop.
struct StreamSlot {
    open: Arc<Mutex<OpenStreams>>,
    tenant: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(n) = open.per_tenant.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                open.per_tenant.remove(&self.tenant);
            }
        }
    }
}

impl Service {
    /// Opens a stream of the events after `q.after` (see [`EventFollow`]).
    pub fn follow_events(&self, caller: &Caller, q: EventQuery) -> ApiResult<EventFollow> {
        let keep = self.check_event_query(caller, &q)?;
        let limits = self.limits();
        let slot = {
            let mut open = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            if open.total >= limits.max_streams {
                return Err(too_many(format!(
                    "this server has {} event streams open, its limit (limits.max_streams); \
                     retry later or use another server",
                    limits.max_streams
                )));
            }
            let n = open.per_tenant.get(&caller.tenant).copied().unwrap_or(0);
            if n >= limits.max_streams_per_tenant {
                return Err(too_many(format!(
                    "tenant `{}` has {} event streams open on this server, its limit \
                     (limits.max_streams_per_tenant); close one or retry later",
                    caller.tenant, limits.max_streams_per_tenant
                )));
            }
            *open.per_tenant.entry(caller.tenant.clone()).or_default() += 1;
            open.total += 1;
            StreamSlot {
                open: self.streams.clone(),
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

fn too_many(message: String) -> ApiError {
    ApiError::new(ErrorKind::Unavailable, "too_many_streams", message).retry_after(5)
}
