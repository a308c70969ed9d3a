//! The change feed between servers: one connection per server that `LISTEN`s.
//!
//! - `rota_ready` (payload `tenant/queue`): tasks of that queue became ready; waiting claims
//!   wake. Sent in the same transaction as the change, so it arrives only after the commit.
//! - `rota_due`: a write created a due time (a scheduled task); the maintenance leader wakes.
//! - `rota_auth`: tenants, keys or roles changed; every server reloads them.
//! - `rota_events` (payload: the tenant): events of that tenant were logged; its readers of
//!   the event log wake (and every deliverer). An empty payload wakes every reader.
//!
//! When the feed's connection drops, every waiter is woken (they re-check the database) and it
//! reconnects with backoff; on reconnecting, access data is reloaded, since changes made while
//! it was down were not heard.

use crate::{PostgresOptions, Shared};
use futures_util::future::poll_fn;
use rota_core::QueueKey;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::AsyncMessage;

pub const READY: &str = "rota_ready";
pub const DUE: &str = "rota_due";
pub const AUTH: &str = "rota_auth";
pub const EVENTS: &str = "rota_events";

pub async fn run(url: String, options: PostgresOptions, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        match listen_once(&url, &options, &shared, &mut first).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => tracing::warn!(error = %e, "database change feed lost; reconnecting"),
        }
        shared.listening.store(false, Ordering::Release);
        shared.signals.notify_all();
        shared.events.notify_all();
        shared.maintenance.notify_waiters();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn listen_once(
    url: &str,
    options: &PostgresOptions,
    shared: &Shared,
    first: &mut bool,
) -> Result<(), String> {
    let config = crate::parse_url(url, options)?;
    let (client, mut conn) = config
        .connect(crate::tls(options)?)
        .await
        .map_err(|e| crate::describe(&e))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(Ok(n)).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tx.send(Err(crate::describe(&e)));
                    return;
                }
                None => {
                    let _ = tx.send(Err("connection closed".to_owned()));
                    return;
                }
            }
        }
    });
    let setup = client
        .batch_execute(&format!(
            "LISTEN {READY}; LISTEN {DUE}; LISTEN {AUTH}; LISTEN {EVENTS}"
        ))
        .await;
    if let Err(e) = setup {
        driver.abort();
        return Err(crate::describe(&e));
    }
    shared.listening.store(true, Ordering::Release);
    if !*first {
        // Whatever happened while the feed was down was not heard.
        shared.auth_changed.notify_waiters();
        shared.signals.notify_all();
        shared.events.notify_all();
    }
    *first = false;
    let result = loop {
        // A keep-alive query now and then notices a dead connection that sends nothing.
        let msg = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        match msg {
            Ok(Some(Ok(n))) => dispatch(shared, n.channel(), n.payload()),
            Ok(Some(Err(e))) => break Err(e),
            Ok(None) => break Err("connection closed".to_owned()),
            Err(_) => {
                let ping = tokio::time::timeout(Duration::from_secs(5), client.simple_query(""));
                match ping.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => break Err(crate::describe(&e)),
                    Err(_) => break Err("the database did not answer in 5 s".to_owned()),
                }
            }
        }
    };
    driver.abort();
    result
}

fn dispatch(shared: &Shared, channel: &str, payload: &str) {
    match channel {
        READY => {
            if let Some((tenant, name)) = payload.split_once('/') {
                shared.signals.notify(&QueueKey::new(tenant, name));
            }
        }
        DUE => shared.maintenance.notify_waiters(),
        AUTH => shared.auth_changed.notify_waiters(),
        EVENTS if payload.is_empty() => shared.events.notify_all(),
        EVENTS => shared.events.notify([payload]),
        _ => {}
    }
}

/// Waits (at most `limit`) until the feed is connected, so a store's first long-polls hear
/// other servers' commits.
pub async fn wait_connected(shared: &Shared, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !shared.listening.load(Ordering::Acquire) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
