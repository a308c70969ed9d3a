//! Per-client flow control: a request rate over a sliding minute and a bound on requests in
//! flight. Everything is in memory; no external service.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Requests in each of the last 60 seconds. The window slides a second at a time, so a client
/// at its limit gets a slot back as soon as its oldest requests are a minute old.
#[derive(Debug)]
pub struct RateWindow {
    buckets: [u32; 60],
    /// The second (unix) the newest bucket stands for.
    newest: i64,
    total: u32,
}

impl Default for RateWindow {
    fn default() -> Self {
        RateWindow {
            buckets: [0; 60],
            newest: 0,
            total: 0,
        }
    }
}

impl RateWindow {
    fn advance(&mut self, now_s: i64) {
        if now_s <= self.newest {
            return;
        }
        let steps = (now_s - self.newest).min(60);
        for i in 1..=steps {
            let slot = (self.newest + i).rem_euclid(60) as usize;
            self.total -= self.buckets[slot];
            self.buckets[slot] = 0;
        }
        self.newest = now_s;
    }

    /// Seconds until the window holds fewer than `limit` requests, if it holds `limit` or more
    /// now.
    pub fn wait_for(&mut self, now_s: i64, limit: u32) -> Option<u64> {
        self.advance(now_s);
        if self.total < limit {
            return None;
        }
        // The oldest buckets leave first: bucket `now-59` leaves in 1 s, `now-58` in 2 s, ...
        let mut left = self.total;
        for age in (0..60i64).rev() {
            let slot = (now_s - age).rem_euclid(60) as usize;
            left -= self.buckets[slot];
            if left < limit {
                return Some((60 - age) as u64);
            }
        }
        Some(60)
    }

    pub fn record(&mut self, now_s: i64) {
        self.advance(now_s);
        self.buckets[now_s.rem_euclid(60) as usize] += 1;
        self.total += 1;
    }
}

/// Requests per key (an address, a hook, a client id) over a sliding minute, for keys that
/// are not credentials' clients: what a door refuses before anyone is authenticated. At most
/// `max` keys are counted at once; past it every count is forgotten (a flood from many keys
/// costs memory no more than this, and forgetting only loosens the bound for a moment).
pub struct Throttle<K> {
    windows: Mutex<std::collections::HashMap<K, RateWindow>>,
    max: usize,
}

impl<K: std::hash::Hash + Eq + Clone> Throttle<K> {
    pub fn new(max: usize) -> Self {
        Throttle {
            windows: Mutex::new(std::collections::HashMap::new()),
            max,
        }
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<K, RateWindow>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds until `key` is under `limit` again, if it has reached it this minute.
    pub fn wait(&self, key: &K, now_s: i64, limit: u32) -> Option<u64> {
        self.locked()
            .get_mut(key)
            .and_then(|w| w.wait_for(now_s, limit))
    }

    /// Counts one of `key`'s requests.
    pub fn record(&self, key: &K, now_s: i64) {
        let mut map = self.locked();
        if map.len() >= self.max && !map.contains_key(key) {
            map.clear();
        }
        map.entry(key.clone()).or_default().record(now_s);
    }

    /// Counts one of `key`'s requests if it is under `limit`, else says how long to wait.
    pub fn take(&self, key: &K, now_s: i64, limit: u32) -> Result<(), u64> {
        let mut map = self.locked();
        if map.len() >= self.max && !map.contains_key(key) {
            map.clear();
        }
        let w = map.entry(key.clone()).or_default();
        if let Some(wait) = w.wait_for(now_s, limit) {
            return Err(wait);
        }
        w.record(now_s);
        Ok(())
    }

    pub fn forget(&self, key: &K) {
        self.locked().remove(key);
    }
}

/// The live counters of one client (a key, a JWT subject) or one tenant.
#[derive(Debug)]
pub struct ClientState {
    pub window: Mutex<RateWindow>,
    pub in_flight: AtomicU32,
    /// Bytes of request bodies being read for this client now.
    pub body_bytes: AtomicUsize,
    /// Request bodies of this client being read and parsed at once: a tenant sending huge
    /// batches takes turns with itself, not with other tenants (see `crate::bodies`).
    pub parsing: tokio::sync::Semaphore,
    /// Requests (admitted or not) since the last exchange with other servers.
    pub demand: AtomicU32,
    /// This server's and the other servers' requests in the last exchange's second: limits
    /// are shared by them (see [`share_of`]).
    pub last_demand: AtomicU32,
    pub others_demand: AtomicU32,
}

/// Bodies one tenant may have being read and parsed at once: one fewer than the cores (at
/// least one), so one tenant's large bodies never take every core from the others.
pub fn parse_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

impl Default for ClientState {
    fn default() -> Self {
        ClientState {
            window: Mutex::default(),
            in_flight: AtomicU32::new(0),
            body_bytes: AtomicUsize::new(0),
            parsing: tokio::sync::Semaphore::new(parse_slots()),
            demand: AtomicU32::new(0),
            last_demand: AtomicU32::new(0),
            others_demand: AtomicU32::new(0),
        }
    }
}

/// Limits in force for one client; 0 is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effective {
    pub requests_per_minute: u32,
    pub max_in_flight: u32,
}

