//! Webhooks: an endpoint that receives the tenant's events it subscribes to, each as a
//! delivery stored with the event, retried with backoff until delivered or dead.

use crate::events::{Event, EventFilter, EventType};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// Attempts a delivery gets before it is dead: with [`retry_delay_ms`], about a day.
pub const MAX_ATTEMPTS: u32 = 15;
/// An endpoint that failed every delivery for this long is disabled.
pub const DISABLE_AFTER_MS: i64 = 3 * 24 * 3_600_000;
/// Delivered and dead deliveries are kept this long after their last attempt, then deleted.
pub const KEEP_FINISHED_MS: i64 = 7 * 24 * 3_600_000;
/// The id of a tenant's callback signer: a webhook record (never listed, never matched against
/// events) whose secrets sign the deliveries of task results to their `callback_url`.
pub const CALLBACKS_ID: &str = "callbacks";

/// Whether an event is a task's final outcome, which its `callback_url` receives.
pub fn is_outcome(t: crate::events::EventType) -> bool {
    use crate::events::EventType::*;
    matches!(t, Succeeded | Dead | Cancelled)
}

/// Longest URL a webhook may have.
pub const MAX_URL_LEN: usize = 2_048;

/// The credential that last wrote a webhook. Each delivery is sent only if this credential,
/// as it is when the delivery is sent, may read the event (its key not revoked or expired,
/// its roles as they are then), so a webhook never hands on what its writer may not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookOwner {
    /// How errors name it: `key 3f2a…`, `jwt subject x`, `admin token`.
    pub label: String,
    /// The API key, checked as it is at each send; `None` for a JWT subject or the admin
    /// token, whose roles and queues at the write are kept below instead.
    pub key_id: Option<String>,
    /// The credential's own tenant (an admin may act in another).
    pub tenant: String,
    pub roles: Vec<String>,
    pub queues: Vec<String>,
    /// An OAuth access token's scope, which narrows what its key may do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<crate::auth::Scope>,
}

