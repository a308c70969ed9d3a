//! What an event is: its type (stored by engines as its place in [`EventType::ALL`] or its
//! name) and, for an event that is not a task's own transition, what it is about.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventType {
    #[serde(rename = "task.enqueued")]
    Enqueued,
    #[serde(rename = "task.claimed")]
    Claimed,
    #[serde(rename = "task.succeeded")]
    Succeeded,
    /// An attempt failed and a retry is scheduled.
    #[serde(rename = "task.failed")]
    Failed,
    /// The task went to the dead letters (attempts spent, failed as dead, or killed).
    #[serde(rename = "task.dead")]
    Dead,
    #[serde(rename = "task.cancelled")]
    Cancelled,
    /// Brought back from dead or cancelled.
    #[serde(rename = "task.retried")]
    Retried,
    /// The worker stopped heartbeating before its lease ended.
    #[serde(rename = "task.lease_expired")]
    LeaseExpired,
    /// Deleted by an operator (purges and retention are not logged task by task).
    #[serde(rename = "task.deleted")]
    Deleted,
    /// A schedule's tick enqueued its task.
    #[serde(rename = "schedule.fired")]
    ScheduleFired,
    /// A schedule's tick enqueued nothing: missed while the server was down (by `catch_up`), or
    /// the previous run was live (`overlap: skip`).
    #[serde(rename = "schedule.skipped")]
    ScheduleSkipped,
    /// A delivery (to a webhook, or a task result to its callback URL) spent its attempts.
    #[serde(rename = "delivery.dead")]
    DeliveryDead,
    /// A webhook whose deliveries kept failing was disabled.
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
    /// A waiting task took a later enqueue's fields in place (`on_duplicate: replace`).
    #[serde(rename = "task.replaced")]
    Replaced,
    /// A task enqueued with dependencies that have not all succeeded: it waits for them (in
    /// place of `task.enqueued`).
    #[serde(rename = "task.waiting")]
    Waiting,
    /// A waiting task's dependencies all ended as it may: it is ready (or scheduled).
    #[serde(rename = "task.released")]
    Released,
    /// Every task of a workflow (or batch) ended, and all succeeded. Logged once, in the queue
    /// of its last task (a batch's callback); its subject names the workflow.
    #[serde(rename = "workflow.succeeded")]
    WorkflowSucceeded,
    /// Every task of a workflow ended, and one is dead.
    #[serde(rename = "workflow.failed")]
    WorkflowFailed,
    /// Every task of a workflow ended, none dead, one cancelled.
    #[serde(rename = "workflow.cancelled")]
    WorkflowCancelled,
    /// An inbound webhook's request was verified and enqueued its task (or found the task an
    /// earlier delivery of it made). Its subject names the hook and the delivery.
    #[serde(rename = "hook.received")]
    HookReceived,
    /// An inbound webhook refused a request (bad signature, stale timestamp, disabled, ...);
    /// the reason says which.
    #[serde(rename = "hook.rejected")]
    HookRejected,
    /// An API key got a new secret; the old one works until `previous_secret_until`. These
    /// four are the tenant's, in no queue (`queue` is empty); their subject names the key.
    #[serde(rename = "key.rotated")]
    KeyRotated,
    /// An API key expires within `auth.key_expiry_warning_ms` (logged once per key).
    #[serde(rename = "key.expiring")]
    KeyExpiring,
    /// An API key expired (logged once per key).
    #[serde(rename = "key.expired")]
    KeyExpired,
    /// An API key was revoked.
    #[serde(rename = "key.revoked")]
    KeyRevoked,
}

