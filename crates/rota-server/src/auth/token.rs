//! API key tokens: `rota_<id>_<secret>`, where `id` is 16 hex digits (public, names the key)
//! and `secret` is 32 random bytes in hex. The token itself is shown once, at creation; what
//! is stored is a hash it cannot be recovered from, in one of two forms:
//!
//! - `v2:<hex>` (every key made now): `SHA-256(SHA-256(token + FAKTORY_SALT))`. A Faktory
//!   client never sends its password, only `SHA-256(password + salt)` for the salt the server
//!   announces ([`proof`]); hashing that proof once more gives the stored value, so the
//!   Faktory door can check a key without the server knowing it, and the stored value alone
//!   does not let anyone in (it is one hash past what a client must send).
//! - `<hex>` (keys made before): `SHA-256(token)`. Still accepted over HTTP; such a key
//!   cannot sign in to the Faktory door (its proof cannot be checked).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const PREFIX: &str = "rota_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A new token and its key id, from the operating system's random source.
pub fn generate() -> (String, String) {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    let mut rng = rand::rngs::OsRng;
    rand::TryRngCore::try_fill_bytes(&mut rng, &mut id).expect("the OS random source works");
    rand::TryRngCore::try_fill_bytes(&mut rng, &mut secret).expect("the OS random source works");
    let id = hex(&id);
    (format!("{PREFIX}{id}_{}", hex(&secret)), id)
}

/// A new token for the existing key `id` (a rotation): a fresh secret, the same id.
pub fn generate_for(id: &str) -> String {
    let mut secret = [0u8; SECRET_BYTES];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut secret)
        .expect("the OS random source works");
    format!("{PREFIX}{id}_{}", hex(&secret))
}

/// A new random secret (32 bytes, in hex): a session-signing secret.
pub fn random_secret() -> String {
    let mut b = [0u8; SECRET_BYTES];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut b)
        .expect("the OS random source works");
    hex(&b)
}

/// The salt the Faktory door announces (`HI {"s": ..., "i": 1}`). Fixed, so that stored
/// hashes can be checked against it; keys carry 256 random bits, so a salt adds nothing
/// against guessing.
pub const FAKTORY_SALT: &str = "rota-faktory-v1";

/// What a Faktory client sends for `token`: `SHA-256(token + salt)`, one iteration.
pub fn proof(token: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(token.as_bytes());
    h.update(FAKTORY_SALT.as_bytes());
    h.finalize().into()
}

/// The stored form of a proof.
pub fn verifier(proof: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(proof).into()
}

/// A stored key hash, as parsed from its record. Compared in constant time (a Faktory HELLO's
/// proof is looked up by comparing its verifier with stored ones).
#[derive(Clone, Copy)]
pub enum Stored {
    /// `SHA-256(token)`: keys made before the Faktory door.
    Plain([u8; 32]),
    /// [`verifier`] of the token's [`proof`].
    Verifier([u8; 32]),
}

impl Stored {
    /// What is stored for a new token.
    pub fn of(token: &str) -> Stored {
        Stored::Verifier(verifier(&proof(token)))
    }

    pub fn parse(s: &str) -> Option<Stored> {
        match s.strip_prefix("v2:") {
            Some(v) => parse_hex32(v).map(Stored::Verifier),
            None => parse_hex32(s).map(Stored::Plain),
        }
    }

    pub fn to_text(self) -> String {
        match self {
            Stored::Plain(h) => hex(&h),
            Stored::Verifier(v) => format!("v2:{}", hex(&v)),
        }
    }

    /// Whether `token` is the token this was stored for (in constant time).
    pub fn matches(&self, token: &str) -> bool {
        match self {
            Stored::Plain(h) => same(&Sha256::digest(token.as_bytes()).into(), h),
            Stored::Verifier(v) => same(&verifier(&proof(token)), v),
        }
    }
}

impl PartialEq for Stored {
    fn eq(&self, other: &Stored) -> bool {
        match (self, other) {
            (Stored::Plain(a), Stored::Plain(b)) | (Stored::Verifier(a), Stored::Verifier(b)) => {
                same(a, b)
            }
            _ => false,
        }
    }
}

impl Eq for Stored {}

pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The key id of a token shaped like an API key, without judging the secret.
pub fn key_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == ID_BYTES * 2 && !secret.is_empty()).then_some(id)
}

/// Compares in time independent of where the hashes differ.
pub fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hashes_are_equal_only_of_the_same_kind_and_bytes() {
        let (a, b) = ([7u8; 32], [8u8; 32]);
        assert!(Stored::Verifier(a) == Stored::Verifier(a));
        assert!(Stored::Verifier(a) != Stored::Verifier(b));
        assert!(Stored::Plain(a) != Stored::Verifier(a));
    }

    #[test]
    fn tokens_are_shaped_and_hashed() {
        let (token, id) = generate();
        assert!(token.starts_with("rota_"));
        assert_eq!(key_id(&token), Some(id.as_str()));
        assert_eq!(token.len(), 5 + 16 + 1 + 64);
        let stored = Stored::parse(&Stored::of(&token).to_text()).unwrap();
        assert!(stored.matches(&token));
        let mut other = token.clone();
        other.pop();
        other.push('x');
        assert!(!stored.matches(&other));
        // Keys stored before the Faktory door still match.
        let plain = Stored::parse(&hex(&Sha256::digest(token.as_bytes()))).unwrap();
        assert!(plain.matches(&token) && !plain.matches(&other));
        // A Faktory client's proof, hashed once more, is what is stored.
        let Stored::Verifier(v) = stored else {
            panic!()
        };
        assert!(same(&verifier(&proof(&token)), &v));
        assert_ne!(generate().0, token);
        assert_eq!(key_id("rota_short_x"), None);
        assert_eq!(key_id("bearer"), None);
    }
}
