//! `rota serve` configuration: flags and `ROTA_*` environment variables over an optional TOML
//! file over defaults, validated into one typed [`ServeConfig`]. A bad value fails the start
//! with the key that is wrong and why.

use anyhow::{bail, Context, Result};
use rota_server::ServerConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
pub const DEFAULT_DATA_DIR: &str = "./rota-data";

/// What may be written in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    maintenance_interval_ms: Option<u64>,
    #[serde(default)]
    limits: Option<toml::Table>,
    #[serde(default)]
    auth: Option<rota_server::auth::AuthConfig>,
    storage: Option<crate::storage::StorageFile>,
    /// `listen`, and the Faktory door's bounds ([`rota_server::faktory::FaktoryConfig`]).
    #[serde(default)]
    faktory: Option<toml::Table>,
    #[serde(default)]
    events: Option<toml::Table>,
    #[serde(default)]
    webhooks: Option<toml::Table>,
    #[serde(default)]
    hooks: Option<toml::Table>,
    #[serde(default)]
    audit: Option<toml::Table>,
    #[serde(default)]
    dashboard: Option<toml::Table>,
    /// Traces over OTLP; the `OTEL_*` variables fill what it leaves out.
    #[serde(default)]
    telemetry: Option<rota_server::telemetry::TelemetryConfig>,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// The Faktory protocol's listener, when asked for.
    pub faktory_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub storage: crate::storage::Storage,
    pub server: ServerConfig,
}

/// Values given as flags or environment variables (clap reads both).
pub struct Overrides {
    pub listen: Option<String>,
    pub faktory_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub database_url: Option<String>,
}

pub fn load(o: Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<ServeConfig> {
    let file: FileConfig = match &o.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("config file {} is invalid", path.display()))?
        }
        None => FileConfig::default(),
    };
    let listen_text = o
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_text.parse().with_context(|| {
        format!("listen: `{listen_text}` is not an address such as 127.0.0.1:7070")
    })?;
    // `[faktory] listen` is where to speak the protocol (e.g. 127.0.0.1:7419); the other keys
    // are the door's bounds.
    let mut faktory_file = file.faktory.unwrap_or_default();
    let file_listen = match faktory_file.remove("listen") {
        None => None,
        Some(toml::Value::String(s)) => Some(s),
        Some(other) => {
            bail!("faktory listen: `{other}` is not an address such as \"127.0.0.1:7419\"")
        }
    };
    let faktory_listen = o
        .faktory_listen
        .or(file_listen)
        .map(|text| {
            text.parse::<SocketAddr>().with_context(|| {
                format!("faktory listen: `{text}` is not an address such as 127.0.0.1:7419")
            })
        })
        .transpose()?;
    if faktory_listen == Some(listen) {
        bail!(
            "faktory listen: {listen} is the HTTP address too; give the Faktory door its own port"
        );
    }
    let data_dir = o
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let mut server = ServerConfig::default();
    if let Some(ms) = file.maintenance_interval_ms {
        server.maintenance_interval_ms = ms;
    }
    if let Some(v) = env("ROTA_MAINTENANCE_INTERVAL_MS") {
        server.maintenance_interval_ms = v.parse().with_context(|| {
            format!("ROTA_MAINTENANCE_INTERVAL_MS: `{v}` is not a whole number")
        })?;
    }
    server.limits = numbers(file.limits, "limits", env)?;
    server.events = numbers(file.events, "events", env)?;
    server.webhooks = numbers(file.webhooks, "webhooks", env)?;
    server.hooks = numbers(file.hooks, "hooks", env)?;
    server.audit = numbers(file.audit, "audit", env)?;
    server.faktory = numbers(Some(faktory_file), "faktory", env)?;
    server.dashboard = numbers(file.dashboard, "dashboard", env)?;
    if let Some(auth) = file.auth {
        server.auth = auth;
    }
    if let Some(t) = file.telemetry {
        server.telemetry = t;
    }
    if let Some(v) = env("ROTA_AUTH_ENABLED") {
        server.auth.enabled = match v.as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => bail!("ROTA_AUTH_ENABLED: `{v}` is not true or false"),
        };
    }
    if let Some(v) = env("ROTA_ADMIN_TOKEN").filter(|v| !v.is_empty()) {
        server.auth.admin_token = Some(rota_server::auth::Secret(v));
    }
    if let Some(v) = env("ROTA_SESSION_SECRET").filter(|v| !v.is_empty()) {
        server.auth.session_secret = Some(rota_server::auth::Secret(v));
    }
    if let Some(v) = env("ROTA_SESSION_SECRET_PREVIOUS").filter(|v| !v.is_empty()) {
        server.auth.session_secret_previous = Some(rota_server::auth::Secret(v));
    }
    if let Err(e) = server.validate() {
        bail!("invalid configuration: {e}");
    }
    let mut storage_file = file.storage;
    if let Some(v) = env("ROTA_SHARDS") {
        let n = v
            .parse()
            .with_context(|| format!("ROTA_SHARDS: `{v}` is not a whole number"))?;
        storage_file.get_or_insert_with(Default::default).shards = Some(n);
    }
    let storage = crate::storage::resolve(o.database_url, storage_file)?;
    Ok(ServeConfig {
        listen,
        faktory_listen,
        data_dir,
        storage,
        server,
    })
}

