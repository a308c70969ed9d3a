//! `rota doctor` and `GET /v1/doctor`: one finding per problem, each with what was seen, the
//! likely cause and the fix. The store gives the recent event log summed per queue
//! ([`rota_store::Diagnosis`]); this server adds what it saw of requests ([`observed`]); the
//! checks ([`checks`]) are pure functions of both. A caller sees findings only about what it
//! may read.

pub mod checks;
pub mod flow;
pub mod hooks;
pub mod keys;
pub mod observed;
pub mod workflows;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::service::Service;
use rota_core::auth::{actions, queue_resource};
use rota_core::webhooks::CALLBACKS_ID;
use rota_core::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Work is stuck or lost until someone acts.
    Error,
    /// Something is wrong or about to be.
    Warning,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Finding {
    /// A stable name to branch on: `queue_stalled`, `leases_expiring`, `failing`, …
    pub check: &'static str,
    pub severity: Severity,
    /// What it is about: `queue emails`, `key 3f2a…`, `webhook whk_…`, `storage.writer`.
    pub subject: String,
    pub seen: String,
    pub cause: String,
    pub fix: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// No finding.
    pub ok: bool,
    #[schema(value_type = String, format = DateTime)]
    pub checked_at: Timestamp,
    pub findings: Vec<Finding>,
    /// Limits of what was looked at.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Service {
    /// The findings about the caller's tenant (one queue's, with `queue`).
    pub async fn doctor(&self, caller: &Caller, queue: Option<&str>) -> ApiResult<Report> {
        if let Some(q) = queue {
            caller.queue(q, actions::QUEUES_READ)?;
        }
        let now = self.clock.now();
        let store = &self.store;
        let tenant = caller.tenant.as_str();
        let only = |name: &str| queue.is_none_or(|q| q == name);
        let queues: Vec<_> = store
            .queues(tenant)
            .await?
            .into_iter()
            .filter(|q| only(&q.name))
            .filter(|q| caller.can(actions::QUEUES_READ, &queue_resource(&q.name)))
            .collect();
        let mut flows = std::collections::HashMap::new();
        let mut worth: Vec<_> = queues.iter().filter(|q| flow::worth_reading(q)).collect();
        worth.sort_by_key(|q| std::cmp::Reverse(q.counts.ready));
        let flows_left_out = worth.len().saturating_sub(flow::MAX_DOCTOR_FLOW_QUEUES);
        // Every look counts: a queue found below its limit now starts afresh next time.
        let at_limit: std::collections::HashMap<&str, Timestamp> = queues
            .iter()
            .filter_map(|q| Some((q.name.as_str(), self.observed.queue_seen(tenant, q, now)?)))
            .collect();
        for q in worth.into_iter().take(flow::MAX_DOCTOR_FLOW_QUEUES) {
            let key = caller.queue(&q.name, actions::QUEUES_READ)?;
            let stats = crate::service::flow_stats(&**store, &key, q, 0).await?;
            let at_limit_since = at_limit.get(q.name.as_str()).copied();
            flows.insert(
                q.name.clone(),
                flow::QueueFlow {
                    stats,
                    at_limit_since,
                },
            );
        }
        let activity = store
            .diagnose(
                tenant,
                now.plus_ms(-checks::WINDOW_MS),
                now.plus_ms(checks::FAR_MS),
            )
            .await?;
        let whole = queue.is_none();
        let webhooks: Vec<_> = if whole {
            store
                .webhooks(tenant, None)
                .await?
                .into_iter()
                .filter(|w| w.id != CALLBACKS_ID)
                .filter(|w| caller.can(actions::WEBHOOKS_READ, &format!("webhooks/{}", w.id)))
                .map(|w| crate::service::redact_unless_writer(caller, w))
                .collect()
        } else {
            Vec::new()
        };
        let schedules: Vec<_> = store
            .schedules(tenant, None)
            .await?
            .into_iter()
            .filter(|s| whole || only(&s.spec.queue))
            .filter(|s| caller.can(actions::SCHEDULES_READ, &format!("schedules/{}", s.name)))
            .collect();
        let refusals: Vec<_> = if whole {
            let since = now.plus_ms(-checks::REFUSALS_WINDOW_MS);
            self.observed
                .refusals_since(since)
                .into_iter()
                // Not the credential's doing: the store failing (its own finding) or
                // maintenance refusing writes on purpose.
                .filter(|r| {
                    r.code != crate::error::STORAGE_UNAVAILABLE_CODE
                        && r.code != crate::maintenance::MAINTENANCE_CODE
                })
                .filter(|r| match &r.tenant {
                    Some(t) => t == tenant && caller.can(actions::KEYS_READ, "keys/*"),
                    // Unknown credentials belong to no tenant: admins see them.
                    None => caller.principal.is_admin(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let claims = self.observed.claims_since(now.plus_ms(-observed::KEPT_MS));
        let storage_errors: Vec<_> = self
            .observed
            .refusals_since(now.plus_ms(-checks::REFUSALS_WINDOW_MS))
            .into_iter()
            .filter(|r| r.code == crate::error::STORAGE_UNAVAILABLE_CODE)
            .collect();
        let started = std::time::Instant::now();
        let health = store.health().await;
        let health_ms = started.elapsed().as_millis() as u64;
        let findings = checks::run(&checks::Inputs {
            now,
            tenant,
            queues: &queues,
            activity: &activity,
            claims: &claims,
            refusals: &refusals,
            webhooks: &webhooks,
            schedules: &schedules,
            health: &health,
            health_ms,
            storage_errors: &storage_errors,
            writer_busy: self.observed.writer_busy(),
            flows: &flows,
        });
        let mut findings = findings;
        let mut seen = workflows::read(&**store, tenant, &queues).await?;
        // A workflow is shown only to a caller who may read all of it.
        seen.workflows.retain(|w| {
            w.tasks
                .iter()
                .all(|t| caller.can(actions::TASKS_READ, &queue_resource(&t.task.queue)))
        });
        if queue.is_some() {
            seen.workflows.clear();
        }
        findings.extend(workflows::findings(&seen, &queues, now));
        // Hooks the caller may read, of queues it may read (one queue's, with `queue`).
        let hooks: Vec<_> = self
            .hooks(caller)
            .into_iter()
            .filter(|h| only(&h.queue))
            .filter(|h| caller.can(actions::TASKS_READ, &queue_resource(&h.queue)))
            .collect();
        findings.extend(hooks::findings(&hooks, &activity, |id| {
            self.hooks.recent(id)
        }));
        if whole && caller.can(actions::KEYS_READ, "keys/*") {
            let auth = store.load_auth().await?;
            findings.extend(keys::findings(&auth.keys, tenant, now));
        }
        let mut notes = Vec::new();
        if activity.truncated {
            notes.push(format!(
                "rates count the newest {} events of the last hour only",
                rota_store::DIAGNOSE_SCAN
            ));
        }
        if flows_left_out > 0 {
            notes.push(format!(
                "flow control read for the {} queues with the most ready tasks; {flows_left_out} more left out",
                flow::MAX_DOCTOR_FLOW_QUEUES
            ));
        }
        Ok(Report {
            ok: findings.is_empty(),
            checked_at: now,
            findings,
            notes,
        })
    }
}