/// A webhook as stored. The secret signs deliveries, so it is kept (not only a hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub tenant: String,
    pub id: String,
    pub url: String,
    /// Event types or patterns (`task.*`) and queue patterns it receives; empty queues: all.
    pub filter: EventFilter,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why it was disabled automatically (cleared when it is enabled again).
    pub disabled_reason: Option<String>,
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_until`.
    pub previous_secret: Option<String>,
    pub previous_until: Option<Timestamp>,
    /// Since when every delivery failed (cleared by a success).
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Who last wrote it; `None` for webhooks written before owners were recorded (their
    /// deliveries are not checked) and for the callbacks signer.
    #[serde(default)]
    pub owner: Option<WebhookOwner>,
}

impl Webhook {
    /// A new, enabled webhook of `tenant` that has delivered nothing yet.
    pub fn new(
        tenant: &str,
        id: String,
        url: String,
        filter: EventFilter,
        description: Option<String>,
        secret: String,
        now: Timestamp,
    ) -> Webhook {
        Webhook {
            tenant: tenant.to_owned(),
            id,
            url,
            filter,
            description,
            enabled: true,
            disabled_reason: None,
            secret,
            previous_secret: None,
            previous_until: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
            owner: None,
        }
    }

    /// Whether an event of the tenant becomes a delivery to this webhook. Never one about
    /// itself (its own dead deliveries), which would feed on its own failures.
    pub fn wants(&self, e: &Event) -> bool {
        let about_self = e.subject.as_ref().and_then(|s| s.webhook_id()) == Some(&self.id);
        self.enabled && self.filter.matches(e) && !about_self
    }

    /// Notes an attempt's outcome in the failing streak: a success ends it; a failure starts it
    /// or, once it has lasted [`DISABLE_AFTER_MS`], disables the webhook with the reason.
    /// `true` when this disabled it.
    pub fn note_attempt(&mut self, a: &Attempt, now: Timestamp) -> bool {
        // Not sent at all: says nothing about the endpoint.
        if a.give_up {
            return false;
        }
        if a.delivered() {
            self.failing_since = None;
            return false;
        }
        let since = *self.failing_since.get_or_insert(now);
        if !self.enabled || now.0 - since.0 < DISABLE_AFTER_MS {
            return false;
        }
        self.enabled = false;
        self.disabled_reason = Some(format!(
            "every delivery failed since {since} (last: {})",
            a.error.as_deref().unwrap_or("no answer")
        ));
        true
    }

    /// The secrets that sign a delivery sent at `now`: the current one, and the previous one
    /// during its grace period.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&str> {
        live_secrets(
            &self.secret,
            self.previous_secret.as_deref(),
            self.previous_until,
            now,
        )
    }
}

/// A secret that rotates with a grace period (a webhook's, an inbound webhook's): the current
/// one, and the one it replaced while `now` is before `until`.
pub fn live_secrets<'a>(
    current: &'a str,
    previous: Option<&'a str>,
    until: Option<Timestamp>,
    now: Timestamp,
) -> Vec<&'a str> {
    let mut s = vec![current];
    if let (Some(old), Some(until)) = (previous, until) {
        if now < until {
            s.push(old);
        }
    }
    s
}

/// What a rotation at `now` keeps of the `old` secret: it until `grace_ms` from now, or nothing
/// for no grace (`previous_secret`, `previous_until`).
pub fn keep_for_grace(
    old: String,
    grace_ms: u64,
    now: Timestamp,
) -> (Option<String>, Option<Timestamp>) {
    if grace_ms == 0 {
        (None, None)
    } else {
        (Some(old), Some(now.plus_ms(grace_ms as i64)))
    }
}

/// Checks a subscription: at least one type, each matching some event type.
pub fn check_filter(filter: &EventFilter) -> Result<(), String> {
    if filter.types.is_empty() {
        return Err("events: name at least one event type or pattern, e.g. [\"task.*\"]".into());
    }
    for t in &filter.types {
        if !EventType::ALL
            .iter()
            .any(|e| crate::auth::glob_match(t, e.as_str()))
        {
            let names: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
            return Err(format!(
                "events: `{t}` matches no event type; types are {} (or patterns such as task.*)",
                names.join(", ")
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not sent yet (or being sent).
    Pending,
    /// An attempt failed; another is scheduled.
    Failed,
    /// Every attempt failed; retried only by hand.
    Dead,
    Delivered,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Failed,
        DeliveryState::Dead,
        DeliveryState::Delivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Failed => "failed",
            DeliveryState::Dead => "dead",
            DeliveryState::Delivered => "delivered",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// One event on its way to one webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub tenant: String,
    pub webhook_id: String,
    pub event: Event,
    pub state: DeliveryState,
    /// Attempts started (an attempt cut short by a crash counts).
    pub attempts: u32,
    /// When it is (re)sent next; while an attempt is in flight, when that attempt is given up.
    pub next_at: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub latency_ms: Option<u64>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// A task result's own target (its `callback_url`); `None`: the webhook's URL.
    pub url: Option<String>,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The HTTP status, when the endpoint answered.
    pub status: Option<u16>,
    /// Why it failed (absent on a 2xx).
    pub error: Option<String>,
    pub latency_ms: u64,
    /// Not sent and never to be (the webhook's owner may no longer read the event): the
    /// delivery ends `dead` at once with `error` as the reason.
    pub give_up: bool,
}

impl Attempt {
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The delay before the attempt after `attempts` failed ones: 10 s doubling, at most 6 h; the
/// [`MAX_ATTEMPTS`] attempts span about a day.
pub fn retry_delay_ms(attempts: u32) -> i64 {
    let exp = attempts.saturating_sub(1).min(20);
    (10_000i64 << exp).min(6 * 3_600_000)
}

/// Where a delivery goes after an attempt at `now`: its state and next time.
pub fn after_attempt(
    attempts: u32,
    a: &Attempt,
    now: Timestamp,
) -> (DeliveryState, Option<Timestamp>) {
    if a.delivered() {
        (DeliveryState::Delivered, None)
    } else if attempts >= MAX_ATTEMPTS || a.give_up {
        (DeliveryState::Dead, None)
    } else {
        (
            DeliveryState::Failed,
            Some(now.plus_ms(retry_delay_ms(attempts))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_reach_about_a_day() {
        let total: i64 = (1..MAX_ATTEMPTS).map(retry_delay_ms).sum();
        assert!((20 * 3_600_000..30 * 3_600_000).contains(&total), "{total}");
        assert_eq!(retry_delay_ms(1), 10_000);
        assert_eq!(retry_delay_ms(2), 20_000);
    }

    #[test]
    fn an_attempt_delivers_retries_or_ends_dead() {
        let ok = Attempt {
            status: Some(204),
            error: None,
            latency_ms: 3,
            give_up: false,
        };
        let bad = Attempt {
            status: Some(500),
            error: Some("500".into()),
            latency_ms: 3,
            give_up: false,
        };
        let now = Timestamp(1_000);
        assert_eq!(after_attempt(1, &ok, now), (DeliveryState::Delivered, None));
        assert_eq!(
            after_attempt(1, &bad, now),
            (DeliveryState::Failed, Some(Timestamp(11_000)))
        );
        assert_eq!(
            after_attempt(MAX_ATTEMPTS, &bad, now),
            (DeliveryState::Dead, None)
        );
        // Given up (not to be sent): dead at once, and the endpoint's streak is untouched.
        let skipped = Attempt {
            status: None,
            error: Some("not sent".into()),
            latency_ms: 0,
            give_up: true,
        };
        assert_eq!(after_attempt(1, &skipped, now), (DeliveryState::Dead, None));
        let mut w = Webhook::new(
            "t",
            "w".into(),
            "https://x.example".into(),
            EventFilter::default(),
            None,
            "s".into(),
            now,
        );
        w.failing_since = Some(Timestamp(0));
        assert!(!w.note_attempt(&skipped, Timestamp(DISABLE_AFTER_MS * 2)));
        assert!(w.enabled);
        assert_eq!(w.failing_since, Some(Timestamp(0)));
    }

    #[test]
    fn subscriptions_name_real_event_types() {
        let f = |t: &[&str]| EventFilter {
            types: t.iter().map(|s| s.to_string()).collect(),
            queues: vec![],
        };
        assert!(check_filter(&f(&["task.*"])).is_ok());
        assert!(check_filter(&f(&[])).is_err());
        assert!(check_filter(&f(&["job.done"]))
            .unwrap_err()
            .contains("task.dead"));
    }
}
