//! Millisecond UTC timestamps, shown as RFC 3339 strings in the API and stored as integers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    /// This instant moved by `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let t = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| format!("`{s}` is not an RFC 3339 timestamp ({e})"))?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms)
            .map(Timestamp)
            .map_err(|_| format!("`{s}` is out of range"))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            // Digits written in place: every task in an answer carries several timestamps, and
            // `write!` with padded fields cost a tenth of the server's CPU in a drain.
            Ok(t) if (0..=9999).contains(&t.year()) => {
                let mut buf = *b"0000-00-00T00:00:00.000Z";
                let fields = [
                    (0..4, t.year() as u32),
                    (5..7, u32::from(t.month() as u8)),
                    (8..10, u32::from(t.day())),
                    (11..13, u32::from(t.hour())),
                    (14..16, u32::from(t.minute())),
                    (17..19, u32::from(t.second())),
                    (20..23, u32::from(t.millisecond())),
                ];
                for (at, mut n) in fields {
                    for b in buf[at].iter_mut().rev() {
                        *b = b'0' + (n % 10) as u8;
                        n /= 10;
                    }
                }
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
            Ok(t) => {
                let (y, mo, d) = (t.year(), t.month() as u8, t.day());
                let (h, mi, s, ms) = (t.hour(), t.minute(), t.second(), t.millisecond());
                write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
            }
            Err(_) => write!(f, "invalid-timestamp({})", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// A duration as people write it, as the CLI and the dashboard show durations: "250ms", "3s",
/// "4m 10s", "2h 5m", "3d 4h" (the two largest units).
pub fn duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, sec) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) if s == 0 => format!("{ms}ms"),
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        let t = Timestamp(1_764_000_000_123);
        let s = t.to_string();
        assert_eq!(s, "2025-11-24T16:00:00.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&s).unwrap(), t);
        assert_eq!(
            Timestamp::parse_rfc3339("2025-11-24T17:00:00.123+01:00").unwrap(),
            t
        );
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn shown_as_rfc3339_with_milliseconds_for_every_year() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (951_782_400_007, "2000-02-29T00:00:00.007Z"),
            (1_764_000_000_123, "2025-11-24T16:00:00.123Z"),
        ];
        for (ms, want) in cases {
            assert_eq!(Timestamp(ms).to_string(), want);
            assert_eq!(Timestamp::parse_rfc3339(want).unwrap(), Timestamp(ms));
        }
        // Before year 0, as `write!` pads a negative year; after 9999, out of `time`'s range.
        assert_eq!(
            Timestamp(-62_167_219_200_001).to_string(),
            "-001-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp(253_402_300_800_000).to_string(),
            "invalid-timestamp(253402300800000)"
        );
        assert_eq!(
            Timestamp(i64::MAX).to_string(),
            format!("invalid-timestamp({})", i64::MAX)
        );
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(duration_ms(250), "250ms");
        assert_eq!(duration_ms(3_000), "3s");
        assert_eq!(duration_ms(250_000), "4m 10s");
        assert_eq!(duration_ms(7_500_000), "2h 5m");
        assert_eq!(duration_ms(604_800_000), "7d 0h");
    }
}
