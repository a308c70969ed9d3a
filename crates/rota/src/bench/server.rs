//! The server a bench run measures: started as a child process on a temporary data dir (or
//! given by URL), with a client of a tenant of its own.

use anyhow::{bail, Context, Result};
use rota_client::Client;
use std::time::{Duration, Instant};

pub(super) struct Server {
    child: Option<std::process::Child>,
    _dir: Option<tempfile::TempDir>,
    url: String,
    /// The admin token of a server this bench started.
    admin: Option<String>,
    /// The tenant the bench's client works in, and its key, when the bench made one.
    tenant: Option<String>,
    key: Option<String>,
}

/// The binary whose server the bench starts, when not its own (`--server-bin`).
static SERVER_BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

pub(super) fn use_binary(bin: std::path::PathBuf) {
    let _ = SERVER_BIN.set(bin);
}

pub(super) enum Target {
    /// A running server and the token to use.
    Given(String, Option<String>),
    /// A new server, with access control on or off, on the embedded store or PostgreSQL.
    Start {
        auth: bool,
        database_url: Option<String>,
    },
}

impl Server {
    /// The URL and the token of the bench's main client, for a client made elsewhere (on a
    /// runtime of its own).
    pub(super) fn client_parts(&self) -> (String, Option<String>) {
        (
            self.url.clone(),
            self.key.clone().or_else(|| self.admin.clone()),
        )
    }

    /// The server given, or a new one on a temporary data dir; and a client for it. With access
    /// control on, the client holds a `producer`+`worker` key of a tenant of its own.
    pub(super) async fn start(target: Target) -> Result<(Server, Client)> {
        let auth = match target {
            Target::Given(url, token) => {
                let client = Client::with_token(&url, token.as_deref())?;
                // The fairness mode makes its flooding tenant with this token (an admin's).
                let server = Server {
                    child: None,
                    _dir: None,
                    url,
                    admin: token,
                    tenant: None,
                    key: None,
                };
                return Ok((server, client));
            }
            Target::Start { auth, database_url } => (auth, database_url),
        };
        let (auth, database_url) = auth;
        let mut server = Server::spawn(auth, database_url.as_deref()).await?;
        if !auth {
            let client = Client::new(&server.url)?;
            return Ok((server, client));
        }
        // A tenant of its own per server: a shared PostgreSQL database keeps earlier runs.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tenant = format!("bench-{nanos:08x}");
        let key = server.tenant_key(&tenant).await?;
        let client = Client::with_token(&server.url, Some(&key))?;
        server.tenant = Some(tenant);
        server.key = Some(key);
        Ok((server, client))
    }

    /// Another server on the same PostgreSQL database, and a client for it with the same key.
    pub(super) async fn peer(&self, database_url: &str) -> Result<(Server, Client)> {
        let server = Server::spawn(self.admin.is_some(), Some(database_url)).await?;
        let client = Client::with_token(&server.url, self.key.as_deref())?;
        Ok((server, client))
    }

    /// `rota serve` on a free port and a temporary data dir, once it answers.
    async fn spawn(auth: bool, database_url: Option<&str>) -> Result<Server> {
        let admin = rota_server::auth::token::generate().0;
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let exe = match SERVER_BIN.get() {
            Some(bin) => bin.clone(),
            None => std::env::current_exe()?,
        };
        let child = std::process::Command::new(exe)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path())
            .env("ROTA_LOG", "warn")
            .env("ROTA_AUTH_ENABLED", if auth { "true" } else { "false" })
            .env("ROTA_ADMIN_TOKEN", &admin)
            .env("ROTA_DATABASE_URL", database_url.unwrap_or_default())
            // The webhooks mode delivers to a receiver on this machine.
            .env("ROTA_WEBHOOKS_ALLOW_PRIVATE", "true")
            .envs(super::traces::server_env())
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("cannot start the server")?;
        let url = format!("http://127.0.0.1:{port}");
        let probe = Client::new(&url)?;
        let start = Instant::now();
        while !probe.healthy().await {
            if start.elapsed() > Duration::from_secs(20) {
                bail!("the server did not start within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Server {
            child: Some(child),
            _dir: Some(dir),
            url,
            admin: auth.then_some(admin),
            tenant: None,
            key: None,
        })
    }

