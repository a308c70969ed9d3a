//! The tenant's API keys that expire soon or expired lately: a client still using one will be
//! (or is being) refused, so the owner should rotate it first.

use super::{Finding, Severity};
use rota_core::auth::KeyRecord;
use rota_core::Timestamp;

/// How far ahead an expiry is named.
pub const EXPIRING_WITHIN_MS: i64 = 7 * 24 * 3_600_000;
/// How long after an expiry the key is still named (its clients may still be trying it).
pub const EXPIRED_WITHIN_MS: i64 = 7 * 24 * 3_600_000;

/// `key_expiring` (warning) for a live key of `tenant` whose expiry is at most
/// [`EXPIRING_WITHIN_MS`] ahead, `key_expired` (error) for one that expired at most
/// [`EXPIRED_WITHIN_MS`] ago and was used after that went unnoticed: last used within the day
/// before it expired. Revoked keys are left out (someone meant it).
pub fn findings(keys: &[KeyRecord], tenant: &str, now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut mine: Vec<&KeyRecord> = keys
        .iter()
        .filter(|k| k.tenant == tenant && k.revoked_at.is_none())
        .collect();
    mine.sort_by_key(|k| (k.expires_at, k.id.clone()));
    for k in mine {
        let Some(at) = k.expires_at else {
            continue;
        };
        let label = match &k.name {
            Some(n) => format!("key {} ({n})", k.id),
            None => format!("key {}", k.id),
        };
        let left = at.0 - now.0;
        if left > 0 && left <= EXPIRING_WITHIN_MS {
            out.push(Finding {
                check: "key_expiring",
                severity: Severity::Warning,
                subject: label,
                seen: format!("it expires at {at}, in {}", span(left)),
                cause: "keys are made with an expiry (`expires_at`, `expires_in_s`)".into(),
                fix: "give its clients a new key before then (`rota key create` with the same \
                      roles), then revoke this one"
                    .into(),
            });
        } else if left <= 0 && -left <= EXPIRED_WITHIN_MS {
            let used_late = k.last_used_at.is_some_and(|u| u.0 >= at.0 - 24 * 3_600_000);
            if used_late {
                out.push(Finding {
                    check: "key_expired",
                    severity: Severity::Error,
                    subject: label,
                    seen: format!(
                        "it expired at {at}, {} ago, and was in use the day before",
                        span(-left)
                    ),
                    cause: "its clients are refused with 401 since it expired".into(),
                    fix: "give them a new key (`rota key create` with the same roles)".into(),
                });
            }
        }
    }
    out
}

/// `3 d 4 h`, `5 h 12 min`, `40 min`.
fn span(ms: i64) -> String {
    let min = ms / 60_000;
    let (d, h, m) = (min / 1_440, min / 60 % 24, min % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);
    const DAY: i64 = 24 * 3_600_000;

    fn key(id: &str, expires_in: Option<i64>, used_ago: Option<i64>) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            tenant: "t".into(),
            name: Some("ci".into()),
            hash: String::new(),
            roles: vec!["reader".into()],
            queues: vec![],
            expires_at: expires_in.map(|ms| NOW.plus_ms(ms)),
            created_at: NOW.plus_ms(-30 * DAY),
            last_used_at: used_ago.map(|ms| NOW.plus_ms(-ms)),
            revoked_at: None,
            limits: Default::default(),
            sessions_valid_from: None,
            previous_hash: None,
            previous_until: None,
            expiry_notice: None,
            rotated_at: None,
        }
    }

    #[test]
    fn names_keys_expiring_within_a_week_and_expired_ones_still_in_use() {
        let mut revoked = key("gone", Some(DAY), None);
        revoked.revoked_at = Some(NOW);
        let mut other = key("theirs", Some(DAY), None);
        other.tenant = "u".into();
        let keys = vec![
            key("soon", Some(3 * DAY + 3_600_000), None),
            key("later", Some(8 * DAY), None),
            key("never", None, None),
            key("lapsed", Some(-2 * DAY), Some(2 * DAY + 3_600_000)),
            key("unused", Some(-2 * DAY), Some(20 * DAY)),
            key("long-ago", Some(-8 * DAY), Some(8 * DAY)),
            revoked,
            other,
        ];
        let got: Vec<_> = findings(&keys, "t", NOW)
            .into_iter()
            .map(|f| (f.check, f.subject, f.seen))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "key_expired",
                    "key lapsed (ci)".to_owned(),
                    "it expired at 2027-01-13T08:00:00.000Z, 2 d 0 h ago, and was in use the \
                     day before"
                        .to_owned()
                ),
                (
                    "key_expiring",
                    "key soon (ci)".to_owned(),
                    "it expires at 2027-01-18T09:00:00.000Z, in 3 d 1 h".to_owned()
                ),
            ]
        );
    }
}
