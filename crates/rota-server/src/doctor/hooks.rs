//! Inbound webhooks that refuse what their provider sends: requests keep coming and none
//! becomes a task, usually because the provider signs with another secret than the hook's
//! (after a rotation, or a typo), its clock is off, or the hook was disabled and forgotten.

use super::{Finding, Severity};
use crate::hooks::{HookRequest, Outcome};
use rota_core::events::EventType;
use rota_core::hooks::HookRecord;
use rota_store::Diagnosis;

/// Refused requests in the window, with none taken, before a hook is named.
pub const REJECTED_AT_LEAST: u64 = 3;

/// `hook_rejecting` (error) for a hook whose queue logged at least [`REJECTED_AT_LEAST`]
/// `hook.rejected` events in the window and no `hook.received` (counted per queue across
/// servers, from the event log); `recent` gives the reason this server last saw.
pub fn findings(
    hooks: &[HookRecord],
    activity: &Diagnosis,
    recent: impl Fn(&str) -> Vec<HookRequest>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for h in hooks {
        let Some(q) = activity.queues.get(&h.queue) else {
            continue;
        };
        let (rejected, received) = (
            q.count(EventType::HookRejected),
            q.count(EventType::HookReceived),
        );
        if rejected < REJECTED_AT_LEAST || received > 0 {
            continue;
        }
        let reason = recent(&h.id)
            .into_iter()
            .find(|r| r.outcome == Outcome::Rejected)
            .and_then(|r| r.reason);
        let seen = match &reason {
            Some(r) => format!(
                "{rejected} requests refused in the last hour and none taken (queue {}); the \
                 latest refusal here: {r}",
                h.queue
            ),
            None => format!(
                "{rejected} requests refused in the last hour and none taken (queue {})",
                h.queue
            ),
        };
        out.push(Finding {
            check: "hook_rejecting",
            severity: Severity::Error,
            subject: format!("hook {} ({})", h.id, h.name),
            seen,
            cause: if h.enabled {
                format!(
                    "the provider's requests fail the hook's {} check: it signs with another \
                     secret (a rotation not made at both ends, a typo), or its clock is off by \
                     more than the replay window",
                    h.verify
                )
            } else {
                "the hook is disabled, and its provider keeps sending".into()
            },
            fix: if h.enabled {
                format!(
                    "compare the secret at the provider with the hook's (`rota hook rotate {} \
                     --secret <the provider's>` sets it); `rota hook requests {}` shows each \
                     refusal's reason",
                    h.id, h.id
                )
            } else {
                format!(
                    "enable it (`rota hook update {} --enable`) or remove it at the provider",
                    h.id
                )
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rota_core::hooks::Verify;
    use rota_core::Timestamp;

    fn hook(enabled: bool) -> HookRecord {
        HookRecord {
            id: "hk_1".into(),
            tenant: "default".into(),
            name: "github".into(),
            queue: "mirror".into(),
            kind: "push".into(),
            verify: Verify::Github,
            secret: "0123456789abcdef".into(),
            previous_secret: None,
            previous_until: None,
            enabled,
            description: None,
            owner: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn activity(rejected: u64, received: u64) -> Diagnosis {
        let mut d = Diagnosis::default();
        let q = d.queues.entry("mirror".into()).or_default();
        q.events.insert(EventType::HookRejected, rejected);
        q.events.insert(EventType::HookReceived, received);
        d
    }

    fn refused(_: &str) -> Vec<HookRequest> {
        vec![HookRequest {
            at: Timestamp(0),
            outcome: Outcome::Rejected,
            status: 401,
            reason: Some("bad_signature: X-Hub-Signature-256 does not match".into()),
            delivery: None,
            task_id: None,
            address: "192.0.2.1".into(),
        }]
    }

    #[test]
    fn a_hook_refusing_everything_is_named_with_its_latest_reason() {
        let f = findings(&[hook(true)], &activity(5, 0), refused);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].check, "hook_rejecting");
        assert!(f[0].seen.contains("5 requests refused"), "{}", f[0].seen);
        assert!(f[0].seen.contains("bad_signature"), "{}", f[0].seen);
        assert!(f[0].fix.contains("rota hook rotate hk_1"), "{}", f[0].fix);
        // A disabled one is told to be enabled.
        let f = findings(&[hook(false)], &activity(5, 0), |_| Vec::new());
        assert!(f[0].fix.contains("--enable"), "{}", f[0].fix);
    }

    #[test]
    fn a_hook_that_also_takes_requests_or_was_refused_rarely_is_fine() {
        assert!(findings(&[hook(true)], &activity(5, 1), refused).is_empty());
        assert!(findings(&[hook(true)], &activity(2, 0), refused).is_empty());
        assert!(findings(&[hook(true)], &Diagnosis::default(), refused).is_empty());
    }
}
