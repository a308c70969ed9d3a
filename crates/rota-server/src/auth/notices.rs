//! Expiry notices: `key.expiring` once a key is within `auth.key_expiry_warning_ms` of its
//! expiry, and `key.expired` once it has expired, each logged once per key in the event log
//! (so a webhook can tell its owner), whichever server logs it: the notice is written into the
//! key in the same transaction, on the condition that the stored key has not had it yet.

use super::*;
use rota_core::events::{self, EventType};

/// Keys that expired longer ago than this get no `key.expired` (a store upgraded with keys
/// that expired long before would otherwise announce them all at once).
pub const EXPIRED_NOTICE_WITHIN_MS: i64 = 7 * 24 * 3_600_000;

/// Most notices one pass logs; the rest wait for the next pass.
const PER_PASS: usize = 500;

impl Auth {
    /// The notices due at `now`, logged; answers how many.
    pub async fn log_key_notices(&self, now: Timestamp) -> Result<usize, String> {
        let warn = self.config.key_expiry_warning_ms.min(i64::MAX as u64) as i64;
        let due: Vec<(KeyRecord, EventType)> = {
            let st = self.read();
            st.keys
                .values()
                .filter_map(|k| {
                    let r = &k.record;
                    let exp = r.expires_at.filter(|_| r.revoked_at.is_none())?;
                    let notice = r.expiry_notice.as_deref();
                    let ty = if exp <= now {
                        let recent = now.0 - exp.0 <= EXPIRED_NOTICE_WITHIN_MS;
                        (recent && notice != Some(EventType::KeyExpired.as_str()))
                            .then_some(EventType::KeyExpired)?
                    } else {
                        (exp.0 - now.0 <= warn && notice.is_none())
                            .then_some(EventType::KeyExpiring)?
                    };
                    Some((Self::key_view(k), ty))
                })
                .take(PER_PASS)
                .collect()
        };
        let mut logged = 0;
        for (mut key, ty) in due {
            let _one = self.changes.lock().await;
            let expect = key.expiry_notice.clone();
            key.expiry_notice = Some(ty.as_str().to_owned());
            let event = events::about_key(ty, &key.id, now, key.expires_at);
            let change = AuthChange::KeyEvent {
                key: Box::new(key.clone()),
                event: Box::new(event),
                expect_notice: Some(expect),
            };
            self.store
                .change_auth(change)
                .await
                .map_err(|e| e.to_string())?;
            // Logged here or, if the stored key had it already, by another server.
            self.remember_key(key);
            logged += 1;
        }
        Ok(logged)
    }
}
