//! The `rota` binary: `rota serve` runs the server, `rota bench` measures it, and the other
//! commands drive a server through its HTTP API.
// Doc comments on the clap types are `--help` text, where `<id>` and `[limits]` mean what they
// say; they are not rustdoc markup.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod access;
mod audit;
mod backup;
mod bench;
mod cli;
mod config;
mod copy;
mod doctor;
mod events;
mod flow;
mod health;
mod hooks;
mod keys;
mod maintenance;
mod output;
mod processes;
mod schedules;
mod serve;
mod storage;
mod webhooks;
mod worker_cmd;
mod workflows;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The heading of the flags that only commands talking to a server use (`serve`,
/// `recover-admin` and a `bench` that starts its own server ignore them).
const CLIENT: &str = "Client options (commands that talk to a server; serve ignores them)";

#[derive(Parser)]
#[command(
    name = "rota",
    // `rota 0.1.0 (1a2b3c4)`: the commit comes from build.rs.
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ROTA_COMMIT"), ")"),
    about = "A durable, multi-tenant task queue server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The server to talk to [default: http://127.0.0.1:7070].
    #[arg(long, global = true, env = "ROTA_URL", help_heading = CLIENT)]
    url: Option<String>,
    /// API token (an API key or a JWT), sent as a bearer token. Unset, the CLI uses
    /// ROTA_ADMIN_TOKEN, or for a server on this machine the admin token `rota serve` saved in
    /// $ROTA_DATA_DIR/admin-token (default ./rota-data/admin-token).
    #[arg(long, global = true, env = "ROTA_TOKEN", hide_env_values = true, help_heading = CLIENT)]
    token: Option<String>,
    /// OAuth client credentials instead of a token: an API key's id (with --client-secret, the
    /// key's token); the CLI fetches short-lived access tokens with them (docs/security.md).
    #[arg(long, global = true, env = "ROTA_CLIENT_ID", help_heading = CLIENT)]
    client_id: Option<String>,
    /// The API key's token, with --client-id.
    #[arg(long, global = true, env = "ROTA_CLIENT_SECRET", hide_env_values = true, help_heading = CLIENT)]
    client_secret: Option<String>,
    /// With client credentials: the access tokens' scope (space-separated actions and
    /// queues/<pattern>s), narrowing what the key may do.
    #[arg(long, global = true, env = "ROTA_OAUTH_SCOPE", help_heading = CLIENT)]
    oauth_scope: Option<String>,
    /// Act in this tenant (an admin only; other credentials act in their own).
    #[arg(long, global = true, env = "ROTA_TENANT", help_heading = CLIENT)]
    tenant: Option<String>,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value = "table", help_heading = CLIENT)]
    output: output::Format,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: on the embedded store, or on PostgreSQL with --database-url.
    ///
    /// Example: rota serve --listen 127.0.0.1:7070 --data-dir ./rota-data
    Serve(serve::ServeArgs),
    /// Show or apply the PostgreSQL schema's migrations (servers apply them at start unless
    /// started with --no-migrate).
    ///
    /// Example: rota migrate status --database-url postgres://rota@db/rota
    Migrate(storage::MigrateArgs),
    /// Copy an embedded data directory (server stopped) into an empty PostgreSQL database:
    /// tenants, keys, roles, queues and tasks in every state. Then start the servers with
    /// --database-url.
    ///
    /// Example: rota copy --from ./rota-data --to postgres://rota@db/rota
    Copy(copy::CopyArgs),
    /// Make a new admin key for a data directory whose admin keys are all lost or revoked.
    /// The server must be stopped; the token is printed once and saved in <DIR>/admin-token.
    ///
    /// Example: rota recover-admin --data-dir ./rota-data
    RecoverAdmin(serve::RecoverArgs),
    /// Copy the embedded store into one new directory while the server runs (every shard
    /// file and a manifest; every task acknowledged before it began is in it).
    ///
    /// Example: rota backup /backups/rota-2026-11-25 --data-dir ./rota-data
    Backup(backup::BackupArgs),
    /// Restore a backup into a new or empty data directory, then start a server on it.
    ///
    /// Example: rota restore /backups/rota-2026-11-25 --data-dir ./rota-restored
    Restore(backup::RestoreArgs),
    /// Measure throughput and claim latency (starts its own server unless --url is given).
    ///
    /// Example: rota bench --tasks 200000
    Bench(bench::BenchArgs),
    /// Probe a server's /healthz (or /readyz with --ready); exit 0 only on 200. For container
    /// health checks where there is no curl.
    ///
    /// Example: rota health --ready --url http://127.0.0.1:7070
    Health(health::HealthArgs),
    #[command(flatten)]
    Api(ApiCommand),
    /// Print a shell completion script. Example: rota completions bash > /etc/bash_completion.d/rota
    Completions { shell: clap_complete::Shell },
}

