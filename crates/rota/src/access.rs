//! `rota tenant …`, `rota key …`, `rota role …`, `rota whoami`, and how the CLI finds its
//! token.

use crate::output::{self, Format};
use anyhow::{bail, Context, Result};
use rota_client::{Client, ClientLimits, Rule, TenantPatch};
use rota_core::{Clock, SystemClock};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `rota serve` writes the first admin key's token.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The token to send: `--token`/`ROTA_TOKEN`, else `ROTA_ADMIN_TOKEN`, else, for a server on
/// this machine, the admin token `rota serve` saved in its data dir (`ROTA_DATA_DIR`, default
/// `./rota-data`).
pub fn resolve_token(
    url: &str,
    explicit: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    if let Some(t) = explicit.filter(|t| !t.is_empty()) {
        return Some(t.to_owned());
    }
    if let Some(t) = env("ROTA_ADMIN_TOKEN").filter(|t| !t.is_empty()) {
        return Some(t);
    }
    if !is_loopback(url) {
        return None;
    }
    let dir = env("ROTA_DATA_DIR").unwrap_or_else(|| crate::config::DEFAULT_DATA_DIR.into());
    let dir = Path::new(&dir);
    // Only to the server that wrote the token: another one on this machine (another port)
    // would be sent a credential that is not its own.
    let written_by = std::fs::read_to_string(listen_path(dir)).ok()?;
    if port_of(url)
        != written_by
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
    {
        return None;
    }
    std::fs::read_to_string(admin_token_path(dir))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Where `rota serve` records the address it listens on, so the CLI sends the data dir's token
/// to that server only.
pub fn listen_path(data_dir: &Path) -> PathBuf {
    data_dir.join("listen")
}

fn port_of(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let port = authority.rsplit_once(':').map(|(_, p)| p);
    match port {
        Some(p) if !p.ends_with(']') => p.parse().ok(),
        _ if url.starts_with("https://") => Some(443),
        _ => Some(80),
    }
}

/// What the CLI tried, for an error saying the server wants credentials.
/// Where the CLI's client gets its credential: a token (explicit, or found as
/// [`resolve_token`] says), or an API key's id and token for OAuth access tokens.
pub struct ClientArgs<'a> {
    pub url: Option<&'a str>,
    pub token: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub scope: Option<&'a str>,
}

/// The client, and whether it carries a credential (to explain a 401 if not).
pub fn client(a: &ClientArgs<'_>) -> Result<(Client, bool)> {
    let url = a.url.unwrap_or(crate::cli::DEFAULT_URL);
    let client = match (a.client_id, a.client_secret) {
        (None, None) => {
            let token = resolve_token(url, a.token, &|k| std::env::var(k).ok());
            let has_token = token.is_some();
            return Ok((
                Client::with_token(url, token.as_deref())?.with_tenant(a.tenant),
                has_token,
            ));
        }
        (Some(_), Some(_)) if a.token.is_some_and(|t| !t.is_empty()) => bail!(
            "give a token (--token, ROTA_TOKEN) or client credentials (--client-id and \
             --client-secret), not both"
        ),
        (Some(id), Some(secret)) => Client::with_client_credentials(url, id, secret, a.scope)?,
        _ => bail!(
            "client credentials need both --client-id (ROTA_CLIENT_ID, the key's id) and \
             --client-secret (ROTA_CLIENT_SECRET, the key's token)"
        ),
    };
    Ok((client.with_tenant(a.tenant), true))
}

/// `rota token`: the OAuth access token the client credentials fetch, for other programs
/// (`curl -H "Authorization: Bearer $(rota token)"`).
pub async fn token(c: &Client, fmt: Format) -> Result<()> {
    let Some(t) = c.access_token().await? else {
        bail!(
            "rota token exchanges client credentials for an access token: set --client-id and \
             --client-secret (ROTA_CLIENT_ID, ROTA_CLIENT_SECRET)"
        );
    };
    match fmt {
        Format::Json => crate::output::json(&serde_json::json!({ "access_token": t })),
        Format::Table => println!("{t}"),
    }
    Ok(())
}

