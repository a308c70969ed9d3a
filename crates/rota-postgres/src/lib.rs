//! The PostgreSQL engine: several Rota servers on one database.
//!
//! Every operation is one or a few statements on a pooled connection; the database, not a
//! writer in one process, serializes what must be serialized: row locks (`FOR UPDATE SKIP
//! LOCKED`) hand each ready task to one claimer, a partial unique index keeps one live task per
//! unique key, and lock order makes tenant deletion safe against concurrent enqueues. Task ids
//! come from blocks reserved in the database (`ids.rs`), so they are unique across servers.
//! After a commit that makes tasks ready, a `NOTIFY` wakes the other servers' long-polls
//! (`notifier.rs` sends, `listen.rs` hears); access-control changes notify too, so every server
//! reloads them.
//!
//! Architecture Invariant: the times stored are the store's [`Clock`]'s (as on the embedded
//! engine), except leadership leases, which use the database's clock so that servers with
//! skewed clocks still agree who leads.

mod access;
mod audit;
mod changes;
mod deps;
mod diagnose;
mod enqueue;
mod events;
mod flow;
mod flow_ahead;
mod groups;
mod ids;
mod import;
mod listen;
mod maintenance;
mod migrations;
mod notifier;
mod outcomes;
mod queues;
mod rows;
mod schedules;
pub mod schema;
mod spawn;
mod store;
mod webhooks;
mod workflows;
pub use import::Contents;
mod tasks;
#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rota_core::{Clock, NewTask, QueueInfo, QueueKey, QueuePatch, Task, TaskId, TaskState};
use rota_store::*;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Open-time settings of the engine.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long a request waits for a free connection before it is answered 503.
    pub pool_wait_ms: u64,
    /// How long opening a connection may take.
    pub connect_timeout_ms: u64,
    /// Most queues one tenant may have (`limits.max_queues_per_tenant`).
    pub max_queues_per_tenant: usize,
    /// Apply missing migrations at open (else refuse a schema that is not at head).
    pub migrate: bool,
    /// A PEM file of CA certificates to trust for TLS, besides the bundled web roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// How long the event log keeps an event (`events.retention_ms`).
    pub event_retention_ms: u64,
    /// How long the audit log keeps an entry (`audit.retention_ms`).
    pub audit_retention_ms: u64,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            pool_wait_ms: 5_000,
            connect_timeout_ms: 5_000,
            max_queues_per_tenant: rota_core::Limits::default().max_queues_per_tenant,
            migrate: true,
            ca_file: None,
            event_retention_ms: DEFAULT_EVENT_RETENTION_MS,
            audit_retention_ms: rota_core::audit::DEFAULT_AUDIT_RETENTION_MS,
        }
    }
}

pub(crate) struct Shared {
    pub clock: Arc<dyn Clock>,
    pub signals: ReadySignals,
    pub maintenance: Arc<Notify>,
    pub auth_changed: Arc<Notify>,
    /// Whether the change feed (LISTEN) is connected; while it is not, waits fall back to
    /// short timeouts (see `listen.rs`).
    pub listening: AtomicBool,
    /// When this server's maintenance pass next plans to run (ms; `i64::MAX`: at its
    /// interval), so that only a write that makes something due sooner wakes it.
    pub next_due: AtomicI64,
    /// Wake-ups for the other servers, sent after commits.
    pub notifier: notifier::Notifier,
    /// Readers of the event log, woken per tenant when its events were logged, here or
    /// (through the feed) on another server.
    pub events: Arc<EventSignals>,
    /// Where retention's walks through the log have got to on this server.
    pub trim_marks: std::sync::Mutex<rota_store::TrimMarks>,
    /// The running workflow the look for ended ones walks on from (workflows.rs).
    pub end_mark: AtomicI64,
}

/// The connection pools. Task and lease writes run a handful of fixed statements thousands
/// of times a second, so their sessions use generic plans, made once per connection
/// (planning each execution again was a quarter of the database's CPU). Everything else
/// (maintenance, lists, statistics, access control) keeps PostgreSQL's default of planning
/// for the parameters at hand: the purge's generic plan scans the whole table (175 ms against
/// 0.2 ms).
struct Pools {
    /// Enqueue, complete, fail, get.
    tasks: Pool,
    /// Claims, heartbeats, id blocks and wake-ups, whose commits do not wait for the WAL
    /// flush (see [`PostgresStore::lease_conn`]).
    leases: Pool,
    /// Reads of the event log. Open streams read it after every commit of their tenant; on
    /// a pool of their own, a crowd of them never makes leadership renewal, maintenance or
    /// access control wait for a connection.
    events: Pool,
    /// Everything else.
    other: Pool,
}