/// The commands that talk to a server through its HTTP API.
#[derive(Subcommand)]
enum ApiCommand {
    /// Add, show, list, cancel and retry tasks.
    #[command(subcommand)]
    Task(cli::TaskCmd),
    /// Queue counts, settings, pause, resume, purge.
    #[command(subcommand)]
    Queue(cli::QueueCmd),
    /// The dead-letter queue: list and requeue.
    #[command(subcommand)]
    Dead(cli::DeadCmd),
    /// Tenants (admin only): create, list, set limits, delete.
    #[command(subcommand)]
    Tenant(access::TenantCmd),
    /// API keys of a tenant: create, list, revoke.
    #[command(subcommand)]
    Key(keys::KeyCmd),
    /// Roles: list, and create, replace or delete custom ones.
    #[command(subcommand)]
    Role(access::RoleCmd),
    /// Show who the token is: tenant, roles, limits on queues and kinds.
    Whoami,
    /// Print an OAuth access token fetched with --client-id and --client-secret, for other
    /// programs.
    ///
    /// Example: curl -H "Authorization: Bearer $(rota token)" $ROTA_URL/v1/queues
    Token,
    /// Worker processes connected over the Faktory protocol: list, quiet, terminate.
    #[command(subcommand)]
    Workers(processes::WorkersCmd),
    /// Schedules: a task on every tick of a cron expression or an interval.
    #[command(subcommand)]
    Schedule(schedules::ScheduleCmd),
    /// Workflows: tasks submitted at once that wait for each other (docs/workflows.md).
    #[command(subcommand)]
    Workflow(workflows::WorkflowCmd),
    /// Webhooks: endpoints that receive events as signed POSTs, and their deliveries.
    #[command(subcommand)]
    Webhook(webhooks::WebhookCmd),
    /// Inbound webhooks: URLs that turn a provider's signed request (GitHub, GitLab, Stripe,
    /// or an HMAC-SHA256 signature) into a task.
    #[command(subcommand)]
    Hook(hooks::HookCmd),
    /// The audit log: every administrative change, who made it, from where, and what it
    /// changed, newest first.
    ///
    /// Example: rota audit --action key. --since 7d
    Audit(audit::AuditArgs),
    /// The event log: every task transition, a page at a time or followed live.
    ///
    /// Example: rota events --follow --types task.dead
    Events(events::EventsArgs),
    /// What is wrong, why, and what to do: stuck queues, expiring leases, failures, dead
    /// letters, refused credentials, failing webhooks, missed ticks, storage. Exits 1 when it
    /// finds anything.
    ///
    /// Example: rota doctor --queue emails
    Doctor(doctor::DoctorArgs),
    /// Maintenance mode (admin only): refuse writes and claims with a banner, or only announce.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCmd),
    /// Run a command for each task of a queue.
    ///
    /// Example: rota worker emails --kinds email.send --concurrency 4 -- ./send-email.sh
    Worker(worker_cmd::WorkerArgs),
}

impl ApiCommand {
    async fn run(self, client: rota_client::Client, fmt: output::Format) -> Result<()> {
        match self {
            ApiCommand::Task(cmd) => cli::task(&client, cmd, fmt).await,
            ApiCommand::Queue(cmd) => cli::queue(&client, cmd, fmt).await,
            ApiCommand::Dead(cmd) => cli::dead(&client, cmd, fmt).await,
            ApiCommand::Worker(args) => worker_cmd::run(client, args).await,
            ApiCommand::Tenant(cmd) => access::tenant(&client, cmd, fmt).await,
            ApiCommand::Key(cmd) => keys::key(&client, cmd, fmt).await,
            ApiCommand::Role(cmd) => access::role(&client, cmd, fmt).await,
            ApiCommand::Whoami => access::whoami(&client, fmt).await,
            ApiCommand::Token => access::token(&client, fmt).await,
            ApiCommand::Workers(cmd) => processes::workers(&client, cmd, fmt).await,
            ApiCommand::Events(args) => events::events(&client, args, fmt).await,
            ApiCommand::Audit(args) => audit::audit(&client, args, fmt).await,
            ApiCommand::Schedule(cmd) => schedules::schedule(&client, cmd, fmt).await,
            ApiCommand::Workflow(cmd) => workflows::workflow(&client, cmd, fmt).await,
            ApiCommand::Webhook(cmd) => webhooks::webhook(&client, cmd, fmt).await,
            ApiCommand::Hook(cmd) => hooks::hook(&client, cmd, fmt).await,
            ApiCommand::Maintenance(cmd) => maintenance::maintenance(&client, cmd, fmt).await,
            ApiCommand::Doctor(args) => doctor::doctor(&client, args, fmt).await,
        }
    }
}