    /// A client with a `producer`+`worker` key of a new tenant `name` (the admin's client when
    /// access control is off, so every tenant is `default`).
    pub(super) async fn tenant_client(&self, name: &str) -> Result<Client> {
        match &self.admin {
            Some(_) => Ok(Client::with_token(
                &self.url,
                Some(&self.tenant_key(name).await?),
            )?),
            None => Ok(Client::new(&self.url)?),
        }
    }

    /// Creates tenant `name` and a `producer`+`worker` key of it; returns the key's token.
    async fn tenant_key(&self, name: &str) -> Result<String> {
        let admin = Client::with_token(&self.url, self.admin.as_deref())?;
        admin
            .create_tenant(name, Default::default(), None)
            .await
            .with_context(|| format!("cannot create the {name} tenant"))?;
        let key = admin
            .with_tenant(Some(name))
            .create_key(&rota_client::NewKey {
                name: Some(name.into()),
                roles: vec!["producer".into(), "worker".into()],
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot create the {name} key"))?;
        Ok(key.token)
    }

    /// A client that may change the bench tenant's queue settings (`client` itself when the
    /// bench made no tenant).
    pub(super) fn settings_client(&self, client: &Client) -> Result<Client> {
        Ok(match (&self.admin, &self.tenant) {
            (Some(admin), Some(tenant)) => {
                Client::with_token(&self.url, Some(admin))?.with_tenant(Some(tenant))
            }
            _ => client.clone(),
        })
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// The token the bench's client sends (its tenant's key, or the admin token given).
    pub(super) fn token(&self) -> Option<&str> {
        self.key.as_deref().or(self.admin.as_deref())
    }

    /// Resident set size of the server process, in MiB.
    pub(super) fn rss_mib(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

/// What the server process has used so far, from /proc (a local server only).
#[derive(Debug, Clone, Copy)]
pub(super) struct Usage {
    /// Bytes the process caused to be written to storage (`write_bytes` of /proc/PID/io).
    pub write_bytes: u64,
    /// CPU seconds of the embedded engine's writer thread(s).
    pub writer_cpu_s: f64,
    /// CPU seconds of the whole process.
    pub cpu_s: f64,
}

impl Usage {
    /// Per-unit figures of the interval from `before` to `self`, over `n` units.
    pub(super) fn per(&self, before: &Usage, n: u64) -> (f64, f64, f64) {
        let n = n.max(1) as f64;
        (
            (self.write_bytes - before.write_bytes) as f64 / n,
            (self.writer_cpu_s - before.writer_cpu_s) * 1e6 / n,
            (self.cpu_s - before.cpu_s) * 1e6 / n,
        )
    }
}

/// utime + stime of a /proc `stat` line, in seconds.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 on every architecture Rota builds for.
    Some(ticks as f64 / 100.0)
}

impl Server {
    /// The server process's usage so far; `None` for a server the bench did not start.
    pub(super) fn usage(&self) -> Option<Usage> {
        let pid = self.child.as_ref()?.id();
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
        let write_bytes = io
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes: "))?
            .trim()
            .parse()
            .ok()?;
        let cpu_s = cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
        let mut writer_cpu_s = 0.0;
        for t in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            // The kernel keeps the first 15 bytes of a thread's name.
            let name = rota_sqlite::WRITER_THREAD;
            if comm.trim_end() == &name[..name.len().min(15)] {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                writer_cpu_s += cpu_seconds(&stat).unwrap_or(0.0);
            }
        }
        Some(Usage {
            write_bytes,
            writer_cpu_s,
            cpu_s,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM for a clean close; the data dir is thrown away anyway.
            let _ = std::process::Command::new("kill")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }
}
