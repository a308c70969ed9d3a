//! Wake-ups for the other servers (`rota_ready`, `rota_due`, `rota_events`), sent after the
//! commit that made tasks ready or scheduled, or logged events, rather than inside it.
//!
//! Why not inside: a transaction that has called NOTIFY takes a database-wide lock at commit
//! and holds it until its commit is flushed, so that notifications stay in commit order. Every
//! enqueue that notified therefore waited for the previous one's WAL flush, and durable
//! commits that could have shared one flush queued one behind another (`ps` showed most
//! backends in `COMMIT waiting`).
//!
//! Instead a commit hands its queues to the [`Notifier`], whose task sends everything pending
//! in one statement on a connection whose commits do not wait for the flush (the NOTIFY
//! carries no data to keep), gathering whatever arrives while one statement is in flight. The
//! wake-up comes after the commit, so a server that hears it finds the task. It stays what it
//! was inside the transaction: a hint. A server that misses one (this server died between the
//! commit and the send, or the database was unreachable) finds the task at its waiting
//! claim's next look; nothing is lost.

use deadpool_postgres::Pool;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

use crate::listen::{DUE, EVENTS, READY};

#[derive(Default)]
struct Pending {
    /// `tenant/queue` of queues that got ready tasks.
    ready: BTreeSet<String>,
    /// A task was scheduled: the elected maintenance may need to run sooner.
    due: bool,
    /// Tenants whose events were logged: their readers wake (and every deliverer).
    events: BTreeSet<String>,
}

#[derive(Default)]
pub(crate) struct Notifier {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Notifier {
    /// Queue `tenant/queue` got ready tasks in a commit that has finished.
    pub fn ready(&self, tenant: &str, queue: &str) {
        self.lock().ready.insert(format!("{tenant}/{queue}"));
        self.wake.notify_one();
    }

    /// A commit that has finished scheduled a task.
    pub fn due(&self) {
        self.lock().due = true;
        self.wake.notify_one();
    }

    /// A commit that has finished logged events of `tenants`.
    pub fn events<'a>(&self, tenants: impl IntoIterator<Item = &'a str>) {
        let mut p = self.lock();
        for t in tenants {
            if !p.events.contains(t) {
                p.events.insert(t.to_owned());
            }
        }
        drop(p);
        self.wake.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Channels and payloads to send now, emptying what is pending.
    fn take(&self) -> (Vec<&'static str>, Vec<String>) {
        let p = std::mem::take(&mut *self.lock());
        let mut channels = vec![READY; p.ready.len()];
        let mut payloads: Vec<String> = p.ready.into_iter().collect();
        if p.due {
            channels.push(DUE);
            payloads.push(String::new());
        }
        channels.extend(std::iter::repeat_n(EVENTS, p.events.len()));
        payloads.extend(p.events);
        (channels, payloads)
    }

    /// Puts back what could not be sent, to go with the next statement.
    fn restore(&self, channels: Vec<&'static str>, payloads: Vec<String>) {
        let mut p = self.lock();
        for (c, k) in channels.into_iter().zip(payloads) {
            if c == DUE {
                p.due = true;
            } else if c == EVENTS {
                p.events.insert(k);
            } else {
                p.ready.insert(k);
            }
        }
    }

    /// Sends what is pending, one statement at a time, until the store closes. `pool`'s
    /// connections must not wait for the WAL flush at commit.
    pub async fn run(&self, pool: Pool) {
        loop {
            self.wake.notified().await;
            self.flush(&pool).await;
        }
    }

    /// Sends everything pending now; on failure keeps it for the next try, a moment later.
    pub async fn flush(&self, pool: &Pool) {
        let (channels, payloads) = self.take();
        if channels.is_empty() {
            return;
        }
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .execute(
                    "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS n(c, p)",
                    &[&channels, &payloads],
                )
                .await
                .map_err(|e| crate::describe(&e))
        };
        if let Err(e) = sent.await {
            tracing::warn!(error = %e, "cannot wake the other servers; retrying");
            self.restore(channels, payloads);
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_wake_ups_are_gathered_once_each_and_kept_when_not_sent() {
        let n = Notifier::default();
        n.ready("t", "a");
        n.ready("t", "a");
        n.ready("t", "b");
        n.due();
        n.events(["u", "t"]);
        n.events(["t"]);
        let (channels, payloads) = n.take();
        assert_eq!(channels, vec![READY, READY, DUE, EVENTS, EVENTS]);
        assert_eq!(payloads, vec!["t/a", "t/b", "", "t", "u"]);
        assert!(n.take().0.is_empty());
        n.restore(channels, payloads);
        let (channels, payloads) = n.take();
        assert_eq!(channels, vec![READY, READY, DUE, EVENTS, EVENTS]);
        assert_eq!(payloads, vec!["t/a", "t/b", "", "t", "u"]);
    }
}
