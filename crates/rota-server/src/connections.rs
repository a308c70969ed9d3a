//! Serving connections with bounds a client cannot hold open without a credential.
//!
//! Each connection is in one of three states: *busy* (a request is being handled), *reading a
//! head* (bytes of a request arrived, its headers are not complete), or *idle* (nothing since
//! the last response). A head must be complete within `limits.header_read_timeout_ms` of its
//! first byte, and an idle connection closes after `limits.idle_timeout_ms`. At
//! `limits.max_connections` (or `limits.max_connections_per_address` for one address) a new
//! connection closes the oldest connection that is not busy, so slow or silent clients can
//! never keep a legitimate request from being served; only when every connection is busy does
//! a new one wait (or, past its address's cap, close). On shutdown, connections that are not
//! busy close at once (a half-sent request never delays it) and busy ones finish their request.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rota_core::Limits;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

#[derive(Debug)]
enum Phase {
    Idle(Instant),
    ReadingHead(Instant),
    Busy(usize),
}

struct Conn {
    id: u64,
    addr: IpAddr,
    phase: Mutex<Phase>,
    /// Woken when the connection's deadline moves earlier (a head starts).
    moved: Notify,
    /// Cancelled to close the connection (evicted to make room).
    close: CancellationToken,
    /// Shared by all connections: woken when one stops being busy, so an accept waiting for
    /// a slot can close it.
    went_idle: Arc<Notify>,
}

impl Conn {
    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_busy(&self) -> bool {
        matches!(*self.phase(), Phase::Busy(_))
    }

    /// Bytes arrived: if no request is in progress, a head is being read from now on.
    fn bytes_arrived(&self) {
        let mut p = self.phase();
        if let Phase::Idle(_) = *p {
            *p = Phase::ReadingHead(Instant::now());
            drop(p);
            self.moved.notify_one();
        }
    }

    fn enter(self: &Arc<Self>) -> BusyGuard {
        let mut p = self.phase();
        *p = match *p {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
        BusyGuard(self.clone())
    }

    fn deadline(&self, limits: &Timeouts) -> Option<Instant> {
        match *self.phase() {
            Phase::Busy(_) => None,
            Phase::ReadingHead(t) => Some(t + limits.header),
            Phase::Idle(t) => Some(t + limits.idle),
        }
    }
}

/// Marks a connection busy while a request is handled.
struct BusyGuard(Arc<Conn>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut p = self.0.phase();
        *p = match *p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
        if let Phase::Idle(_) = *p {
            self.0.went_idle.notify_one();
        }
    }
}

#[derive(Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count_for(&self, addr: IpAddr) -> usize {
        self.lock().values().filter(|c| c.addr == addr).count()
    }

    /// Closes the oldest connection (of `addr`, if given) that is not busy. Returns whether
    /// one was found.
    fn evict_oldest_idle(&self, addr: Option<IpAddr>) -> bool {
        let victim = self
            .lock()
            .values()
            .filter(|c| addr.is_none_or(|a| c.addr == a) && !c.close.is_cancelled())
            .filter(|c| !c.is_busy())
            .min_by_key(|c| c.id)
            .cloned();
        match victim {
            Some(c) => {
                c.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets busy connections finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let timeouts = Timeouts {
        header: Duration::from_millis(limits.header_read_timeout_ms),
        idle: Duration::from_millis(limits.idle_timeout_ms),
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry::default());
    let next_id = AtomicU64::new(0);
    let went_idle = Arc::new(Notify::new());
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let addr = peer.ip();
        if registry.count_for(addr) >= limits.max_connections_per_address
            && !registry.evict_oldest_idle(Some(addr))
        {
            tracing::debug!(%addr, "connection refused: every connection of this address is busy");
            continue;
        }
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let mut evicted = registry.evict_oldest_idle(None);
                loop {
                    tokio::select! {
                        p = slots.clone().acquire_owned() => break p.expect("never closed"),
                        _ = went_idle.notified(), if !evicted => {
                            evicted = registry.evict_oldest_idle(None);
                        }
                        _ = shutdown.cancelled() => return drain(tasks).await,
                    }
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Conn {
            id: next_id.fetch_add(1, Ordering::Relaxed),
            addr,
            phase: Mutex::new(Phase::Idle(Instant::now())),
            moved: Notify::new(),
            close: CancellationToken::new(),
            went_idle: went_idle.clone(),
        });
        registry.lock().insert(conn.id, conn.clone());
        let (app, registry, shutdown) = (app.clone(), registry.clone(), shutdown.clone());
        tasks.spawn(async move {
            serve_one(stream, conn.clone(), app, timeouts, shutdown).await;
            registry.lock().remove(&conn.id);
            drop(permit);
        });
    }
    drain(tasks).await
}

async fn drain(tasks: tokio_util::task::TaskTracker) -> io::Result<()> {
    tasks.close();
    tasks.wait().await;
    Ok(())
}

async fn serve_one(
    stream: TcpStream,
    conn: Arc<Conn>,
    app: Router,
    timeouts: Timeouts,
    shutdown: CancellationToken,
) {
    let io = TokioIo::new(Tracked {
        inner: stream,
        conn: conn.clone(),
    });
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = conn.enter();
            let call = app.clone().oneshot(req.map(axum::body::Body::new));
            async move {
                let resp = call.await;
                drop(busy);
                resp
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own head timer runs while waiting for any next request, idle time included: it
    // is the idle backstop; the head deadline from the first byte is kept here.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.idle.max(timeouts.header));
    // Upgrades: the event stream's WebSocket takes the connection over (it then lives until
    // the server stops or its credential ends, outside the idle and head deadlines here).
    let served = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(served);
    let mut draining = false;
    loop {
        let deadline = conn.deadline(&timeouts);
        let wait = async {
            match deadline {
                Some(d) if !draining => tokio::time::sleep_until(d).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = conn.close.cancelled() => return,
            _ = conn.moved.notified() => {}
            _ = wait => {
                if conn.deadline(&timeouts).is_some_and(|d| d <= Instant::now()) {
                    return;
                }
            }
            _ = shutdown.cancelled(), if !draining => {
                if !conn.is_busy() {
                    return;
                }
                draining = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The TCP stream, telling its connection when bytes arrive.
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            me.conn.bytes_arrived();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
