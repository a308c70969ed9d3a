//! `rota hook`: inbound webhooks, public URLs that turn a provider's signed request (GitHub,
//! GitLab, Stripe, or Rota's own signature) into a task, and the requests they answered.

use crate::output::{self, Format};
use anyhow::{bail, Result};
use rota_client::{Client, HookInfo, HookRequestInfo, HookUpdate, NewHook, Verify};
use rota_core::{Clock, SystemClock, Timestamp};
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum HookCmd {
    /// Add a hook; prints the URL to give the provider and the secret, shown once.
    ///
    /// Example: rota hook create gitlab-push --queue mirror --kind push --verify gitlab
    Create {
        /// Unique in the tenant, e.g. github-push.
        name: String,
        /// The queue its tasks go to.
        #[arg(long)]
        queue: String,
        /// The kind of its tasks.
        #[arg(long)]
        kind: String,
        /// How requests are proven: the provider that sends them, or hmac-sha256 (Rota-Timestamp
        /// and Rota-Signature, as Rota's own webhooks sign).
        #[arg(long, value_enum)]
        verify: VerifyArg,
        /// The shared secret as the provider knows it (16 to 256 printable characters; Stripe's
        /// signing secret, whsec_…); left out, one is made.
        #[arg(long)]
        secret: Option<String>,
        /// A note for people: what sends to it.
        #[arg(long)]
        description: Option<String>,
    },
    /// The tenant's hooks. Example: rota hook list
    List,
    /// One hook. Example: rota hook show hk_3f2a9c1d0b7e4a5566ab
    Show { id: String },
    /// Change a hook's queue, kind or description, or stop or restart it (a disabled hook
    /// answers 403). You become its owner: its requests enqueue as you.
    ///
    /// Example: rota hook update hk_3f2a9c1d0b7e4a5566ab --disable
    Update {
        id: String,
        /// The queue its tasks go to from now on.
        #[arg(long)]
        queue: Option<String>,
        /// The kind of its tasks from now on.
        #[arg(long)]
        kind: Option<String>,
        /// A note for people.
        #[arg(long)]
        description: Option<String>,
        /// Take requests again.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Refuse its requests (403) until enabled again.
        #[arg(long)]
        disable: bool,
    },
    /// Give a hook a new secret (given, or made); printed once. The old one is accepted for
    /// --grace more, then refused.
    ///
    /// Example: rota hook rotate hk_3f2a9c1d0b7e4a5566ab --grace 2h
    Rotate {
        id: String,
        /// How long the old secret keeps working beside the new one: 0s to 72h [default: 24h].
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<Duration>,
        /// The new secret as the provider will know it; left out, one is made.
        #[arg(long)]
        secret: Option<String>,
    },
    /// The requests the hook answered on this server (its last 50), newest first.
    ///
    /// Example: rota hook requests hk_3f2a9c1d0b7e4a5566ab
    Requests { id: String },
    /// Delete a hook; its URL answers 404 from then on.
    ///
    /// Example: rota hook delete hk_3f2a9c1d0b7e4a5566ab
    Delete { id: String },
}

/// `--verify`, as the API's `verify`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum VerifyArg {
    Github,
    Gitlab,
    HmacSha256,
    Stripe,
}

impl From<VerifyArg> for Verify {
    fn from(a: VerifyArg) -> Self {
        match a {
            VerifyArg::Github => Verify::Github,
            VerifyArg::Gitlab => Verify::Gitlab,
            VerifyArg::HmacSha256 => Verify::HmacSha256,
            VerifyArg::Stripe => Verify::Stripe,
        }
    }
}

