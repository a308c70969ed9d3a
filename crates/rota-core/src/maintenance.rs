//! Maintenance mode: a banner every caller sees, and, when it is on, writes and claims refused
//! until an operator turns it off or its `until` passes. One state for every server sharing a
//! database; it survives restarts.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// The longest banner message.
pub const MAX_MESSAGE_LEN: usize = 500;

/// `Retry-After` while refusing with no end set.
pub const DEFAULT_RETRY_AFTER_S: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Maintenance {
    /// What the banner says.
    pub message: String,
    /// `true`: maintenance is on and writes and claims answer 503; `false`: only announced.
    pub refusing: bool,
    /// When it ends by itself; absent: when it is turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub until: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: Timestamp,
    /// Who set it (the principal's label).
    pub by: String,
}

impl Maintenance {
    /// Whether it still holds at `now` (its `until` has not passed).
    pub fn in_force(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|u| now < u)
    }

    /// Whether writes and claims are refused at `now`.
    pub fn refuses(&self, now: Timestamp) -> bool {
        self.refusing && self.in_force(now)
    }

    /// The `Retry-After` of a refusal at `now`: until its end (at least a second), else
    /// [`DEFAULT_RETRY_AFTER_S`].
    pub fn retry_after_s(&self, now: Timestamp) -> u64 {
        match self.until {
            Some(u) => ((u.0 - now.0).max(0) as u64).div_ceil(1000).max(1),
            None => DEFAULT_RETRY_AFTER_S,
        }
    }

    /// Checks a message and end set at `now`, naming what is wrong.
    pub fn check(&self, now: Timestamp) -> Result<(), String> {
        if self.message.trim().is_empty() {
            return Err("message: say what is happening, e.g. \"database upgrade\"".into());
        }
        if self.message.chars().count() > MAX_MESSAGE_LEN {
            return Err(format!(
                "message: at most {MAX_MESSAGE_LEN} characters (it is shown as a banner)"
            ));
        }
        if let Some(u) = self.until {
            if u <= now {
                return Err(format!("until: {u} has already passed"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(refusing: bool, until: Option<i64>) -> Maintenance {
        Maintenance {
            message: "upgrade".into(),
            refusing,
            until: until.map(Timestamp),
            since: Timestamp(0),
            by: "admin token".into(),
        }
    }

    #[test]
    fn it_refuses_until_its_end_and_says_how_long() {
        let on = m(true, Some(10_500));
        assert!(on.refuses(Timestamp(10_000)));
        assert_eq!(on.retry_after_s(Timestamp(10_000)), 1);
        assert_eq!(on.retry_after_s(Timestamp(0)), 11);
        assert!(!on.refuses(Timestamp(10_500)));
        assert!(!on.in_force(Timestamp(10_500)));
        assert!(!m(false, None).refuses(Timestamp(0)));
        assert_eq!(
            m(true, None).retry_after_s(Timestamp(0)),
            DEFAULT_RETRY_AFTER_S
        );
    }

    #[test]
    fn messages_and_ends_are_checked() {
        assert!(m(true, Some(5))
            .check(Timestamp(10))
            .unwrap_err()
            .contains("until"));
        let mut blank = m(true, None);
        blank.message = " ".into();
        assert!(blank.check(Timestamp(0)).unwrap_err().contains("message"));
        assert!(m(true, None).check(Timestamp(0)).is_ok());
    }
}
