//! What the Faktory door remembers between commands: the worker processes that said `HELLO`
//! (for `BEAT` and for operators asking one to stop), and the lease of each job it handed out,
//! since `ACK` and `FAIL` name a job by `jid` alone.
//!
//! Both live in this server's memory. A lease forgotten (the server restarted, or the ACK came
//! through another server) is found again from the task when the `jid` is a Rota task id;
//! otherwise the ACK is refused and the job runs again after its lease expires, which
//! at-least-once delivery allows.

use rota_core::{TaskId, Timestamp};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// What an operator asked a worker process to do, answered to its next `BEAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Fetch no more jobs; finish the ones in hand.
    Quiet,
    /// Stop: fail the jobs in hand back and exit.
    Terminate,
}

/// A worker process, as its `HELLO` described it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Worker {
    pub wid: String,
    pub hostname: String,
    pub pid: i64,
    pub labels: Vec<String>,
    /// Open connections from it.
    pub connections: usize,
    #[schema(value_type = String, format = DateTime)]
    pub connected_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_beat: Option<Timestamp>,
    pub signal: Option<Signal>,
}

/// A job handed out by FETCH and not yet acknowledged.
#[derive(Debug, Clone)]
pub struct Leased {
    pub id: TaskId,
    pub token: String,
    pub wid: Option<String>,
    /// The attempt the lease is for (1 for the first), for FAIL's backoff.
    pub attempt: u32,
}

/// Most leases remembered per server; beyond it they are forgotten, and an ACK or FAIL finds
/// its lease in the store instead (see `commands::lease_of`).
const MAX_LEASES: usize = 1_000_000;

pub struct Registry {
    /// (tenant, wid) -> worker
    workers: Mutex<HashMap<(String, String), Worker>>,
    /// (tenant, jid) -> lease
    leases: Mutex<HashMap<(String, String), Leased>>,
    started: std::time::Instant,
    commands: std::sync::atomic::AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            workers: Default::default(),
            leases: Default::default(),
            started: std::time::Instant::now(),
            commands: Default::default(),
        }
    }
}

impl Registry {
    /// Counts a command (for INFO).
    pub fn command(&self) {
        self.commands
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Commands served and seconds since this server started, for INFO.
    pub fn activity(&self) -> (u64, u64) {
        (
            self.commands.load(std::sync::atomic::Ordering::Relaxed),
            self.started.elapsed().as_secs(),
        )
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Worker>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Leased>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection of worker `w` said HELLO.
    pub fn connected(&self, tenant: &str, w: Worker) {
        let mut all = self.workers();
        let entry = all
            .entry((tenant.to_owned(), w.wid.clone()))
            .or_insert(Worker {
                connections: 0,
                ..w
            });
        entry.connections += 1;
    }

    /// A connection of worker `wid` closed; the worker is forgotten with its last one.
    pub fn disconnected(&self, tenant: &str, wid: &str) {
        let mut all = self.workers();
        let key = (tenant.to_owned(), wid.to_owned());
        if let Some(w) = all.get_mut(&key) {
            w.connections = w.connections.saturating_sub(1);
            if w.connections == 0 {
                all.remove(&key);
            }
        }
    }

    /// A BEAT: records it and answers what an operator asked, if anything.
    pub fn beat(&self, tenant: &str, wid: &str, now: Timestamp) -> Option<Signal> {
        let mut all = self.workers();
        let w = all.get_mut(&(tenant.to_owned(), wid.to_owned()))?;
        w.last_beat = Some(now);
        w.signal
    }

    /// The tenant's connected worker processes.
    pub fn list(&self, tenant: &str) -> Vec<Worker> {
        let mut out: Vec<Worker> = self
            .workers()
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, w)| w.clone())
            .collect();
        out.sort_by(|a, b| a.wid.cmp(&b.wid));
        out
    }

    /// Asks worker `wid` to quiet down or stop; false when it is not connected here.
    pub fn signal(&self, tenant: &str, wid: &str, signal: Signal) -> bool {
        match self.workers().get_mut(&(tenant.to_owned(), wid.to_owned())) {
            Some(w) => {
                // Terminate is final: a later quiet does not soften it.
                if w.signal != Some(Signal::Terminate) {
                    w.signal = Some(signal);
                }
                true
            }
            None => false,
        }
    }

    pub fn leased(&self, tenant: &str, jid: &str, lease: Leased) {
        let mut all = self.leases();
        if all.len() >= MAX_LEASES {
            all.clear();
        }
        all.insert((tenant.to_owned(), jid.to_owned()), lease);
    }

    /// The lease of `jid`, removed, if worker `wid` may finish it: the worker that fetched it
    /// (a connection that named no worker may finish any, as with leases read from the store).
    /// Another worker's lease stays.
    pub fn take_lease(&self, tenant: &str, jid: &str, wid: Option<&str>) -> Option<Leased> {
        let mut all = self.leases();
        let key = (tenant.to_owned(), jid.to_owned());
        match all.get(&key) {
            Some(l) if wid.is_none_or(|w| l.wid.as_deref() == Some(w)) => all.remove(&key),
            _ => None,
        }
    }

    /// Puts back a lease whose ACK or FAIL did not go through.
    pub fn keep_lease(&self, tenant: &str, jid: &str, lease: Leased) {
        self.leases()
            .insert((tenant.to_owned(), jid.to_owned()), lease);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(wid: &str) -> Worker {
        Worker {
            wid: wid.into(),
            hostname: "h".into(),
            pid: 1,
            labels: vec![],
            connections: 0,
            connected_at: Timestamp(0),
            last_beat: None,
            signal: None,
        }
    }

    #[test]
    fn workers_are_counted_by_connection_and_signalled_on_beat() {
        let r = Registry::default();
        r.connected("t", worker("w1"));
        r.connected("t", worker("w1"));
        assert_eq!(r.list("t")[0].connections, 2);
        assert!(r.list("other").is_empty());
        assert_eq!(r.beat("t", "w1", Timestamp(5)), None);
        assert!(r.signal("t", "w1", Signal::Terminate));
        assert!(r.signal("t", "w1", Signal::Quiet));
        assert_eq!(r.beat("t", "w1", Timestamp(6)), Some(Signal::Terminate));
        assert!(!r.signal("other", "w1", Signal::Quiet));
        r.disconnected("t", "w1");
        assert_eq!(r.list("t").len(), 1);
        r.disconnected("t", "w1");
        assert!(r.list("t").is_empty());
    }

    #[test]
    fn a_lease_is_taken_only_by_the_worker_that_fetched_it() {
        let r = Registry::default();
        let lease = |wid: Option<&str>| Leased {
            id: TaskId(1),
            token: "tok".into(),
            wid: wid.map(str::to_owned),
            attempt: 1,
        };
        r.leased("t", "j1", lease(Some("w1")));
        assert!(r.take_lease("t", "j1", Some("w2")).is_none());
        assert!(r.take_lease("t", "j1", Some("w1")).is_some());
        assert!(r.take_lease("t", "j1", Some("w1")).is_none(), "taken once");
        r.leased("t", "j2", lease(None));
        assert!(r.take_lease("t", "j2", Some("w1")).is_none());
        assert!(r.take_lease("t", "j2", None).is_some());
    }
}