/// The task and lease sessions' settings. A generic plan is made once per connection and kept
/// for its life, so it must not depend on how big the table was at that moment: made while
/// the table was nearly empty (a fresh database), the claim's and completion's plans scanned
/// the whole table, and went on doing so as it grew (4,341 sequential scans reading 10.7
/// million rows in a 20,000-cycle run). Every statement on these connections finds its rows
/// through an index, so sequential scans are priced out of their plans. That price would make
/// PostgreSQL compile the few tiny-table scans that remain (the id block) with LLVM on every
/// execution, so JIT is off: these statements take well under a millisecond.
const GENERIC_PLANS: &str =
    "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c jit=off";

pub struct PostgresStore {
    pools: Pools,
    shared: Arc<Shared>,
    ids: ids::IdBlocks,
    options: PostgresOptions,
    closed: AtomicBool,
    /// Requests refused because no connection came free within `pool_wait_ms`.
    pool_timeouts: AtomicU64,
    listener: tokio::task::JoinHandle<()>,
    notifier: tokio::task::JoinHandle<()>,
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(format!("database: {}", describe(&e)))
}

/// The error with its database message, if the server sent one.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.code().code(), d.message()),
        // The driver's own text is only the kind ("error connecting to server"); the reason
        // (connection refused, no such host, a TLS failure) is in its sources.
        None => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            text
        }
    }
}

#[cfg(test)]
mod describe_tests {
    /// A refused connection names why, not only that connecting failed.
    #[tokio::test]
    async fn a_connection_error_keeps_its_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("postgres://rota@127.0.0.1:{port}/rota");
        let e = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .err()
            .unwrap();
        let text = super::describe(&e);
        assert!(text.starts_with("error connecting to server: "), "{text}");
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }
}

/// The connection settings in `url`, with Rota's timeouts.
pub fn parse_url(url: &str, options: &PostgresOptions) -> Result<tokio_postgres::Config, String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        format!("--database-url is not a PostgreSQL URL (postgres://user:pass@host:5432/db): {e}")
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_millis(options.connect_timeout_ms));
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    if config.get_application_name().is_none() {
        config.application_name("rota");
    }
    Ok(config)
}

