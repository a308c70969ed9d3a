//! The event log as the store keeps it: reading it after a cursor, being woken when it grows,
//! and logging events that are no task's own transition (an inbound webhook's requests).
//! Task transitions log their events inside the engines' own writes, in the same transaction.

use crate::StoreResult;
use async_trait::async_trait;
use rota_core::events::Event;
use std::sync::Arc;
use tokio::sync::Notify;

/// A page of the event log (see [`EventLog::events`]).
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// Oldest first.
    pub events: Vec<Event>,
    /// Where the next read continues: past every event this read looked at, kept or not, and
    /// never past an event that is not yet readable.
    pub next_cursor: i64,
}

/// Cursors one event read looks through at most, so a reader of a quiet tenant beside a busy
/// one pays a bounded cost per call; it goes on from `next_cursor`.
pub const EVENT_SCAN: i64 = 10_000;

/// How long the event log keeps an event unless configured otherwise: a day.
pub const DEFAULT_EVENT_RETENTION_MS: u64 = 24 * 3_600_000;

/// Which events a read keeps (the reader's filter and permissions).
pub type EventKeep = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

/// Most events one [`EventLog::log_events`] call may log.
pub const MAX_LOGGED_EVENTS: usize = 1_000;

#[async_trait]
pub trait EventLog: Send + Sync {
    /// Events of `tenant` after cursor `after`, oldest first: at most `limit` of those `keep`
    /// accepts, looking through at most [`EVENT_SCAN`] cursors.
    async fn events(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
        keep: EventKeep,
    ) -> StoreResult<EventPage>;
    /// Notified after every commit that logged events (of any tenant).
    fn event_signal(&self) -> Arc<Notify>;
    /// Notified after every commit that logged events of `tenant` (and made them readable),
    /// and by no other: readers of one tenant's events wait on this.
    fn tenant_event_signal(&self, tenant: &str) -> Arc<Notify>;
    /// Logs `events` of `tenant` durably (answers after the commit), each in its `queue`
    /// (created if it does not exist yet), and wakes their readers. For events that are no
    /// task's transition; their `task_id` may name a task or be [`rota_core::TaskId::NONE`].
    /// At most [`MAX_LOGGED_EVENTS`].
    async fn log_events(&self, tenant: &str, events: Vec<Event>) -> StoreResult<()>;
}
