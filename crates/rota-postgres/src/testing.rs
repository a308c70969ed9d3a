//! A throwaway PostgreSQL server for tests: `initdb` into a temporary directory, `postgres` on
//! a free loopback port, a fresh database per test. Nothing has to be running or configured
//! beforehand; the binaries are found in `ROTA_PG_BIN` or `/usr/lib/postgresql/<version>/bin`.
//!
//! `initdb` refuses to run as root, so as root the cluster is created and run as the `postgres`
//! user (via `runuser`). The server is started under a small shell watchdog that stops it and
//! removes its directory when the test process exits (its stdin closes), so a crashed or killed
//! test run leaves no server behind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One PostgreSQL server owned by this process.
pub struct TestCluster {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    watchdog: std::sync::Mutex<Option<Child>>,
    next_db: AtomicU32,
}

/// Where the PostgreSQL server binaries are.
pub fn pg_bin() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("ROTA_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| {
            format!(
                "PostgreSQL server binaries not found in {} ({e}); install postgresql \
                 (.ci/install-postgres does) or set ROTA_PG_BIN",
                root.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| format!("no PostgreSQL version with initdb under {}", root.display()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl TestCluster {
    /// The process-wide cluster, started on first use.
    pub fn shared() -> &'static TestCluster {
        static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
        CLUSTER.get_or_init(|| TestCluster::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// Starts a new cluster (each call its own directory and port).
    pub fn start() -> Result<TestCluster, String> {
        let bin = pg_bin()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("rota-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let data = dir.join("data");
        if as_postgres {
            let ok = Command::new("chown")
                .args(["postgres:postgres", &dir.display().to_string()])
                .status()
                .map_err(|e| e.to_string())?
                .success();
            if !ok {
                return Err(format!("cannot chown {} to postgres", dir.display()));
            }
        }
        let c = TestCluster {
            port: free_port(),
            dir,
            bin,
            as_postgres,
            watchdog: std::sync::Mutex::new(None),
            next_db: AtomicU32::new(0),
        };
        let out = c
            .command("initdb")
            .args(["-D", &data.display().to_string()])
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        c.launch()?;
        Ok(c)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    /// Starts the server (again, after [`TestCluster::kill`]) and waits until it answers.
    pub fn launch(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        let postgres = self.bin.join("postgres");
        // Test data need not survive a power cut: fsync off keeps CREATE DATABASE and
        // commits fast. Everything else is a normal server.
        let server = format!(
            "{} -D {} -p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=on -c full_page_writes=off -c max_connections=300 \
             -c shared_buffers=128MB",
            postgres.display(),
            data.display(),
            self.port,
            self.dir.display()
        );
        let user = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        // The watchdog: the server runs until this process's end closes the pipe; then the
        // postmaster (whose pid its pid file holds) is stopped at once and the files removed.
        let script = format!(
            "{user}{server} >>{log} 2>&1 & cat >/dev/null; \
             pid=$(head -1 {data}/postmaster.pid 2>/dev/null); \
             [ -n \"$pid\" ] && kill -QUIT $pid 2>/dev/null; sleep 0.3; \
             [ -n \"$pid\" ] && kill -9 $pid 2>/dev/null; rm -rf {dir}",
            log = self.dir.join("server.log").display(),
            data = data.display(),
            dir = self.dir.display(),
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        *self.watchdog.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = self
                .command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                return Err(format!("postgres did not start in 30 s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server as `pg_ctl stop -m immediate` does (no shutdown checkpoint, like a
    /// crash), keeping its data for [`TestCluster::launch`].
    pub fn stop_immediate(&self) -> Result<(), String> {
        let out = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        // The old watchdog keeps waiting for this process's end (its pipe stays open), when
        // it removes the directory, as the next launch's watchdog does too.
        if let Some(child) = self.watchdog.lock().unwrap().take() {
            std::mem::forget(child);
        }
        Ok(())
    }

    /// A URL for the `postgres` database (for administration).
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `url` (one of [`TestCluster::create_database`]'s) through the Unix socket instead.
    pub fn socket_url(&self, url: &str) -> String {
        let db = url.rsplit('/').next().unwrap_or("postgres");
        let dir = self.dir.display().to_string().replace('/', "%2F");
        format!("postgres://postgres@{dir}:{}/{db}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("rota_test_{}_{n}", std::process::id());
        let out = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .arg("postgres")
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "CREATE DATABASE failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL through psql on `url`'s database, returning its unaligned output.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let mut child = self
            .command("psql")
            .arg(url)
            .args(["-qAt", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}
