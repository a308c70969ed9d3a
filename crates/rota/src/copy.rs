//! `rota copy --from ./rota-data --to postgres://…`: moves an embedded data directory into an
//! empty PostgreSQL database — tenants, keys (hashes), roles, inbound webhooks, the audit log, queues with their settings, and
//! tasks in every state with their ids, attempts, errors, results and leases — then checks
//! that every queue's counts by state match. The embedded server must be stopped (the data
//! directory's lock is taken), so nothing changes while it copies. Tasks still waiting for
//! dependencies are refused (their waits are not carried over); finished ones keep their
//! `depends_on` and workflow id, but workflow records are not copied.

use anyhow::{bail, Context, Result};
use rota_core::{Clock, QueueKey, SystemClock, TaskState};
use rota_postgres::{PostgresOptions, PostgresStore};
use rota_sqlite::{SqliteOptions, SqliteStore};
use rota_store::audit::AuditLog;
use rota_store::{AuthChange, ListFilter, Store};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct CopyArgs {
    /// The embedded server's data directory (stopped).
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The PostgreSQL database to fill; it must hold no queues, tasks, keys, roles or tenants
    /// besides `default`. Missing migrations are applied first.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Tasks read and written per statement.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    batch: u16,
    /// Copy even though webhook deliveries or task callbacks are still waiting to be sent;
    /// they are not copied, so their receivers never get them.
    #[arg(long)]
    drop_pending_deliveries: bool,
}

pub async fn copy(args: CopyArgs) -> Result<()> {
    let db = crate::config::db_path(&args.from);
    if !db.exists() {
        bail!(
            "{} holds no Rota data ({} does not exist)",
            args.from.display(),
            db.display()
        );
    }
    let lock = crate::serve::lock_data_dir(&args.from)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let source = SqliteStore::open(&db, clock.clone(), SqliteOptions::default())
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", db.display()))?;
    let target = PostgresStore::open(&args.to, clock, PostgresOptions::default())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", crate::storage::redact(&args.to)))?;
    let found = target.contents().await?;
    if !found.is_empty() {
        bail!(
            "{} is not empty ({} tenants besides default, {} keys, {} roles, {} queues, {} \
             tasks); rota copy fills an empty database only",
            crate::storage::redact(&args.to),
            found.tenants,
            found.keys,
            found.roles,
            found.queues,
            found.tasks
        );
    }
    // Deliveries (webhook events and task callbacks) are not copied: refuse while some still
    // wait to be sent, unless told to drop them, before anything is written.
    let unsent = source
        .due_deliveries(
            rota_core::Timestamp(i64::MAX),
            1_000_000,
            Default::default(),
        )
        .await?
        .len();
    if unsent > 0 && !args.drop_pending_deliveries {
        source.close().await;
        target.close().await;
        bail!(
            "{unsent} webhook deliveries or task callbacks are still waiting to be sent in {}, \
             and rota copy does not carry them over. Start the embedded server again until \
             they are sent or given up on (rota webhook deliveries ID shows a webhook's), or \
             pass \
             --drop-pending-deliveries to copy without them. Nothing was copied",
            args.from.display()
        );
    }
    // Dependencies are not carried over (their waits and workflow records are the embedded
    // engine's own): refuse while a task still waits for one, before anything is written.
    let waiting: u64 = source
        .all_queues()
        .await?
        .iter()
        .map(|(_, q)| q.counts.waiting)
        .sum();
    if waiting > 0 {
        source.close().await;
        target.close().await;
        bail!(
            "{waiting} tasks in {} are waiting for dependencies (or for an open batch's close), \
             and rota copy does not carry dependencies over. Start the embedded server again \
             until they have run, or cancel them (rota workflow cancel ID, rota task cancel ID). \
             Nothing was copied",
            args.from.display()
        );
    }
    let result = copy_all(&source, &target, usize::from(args.batch)).await;
    source.close().await;
    target.close().await;
    drop(lock);
    let copied = result?;
    println!(
        "copied {} tenants, {} keys, {} roles, {} inbound webhooks, {} schedules, {} webhooks, \
         {} audit entries, {} queues and {} tasks from {} to {}; every queue's counts by state \
         match",
        copied.tenants,
        copied.keys,
        copied.roles,
        copied.hooks,
        copied.schedules,
        copied.webhooks,
        copied.audit,
        copied.queues,
        copied.tasks,
        args.from.display(),
        crate::storage::redact(&args.to)
    );
    if unsent > 0 {
        eprintln!(
            "note: {unsent} webhook deliveries or task callbacks were still waiting in {} and \
             were dropped (--drop-pending-deliveries); their events are in the source's event \
             log",
            args.from.display()
        );
    }
    Ok(())
}

