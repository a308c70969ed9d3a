//! API key tokens: `rota_<id>_<secret>`, where `id` is 16 hex digits (public, names the key)
//! and `secret` is 32 random bytes in hex. Only the SHA-256 of the whole token is stored; the
//! token itself is shown once, at creation.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const PREFIX: &str = "rota_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

fn hex(bytes: &[u8]) -> String {
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

pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn hash_hex(token: &str) -> String {
    hex(&hash(token))
}

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
    fn tokens_are_shaped_and_hashed() {
        let (token, id) = generate();
        assert!(token.starts_with("rota_"));
        assert_eq!(key_id(&token), Some(id.as_str()));
        assert_eq!(token.len(), 5 + 16 + 1 + 64);
        let stored = parse_hex32(&hash_hex(&token)).unwrap();
        assert!(same(&hash(&token), &stored));
        let mut other = token.clone();
        other.pop();
        other.push('x');
        assert!(!same(&hash(&other), &stored));
        assert_ne!(generate().0, token);
        assert_eq!(key_id("rota_short_x"), None);
        assert_eq!(key_id("bearer"), None);
    }
}
