//! Task ids: 64-bit, time-ordered integers, shown as UUIDv7 strings.
//!
//! The integer is `unix_ms << 20 | sequence`, so ids sort by creation time and an engine can use
//! it directly as a compact primary key. As a UUIDv7 the 48-bit `unix_ts_ms` field holds the
//! milliseconds and the 20-bit sequence fills `rand_a` (12 bits, RFC 9562's "fixed-length
//! dedicated counter") and the top 8 bits of `rand_b`; the other `rand_b` bits are zero, which
//! [`TaskId::from_str`] checks, so every accepted string maps to exactly one id.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

const SEQ_BITS: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

impl TaskId {
    /// No task: never given (an id carries its creation time), so it stands for "none" where
    /// a stored column needs a value.
    pub const NONE: TaskId = TaskId(0);

    pub fn as_i64(self) -> i64 {
        self.0 as i64
    }
    pub fn from_i64(v: i64) -> Self {
        TaskId(v as u64)
    }
    /// The creation time encoded in the id.
    pub fn unix_ms(self) -> i64 {
        (self.0 >> SEQ_BITS) as i64
    }
    fn to_u128(self) -> u128 {
        let ms = u128::from(self.0 >> SEQ_BITS) & 0xFFFF_FFFF_FFFF;
        let seq = u128::from(self.0) & ((1 << SEQ_BITS) - 1);
        let rand_a = seq >> 8; // 12 bits
        let rand_b_top = seq & 0xFF; // 8 bits
        (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | (rand_b_top << 54)
    }
}

impl fmt::Display for TaskId {
    /// The UUID's 32 hex digits, most significant first, hyphenated 8-4-4-4-12 (written in
    /// place: every task, event and outcome in an answer carries one).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let v = self.to_u128();
        let mut buf = [b'-'; 36];
        let mut shift = 128;
        for (i, b) in buf.iter_mut().enumerate() {
            if !matches!(i, 8 | 13 | 18 | 23) {
                shift -= 4;
                *b = HEX[((v >> shift) & 0xF) as usize];
            }
        }
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

/// Why a string is not a task id: the text (cut at 64 characters) and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a Rota task id: {1}")]
pub struct InvalidTaskId(pub String, pub &'static str);

impl FromStr for TaskId {
    type Err = InvalidTaskId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| InvalidTaskId(s.chars().take(64).collect(), why);
        let b = s.as_bytes();
        if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
            return Err(err(
                "task ids are UUIDs of 36 characters, such as 0192f8a0-2c4e-7000-8000-000000000000",
            ));
        }
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        let v = u128::from_str_radix(&hex, 16)
            .map_err(|_| err("it has characters other than hexadecimal digits and dashes"))?;
        if (v >> 76) & 0xF != 7 || (v >> 62) & 0b11 != 0b10 {
            return Err(err(
                "task ids are UUIDv7 (a 7 opens the third group, an 8 to b the fourth)",
            ));
        }
        let ms = (v >> 80) as u64;
        // Rota's ids fill only the time and a sequence: a UUIDv7 made elsewhere (with random
        // bits in its last group) is well formed, but no task can have it.
        if v & ((1 << 54) - 1) != 0 || ms >> (64 - SEQ_BITS) != 0 {
            return Err(err(
                "it is a UUIDv7, but not one Rota issued (the last group of Rota's is always \
                 000000000000); was it copied whole, and from Rota?",
            ));
        }
        let seq = (((v >> 64) & 0xFFF) << 8 | ((v >> 54) & 0xFF)) as u64;
        Ok(TaskId(ms << SEQ_BITS | seq))
    }
}

impl Serialize for TaskId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How many stripes ids are dealt over: an engine with several writers gives each its own
/// stripe (`id % ID_STRIPES`), so ids stay unique across them and name their writer.
pub const ID_STRIPES: u64 = 64;

/// Hands out strictly increasing ids. One generator per writer; it never goes backwards even if
/// the wall clock does.
#[derive(Debug, Default)]
pub struct IdGenerator {
    last: u64,
    /// Only ids with `id % ID_STRIPES == stripe` when `striped`.
    stripe: Option<u64>,
}

impl IdGenerator {
    /// Starts after `last`, the greatest id already stored.
    pub fn starting_after(last: Option<TaskId>) -> Self {
        IdGenerator {
            last: last.map_or(0, |t| t.0),
            stripe: None,
        }
    }

