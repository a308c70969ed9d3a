//! What this server saw recently that the store does not keep: who asked which queue for work
//! (with which kinds), and which credentials were refused (401, 403, 429, 503). `rota doctor`
//! reads it. Each server knows its own requests; on several servers, ask each one (or read
//! `rota_auth_failures_total` and the other metrics across them).

use rota_core::Timestamp;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How long observations are kept.
pub const KEPT_MS: i64 = 3_600_000;
/// Claim sources kept at most (the oldest are dropped first).
const MAX_CLAIM_SOURCES: usize = 10_000;
/// Refusals kept at most.
const MAX_REFUSALS: usize = 10_000;

/// The latest request for work from one queue of one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimSeen {
    pub at: Timestamp,
    /// The kinds asked for; empty is any.
    pub kinds: Vec<String>,
    /// Tasks it got.
    pub got: usize,
    /// The credential that asked (`key 3f2a…`).
    pub by: String,
}

/// A request refused for its credential or its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub at: Timestamp,
    /// The tenant it acted in, when the credential was known.
    pub tenant: Option<String>,
    pub credential: String,
    pub status: u16,
    /// The error's code and message.
    pub code: String,
    pub message: String,
}

#[derive(Default)]
pub struct Observed {
    claims: Mutex<HashMap<(String, String), ClaimSeen>>,
    refusals: Mutex<VecDeque<Refusal>>,
}

impl Observed {
    pub fn claimed(&self, tenant: &str, queues: &[&str], seen: ClaimSeen) {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        if claims.len() >= MAX_CLAIM_SOURCES {
            let cutoff = seen.at.plus_ms(-KEPT_MS);
            claims.retain(|_, c| c.at >= cutoff);
            if claims.len() >= MAX_CLAIM_SOURCES {
                if let Some(oldest) = claims
                    .iter()
                    .min_by_key(|(_, c)| c.at)
                    .map(|(k, _)| k.clone())
                {
                    claims.remove(&oldest);
                }
            }
        }
        for q in queues {
            claims.insert((tenant.to_owned(), (*q).to_owned()), seen.clone());
        }
    }

    pub fn refused(&self, r: Refusal) {
        let mut list = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        let cutoff = r.at.plus_ms(-KEPT_MS);
        while list.front().is_some_and(|o| o.at < cutoff) || list.len() >= MAX_REFUSALS {
            list.pop_front();
        }
        list.push_back(r);
    }

    /// Requests for work since `since`: `(tenant, queue, what was seen)`.
    pub fn claims_since(&self, since: Timestamp) -> Vec<(String, String, ClaimSeen)> {
        let claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        claims
            .iter()
            .filter(|(_, c)| c.at >= since)
            .map(|((t, q), c)| (t.clone(), q.clone(), c.clone()))
            .collect()
    }

    pub fn refusals_since(&self, since: Timestamp) -> Vec<Refusal> {
        let list = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().filter(|r| r.at >= since).cloned().collect()
    }
}