pub async fn hook(c: &Client, cmd: HookCmd, fmt: Format) -> Result<()> {
    let not_here = |e| not_here(c, e);
    match cmd {
        HookCmd::Create {
            name,
            queue,
            kind,
            verify,
            secret,
            description,
        } => {
            let given = secret.is_some();
            let spec = NewHook {
                name,
                queue,
                kind,
                verify: verify.into(),
                secret,
                description,
            };
            let h = c.create_hook(&spec).await?;
            match fmt {
                Format::Json => output::json(&h),
                Format::Table => {
                    println!(
                        "created hook {} ({}): {} requests become tasks of kind {} in queue {}",
                        h.id, h.name, h.verify, h.kind, h.queue
                    );
                    println!(
                        "\nURL to give the provider (it POSTs there, no token):\n\n    {}\n",
                        h.url
                    );
                    if let Some(s) = &h.secret {
                        println!(
                            "secret (shown once; {}):\n\n    {s}\n",
                            where_it_goes(h.verify)
                        );
                    }
                    if h.verify == Verify::Stripe && !given {
                        println!(
                            "Stripe makes its own signing secret: once it shows it, run \
                             rota hook rotate {} --secret <whsec_…> --grace 0s",
                            h.id
                        );
                    }
                }
            }
        }
        HookCmd::List => {
            let all = c.hooks().await?;
            match fmt {
                Format::Json => output::json(&all),
                Format::Table => rows(&all),
            }
        }
        HookCmd::Show { id } => {
            let h = c.hook(&id).await.map_err(not_here)?;
            match fmt {
                Format::Json => output::json(&h),
                Format::Table => detail(&h),
            }
        }
        HookCmd::Update {
            id,
            queue,
            kind,
            description,
            enable,
            disable,
        } => {
            let change = HookUpdate {
                queue,
                kind,
                description,
                enabled: (enable || disable).then_some(enable),
            };
            if change.queue.is_none()
                && change.kind.is_none()
                && change.description.is_none()
                && change.enabled.is_none()
            {
                bail!(
                    "nothing to change: give --queue, --kind, --description, --enable or --disable"
                );
            }
            let h = c.update_hook(&id, &change).await.map_err(not_here)?;
            match fmt {
                Format::Json => output::json(&h),
                Format::Table => detail(&h),
            }
        }
        HookCmd::Rotate { id, grace, secret } => {
            let grace_ms = grace.map(|d| d.as_millis().min(u64::MAX as u128) as u64);
            let h = c
                .rotate_hook_secret(&id, grace_ms, secret.as_deref())
                .await
                .map_err(not_here)?;
            match fmt {
                Format::Json => output::json(&h),
                Format::Table => {
                    match h.previous_secret_until {
                        Some(until) => println!(
                            "rotated hook {}; its old secret is accepted until {until}",
                            h.id
                        ),
                        None => println!("rotated hook {}; its old secret no longer works", h.id),
                    }
                    if let Some(s) = &h.secret {
                        println!(
                            "new secret (shown once; {}):\n\n    {s}\n",
                            where_it_goes(h.verify)
                        );
                    }
                }
            }
        }
        HookCmd::Requests { id } => {
            let list = c.hook_requests(&id).await.map_err(not_here)?;
            match fmt {
                Format::Json => output::json(&list),
                Format::Table => {
                    requests(&list);
                    if list.is_empty() {
                        println!(
                            "(none on this server yet; each server keeps its own last 50, and \
                             every server's are in `rota events --types 'hook.*'`)"
                        );
                    }
                }
            }
        }
        HookCmd::Delete { id } => {
            c.delete_hook(&id).await.map_err(not_here)?;
            match fmt {
                Format::Json => output::json(&serde_json::json!({ "deleted": id })),
                Format::Table => println!("deleted hook {id}"),
            }
        }
    }
    Ok(())
}

/// Where the provider takes the secret.
fn where_it_goes(v: Verify) -> &'static str {
    match v {
        Verify::Github => "paste it as the GitHub webhook's Secret",
        Verify::Gitlab => "paste it as the GitLab webhook's Secret token",
        Verify::Stripe => "Stripe signs with its endpoint's signing secret, so it must be that",
        Verify::HmacSha256 => "the sender signs Rota-Signature with it",
    }
}

/// `in 23h 59m` while the previous secret is still accepted, else `-`.
fn old_secret(until: Option<Timestamp>, now: Timestamp) -> String {
    until
        .filter(|u| *u > now)
        .map_or("-".into(), |u| output::relative(u, now))
}

fn rows(list: &[HookInfo]) {
    let now = SystemClock.now();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|h| {
            vec![
                h.id.clone(),
                h.name.clone(),
                h.verify.to_string(),
                h.queue.clone(),
                h.kind.clone(),
                if h.enabled { "yes" } else { "no" }.into(),
                old_secret(h.previous_secret_until, now),
                h.url.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "NAME",
            "VERIFY",
            "QUEUE",
            "KIND",
            "ENABLED",
            "OLD SECRET UNTIL",
            "URL",
        ],
        &rows,
    );
}

fn detail(h: &HookInfo) {
    let now = SystemClock.now();
    let mut rows = vec![
        ("id", h.id.clone()),
        ("name", h.name.clone()),
        ("url", h.url.clone()),
        ("verify", h.verify.to_string()),
        ("queue", h.queue.clone()),
        ("kind", h.kind.clone()),
        ("enabled", if h.enabled { "yes" } else { "no" }.into()),
    ];
    if let Some(d) = &h.description {
        rows.push(("description", d.clone()));
    }
    if let Some(o) = &h.owner {
        rows.push(("owner", o.clone()));
    }
    if let Some(u) = h.previous_secret_until.filter(|u| *u > now) {
        rows.push((
            "old secret",
            format!("accepted until {u} ({})", output::relative(u, now)),
        ));
    }
    rows.push((
        "created",
        format!("{} ({})", h.created_at, output::relative(h.created_at, now)),
    ));
    rows.push((
        "updated",
        format!("{} ({})", h.updated_at, output::relative(h.updated_at, now)),
    ));
    for (k, v) in rows {
        println!("{k:<11} {v}");
    }
}

fn requests(list: &[HookRequestInfo]) {
    let now = SystemClock.now();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                output::relative(r.at, now),
                r.outcome.clone(),
                r.status.to_string(),
                r.delivery.clone().unwrap_or_else(|| "-".into()),
                r.task_id.map_or("-".into(), |t| t.to_string()),
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        &["AT", "OUTCOME", "STATUS", "DELIVERY", "TASK", "REASON"],
        &rows,
    );
}

/// A hook not found: hooks are looked up in the acting tenant only (an admin's is `default`).
fn not_here(c: &Client, e: rota_client::Error) -> anyhow::Error {
    match e {
        rota_client::Error::NotFound { message } => anyhow::anyhow!(
            "{message} (hooks are found in the acting tenant, {}: add --tenant <name> for a hook \
             of another; `rota hook list` shows the tenant's hooks)",
            c.tenant().unwrap_or("the credential's own")
        ),
        e => e.into(),
    }
}