/// A section of numbers, switches and strings (`[limits]`, `[events]`, `[webhooks]`) from the
/// file, then `ROTA_<SECTION>_<KEY>` for each key.
fn numbers<T: Default + serde::Serialize + serde::de::DeserializeOwned>(
    file: Option<toml::Table>,
    section: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<T> {
    let mut table = match file {
        Some(t) => t,
        None => toml::Table::new(),
    };
    let defaults = toml::Table::try_from(T::default()).expect("settings serialize");
    for (key, default) in &defaults {
        let var = format!(
            "ROTA_{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        );
        if let Some(v) = env(&var) {
            let value = if default.is_str() {
                toml::Value::String(v)
            } else if default.is_bool() {
                toml::Value::Boolean(match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("{var}: `{v}` is not true or false"),
                })
            } else {
                toml::Value::Integer(
                    v.parse()
                        .with_context(|| format!("{var}: `{v}` is not a whole number"))?,
                )
            };
            table.insert(key.clone(), value);
        }
    }
    T::deserialize(toml::Value::Table(table))
        .map_err(|e| anyhow::anyhow!("{section}: {}", e.message()))
}

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(rota_sqlite::DB_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn none() -> Overrides {
        Overrides {
            listen: None,
            faktory_listen: None,
            data_dir: None,
            config: None,
            database_url: None,
        }
    }

    #[test]
    fn defaults() {
        let c = load(none(), &env_of(&[])).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.server, ServerConfig::default());
    }

    #[test]
    fn the_faktory_listener_comes_from_the_file_or_the_flag_and_needs_its_own_port() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rota.toml");
        std::fs::write(
            &path,
            "[faktory]\nlisten = \"127.0.0.1:7419\"\nmax_fetch_queues = 8\n",
        )
        .unwrap();
        let file = || Overrides {
            config: Some(path.clone()),
            ..none()
        };
        let c = load(file(), &env_of(&[])).unwrap();
        assert_eq!(c.faktory_listen.unwrap().port(), 7419);
        assert_eq!(c.server.faktory.max_fetch_queues, 8);
        let env = env_of(&[("ROTA_FAKTORY_MUTATE_BUDGET_MS", "250")]);
        let c = load(file(), &env).unwrap();
        assert_eq!(c.server.faktory.mutate_budget_ms, 250);
        let zero = env_of(&[("ROTA_FAKTORY_MAX_FAILED_HELLOS", "0")]);
        let e = format!("{:#}", load(file(), &zero).unwrap_err());
        assert!(e.contains("faktory.max_failed_hellos"), "{e}");
        assert!(load(none(), &env_of(&[])).unwrap().faktory_listen.is_none());
        let flag = Overrides {
            faktory_listen: Some("127.0.0.1:7420".into()),
            ..file()
        };
        assert_eq!(
            load(flag, &env_of(&[]))
                .unwrap()
                .faktory_listen
                .unwrap()
                .port(),
            7420
        );
        let clash = Overrides {
            faktory_listen: Some(DEFAULT_LISTEN.into()),
            ..none()
        };
        let e = format!("{:#}", load(clash, &env_of(&[])).unwrap_err());
        assert!(e.contains("its own port"), "{e}");
        let bad = Overrides {
            faktory_listen: Some("7419".into()),
            ..none()
        };
        let e = format!("{:#}", load(bad, &env_of(&[])).unwrap_err());
        assert!(e.contains("faktory listen"), "{e}");
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rota.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n[limits]\nmax_batch = 50\nmax_claim = 7\n",
        )
        .unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:9001".into()),
            faktory_listen: None,
            data_dir: None,
            config: Some(path),
            database_url: None,
        };
        let c = load(o, &env_of(&[("ROTA_LIMITS_MAX_CLAIM", "9")])).unwrap();
        assert_eq!(c.listen.port(), 9001, "flag beats file");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.server.limits.max_batch, 50, "file beats default");
        assert_eq!(c.server.limits.max_claim, 9, "env beats file");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = load(
            Overrides {
                listen: Some("nowhere".into()),
                ..none()
            },
            &env_of(&[]),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("listen"), "{e:#}");
        let e = load(none(), &env_of(&[("ROTA_LIMITS_MAX_BATCH", "lots")])).unwrap_err();
        assert!(format!("{e:#}").contains("ROTA_LIMITS_MAX_BATCH"), "{e:#}");
        let e = load(none(), &env_of(&[("ROTA_LIMITS_MAX_BATCH", "0")])).unwrap_err();
        assert!(format!("{e:#}").contains("limits.max_batch"), "{e:#}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rota.toml");
        std::fs::write(&path, "[limits]\nmax_bach = 5\n").unwrap();
        let e = load(
            Overrides {
                config: Some(path),
                ..none()
            },
            &env_of(&[]),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("max_bach"), "{e:#}");
    }

    #[test]
    fn string_settings_come_from_the_environment_and_are_checked() {
        let env = [
            ("ROTA_WEBHOOKS_ALLOWED_PORTS", "443,8000-9000"),
            ("ROTA_WEBHOOKS_PROXY", "http://proxy.internal:3128"),
        ];
        let c = load(none(), &env_of(&env)).unwrap();
        assert_eq!(c.server.webhooks.allowed_ports, "443,8000-9000");
        assert_eq!(c.server.webhooks.proxy, "http://proxy.internal:3128");
        let e = load(none(), &env_of(&[("ROTA_WEBHOOKS_ALLOWED_PORTS", "ssh")])).unwrap_err();
        assert!(format!("{e:#}").contains("webhooks.allowed_ports"), "{e:#}");
    }

    #[test]
    fn inbound_webhook_settings_come_from_the_environment_and_are_checked() {
        let env = [
            ("ROTA_HOOKS_PUBLIC_URL", "https://rota.example.com"),
            ("ROTA_HOOKS_MAX_BODY_BYTES", "65536"),
        ];
        let c = load(none(), &env_of(&env)).unwrap();
        assert_eq!(c.server.hooks.public_url, "https://rota.example.com");
        assert_eq!(c.server.hooks.max_body_bytes, 65_536);
        // The body becomes the task's payload, so it may not be larger than a payload.
        let e = load(
            none(),
            &env_of(&[("ROTA_HOOKS_MAX_BODY_BYTES", "99999999")]),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("hooks.max_body_bytes"), "{e:#}");
    }
}