    /// Starts after `last` and gives only ids of `stripe` (below [`ID_STRIPES`]).
    pub fn striped(last: Option<TaskId>, stripe: u64) -> Self {
        assert!(stripe < ID_STRIPES, "stripe {stripe} out of range");
        IdGenerator {
            last: last.map_or(0, |t| t.0),
            stripe: Some(stripe),
        }
    }

    pub fn next(&mut self, now: crate::Timestamp) -> TaskId {
        let floor = (now.0.max(0) as u64) << SEQ_BITS;
        let mut id = floor.max(self.last + 1);
        if let Some(stripe) = self.stripe {
            id += (stripe + ID_STRIPES - id % ID_STRIPES) % ID_STRIPES;
        }
        self.last = id;
        TaskId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;

    #[test]
    fn ids_are_uuidv7_and_round_trip() {
        let mut g = IdGenerator::default();
        let a = g.next(Timestamp(1_764_000_000_000));
        let b = g.next(Timestamp(1_764_000_000_000));
        assert!(b > a);
        let s = a.to_string();
        assert_eq!(&s[14..15], "7", "version nibble in {s}");
        assert_eq!(s.parse::<TaskId>().unwrap(), a);
        assert_eq!(b.to_string().parse::<TaskId>().unwrap(), b);
        assert!(
            a.to_string() < b.to_string(),
            "string order follows id order"
        );
        assert_eq!(a.unix_ms(), 1_764_000_000_000);
    }

    #[test]
    fn shown_as_hyphenated_lowercase_hex() {
        for raw in [
            0,
            1,
            0x0123_4567_89ab_cdef,
            u64::MAX,
            1_764_000_000_000 << SEQ_BITS | 0xFFFFF,
        ] {
            let id = TaskId(raw);
            let v = id.to_u128();
            let want = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                (v >> 96) as u32,
                (v >> 80) as u16,
                (v >> 64) as u16,
                (v >> 48) as u16,
                v & 0xFFFF_FFFF_FFFF
            );
            assert_eq!(id.to_string(), want);
            assert_eq!(want.parse::<TaskId>().unwrap(), id);
        }
    }

    #[test]
    fn striped_ids_keep_their_stripe_and_order() {
        let mut g = IdGenerator::striped(Some(TaskId(1_000 << SEQ_BITS | 77)), 5);
        let mut last = TaskId(0);
        for ms in [900, 1_000, 1_000, 1_001, 1_001] {
            let id = g.next(Timestamp(ms));
            assert_eq!(id.0 % ID_STRIPES, 5);
            assert!(id > last && id.0 > (1_000 << SEQ_BITS | 77));
            assert_eq!(id.to_string().parse::<TaskId>().unwrap(), id);
            last = id;
        }
        assert_eq!(last.unix_ms(), 1_001);
    }

    #[test]
    fn generator_never_goes_backwards() {
        let mut g = IdGenerator::default();
        let a = g.next(Timestamp(2_000));
        let b = g.next(Timestamp(1_000));
        assert!(b > a);
        for _ in 0..5000 {
            let n = g.next(Timestamp(2_000));
            assert_eq!(n.to_string().parse::<TaskId>().unwrap(), n);
        }
    }

    #[test]
    fn rejects_foreign_strings() {
        for s in [
            "",
            "nope",
            "0192f8a0-2c4e-4000-8000-000000000000", // v4
            "0192f8a0-2c4e-7000-8000-000000000001", // random low bits set
            "0192f8a0x2c4e-7000-8000-000000000000",
        ] {
            assert!(s.parse::<TaskId>().is_err(), "{s}");
        }
        let why = |s: &str| s.parse::<TaskId>().unwrap_err().1;
        assert!(why("nope").contains("36 characters"));
        assert!(why("0192f8a0-2c4e-4000-8000-000000000000").contains("UUIDv7"));
        assert!(why("0192f8a0-2c4e-7000-8000-00000000000g").contains("hexadecimal"));
        assert!(why("0192f8a0-2c4e-7000-8000-000000000001").contains("not one Rota issued"));
    }
}
