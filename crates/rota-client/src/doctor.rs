//! `GET /v1/doctor`: findings about the tenant, each with what was seen, the cause and the fix.

use crate::{Client, Result};
use reqwest::Method;
use rota_core::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoctorReport {
    pub ok: bool,
    pub checked_at: Timestamp,
    pub findings: Vec<DoctorFinding>,
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoctorFinding {
    /// `queue_stalled`, `leases_expiring`, `failing`, …
    pub check: String,
    /// `error` or `warning`.
    pub severity: String,
    pub subject: String,
    pub seen: String,
    pub cause: String,
    pub fix: String,
}

impl Client {
    /// The findings about the tenant, or about one queue (and the storage).
    pub async fn doctor(&self, queue: Option<&str>) -> Result<DoctorReport> {
        let path = match queue {
            Some(q) => format!("/v1/doctor?queue={}", crate::processes::escape(q)),
            None => "/v1/doctor".to_owned(),
        };
        self.call(Method::GET, &path, None::<&()>, Self::TIMEOUT)
            .await
    }
}
