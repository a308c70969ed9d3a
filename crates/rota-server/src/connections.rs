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
//!
//! The admission and eviction ([`Gate`], [`Conn`]) are shared with the Faktory door, which marks
//! its connections' phases itself and prefers to evict connections that never authenticated.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rota_core::Limits;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

#[derive(Debug)]
enum Phase {
    Idle(Instant),
    ReadingHead(Instant),
    Busy(usize),
}

/// One open connection, as the gate that admitted it sees it.
pub(crate) struct Conn {
    id: u64,
    addr: IpAddr,
    phase: Mutex<Phase>,
    /// Woken when the connection's deadline moves earlier (a head starts).
    moved: Notify,
    /// Cancelled to close the connection (evicted to make room).
    pub(crate) close: CancellationToken,
    /// Proved a credential (the Faktory door's HELLO); connections that did not are evicted
    /// first. HTTP connections never set it: their credentials are per request.
    authenticated: AtomicBool,
    /// Shared by all connections: woken when one stops being busy, so an accept waiting for
    /// a slot can close it.
    went_idle: Arc<Notify>,
}

impl Conn {
    /// The address the connection comes from.
    pub(crate) fn addr(&self) -> IpAddr {
        self.addr
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_busy(&self) -> bool {
        matches!(*self.phase(), Phase::Busy(_))
    }

    pub(crate) fn set_authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }

    /// Bytes arrived: if no request is in progress, a head is being read from now on.
    pub(crate) fn bytes_arrived(&self) {
        let mut p = self.phase();
        if let Phase::Idle(_) = *p {
            *p = Phase::ReadingHead(Instant::now());
            drop(p);
            self.moved.notify_one();
        }
    }

    pub(crate) fn enter(self: &Arc<Self>) -> BusyGuard {
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
pub(crate) struct BusyGuard(Arc<Conn>);

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

    /// Closes the oldest connection (of `addr`, if given) that is not busy, one that never
    /// authenticated before any that did. Returns whether one was found.
    fn evict_oldest_idle(&self, addr: Option<IpAddr>) -> bool {
        let victim = self
            .lock()
            .values()
            .filter(|c| addr.is_none_or(|a| c.addr == a) && !c.close.is_cancelled())
            .filter(|c| !c.is_busy())
            .min_by_key(|c| (c.authenticated.load(Ordering::Relaxed), c.id))
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
    let gate = Gate::new(limits);
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
        let (conn, slot) = match gate.admit(peer.ip(), &shutdown).await {
            Admitted::Open(conn, slot) => (conn, slot),
            Admitted::Refused => continue,
            Admitted::ShuttingDown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, shutdown) = (app.clone(), shutdown.clone());
        tasks.spawn(async move {
            serve_one(stream, peer, conn, app, timeouts, shutdown).await;
            drop(slot);
        });
    }
    drain(tasks).await
}

/// Admits a listener's connections within `limits.max_connections` and
/// `limits.max_connections_per_address`, making room by eviction.
pub(crate) struct Gate {
    slots: Arc<Semaphore>,
    registry: Arc<Registry>,
    next_id: AtomicU64,
    went_idle: Arc<Notify>,
    per_address: usize,
}

/// What [`Gate::admit`] decided.
pub(crate) enum Admitted {
    Open(Arc<Conn>, Slot),
    /// Every connection of this address is busy.
    Refused,
    ShuttingDown,
}

/// A connection's place: frees its slot and leaves the registry when dropped.
pub(crate) struct Slot {
    registry: Arc<Registry>,
    id: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Gate {
    pub(crate) fn new(limits: &Limits) -> Gate {
        Gate {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            registry: Arc::new(Registry::default()),
            next_id: AtomicU64::new(0),
            went_idle: Arc::new(Notify::new()),
            per_address: limits.max_connections_per_address,
        }
    }

    /// A place for a new connection from `addr`: at the address's cap its oldest idle
    /// connection closes (or, every one busy, the new one is refused); at the server's cap the
    /// oldest idle connection closes, or the new one waits until one is.
    pub(crate) async fn admit(&self, addr: IpAddr, shutdown: &CancellationToken) -> Admitted {
        let registry = &self.registry;
        if registry.count_for(addr) >= self.per_address && !registry.evict_oldest_idle(Some(addr)) {
            tracing::debug!(%addr, "connection refused: every connection of this address is busy");
            return Admitted::Refused;
        }
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let mut evicted = registry.evict_oldest_idle(None);
                loop {
                    tokio::select! {
                        p = self.slots.clone().acquire_owned() => break p.expect("never closed"),
                        _ = self.went_idle.notified(), if !evicted => {
                            evicted = registry.evict_oldest_idle(None);
                        }
                        _ = shutdown.cancelled() => return Admitted::ShuttingDown,
                    }
                }
            }
        };
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            addr,
            phase: Mutex::new(Phase::Idle(Instant::now())),
            moved: Notify::new(),
            close: CancellationToken::new(),
            authenticated: AtomicBool::new(false),
            went_idle: self.went_idle.clone(),
        });
        registry.lock().insert(conn.id, conn.clone());
        let slot = Slot {
            registry: registry.clone(),
            id: conn.id,
            _permit: permit,
        };
        Admitted::Open(conn, slot)
    }
}

async fn drain(tasks: tokio_util::task::TaskTracker) -> io::Result<()> {
    tasks.close();
    tasks.wait().await;
    Ok(())
}

async fn serve_one(
    stream: TcpStream,
    peer: std::net::SocketAddr,
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
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let busy = conn.enter();
            // The peer's address (read back by `peer` below), for what is bounded per address
            // and for the audit log.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
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

/// The address a request came from, as the serve loop put it in the request's extensions
/// (`None` for a request that did not come through it, such as one a test sends to the router).
pub(crate) fn peer(extensions: &axum::http::Extensions) -> Option<std::net::SocketAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}
