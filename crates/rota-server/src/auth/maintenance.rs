//! Maintenance mode as access control holds it: in memory beside tenants and keys, reloaded
//! with them when another server changes it, written to the store first.

use super::*;

impl Auth {
    /// The maintenance state while it is in force at `now` (an ended `until` counts as off).
    pub fn maintenance(&self, now: Timestamp) -> Option<Maintenance> {
        self.read().maintenance.clone().filter(|m| m.in_force(now))
    }

    /// Sets maintenance mode (checked against the clock) or, with `None`, ends it.
    pub async fn set_maintenance(&self, m: Option<Maintenance>) -> ApiResult<()> {
        if let Some(m) = &m {
            m.check(self.clock.now()).map_err(ApiError::invalid)?;
        }
        let _one = self.changes.lock().await;
        self.store
            .change_auth(AuthChange::SetMaintenance(m.clone()))
            .await?;
        self.write().maintenance = m;
        Ok(())
    }
}
