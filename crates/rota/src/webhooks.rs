//! `rota webhook`: endpoints that receive events as signed POSTs, and their deliveries.

use crate::output::{self, Format};
use anyhow::Result;
use rota_client::{Client, DeliveryInfo, NewWebhook, WebhookInfo};
use rota_core::{Clock, SystemClock};

#[derive(clap::Subcommand)]
pub enum WebhookCmd {
    /// Add a webhook; prints its signing secret once.
    ///
    /// Example: rota webhook add https://ops.example.com/rota --events task.dead,task.failed --queue 'emails-*'
    Add {
        /// Where deliveries are POSTed (http or https).
        #[arg(value_name = "URL")]
        endpoint: String,
        /// Event types or patterns, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// Queue patterns, comma-separated (default: every queue).
        #[arg(long, value_delimiter = ',')]
        queue: Vec<String>,
        /// A note for people: what the receiver is.
        #[arg(long)]
        description: Option<String>,
    },
    /// Example: rota webhook list
    List,
    /// Example: rota webhook get wh_3f2a9c1d0b7e4a55
    Get {
        id: String,
    },
    /// Deliveries, newest first. Example: rota webhook deliveries wh_3f2a9c1d0b7e4a55 --state dead
    Deliveries {
        id: String,
        /// pending, failed, dead or delivered.
        #[arg(long)]
        state: Option<String>,
        /// Most deliveries to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Send a delivery again. Example: rota webhook retry wh_3f2a9c1d0b7e4a55 42
    Retry {
        id: String,
        delivery: i64,
    },
    /// A new secret; the old one keeps signing for --grace-ms (default a day).
    ///
    /// Example: rota webhook rotate wh_3f2a9c1d0b7e4a55
    Rotate {
        id: String,
        /// How long the old secret keeps signing beside the new one [default: a day].
        #[arg(long)]
        grace_ms: Option<u64>,
    },
    /// Stop or restart deliveries. Example: rota webhook enable wh_3f2a9c1d0b7e4a55
    Enable {
        id: String,
    },
    Disable {
        id: String,
    },
    /// Example: rota webhook delete wh_3f2a9c1d0b7e4a55
    Delete {
        id: String,
    },
    /// Create or rotate the tenant's callback secret, which signs task results sent to their
    /// callback_url; prints it once.
    ///
    /// Example: rota webhook callbacks-secret
    CallbacksSecret {
        /// How long the old secret keeps signing beside the new one [default: a day].
        #[arg(long)]
        grace_ms: Option<u64>,
    },
}

pub async fn webhook(c: &Client, cmd: WebhookCmd, fmt: Format) -> Result<()> {
    let one = match cmd {
        WebhookCmd::List => {
            let all = c.webhooks().await?;
            match fmt {
                Format::Json => output::json(&all),
                Format::Table => rows(&all),
            }
            return Ok(());
        }
        WebhookCmd::Deliveries { id, state, limit } => {
            let list = c.deliveries(&id, state.as_deref(), Some(limit)).await?;
            match fmt {
                Format::Json => output::json(&list),
                Format::Table => deliveries(&list),
            }
            return Ok(());
        }
        WebhookCmd::Retry { id, delivery } => {
            let d = c.retry_delivery(&id, delivery).await?;
            match fmt {
                Format::Json => output::json(&d),
                Format::Table => println!("delivery {} will be sent again now", d.id),
            }
            return Ok(());
        }
        WebhookCmd::CallbacksSecret { grace_ms } => {
            let secret = c.rotate_callback_secret(grace_ms).await?;
            match fmt {
                Format::Json => output::json(&serde_json::json!({ "secret": secret })),
                Format::Table => println!("callback secret (shown once; keep it): {secret}"),
            }
            return Ok(());
        }
        WebhookCmd::Delete { id } => {
            c.delete_webhook(&id).await?;
            if fmt == Format::Table {
                println!("deleted webhook {id}");
            }
            return Ok(());
        }
        WebhookCmd::Add {
            endpoint,
            events,
            queue,
            description,
        } => {
            let w = NewWebhook {
                url: endpoint,
                events,
                queues: queue,
                description,
            };
            c.create_webhook(&w).await?
        }
        WebhookCmd::Get { id } => c.webhook(&id).await?,
        WebhookCmd::Rotate { id, grace_ms } => c.rotate_webhook_secret(&id, grace_ms).await?,
        WebhookCmd::Enable { id } => {
            c.update_webhook(&id, &serde_json::json!({"enabled": true}))
                .await?
        }
        WebhookCmd::Disable { id } => {
            c.update_webhook(&id, &serde_json::json!({"enabled": false}))
                .await?
        }
    };
    match fmt {
        Format::Json => output::json(&one),
        Format::Table => {
            rows(std::slice::from_ref(&one));
            if let Some(s) = &one.secret {
                println!("\nsigning secret (shown once; keep it): {s}");
            }
            if let Some(r) = &one.disabled_reason {
                println!("\ndisabled: {r}");
            }
        }
    }
    Ok(())
}

fn rows(list: &[WebhookInfo]) {
    let now = SystemClock.now();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|w| {
            vec![
                w.id.clone(),
                w.url.clone(),
                w.events.join(","),
                if w.queues.is_empty() {
                    "*".into()
                } else {
                    w.queues.join(",")
                },
                if w.enabled { "yes" } else { "no" }.into(),
                w.failing_since
                    .map_or("-".into(), |t| output::relative(t, now)),
            ]
        })
        .collect();
    output::table(
        &["ID", "URL", "EVENTS", "QUEUES", "ENABLED", "FAILING SINCE"],
        &rows,
    );
}

fn deliveries(list: &[DeliveryInfo]) {
    let now = SystemClock.now();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.event.event_type.clone(),
                d.event.task_id.map_or("-".into(), |t| t.to_string()),
                d.state.clone(),
                d.attempts.to_string(),
                d.last_status.map_or("-".into(), |s| s.to_string()),
                d.latency_ms.map_or("-".into(), |l| format!("{l}ms")),
                d.next_attempt_at
                    .filter(|_| d.state == "pending" || d.state == "failed")
                    .map_or("-".into(), |t| output::relative(t, now)),
                d.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        &[
            "ID", "EVENT", "TASK", "STATE", "ATTEMPTS", "STATUS", "LATENCY", "NEXT", "ERROR",
        ],
        &rows,
    );
}