#[derive(Default)]
struct Copied {
    tenants: usize,
    keys: usize,
    roles: usize,
    hooks: usize,
    schedules: usize,
    webhooks: usize,
    queues: usize,
    tasks: u64,
    audit: usize,
}

async fn copy_all(source: &SqliteStore, target: &PostgresStore, batch: usize) -> Result<Copied> {
    let auth = source.load_auth().await?;
    let mut copied = Copied {
        tenants: auth.tenants.len(),
        keys: auth.keys.len(),
        roles: auth.roles.len(),
        hooks: auth.hooks.len(),
        ..Default::default()
    };
    let tenants: Vec<String> = auth.tenants.iter().map(|t| t.name.clone()).collect();
    // Tenants first: keys, roles and hooks belong to one.
    let changes = (auth.tenants.into_iter().map(AuthChange::PutTenant))
        .chain(auth.roles.into_iter().map(AuthChange::PutRole))
        .chain(
            auth.keys
                .into_iter()
                .map(|k| AuthChange::PutKey(Box::new(k))),
        )
        .chain(
            auth.hooks
                .into_iter()
                .map(|h| AuthChange::PutHook(Box::new(h))),
        );
    for change in changes {
        target.change_auth(change).await?;
    }
    // Schedules (with their runs) and webhooks (with their secrets). Deliveries are not
    // copied (`copy` refused if some were still to be sent, unless told to drop them).
    for tenant in &tenants {
        for s in source.schedules(tenant, None).await? {
            target.put_schedule(s).await?;
            copied.schedules += 1;
        }
        for w in source.webhooks(tenant, None).await? {
            target.put_webhook(w).await?;
            copied.webhooks += 1;
        }
    }
    // The audit log, every tenant's, newest first; one transaction per entry.
    let mut filter = rota_core::audit::AuditFilter {
        limit: rota_core::audit::MAX_AUDIT_PAGE,
        ..Default::default()
    };
    loop {
        let page = source.audit(filter.clone()).await?;
        filter.after = page.entries.last().map(rota_core::audit::AuditCursor::of);
        for e in page.entries {
            target.record_audit(e).await?;
            copied.audit += 1;
        }
        if !page.more {
            break;
        }
    }
    for (tenant, queue) in source.all_queues().await? {
        let key = QueueKey::new(tenant.as_str(), queue.name.as_str());
        let id = target
            .import_queue(&tenant, &queue)
            .await
            .with_context(|| format!("queue {tenant}/{}", queue.name))?;
        let mut before = None;
        loop {
            let filter = ListFilter {
                state: None,
                kind: None,
                limit: batch,
                before,
                unique_key: None,
            };
            let page = source.list(&key, filter).await?;
            target
                .import_tasks(id, queue.settings.retention_ms, &page.tasks)
                .await
                .with_context(|| format!("tasks of {tenant}/{}", queue.name))?;
            copied.tasks += page.tasks.len() as u64;
            match page.next_cursor {
                Some(c) => before = Some(c),
                None => break,
            }
        }
        let now = target.queue(&key).await?;
        if now.counts != queue.counts {
            let show = |c: &rota_core::StateCounts| {
                TaskState::ALL
                    .iter()
                    .map(|s| format!("{} {}", s.as_str(), c.get(*s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            bail!(
                "queue {tenant}/{}: the copy holds {} but the source holds {}",
                queue.name,
                show(&now.counts),
                show(&queue.counts)
            );
        }
        copied.queues += 1;
    }
    Ok(copied)
}