/// TLS for connections that ask for it (`sslmode=require` or `prefer` in the URL).
pub fn tls(options: &PostgresOptions) -> Result<Tls, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &options.ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut found = 0;
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls::pki_types::CertificateDer =
                cert.map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            found += 1;
        }
        if found == 0 {
            return Err(format!("{} holds no certificate", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Tls(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

/// rustls, and a Unix socket (`host=/run/postgresql`). PostgreSQL has no TLS on Unix
/// sockets, but tokio-postgres still asks for a connector, with an empty host name that
/// rustls refuses; it gets one named `localhost` that is never used.
#[derive(Clone)]
pub struct Tls(tokio_postgres_rustls::MakeRustlsConnect);

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for Tls
where
    tokio_postgres_rustls::MakeRustlsConnect: tokio_postgres::tls::MakeTlsConnect<S>,
{
    type Stream =
        <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Stream;
    type TlsConnect = <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
        S,
    >>::TlsConnect;
    type Error =
        <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<Self::TlsConnect, Self::Error> {
        let host = if host.is_empty() { "localhost" } else { host };
        self.0.make_tls_connect(host)
    }
}

fn build_pool(
    config: tokio_postgres::Config,
    options: &PostgresOptions,
    size: usize,
) -> Result<Pool, String> {
    let manager = Manager::from_config(
        config,
        tls(options)?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_millis(options.pool_wait_ms)))
        .create_timeout(Some(Duration::from_millis(options.connect_timeout_ms)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| e.to_string())
}

/// One connection outside the pool (migrations, the change feed).
pub async fn connect_one(
    url: &str,
    options: &PostgresOptions,
) -> Result<tokio_postgres::Client, String> {
    let config = parse_url(url, options)?;
    let (client, conn) = config
        .connect(tls(options)?)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {}", describe(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "database connection ended");
        }
    });
    Ok(client)
}

impl PostgresStore {
    /// Connects, applies missing migrations (unless `options.migrate` is false, when a schema
    /// not at head is refused) and starts the change feed.
    pub async fn open(
        url: &str,
        clock: Arc<dyn Clock>,
        options: PostgresOptions,
    ) -> Result<Self, String> {
        let config = parse_url(url, &options)?;
        let mut client = connect_one(url, &options).await?;
        if options.migrate {
            schema::migrate(&mut client).await?;
        } else {
            let st = schema::status(&client)
                .await
                .map_err(|e| format!("reading the schema version: {}", describe(&e)))?;
            st.check()?;
        }
        drop(client);
        let size = options.pool_size;
        let mut tasks = config.clone();
        tasks.options(GENERIC_PLANS);
        let mut leases = config.clone();
        leases.options(format!("{GENERIC_PLANS} -c synchronous_commit=off"));
        let pools = Pools {
            tasks: build_pool(tasks, &options, size)?,
            leases: build_pool(leases, &options, size.div_ceil(2))?,
            events: build_pool(config.clone(), &options, size.div_ceil(4).max(2))?,
            other: build_pool(config, &options, size.div_ceil(4).max(2))?,
        };
        let shared = Arc::new(Shared {
            clock,
            signals: ReadySignals::default(),
            maintenance: Arc::new(Notify::new()),
            auth_changed: Arc::new(Notify::new()),
            listening: AtomicBool::new(false),
            next_due: AtomicI64::new(i64::MAX),
            notifier: Default::default(),
            events: Default::default(),
            trim_marks: Default::default(),
            end_mark: AtomicI64::new(0),
        });
        let listener = tokio::spawn(listen::run(url.to_owned(), options.clone(), shared.clone()));
        let notifier = {
            let (shared, pool) = (shared.clone(), pools.leases.clone());
            tokio::spawn(async move { shared.notifier.run(pool).await })
        };
        listen::wait_connected(&shared, Duration::from_secs(10)).await;
        Ok(PostgresStore {
            pools,
            shared,
            ids: ids::IdBlocks::default(),
            options,
            closed: AtomicBool::new(false),
            pool_timeouts: AtomicU64::new(0),
            listener,
            notifier,
        })
    }

    /// A connection for the rarer work (plans made for each call's parameters).
    pub(crate) async fn conn(&self) -> StoreResult<deadpool_postgres::Object> {
        self.get(&self.pools.other).await
    }

    /// A connection for reading the event log (see [`Pools::events`]).
    pub(crate) async fn event_conn(&self) -> StoreResult<deadpool_postgres::Object> {
        self.get(&self.pools.events).await
    }

    /// A connection for enqueues, completions and failures (generic plans, durable commits).
    pub(crate) async fn task_conn(&self) -> StoreResult<deadpool_postgres::Object> {
        self.get(&self.pools.tasks).await
    }

    /// A connection for claims, heartbeats and id blocks, whose commits are answered before
    /// their WAL is flushed. A claim lost in a crash only makes its task ready again, which
    /// at-least-once delivery allows; a lost heartbeat only shortens the lease. And PostgreSQL
    /// writes WAL in order, so any later durable commit (a completion of that task, say)
    /// flushes the claim first: no completion is acknowledged for a claim that is lost.
    pub(crate) async fn lease_conn(&self) -> StoreResult<deadpool_postgres::Object> {
        self.get(&self.pools.leases).await
    }

    async fn get(&self, pool: &Pool) -> StoreResult<deadpool_postgres::Object> {
        if self.closed.load(Ordering::Acquire) {
            return Err(unavailable("the store is closed"));
        }
        pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Timeout(_) => {
                self.pool_timeouts.fetch_add(1, Ordering::Relaxed);
                StoreError::Unavailable(format!(
                    "no free database connection within {} ms (the pool of {} is exhausted)",
                    self.options.pool_wait_ms,
                    pool.status().max_size
                ))
            }
            deadpool_postgres::PoolError::Backend(e) => db(e),
            other => unavailable(other),
        })
    }

    /// Wakes this server's maintenance pass if `at` (a scheduled run or a lease expiry) comes
    /// before the time it already plans to run.
    pub(crate) fn due_at(&self, at: rota_core::Timestamp) {
        if self.shared.next_due.fetch_min(at.0, Ordering::AcqRel) > at.0 {
            self.shared.maintenance.notify_waiters();
        }
    }

    pub(crate) fn now(&self) -> rota_core::Timestamp {
        self.shared.clock.now()
    }

    /// The pool's size, connections in use and requests waiting for one.
    /// Each pool's name (as `/readyz` names it) and state.
    pub(crate) fn each_pool(&self) -> [(&'static str, deadpool_postgres::Status); 4] {
        let p = &self.pools;
        [
            ("task", p.tasks.status()),
            ("lease", p.leases.status()),
            ("events", p.events.status()),
            ("other", p.other.status()),
        ]
    }

    /// All four pools together.
    pub fn pools(&self) -> PoolStatus {
        let mut total = PoolStatus {
            timeouts: self.pool_timeouts.load(Ordering::Relaxed),
            ..PoolStatus::default()
        };
        for (_, s) in self.each_pool() {
            total.max += s.max_size;
            total.busy += s.size - s.available;
            total.waiting += s.waiting;
        }
        total
    }
}
