//! Background services: each is one loop started by the server, and those that change tasks
//! (promotion, lease return, retention; later schedules and webhook delivery) run only while
//! this server is elected to lead them, so with several servers on one database each runs on
//! exactly one server at a time. On the embedded engine the one server always leads.
//!
//! Election is a lease in the store ([`rota_store::Store::lead`]): the leader renews it every
//! [`RENEW`], and if it dies another server takes over once [`LEADER_TTL`] has passed; a
//! leader that stops cleanly resigns, so the next one takes over at once.

pub mod maintenance;
pub mod notices;
pub mod schedules;

use rota_store::DynStore;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a leadership lease lasts without renewal.
pub const LEADER_TTL: Duration = Duration::from_secs(5);
/// How often the leader renews it and followers try to take it.
pub const RENEW: Duration = Duration::from_secs(1);

/// A name for this server process, unique enough to tell servers apart in the leader table.
pub fn server_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Runs `service` (given a token cancelled when leadership is lost) only while `me` leads
/// `name`, until `shutdown`; then resigns.
pub async fn elected<F, Fut>(
    store: DynStore,
    name: &'static str,
    me: Arc<str>,
    shutdown: CancellationToken,
    service: F,
) where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut running: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;
    loop {
        let leads = match store.lead(name, &me, LEADER_TTL).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(service = name, error = %e, "cannot renew leadership; pausing the service");
                false
            }
        };
        match (&running, leads) {
            (None, true) => {
                tracing::info!(service = name, server = %me, "leading");
                let token = shutdown.child_token();
                let handle = tokio::spawn(service(token.clone()));
                running = Some((token, handle));
            }
            (Some(_), false) => {
                tracing::info!(service = name, "lost leadership; stopping");
                if let Some((token, handle)) = running.take() {
                    token.cancel();
                    let _ = handle.await;
                }
            }
            _ => {}
        }
        metrics::gauge!("rota_leader", "service" => name).set(if leads { 1.0 } else { 0.0 });
        tokio::select! {
            _ = tokio::time::sleep(RENEW) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    if let Some((token, handle)) = running.take() {
        token.cancel();
        let _ = handle.await;
        store.resign(name, &me).await;
    }
}

/// Reloads access control whenever the store says another server changed it.
pub async fn access_feed(
    store: DynStore,
    auth: Arc<crate::auth::Auth>,
    shutdown: CancellationToken,
) {
    on_each_signal(store.auth_signal(), shutdown, || async {
        // Changes often come in bursts (a tenant, then its keys): one reload for a burst.
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Err(e) = auth.reload().await {
            tracing::error!(error = %e, "cannot reload access control; keeping the last loaded");
        }
    })
    .await;
}

/// Runs `f` after each signal until shutdown. The wait for the next signal begins before `f`
/// runs, so a signal sent while `f` runs (`notify_waiters` keeps no permit) runs it again
/// instead of being lost: a sign-out on another server that landed during a reload was once
/// never heard here.
async fn on_each_signal<F, Fut>(
    signal: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
    mut f: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut next = std::pin::pin!(signal.notified());
    next.as_mut().enable();
    loop {
        tokio::select! {
            _ = next.as_mut() => {}
            _ = shutdown.cancelled() => return,
        }
        next.set(signal.notified());
        next.as_mut().enable();
        f().await;
    }
}

/// Keeps this server in the store's list of live servers, and shares limits with the others
/// by demand.
pub async fn membership(
    store: DynStore,
    auth: Arc<crate::auth::Auth>,
    me: Arc<str>,
    shutdown: CancellationToken,
) {
    loop {
        match store.servers_alive(&me).await {
            Ok(n) => {
                auth.set_servers(n);
                metrics::gauge!("rota_servers").set(n as f64);
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew server membership"),
        }
        // Limits are shared by demand: this server's last second against the others'.
        match store.exchange_demand(&me, auth.take_demand()).await {
            Ok(others) => auth.set_others_demand(&others),
            Err(e) => tracing::warn!(error = %e, "cannot exchange limit demand"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RENEW) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    /// A signal sent while the work of the previous one runs is not lost.
    #[tokio::test]
    async fn a_signal_during_the_work_runs_it_again() {
        let signal = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let feed = tokio::spawn(on_each_signal(signal.clone(), shutdown.clone(), {
            let (signal, runs) = (signal.clone(), runs.clone());
            move || {
                let (signal, runs) = (signal.clone(), runs.clone());
                async move {
                    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                        // Another change lands while the first is being handled.
                        signal.notify_waiters();
                    }
                }
            }
        }));
        // Once the feed waits, one signal (more would run the work again by themselves).
        tokio::time::sleep(Duration::from_millis(100)).await;
        signal.notify_waiters();
        let start = std::time::Instant::now();
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "the signal sent during the work was lost"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shutdown.cancel();
        feed.await.unwrap();
    }
}