pub fn where_tokens_come_from(url: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let dir = env("ROTA_DATA_DIR").unwrap_or_else(|| crate::config::DEFAULT_DATA_DIR.into());
    let file = admin_token_path(Path::new(&dir));
    let local = if !is_loopback(url) {
        format!(
            "{url} is not on this machine, so {} was not read",
            file.display()
        )
    } else if !file.exists() {
        format!(
            "{} does not exist (run this where `rota serve` keeps its data, or set ROTA_DATA_DIR)",
            file.display()
        )
    } else {
        format!(
            "{} belongs to the server that wrote {} (a different port than {url})",
            file.display(),
            listen_path(Path::new(&dir)).display()
        )
    };
    format!(
        "the CLI sent no token: --token and ROTA_TOKEN are unset, ROTA_ADMIN_TOKEN is unset, and {local}. Pass a key with --token rota_… or ROTA_TOKEN=rota_…"
    )
}

#[derive(clap::Args)]
pub struct LimitArgs {
    /// Requests per sliding minute (0 = unlimited; unset = the server's default).
    #[arg(long)]
    rate: Option<u32>,
    /// Requests in flight at once (0 = unlimited; unset = the server's default).
    #[arg(long)]
    max_in_flight: Option<u32>,
}

impl LimitArgs {
    pub fn limits(&self) -> ClientLimits {
        ClientLimits {
            requests_per_minute: self.rate,
            max_in_flight: self.max_in_flight,
        }
    }
}

