//! Inbound webhooks: `POST /hooks/{id}` turns a provider's signed request into a task
//! (docs/inbound-webhooks.md). [`verify`] checks each provider's signature; [`receive`] takes
//! a request from its bytes to its task and its `hook.received`/`hook.rejected` event; this
//! module holds the `[hooks]` settings, the bounds on what one hook or one address may cost,
//! and each hook's recent requests.

pub mod receive;
pub mod verify;

use crate::auth::limits::Throttle;
use rota_core::{TaskId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// `[hooks]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// The URL hooks are reached at from outside (`https://rota.example.com`), shown as each
    /// hook's `url`; empty: the `Host` the hook was created through.
    pub public_url: String,
    /// The largest request body a hook takes (also bounded by `limits.max_payload_bytes`,
    /// since the body becomes the task's payload).
    pub max_body_bytes: usize,
    /// Signed requests one hook takes per minute (on each server); more answer 429. Forged
    /// ones do not count, so they cannot use up what the provider sends.
    pub per_hook_per_minute: u32,
    /// Refused requests (bad signature, unknown hook, ...) one address may make per minute;
    /// more answer 429 without being checked or logged.
    pub rejected_per_address_per_minute: u32,
    /// How far a signed timestamp (`hmac-sha256`, `stripe`) may be from the server's clock.
    pub replay_window_s: u32,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            public_url: String::new(),
            max_body_bytes: 1 << 20,
            per_hook_per_minute: 6_000,
            rejected_per_address_per_minute: 60,
            replay_window_s: rota_core::hooks::REPLAY_WINDOW_S as u32,
        }
    }
}

impl HooksConfig {
    pub fn validate(&self, limits: &rota_core::Limits) -> Result<(), String> {
        if !self.public_url.is_empty() {
            let u = reqwest::Url::parse(&self.public_url)
                .map_err(|e| format!("hooks.public_url `{}` is not a URL: {e}", self.public_url))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err("hooks.public_url must be an http or https URL".into());
            }
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > limits.max_payload_bytes {
            return Err(format!(
                "hooks.max_body_bytes must be 1 to limits.max_payload_bytes ({})",
                limits.max_payload_bytes
            ));
        }
        if self.per_hook_per_minute == 0 || self.rejected_per_address_per_minute == 0 {
            return Err(
                "hooks.per_hook_per_minute and hooks.rejected_per_address_per_minute must be at least 1"
                    .into(),
            );
        }
        if self.replay_window_s == 0 || self.replay_window_s > 3_600 {
            return Err("hooks.replay_window_s must be 1 to 3600".into());
        }
        Ok(())
    }
}

/// The resource a hook's permissions name.
pub fn resource(id: &str) -> String {
    format!("hooks/{id}")
}

/// What became of a request to a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A task was enqueued.
    Received,
    /// A redelivery: the task an earlier delivery made was found.
    Duplicate,
    Rejected,
}

/// One request a hook saw, as `GET /v1/hooks/{id}/requests` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HookRequest {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub outcome: Outcome,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The provider's delivery id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub task_id: Option<TaskId>,
    /// The address it came from.
    pub address: String,
}

/// How many recent requests each hook keeps (on each server).
pub const RECENT: usize = 50;
/// Addresses (and hooks) counted at once; past it the counts start again.
const MAX_COUNTED: usize = 10_000;

/// Per-hook and per-address counters and each hook's recent requests, in memory.
pub struct Hooks {
    per_hook: Throttle<String>,
    /// `hook.rejected` events logged per hook.
    logged_rejections: Throttle<String>,
    rejected_by_address: Throttle<IpAddr>,
    recent: Mutex<HashMap<String, VecDeque<HookRequest>>>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            per_hook: Throttle::new(MAX_COUNTED),
            logged_rejections: Throttle::new(MAX_COUNTED),
            rejected_by_address: Throttle::new(MAX_COUNTED),
            recent: Mutex::default(),
        }
    }
}

fn secs(now: Timestamp) -> i64 {
    now.0.div_euclid(1000)
}

impl Hooks {
    /// Whether `addr` has made its minute's refused requests already: seconds to wait if so.
    pub fn address_refused_too_often(
        &self,
        addr: IpAddr,
        now: Timestamp,
        limit: u32,
    ) -> Option<u64> {
        self.rejected_by_address.wait(&addr, secs(now), limit)
    }

    /// Counts a refused request of `addr`.
    pub fn note_refused(&self, addr: IpAddr, now: Timestamp) {
        self.rejected_by_address.record(&addr, secs(now));
    }

    /// Takes one of `hook`'s requests this minute, or says how many seconds until one is free.
    pub fn take(&self, hook: &str, now: Timestamp, limit: u32) -> Result<(), u64> {
        self.per_hook.take(&hook.to_owned(), secs(now), limit)
    }

    /// Whether one more `hook.rejected` of `hook` may be logged this minute (`limit` a minute).
    pub fn log_rejection(&self, hook: &str, now: Timestamp, limit: u32) -> bool {
        self.logged_rejections
            .take(&hook.to_owned(), secs(now), limit)
            .is_ok()
    }

    pub fn remember(&self, hook: &str, r: HookRequest) {
        let mut map = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(hook.to_owned()).or_default();
        if list.len() == RECENT {
            list.pop_back();
        }
        list.push_front(r);
    }

    /// `hook`'s recent requests, newest first.
    pub fn recent(&self, hook: &str) -> Vec<HookRequest> {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hook)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Drops what is kept of a deleted hook.
    pub fn forget(&self, hook: &str) {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hook);
        self.per_hook.forget(&hook.to_owned());
        self.logged_rejections.forget(&hook.to_owned());
    }
}
