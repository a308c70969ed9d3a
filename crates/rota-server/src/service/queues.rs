//! Queue operations: list with counts, one queue, settings changes, pause, resume, purge.

use super::*;
use rota_core::{QueueInfo, QueuePatch, TaskState};

impl Service {
    /// The tenant's queues the caller may read.
    pub async fn queues(&self, caller: &Caller) -> ApiResult<Vec<QueueInfo>> {
        Ok(self
            .store
            .queues(&caller.tenant)
            .await?
            .into_iter()
            .filter(|q| caller.can(actions::QUEUES_READ, &queue_resource(&q.name)))
            .collect())
    }

    pub async fn queue(&self, caller: &Caller, queue: &str) -> ApiResult<QueueInfo> {
        let key = caller.queue(queue, actions::QUEUES_READ)?;
        Ok(self.store.queue(&key).await?)
    }

    /// Changes a queue's settings (creating the queue when it does not exist yet).
    pub async fn update_queue(
        &self,
        caller: &Caller,
        queue: &str,
        mut patch: QueuePatch,
    ) -> ApiResult<QueueInfo> {
        let key = caller.queue(queue, actions::QUEUES_UPDATE)?;
        check_max_attempts("max_attempts", patch.max_attempts)?;
        let limits = self.limits();
        if let Some(b) = &patch.backoff {
            b.validate().map_err(ApiError::invalid)?;
            limits
                .check_delay("backoff.max_ms", b.max_ms)
                .map_err(ApiError::invalid)?;
        }
        if let Some(ms) = patch.retention_ms {
            limits
                .check_delay("retention_ms", ms)
                .map_err(ApiError::invalid)?;
        }
        check_lease_ms("lease_ms", patch.lease_ms, limits)?;
        patch.check_limits().map_err(ApiError::invalid)?;
        if let Some(Some(url)) = &mut patch.callback_url {
            *url = crate::webhooks::target::check_form(url, &self.config.webhooks)
                .map_err(|e| ApiError::invalid(format!("callback_url {e}")))?;
            self.require_callback_signer(caller).await?;
        }
        // The settings as they are (a new queue's are the defaults), for the entry's before.
        let old = match self.store.queue(&key).await {
            Ok(q) => q.settings,
            Err(_) => Default::default(),
        };
        let mut new = old.clone();
        patch.apply(&mut new);
        let (before, after) = changed_fields(&old, &new);
        // A change of `paused` alone is a pause or resume, whichever route asked it.
        let only_paused = QueuePatch {
            paused: patch.paused,
            ..Default::default()
        } == patch;
        let action = match patch.paused {
            Some(true) if only_paused => "queue.pause",
            Some(false) if only_paused => "queue.resume",
            _ => "queue.update",
        };
        let entry = audit::with(
            caller.audit(action, queue_resource(queue)),
            Some(before),
            Some(after),
        );
        Ok(audit::audited(entry, self.store.update_queue(&key, patch)).await?)
    }

    /// Pauses or resumes a queue that exists: pausing an unknown queue is most likely a typo,
    /// so it is reported rather than created.
    pub async fn set_paused(
        &self,
        caller: &Caller,
        queue: &str,
        paused: bool,
    ) -> ApiResult<QueueInfo> {
        let key = caller.queue(queue, actions::QUEUES_UPDATE)?;
        self.store.queue(&key).await?;
        let patch = QueuePatch {
            paused: Some(paused),
            ..Default::default()
        };
        let action = if paused {
            "queue.pause"
        } else {
            "queue.resume"
        };
        let entry = caller.audit(action, queue_resource(queue));
        Ok(audit::audited(entry, self.store.update_queue(&key, patch)).await?)
    }

    /// Deletes every task of a queue, live ones included (Faktory's `QUEUE REMOVE` and
    /// `FLUSH`); answers how many. A worker holding a deleted task's lease finds it gone.
    pub async fn remove_tasks(&self, caller: &Caller, queue: &str) -> ApiResult<u64> {
        let key = caller.queue(queue, actions::QUEUES_PURGE)?;
        let mut n = 0;
        for state in TaskState::ALL {
            let entry = audit::with(
                caller.audit("queue.purge", queue_resource(queue)),
                None,
                Some(serde_json::json!({ "state": state })),
            );
            n += audit::audited(entry, self.store.purge(&key, state)).await?;
        }
        Ok(n)
    }

    /// Deletes a queue's tasks in a final state; answers how many.
    pub async fn purge(&self, caller: &Caller, queue: &str, state: TaskState) -> ApiResult<u64> {
        let key = caller.queue(queue, actions::QUEUES_PURGE)?;
        if !state.is_final() {
            return Err(ApiError::bad_request(format!(
                "only final states can be purged (succeeded, dead, cancelled), not `{state}`; cancel tasks first"
            )));
        }
        let entry = audit::with(
            caller.audit("queue.purge", queue_resource(queue)),
            None,
            Some(serde_json::json!({ "state": state })),
        );
        Ok(audit::audited(entry, self.store.purge(&key, state)).await?)
    }
}

/// The settings that differ between `old` and `new`: as they were, and as they are.
fn changed_fields(
    old: &rota_core::QueueSettings,
    new: &rota_core::QueueSettings,
) -> (serde_json::Value, serde_json::Value) {
    use serde_json::{Map, Value};
    let (Ok(Value::Object(old)), Ok(Value::Object(new))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return (Value::Null, Value::Null);
    };
    let (mut before, mut after) = (Map::new(), Map::new());
    for (k, v) in new {
        let was = old.get(&k).cloned().unwrap_or(Value::Null);
        if was != v {
            before.insert(k.clone(), was);
            after.insert(k, v);
        }
    }
    (before.into(), after.into())
}