/// Logs to stderr, filtered by `ROTA_LOG` (default `info`), as text or, with
/// `ROTA_LOG_FORMAT=json`, one JSON object per line (with the request's span and its id).
fn init_logs() -> Result<()> {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("ROTA_LOG").unwrap_or_else(|_| "info".into())
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    match std::env::var("ROTA_LOG_FORMAT").as_deref() {
        Ok("json") => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        // Colour codes only for a person at a terminal, never into a file or a log collector.
        Ok("text") | Err(_) => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        Ok(other) => anyhow::bail!("ROTA_LOG_FORMAT is `{other}`; use text or json"),
    }
    Ok(())
}

/// Commands that print for a person or a pipe end quietly when the reader goes away
/// (`rota completions bash | head -1`): the default SIGPIPE action, which Rust's runtime turns
/// off so that `println!` would panic instead. The server keeps it off (a client that hangs up
/// is an error to handle, not a reason to exit), and so does `rota worker`, which writes to its
/// commands' standard input.
fn end_quietly_on_closed_stdout(command: &Command) {
    let keeps_running = matches!(
        command,
        Command::Serve(_) | Command::Api(ApiCommand::Worker(_))
    );
    if !keeps_running {
        // SAFETY: setting a signal's disposition to the default, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    end_quietly_on_closed_stdout(&cli.command);
    if let Err(e) = init_logs() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = || tokio::runtime::Runtime::new().context("cannot start the async runtime");
    let (url, token, tenant, fmt) = (cli.url, cli.token, cli.tenant, cli.output);
    let (client_id, client_secret, oauth_scope) =
        (cli.client_id, cli.client_secret, cli.oauth_scope);
    let outcome = match cli.command {
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(serve::serve(args))),
        Command::Migrate(args) => runtime().and_then(|rt| rt.block_on(storage::migrate(args))),
        Command::Copy(args) => runtime().and_then(|rt| rt.block_on(copy::copy(args))),
        Command::RecoverAdmin(args) => {
            runtime().and_then(|rt| rt.block_on(serve::recover_admin(args)))
        }
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Bench(args) => bench::run(args, url, token),
        Command::Health(args) => health::run(url.as_deref(), args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rota", &mut std::io::stdout());
            Ok(())
        }
        Command::Api(command) => {
            let target = url.clone().unwrap_or_else(|| cli::DEFAULT_URL.to_owned());
            let args = access::ClientArgs {
                url: url.as_deref(),
                token: token.as_deref(),
                tenant: tenant.as_deref(),
                client_id: client_id.as_deref(),
                client_secret: client_secret.as_deref(),
                scope: oauth_scope.as_deref(),
            };
            access::client(&args).and_then(|(client, has_token)| {
                let ran = runtime()?.block_on(command.run(client, fmt));
                // A 401 with no token sent: say where the CLI looked and how to pass one.
                let unauthorized = ran.as_ref().err().is_some_and(|e| {
                    e.chain().any(|c| {
                        matches!(
                            c.downcast_ref::<rota_client::Error>(),
                            Some(rota_client::Error::Unauthorized { .. })
                        )
                    })
                });
                if unauthorized && !has_token {
                    let hint = access::where_tokens_come_from(&target, &|k| std::env::var(k).ok());
                    return ran.context(hint);
                }
                ran
            })
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // The report said it all.
        Err(e) if e.downcast_ref::<doctor::Found>().is_some() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// `--help` says what every flag does: a flag without a line of help is a flag nobody finds.
    #[test]
    fn every_flag_says_what_it_does() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if a.get_long().is_none() || matches!(id, "help" | "version") {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} --{}", a.get_long().unwrap()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(
            &<super::Cli as clap::CommandFactory>::command(),
            "rota",
            &mut missing,
        );
        assert!(
            missing.is_empty(),
            "flags without help:\n{}",
            missing.join("\n")
        );
    }
}
