//! Maintenance mode (admin only): writes and claims refused with a banner, or only the banner.

use crate::{Client, Result};
use reqwest::Method;
pub use rota_core::maintenance::Maintenance;
use rota_core::Timestamp;
use serde::Deserialize;

#[derive(Deserialize)]
struct State {
    maintenance: Option<Maintenance>,
}

const PATH: &str = "/v1/admin/maintenance";

impl Client {
    /// The maintenance state, if maintenance is on or announced.
    pub async fn maintenance(&self) -> Result<Option<Maintenance>> {
        let s: State = self
            .call(Method::GET, PATH, None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(s.maintenance)
    }

    /// Turns maintenance on (`refusing`: writes and claims answer 503) or only announces it,
    /// until `until` or until [`Client::end_maintenance`].
    pub async fn set_maintenance(
        &self,
        refusing: bool,
        message: &str,
        until: Option<Timestamp>,
    ) -> Result<Option<Maintenance>> {
        let body = serde_json::json!({
            "mode": if refusing { "on" } else { "announce" },
            "message": message,
            "until": until,
        });
        let s: State = self
            .call(Method::PUT, PATH, Some(&body), Self::TIMEOUT)
            .await?;
        Ok(s.maintenance)
    }

    pub async fn end_maintenance(&self) -> Result<()> {
        let _: serde_json::Value = self
            .call(Method::DELETE, PATH, None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(())
    }
}