#[derive(clap::Subcommand)]
pub enum TenantCmd {
    /// Create a tenant (admin only). Example: rota tenant create acme --rate 60000
    Create {
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// Keep its events this long instead of the server's events.retention_ms, e.g. 30d.
        #[arg(long, value_parser = humantime::parse_duration)]
        event_retention: Option<Duration>,
    },
    /// List tenants (admin only). Example: rota tenant list
    List,
    /// Set a tenant's limits. Example: rota tenant limits acme --max-in-flight 500
    Limits {
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Set how long a tenant's events are kept ("default": the server's events.retention_ms).
    /// Example: rota tenant retention acme 30d
    Retention {
        name: String,
        /// A duration (e.g. 30d, 12h) or "default".
        retention: String,
    },
    /// Delete a tenant with all its queues, tasks, keys and roles. Example: rota tenant delete acme --yes
    Delete {
        name: String,
        /// Confirm: this deletes every task of the tenant.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum RoleCmd {
    /// Built-in and custom roles. Example: rota role list
    List,
    /// One role and its rules. Example: rota role get worker
    Get {
        /// The role's name (built-in or custom).
        name: String,
    },
    /// Create or replace a custom role from rules RESOURCE:ACTION:EFFECT.
    ///
    /// Example: rota role put mailer 'queues/emails-*:tasks:*:allow' 'queues/emails-vip:tasks:claim:deny'
    Put {
        /// The custom role's name: 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'.
        name: String,
        /// RESOURCE:ACTION:EFFECT, e.g. queues/emails-*:tasks:*:allow (the action may hold a
        /// colon; the resource may not).
        #[arg(required = true, value_parser = parse_rule)]
        rules: Vec<Rule>,
    },
    /// Delete a custom role no live key holds. Example: rota role delete mailer
    Delete {
        /// The custom role's name.
        name: String,
    },
}

fn parse_rule(s: &str) -> Result<Rule, String> {
    let bad = || format!("`{s}` is not RESOURCE:ACTION:EFFECT, e.g. queues/*:tasks:claim:allow");
    let (resource, rest) = s.split_once(':').ok_or_else(bad)?;
    let (action, effect) = rest.rsplit_once(':').ok_or_else(bad)?;
    let effect = match effect {
        "allow" => rota_client::Effect::Allow,
        "deny" => rota_client::Effect::Deny,
        _ => return Err(format!("effect `{effect}` must be allow or deny")),
    };
    Ok(Rule {
        resource: resource.to_owned(),
        action: action.to_owned(),
        effect,
    })
}

fn limits_text(l: &ClientLimits) -> String {
    let one = |v: Option<u32>, what: &str| match v {
        None => format!("default {what}"),
        Some(0) => format!("unlimited {what}"),
        Some(n) => format!("{n} {what}"),
    };
    format!(
        "{}, {}",
        one(l.requests_per_minute, "req/min"),
        one(l.max_in_flight, "in flight")
    )
}

fn retention_text(ms: Option<u64>) -> String {
    match ms {
        None => "default".into(),
        Some(ms) => humantime::format_duration(Duration::from_millis(ms)).to_string(),
    }
}

pub async fn tenant(c: &Client, cmd: TenantCmd, fmt: Format) -> Result<()> {
    let show = |t: rota_client::TenantRecord| match fmt {
        Format::Json => output::json(&t),
        Format::Table => println!(
            "tenant {} ({}, events kept: {})",
            t.name,
            limits_text(&t.limits),
            retention_text(t.event_retention_ms)
        ),
    };
    let ms = |d: Duration| d.as_millis().min(u64::MAX as u128) as u64;
    match cmd {
        TenantCmd::Create {
            name,
            limits,
            event_retention,
        } => show(
            c.create_tenant(&name, limits.limits(), event_retention.map(ms))
                .await?,
        ),
        TenantCmd::Limits { name, limits } => {
            let patch = TenantPatch {
                limits: Some(limits.limits()),
                ..Default::default()
            };
            show(c.update_tenant(&name, &patch).await?)
        }
        TenantCmd::Retention { name, retention } => {
            let value = match retention.as_str() {
                "default" => None,
                text => Some(ms(humantime::parse_duration(text).with_context(|| {
                    format!("retention `{text}`: give a duration such as 30d or 12h, or default")
                })?)),
            };
            let patch = TenantPatch {
                event_retention_ms: Some(value),
                ..Default::default()
            };
            show(c.update_tenant(&name, &patch).await?)
        }
        TenantCmd::List => {
            let ts = c.tenants().await?;
            match fmt {
                Format::Json => output::json(&ts),
                Format::Table => {
                    let now = SystemClock.now();
                    let rows: Vec<Vec<String>> = ts
                        .iter()
                        .map(|t| {
                            vec![
                                t.name.clone(),
                                output::relative(t.created_at, now),
                                limits_text(&t.limits),
                                retention_text(t.event_retention_ms),
                            ]
                        })
                        .collect();
                    output::table(&["TENANT", "CREATED", "LIMITS", "EVENTS KEPT"], &rows);
                }
            }
        }
        TenantCmd::Delete { name, yes } => {
            if !yes {
                bail!("deleting tenant `{name}` deletes all its queues, tasks, keys and roles; add --yes to confirm");
            }
            c.delete_tenant(&name).await?;
            match fmt {
                Format::Json => output::json(&serde_json::json!({"deleted": name})),
                Format::Table => println!("deleted tenant {name}"),
            }
        }
    }
    Ok(())
}

pub async fn role(c: &Client, cmd: RoleCmd, fmt: Format) -> Result<()> {
    let rule_text = |r: &Rule| {
        let effect = match r.effect {
            rota_client::Effect::Allow => "allow",
            rota_client::Effect::Deny => "deny",
        };
        format!("{}:{}:{effect}", r.resource, r.action)
    };
    match cmd {
        RoleCmd::Get { name } => {
            let r = c.role(&name).await?;
            match fmt {
                Format::Json => output::json(&r),
                Format::Table => println!(
                    "role {} ({}): {}",
                    r.name,
                    if r.builtin { "built-in" } else { "custom" },
                    r.rules.iter().map(rule_text).collect::<Vec<_>>().join(" ")
                ),
            }
        }
        RoleCmd::List => {
            let roles = c.roles().await?;
            match fmt {
                Format::Json => output::json(&roles),
                Format::Table => {
                    let rows: Vec<Vec<String>> = roles
                        .iter()
                        .map(|r| {
                            vec![
                                r.name.clone(),
                                if r.builtin { "built-in" } else { "custom" }.into(),
                                r.rules.iter().map(rule_text).collect::<Vec<_>>().join(" "),
                            ]
                        })
                        .collect();
                    output::table(&["ROLE", "KIND", "RULES"], &rows);
                }
            }
        }
        RoleCmd::Put { name, rules } => {
            let r = c.put_role(&name, &rules).await?;
            match fmt {
                Format::Json => output::json(&r),
                Format::Table => println!(
                    "role {}: {}",
                    r.name,
                    r.rules.iter().map(rule_text).collect::<Vec<_>>().join(" ")
                ),
            }
        }
        RoleCmd::Delete { name } => {
            c.delete_role(&name).await?;
            match fmt {
                Format::Json => output::json(&serde_json::json!({"deleted": name})),
                Format::Table => println!("deleted role {name}"),
            }
        }
    }
    Ok(())
}

pub async fn whoami(c: &Client, fmt: Format) -> Result<()> {
    let me = c
        .whoami()
        .await
        .context("cannot ask the server who this is")?;
    match fmt {
        Format::Json => output::json(&me),
        Format::Table => {
            println!("{} in tenant {}", me.principal, me.tenant);
            if me.acting_tenant != me.tenant {
                println!("acting in tenant {}", me.acting_tenant);
            }
            println!("roles: {}", me.roles.join(", "));
            if !me.queues.is_empty() {
                println!("queues: {}", me.queues.join(", "));
            }
            if let Some(k) = &me.kinds {
                println!("kinds: {}", k.join(", "));
            }
            if let Some(m) = &me.maintenance {
                let state = if m.refusing { "ON" } else { "announced" };
                println!("maintenance {state}: {}", m.message);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_flag_env_then_the_local_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(admin_token_path(dir.path()), "from-file\n").unwrap();
        // The server that wrote it listens on port 7070.
        std::fs::write(listen_path(dir.path()), "127.0.0.1:7070\n").unwrap();
        let d = dir.path().to_str().unwrap().to_owned();
        let env = |admin: Option<&str>| {
            let (d, admin) = (d.clone(), admin.map(str::to_owned));
            move |k: &str| match k {
                "ROTA_DATA_DIR" => Some(d.clone()),
                "ROTA_ADMIN_TOKEN" => admin.clone(),
                _ => None,
            }
        };
        let local = "http://127.0.0.1:7070";
        assert_eq!(
            resolve_token(local, Some("flag"), &env(Some("env"))).as_deref(),
            Some("flag")
        );
        assert_eq!(
            resolve_token(local, None, &env(Some("env"))).as_deref(),
            Some("env")
        );
        assert_eq!(
            resolve_token(local, None, &env(None)).as_deref(),
            Some("from-file")
        );
        assert_eq!(
            resolve_token("http://[::1]:7070", None, &env(None)).as_deref(),
            Some("from-file")
        );
        assert_eq!(
            resolve_token("http://localhost:7070/", None, &env(None)).as_deref(),
            Some("from-file")
        );
        // Another server on this machine (another port) does not get this one's token.
        assert_eq!(
            resolve_token("http://127.0.0.1:7071", None, &env(None)),
            None
        );
        assert_eq!(resolve_token("http://localhost", None, &env(None)), None);
        // A remote server never gets the local admin token.
        assert_eq!(
            resolve_token("https://rota.example.com", None, &env(None)),
            None
        );
        assert_eq!(
            resolve_token("http://10.0.0.5:7070", None, &env(None)),
            None
        );
    }

    #[test]
    fn rules_parse_with_colons_in_the_action() {
        let r = parse_rule("queues/emails-*:tasks:claim:deny").unwrap();
        assert_eq!(
            (r.resource.as_str(), r.action.as_str()),
            ("queues/emails-*", "tasks:claim")
        );
        assert_eq!(r.effect, rota_client::Effect::Deny);
        assert!(parse_rule("queues/*:tasks:claim:maybe")
            .unwrap_err()
            .contains("maybe"));
        assert!(parse_rule("nothing").is_err());
    }
}