impl EventType {
    /// Every type; engines may store a type as its place here, so it only grows at the end.
    pub const ALL: [EventType; 25] = [
        EventType::Enqueued,
        EventType::Claimed,
        EventType::Succeeded,
        EventType::Failed,
        EventType::Dead,
        EventType::Cancelled,
        EventType::Retried,
        EventType::LeaseExpired,
        EventType::Deleted,
        EventType::ScheduleFired,
        EventType::ScheduleSkipped,
        EventType::DeliveryDead,
        EventType::WebhookDisabled,
        EventType::Replaced,
        EventType::Waiting,
        EventType::Released,
        EventType::WorkflowSucceeded,
        EventType::WorkflowFailed,
        EventType::WorkflowCancelled,
        EventType::HookReceived,
        EventType::HookRejected,
        EventType::KeyRotated,
        EventType::KeyExpiring,
        EventType::KeyExpired,
        EventType::KeyRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Enqueued => "task.enqueued",
            EventType::Claimed => "task.claimed",
            EventType::Succeeded => "task.succeeded",
            EventType::Failed => "task.failed",
            EventType::Dead => "task.dead",
            EventType::Cancelled => "task.cancelled",
            EventType::Retried => "task.retried",
            EventType::LeaseExpired => "task.lease_expired",
            EventType::Deleted => "task.deleted",
            EventType::ScheduleFired => "schedule.fired",
            EventType::ScheduleSkipped => "schedule.skipped",
            EventType::DeliveryDead => "delivery.dead",
            EventType::WebhookDisabled => "webhook.disabled",
            EventType::Replaced => "task.replaced",
            EventType::Waiting => "task.waiting",
            EventType::Released => "task.released",
            EventType::WorkflowSucceeded => "workflow.succeeded",
            EventType::WorkflowFailed => "workflow.failed",
            EventType::WorkflowCancelled => "workflow.cancelled",
            EventType::HookReceived => "hook.received",
            EventType::HookRejected => "hook.rejected",
            EventType::KeyRotated => "key.rotated",
            EventType::KeyExpiring => "key.expiring",
            EventType::KeyExpired => "key.expired",
            EventType::KeyRevoked => "key.revoked",
        }
    }

    /// Whether events of this type are about a schedule (their subject names it).
    pub fn is_schedule(self) -> bool {
        matches!(self, EventType::ScheduleFired | EventType::ScheduleSkipped)
    }

    /// Whether events of this type are about a whole workflow (their subject names it).
    pub fn is_workflow(self) -> bool {
        matches!(
            self,
            EventType::WorkflowSucceeded | EventType::WorkflowFailed | EventType::WorkflowCancelled
        )
    }

    /// Whether events of this type are about a webhook's delivery (their subject names both).
    pub fn is_delivery(self) -> bool {
        matches!(self, EventType::DeliveryDead | EventType::WebhookDisabled)
    }

    /// Whether events of this type are about an inbound webhook's request (their subject
    /// names the hook).
    pub fn is_hook(self) -> bool {
        matches!(self, EventType::HookReceived | EventType::HookRejected)
    }

    /// Whether events of this type are about an API key: the tenant's, in no queue (their
    /// subject names the key).
    pub fn is_key(self) -> bool {
        matches!(
            self,
            EventType::KeyRotated
                | EventType::KeyExpiring
                | EventType::KeyExpired
                | EventType::KeyRevoked
        )
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an event that is not a task's own transition is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Schedule(String),
    /// A workflow's (or batch's) id.
    Workflow(String),
    /// A delivery of a webhook (of `callbacks` for a task result).
    Delivery {
        webhook_id: String,
        delivery_id: i64,
    },
    /// A request to an inbound webhook, with the provider's delivery id when it sent one.
    Hook {
        hook_id: String,
        delivery: Option<String>,
    },
    /// An API key's id.
    Key(String),
}

impl Subject {
    /// As engines store it in one text column: the schedule's name, or
    /// `<webhook id>/<delivery id>` (webhook ids have no `/`).
    pub fn to_column(&self) -> String {
        match self {
            Subject::Schedule(name) | Subject::Workflow(name) | Subject::Key(name) => name.clone(),
            Subject::Delivery {
                webhook_id,
                delivery_id,
            } => format!("{webhook_id}/{delivery_id}"),
            Subject::Hook { hook_id, delivery } => match delivery {
                Some(d) => format!("{hook_id}/{d}"),
                None => hook_id.clone(),
            },
        }
    }

    /// Reads a stored subject of an event of type `t`.
    pub fn from_column(t: EventType, s: &str) -> Option<Subject> {
        if t.is_schedule() {
            return Some(Subject::Schedule(s.to_owned()));
        }
        if t.is_workflow() {
            return Some(Subject::Workflow(s.to_owned()));
        }
        if t.is_key() {
            return Some(Subject::Key(s.to_owned()));
        }
        if t.is_hook() {
            // Hook ids have no `/`; a delivery id may.
            let (hook_id, delivery) = match s.split_once('/') {
                Some((h, d)) => (h, Some(d.to_owned())),
                None => (s, None),
            };
            return Some(Subject::Hook {
                hook_id: hook_id.to_owned(),
                delivery,
            });
        }
        let (w, d) = s.rsplit_once('/')?;
        Some(Subject::Delivery {
            webhook_id: w.to_owned(),
            delivery_id: d.parse().ok()?,
        })
    }

    /// The webhook an event is about, if it is about one.
    pub fn webhook_id(&self) -> Option<&str> {
        match self {
            Subject::Delivery { webhook_id, .. } => Some(webhook_id),
            Subject::Schedule(_)
            | Subject::Workflow(_)
            | Subject::Hook { .. }
            | Subject::Key(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_round_trip_through_their_names() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        assert_eq!(EventType::parse("task.unknown"), None);
    }

    #[test]
    fn subjects_round_trip_through_their_column() {
        let s = Subject::Schedule("nightly/eu".into());
        let back = Subject::from_column(EventType::ScheduleFired, &s.to_column());
        assert_eq!(back, Some(s));
        let d = Subject::Delivery {
            webhook_id: "whk_1".into(),
            delivery_id: 42,
        };
        assert_eq!(d.to_column(), "whk_1/42");
        assert_eq!(
            Subject::from_column(EventType::DeliveryDead, "whk_1/42"),
            Some(d)
        );
        assert_eq!(Subject::from_column(EventType::DeliveryDead, "x"), None);
        for h in [
            Subject::Hook {
                hook_id: "hk_1".into(),
                delivery: Some("a/b-c".into()),
            },
            Subject::Hook {
                hook_id: "hk_1".into(),
                delivery: None,
            },
        ] {
            let back = Subject::from_column(EventType::HookRejected, &h.to_column());
            assert_eq!(back, Some(h));
        }
    }
}