#[cfg(test)]
mod auth_tests {
    use super::*;

    #[test]
    fn auth_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rota.toml");
        std::fs::write(
            &path,
            "[auth]\nenabled = true\n[auth.key_limits]\nrequests_per_minute = 600\nmax_in_flight = 8\n\
             [auth.jwt]\njwks_url = \"https://idp.example/jwks.json\"\nissuer = \"https://idp.example\"\naudience = \"rota\"\n",
        )
        .unwrap();
        let o = || Overrides {
            listen: None,
            faktory_listen: None,
            data_dir: None,
            config: Some(path.clone()),
            database_url: None,
        };
        let token = "t".repeat(40);
        let env = |k: &str| match k {
            "ROTA_ADMIN_TOKEN" => Some(token.clone()),
            _ => None,
        };
        let c = load(o(), &env).unwrap();
        assert_eq!(c.server.auth.key_limits.requests_per_minute, 600);
        assert_eq!(c.server.auth.jwt.as_ref().unwrap().audience, "rota");
        assert_eq!(c.server.auth.admin_token.as_ref().unwrap().0, token);
        // The token never shows in the config's debug form.
        assert!(!format!("{c:?}").contains(&token));
        let e = load(o(), &|k| (k == "ROTA_ADMIN_TOKEN").then(|| "short".into())).unwrap_err();
        assert!(format!("{e:#}").contains("ROTA_ADMIN_TOKEN"), "{e:#}");
        let e = load(o(), &|k| (k == "ROTA_AUTH_ENABLED").then(|| "maybe".into())).unwrap_err();
        assert!(format!("{e:#}").contains("ROTA_AUTH_ENABLED"), "{e:#}");
        std::fs::write(&path, "[auth.jwt]\njwks_url = \"https://x\"\n").unwrap();
        let e = load(o(), &|_| None).unwrap_err();
        assert!(format!("{e:#}").contains("issuer"), "{e:#}");
    }

    #[test]
    fn the_session_secret_from_file_and_env_and_the_dashboard_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rota.toml");
        let (file_secret, env_secret) = ("f".repeat(40), "e".repeat(40));
        std::fs::write(
            &path,
            format!(
                "[auth]\nsession_secret = \"{file_secret}\"\n\
                 session_secret_previous = \"{}\"\n[dashboard]\nsecure_cookie = true\n",
                "p".repeat(40)
            ),
        )
        .unwrap();
        let o = || Overrides {
            listen: None,
            faktory_listen: None,
            data_dir: None,
            config: Some(path.clone()),
            database_url: None,
        };
        let c = load(o(), &|_| None).unwrap();
        let auth = &c.server.auth;
        assert_eq!(auth.session_secret.as_ref().unwrap().0, file_secret);
        assert_eq!(
            auth.session_secret_previous.as_ref().unwrap().0,
            "p".repeat(40)
        );
        assert!(c.server.dashboard.secure_cookie);
        assert!(
            !format!("{c:?}").contains(&file_secret),
            "never in debug output"
        );
        let env = |k: &str| (k == "ROTA_SESSION_SECRET").then(|| env_secret.clone());
        let c = load(o(), &env).unwrap();
        assert_eq!(
            c.server.auth.session_secret.unwrap().0,
            env_secret,
            "env wins"
        );
        let e = load(o(), &|k| {
            (k == "ROTA_SESSION_SECRET").then(|| "short".into())
        })
        .unwrap_err();
        assert!(format!("{e:#}").contains("ROTA_SESSION_SECRET"), "{e:#}");
        std::fs::write(
            &path,
            format!("[auth]\nsession_secret_previous = \"{file_secret}\"\n"),
        )
        .unwrap();
        let e = load(o(), &|_| None).unwrap_err();
        assert!(
            format!("{e:#}").contains("without auth.session_secret"),
            "{e:#}"
        );
        let e = load(o(), &|k| {
            (k == "ROTA_DASHBOARD_SECURE_COOKIE").then(|| "yes".into())
        })
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("ROTA_DASHBOARD_SECURE_COOKIE"),
            "{e:#}"
        );
    }
}