/// This server's share of a limit that `servers` servers enforce together, by each one's demand
/// in the last second: a client whose requests all reach one server gets (nearly) the whole
/// limit there, one spread evenly gets an even split, so the total holds whichever way a load
/// balancer sends it. Without demand yet, an even split. A server always keeps a tenth of its
/// even split so that a client moving to it is not refused outright for the second before the
/// next exchange; with two servers that lets the total exceed the limit by at most 5 %.
pub fn share_of(limit: u32, servers: u32, mine: u64, others: u64) -> u32 {
    if limit == 0 || servers <= 1 {
        return limit;
    }
    let even = limit.div_ceil(servers);
    if mine + others == 0 {
        return even;
    }
    let by_demand = (u64::from(limit) * mine).div_ceil(mine + others);
    let floor = limit.div_ceil(servers * 10);
    (by_demand.min(u64::from(limit)) as u32).max(floor)
}

/// Which limit refused a request, and for how long to back off.
pub enum Refusal {
    Rate {
        who: usize,
        limit: u32,
        retry_after: u64,
    },
    InFlight {
        who: usize,
        limit: u32,
    },
}

/// A request's hold on its clients' in-flight slots; released when dropped.
pub struct Permit {
    held: Vec<Arc<ClientState>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        for c in &self.held {
            c.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Admits one request against several clients' limits (the key, then its tenant) or refuses it
/// without counting it anywhere.
pub fn admit(clients: &[(Arc<ClientState>, Effective)], now_s: i64) -> Result<Permit, Refusal> {
    for (c, _) in clients {
        c.demand.fetch_add(1, Ordering::Relaxed);
    }
    let mut guards = Vec::with_capacity(clients.len());
    for (who, (c, lim)) in clients.iter().enumerate() {
        if lim.requests_per_minute == 0 {
            guards.push(None);
            continue;
        }
        let mut w = c.window.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(retry_after) = w.wait_for(now_s, lim.requests_per_minute) {
            return Err(Refusal::Rate {
                who,
                limit: lim.requests_per_minute,
                retry_after,
            });
        }
        guards.push(Some(w));
    }
    let mut permit = Permit {
        held: Vec::with_capacity(clients.len()),
    };
    for (who, (c, lim)) in clients.iter().enumerate() {
        let before = c.in_flight.fetch_add(1, Ordering::AcqRel);
        permit.held.push(c.clone());
        if lim.max_in_flight != 0 && before >= lim.max_in_flight {
            // Dropping the permit gives back every slot taken so far, this one included.
            return Err(Refusal::InFlight {
                who,
                limit: lim.max_in_flight,
            });
        }
    }
    for mut w in guards.into_iter().flatten() {
        w.record(now_s);
    }
    Ok(permit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_shared_by_demand() {
        // One server: the whole limit, whatever the demand.
        assert_eq!(share_of(100, 1, 5, 50), 100);
        // No demand yet: an even split.
        assert_eq!(share_of(100, 2, 0, 0), 50);
        // A client pinned to this server gets the whole limit; the idle server keeps a tenth of
        // its even split, so the total is within 5 %.
        assert_eq!(share_of(100, 2, 40, 0), 100);
        assert_eq!(share_of(100, 2, 0, 40), 5);
        // Spread 3:1, shared 3:1.
        assert_eq!(share_of(100, 2, 30, 10), 75);
        assert_eq!(share_of(100, 2, 10, 30), 25);
        // No limit stays no limit.
        assert_eq!(share_of(0, 3, 1, 1), 0);
    }

    #[test]
    fn the_window_slides_by_the_second() {
        let mut w = RateWindow::default();
        let t0 = 1_000_000;
        for _ in 0..3 {
            w.record(t0);
        }
        w.record(t0 + 10);
        w.record(t0 + 20);
        assert_eq!(w.wait_for(t0 + 30, 6), None);
        // Full at 5: the three from t0 leave at t0 + 60, 30 s from now.
        assert_eq!(w.wait_for(t0 + 30, 5), Some(30));
        // At 3, two of the three must leave, which still takes until t0 + 60.
        assert_eq!(w.wait_for(t0 + 30, 3), Some(30));
        // At 2 the one from t0 + 10 must leave too.
        assert_eq!(w.wait_for(t0 + 30, 2), Some(40));
        assert_eq!(w.wait_for(t0 + 60, 5), None);
        assert_eq!(w.wait_for(t0 + 90, 1), None);
        w.record(t0 + 1_000);
        assert_eq!(w.wait_for(t0 + 1_000, 1), Some(60));
    }

    #[test]
    fn admission_counts_only_admitted_requests() {
        let key = Arc::new(ClientState::default());
        let tenant = Arc::new(ClientState::default());
        let k = Effective {
            requests_per_minute: 3,
            max_in_flight: 2,
        };
        let t = Effective {
            requests_per_minute: 0,
            max_in_flight: 1,
        };
        let p1 = admit(&[(key.clone(), k), (tenant.clone(), t)], 10)
            .ok()
            .unwrap();
        // The tenant's single slot is taken: refused, and nothing stays counted.
        let Err(Refusal::InFlight { who: 1, limit: 1 }) =
            admit(&[(key.clone(), k), (tenant.clone(), t)], 10)
        else {
            panic!("expected the tenant's in-flight limit")
        };
        assert_eq!(key.in_flight.load(Ordering::Relaxed), 1);
        drop(p1);
        assert_eq!(key.in_flight.load(Ordering::Relaxed), 0);
        let _p2 = admit(&[(key.clone(), k), (tenant.clone(), t)], 11)
            .ok()
            .unwrap();
        drop(_p2);
        let _p3 = admit(&[(key.clone(), k), (tenant.clone(), t)], 12)
            .ok()
            .unwrap();
        drop(_p3);
        let Err(Refusal::Rate {
            who: 0,
            limit: 3,
            retry_after,
        }) = admit(&[(key.clone(), k), (tenant.clone(), t)], 13)
        else {
            panic!("expected the key's rate limit")
        };
        assert_eq!(retry_after, 57);
    }
}
