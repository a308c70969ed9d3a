//! `rota key`: API keys of the acting tenant (docs/security.md).

use crate::access::LimitArgs;
use crate::output::{self, Format};
use anyhow::Result;
use rota_client::{Client, NewKey};
use rota_core::{Clock, SystemClock};
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum KeyCmd {
    /// Create an API key; its token is printed once.
    ///
    /// Example: rota key create --tenant acme --role producer --name billing-api
    Create {
        /// A role for the key (repeat for several): admin, tenant-admin, producer, worker,
        /// reader or a custom role.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Limit the key to queues matching this pattern (`*` wildcard; repeat for several).
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// A name for people (shown in `key list` and in logs), e.g. checkout-api.
        #[arg(long)]
        name: Option<String>,
        /// Expire after this long, e.g. 90d, 12h.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List the tenant's keys. Example: rota key list --tenant acme
    List,
    /// Revoke a key; its next request is refused. Example: rota key revoke 3f2a9c01d4e5b6a7
    Revoke { id: String },
    /// Give a key a new secret (same id, roles and limits); the new token is printed once.
    /// The old one is accepted for --grace more, then refused.
    ///
    /// Example: rota key rotate 3f2a9c01d4e5b6a7 --grace 2h
    Rotate {
        id: String,
        /// How long the old secret keeps working beside the new one: 0s to 72h [default: 24h].
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<Duration>,
    },
}

pub async fn key(c: &Client, cmd: KeyCmd, fmt: Format) -> Result<()> {
    match cmd {
        KeyCmd::Create {
            roles,
            queues,
            name,
            expires_in,
            limits,
        } => {
            let spec = NewKey {
                name,
                roles,
                queues,
                expires_in_s: expires_in.map(|d| d.as_secs().max(1)),
                limits: limits.limits(),
                ..Default::default()
            };
            let k = c.create_key(&spec).await?;
            match fmt {
                Format::Json => output::json(&k),
                Format::Table => {
                    println!(
                        "created key {} in tenant {} with roles {}",
                        k.key.id,
                        k.key.tenant,
                        k.key.roles.join(", ")
                    );
                    println!(
                        "token (shown once; Rota keeps only its hash):\n\n    {}\n",
                        k.token
                    );
                }
            }
        }
        KeyCmd::List => {
            let keys = c.keys().await?;
            match fmt {
                Format::Json => output::json(&keys),
                Format::Table => {
                    let now = SystemClock.now();
                    let when = |t: Option<rota_core::Timestamp>| {
                        t.map_or("-".to_owned(), |t| output::relative(t, now))
                    };
                    let rows: Vec<Vec<String>> = keys
                        .iter()
                        .map(|k| {
                            let state = match (k.revoked_at, k.expires_at) {
                                (Some(_), _) => "revoked",
                                (None, Some(e)) if e <= now => "expired",
                                _ => "active",
                            };
                            vec![
                                k.id.clone(),
                                k.name.clone().unwrap_or_default(),
                                k.roles.join(","),
                                if k.queues.is_empty() {
                                    "*".into()
                                } else {
                                    k.queues.join(",")
                                },
                                state.into(),
                                when(k.last_used_at),
                                when(k.expires_at),
                                when(k.rotated_at),
                            ]
                        })
                        .collect();
                    output::table(
                        &[
                            "ID",
                            "NAME",
                            "ROLES",
                            "QUEUES",
                            "STATE",
                            "LAST USED",
                            "EXPIRES",
                            "ROTATED",
                        ],
                        &rows,
                    );
                }
            }
        }
        KeyCmd::Revoke { id } => {
            let k = c.revoke_key(&id).await.map_err(|e| not_here(c, e))?;
            match fmt {
                Format::Json => output::json(&k),
                Format::Table => println!("revoked key {}", k.id),
            }
        }
        KeyCmd::Rotate { id, grace } => {
            let grace_ms = grace.map(|d| d.as_millis().min(u64::MAX as u128) as u64);
            let k = c
                .rotate_key(&id, grace_ms)
                .await
                .map_err(|e| not_here(c, e))?;
            match fmt {
                Format::Json => output::json(&k),
                Format::Table => {
                    match k.key.previous_secret_until {
                        Some(until) => println!(
                            "rotated key {}; its old secret works until {until}",
                            k.key.id
                        ),
                        None => {
                            println!("rotated key {}; its old secret no longer works", k.key.id)
                        }
                    }
                    println!(
                        "new token (shown once; Rota keeps only its hash):\n\n    {}\n",
                        k.token
                    );
                }
            }
        }
    }
    Ok(())
}

/// A key not found: keys are looked up in the acting tenant only (an admin's is `default`).
fn not_here(c: &Client, e: rota_client::Error) -> anyhow::Error {
    match e {
        rota_client::Error::NotFound { message } => anyhow::anyhow!(
            "{message} (keys are found in the acting tenant, {}: add --tenant <name> for a key \
             of another; `rota key list --tenant <name>` shows a tenant's keys)",
            c.tenant().unwrap_or("the credential's own")
        ),
        e => e.into(),
    }
}
