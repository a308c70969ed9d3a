//! What this server saw recently that the store does not keep: who asked which queue for work
//! (with which kinds), and which credentials were refused (401, 403, 429, 503). `rota doctor`
//! reads it. Each server knows its own requests; on several servers, ask each one (or read
//! `rota_auth_failures_total` and the other metrics across them).

use rota_core::Timestamp;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// The busiest writer of the last minute (see [`Observed::writer_busy`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriterBusy {
    /// Its share of real time busy, 0 to 1.
    pub share: f64,
    /// The seconds the samples span.
    pub span: f64,
    /// Which writer: the embedded store's shard.
    pub shard: usize,
}

/// How far back the writer's samples reach.
pub const WRITER_WINDOW: Duration = Duration::from_secs(60);

/// The latest request for work per (tenant, queue), at most [`MAX_CLAIM_SOURCES`] of them: each
/// entry is also indexed by when it was seen, so the oldest go first in O(log n) however many
/// queues one request names.
#[derive(Default)]
struct Claims {
    latest: HashMap<(String, String), (ClaimSeen, u64)>,
    /// (seen at, sequence) -> the entry's key.
    by_age: BTreeMap<(Timestamp, u64), (String, String)>,
    next: u64,
}

impl Claims {
    fn insert(&mut self, key: (String, String), seen: ClaimSeen) {
        let seq = self.next;
        self.next += 1;
        self.by_age.insert((seen.at, seq), key.clone());
        if let Some((old, old_seq)) = self.latest.insert(key, (seen, seq)) {
            self.by_age.remove(&(old.at, old_seq));
        }
        while self.latest.len() > MAX_CLAIM_SOURCES {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.by_age.pop_first() {
            self.latest.remove(&key);
        }
    }

    /// Drops what is older than `cutoff`.
    fn expire(&mut self, cutoff: Timestamp) {
        while self
            .by_age
            .first_key_value()
            .is_some_and(|((at, _), _)| *at < cutoff)
        {
            self.evict_oldest();
        }
    }
}

#[derive(Default)]
pub struct Observed {
    claims: Mutex<Claims>,
    refusals: Mutex<VecDeque<Refusal>>,
    /// The store writer's busy seconds so far, sampled by the server's upkeep (real time, not
    /// the store's clock: busy time is real time).
    writer: Mutex<VecDeque<(Instant, Vec<f64>)>>,
    /// Since when each (tenant, queue) has been seen at its concurrency limit with tasks
    /// ready, without a look in between that found it below (at most [`MAX_AT_LIMIT`]).
    at_limit: Mutex<HashMap<(String, String), Timestamp>>,
}

/// Queues tracked at their concurrency limit at most; past it a new one is not tracked.
const MAX_AT_LIMIT: usize = 10_000;

impl Observed {
    pub fn claimed(&self, tenant: &str, queues: &[&str], seen: ClaimSeen) {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        claims.expire(seen.at.plus_ms(-KEPT_MS));
        // Past the cap only the last names would be kept anyway: skip copying the others.
        let skip = queues.len().saturating_sub(MAX_CLAIM_SOURCES);
        for q in &queues[skip..] {
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
            .latest
            .iter()
            .filter(|(_, (c, _))| c.at >= since)
            .map(|((t, q), (c, _))| (t.clone(), q.clone(), c.clone()))
            .collect()
    }

    pub fn refusals_since(&self, since: Timestamp) -> Vec<Refusal> {
        let list = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().filter(|r| r.at >= since).cloned().collect()
    }

    /// A look at a queue (the upkeep's every 30 s, a doctor run, a queue's stats): whether it
    /// was at its concurrency limit with tasks ready. Answers since when it has been, as far
    /// as this server saw.
    pub fn queue_seen(
        &self,
        tenant: &str,
        q: &rota_core::QueueInfo,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let at_limit = q.counts.ready > 0
            && q.settings
                .concurrency
                .is_some_and(|c| q.counts.running >= u64::from(c));
        let mut map = self.at_limit.lock().unwrap_or_else(|e| e.into_inner());
        let key = (tenant.to_owned(), q.name.clone());
        if !at_limit {
            map.remove(&key);
            return None;
        }
        if let Some(since) = map.get(&key) {
            return Some(*since);
        }
        (map.len() < MAX_AT_LIMIT).then(|| *map.entry(key).or_insert(now))
    }

    /// One sample of each writer's busy seconds so far; samples older than the window are
    /// dropped, keeping one that spans it.
    pub fn writer_sampled(&self, at: Instant, busy_seconds: Vec<f64>) {
        let mut samples = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back((at, busy_seconds));
        while samples
            .get(1)
            .is_some_and(|(t, _)| at.duration_since(*t) >= WRITER_WINDOW)
        {
            samples.pop_front();
        }
    }

    /// The busiest writer over the samples kept: its share of real time, the seconds the
    /// samples span, and its index; `None` before two samples.
    pub fn writer_busy(&self) -> Option<WriterBusy> {
        let samples = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let (first, last) = (samples.front()?, samples.back()?);
        let span = last.0.duration_since(first.0).as_secs_f64();
        let (shard, busiest) = last
            .1
            .iter()
            .zip(&first.1)
            .map(|(b, a)| b - a)
            .enumerate()
            .fold(
                (0, 0.0),
                |best, (i, d)| if d > best.1 { (i, d) } else { best },
            );
        (span > 0.0).then(|| WriterBusy {
            share: (busiest / span).clamp(0.0, 1.0),
            span,
            shard,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(at: i64) -> ClaimSeen {
        ClaimSeen {
            at: Timestamp(at),
            kinds: vec![],
            got: 0,
            by: "key k".into(),
        }
    }

    #[test]
    fn claim_sources_stay_within_their_cap_and_the_oldest_go_first() {
        let o = Observed::default();
        let t0 = 1_764_000_000_000;
        o.claimed("t", &["early"], seen(t0));
        // One request naming more queues than the cap keeps only as many as the cap.
        let many: Vec<String> = (0..MAX_CLAIM_SOURCES + 500)
            .map(|i| format!("q{i}"))
            .collect();
        let names: Vec<&str> = many.iter().map(String::as_str).collect();
        o.claimed("t", &names, seen(t0 + 1));
        let all = o.claims_since(Timestamp(0));
        assert_eq!(all.len(), MAX_CLAIM_SOURCES);
        assert!(
            all.iter().all(|(_, q, _)| q != "early"),
            "the oldest went first"
        );
        // A queue seen again moves to the young end; the next newcomer evicts another.
        o.claimed("t", &["q500"], seen(t0 + 2));
        o.claimed("t", &["late"], seen(t0 + 3));
        let all = o.claims_since(Timestamp(0));
        assert_eq!(all.len(), MAX_CLAIM_SOURCES);
        assert!(all.iter().any(|(_, q, _)| q == "q500"));
        assert!(all.iter().any(|(_, q, _)| q == "late"));
        // An hour later the old entries expire with the next request.
        o.claimed("t", &["now"], seen(t0 + KEPT_MS + 10));
        assert_eq!(o.claims_since(Timestamp(0)).len(), 1);
    }

    #[test]
    fn a_queue_is_at_its_limit_since_the_first_look_that_found_it_there() {
        let o = Observed::default();
        let mut q = rota_core::QueueInfo {
            name: "q".into(),
            settings: rota_core::QueueSettings {
                concurrency: Some(2),
                ..Default::default()
            },
            counts: rota_core::StateCounts {
                ready: 5,
                running: 2,
                ..Default::default()
            },
            oldest_ready_age_ms: None,
            last_claim_at: None,
            created_at: Timestamp(0),
            shard: None,
            next_start_at: None,
        };
        assert_eq!(o.queue_seen("t", &q, Timestamp(10)), Some(Timestamp(10)));
        assert_eq!(o.queue_seen("t", &q, Timestamp(20)), Some(Timestamp(10)));
        q.counts.running = 1;
        assert_eq!(o.queue_seen("t", &q, Timestamp(30)), None);
        q.counts.running = 2;
        assert_eq!(o.queue_seen("t", &q, Timestamp(40)), Some(Timestamp(40)));
        q.counts.ready = 0;
        assert_eq!(o.queue_seen("t", &q, Timestamp(50)), None, "nothing waits");
    }

    #[test]
    fn the_writers_busy_share_covers_the_last_minute() {
        let o = Observed::default();
        let t0 = Instant::now();
        assert_eq!(o.writer_busy(), None);
        o.writer_sampled(t0, vec![10.0]);
        assert_eq!(o.writer_busy(), None, "one sample spans nothing");
        // Idle for a minute, then busy 9 s of every 10.
        o.writer_sampled(t0 + Duration::from_secs(60), vec![10.0]);
        for i in 1..=6 {
            o.writer_sampled(
                t0 + Duration::from_secs(60 + 10 * i),
                vec![10.0 + 9.0 * i as f64],
            );
        }
        let WriterBusy { share, span, .. } = o.writer_busy().unwrap();
        assert_eq!(span, 60.0, "the idle minute has left the window");
        assert!((share - 0.9).abs() < 1e-9, "{share}");
    }

    #[test]
    fn the_busiest_writer_counts_not_the_average() {
        let o = Observed::default();
        let t0 = Instant::now();
        o.writer_sampled(t0, vec![0.0, 0.0, 0.0]);
        o.writer_sampled(t0 + Duration::from_secs(60), vec![1.0, 57.0, 2.0]);
        let WriterBusy { share, shard, .. } = o.writer_busy().unwrap();
        assert!((share - 0.95).abs() < 1e-9, "{share}");
        assert_eq!(shard, 1);
    }
}
