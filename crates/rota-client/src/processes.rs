//! Worker processes connected through the Faktory door: list them, ask one to stop.

use crate::{Client, Result};
use reqwest::Method;
use rota_core::Timestamp;
use serde::{Deserialize, Serialize};

/// A worker process, as its Faktory `HELLO` described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerProcess {
    pub wid: String,
    pub hostname: String,
    pub pid: i64,
    pub labels: Vec<String>,
    /// Open connections from it to the server asked.
    pub connections: usize,
    pub connected_at: Timestamp,
    pub last_beat: Option<Timestamp>,
    /// `quiet` or `terminate` when an operator asked; answered to its next BEAT.
    pub signal: Option<String>,
}

impl Client {
    /// The tenant's worker processes connected to this server over the Faktory protocol.
    pub async fn workers(&self) -> Result<Vec<WorkerProcess>> {
        #[derive(Deserialize)]
        struct L {
            workers: Vec<WorkerProcess>,
        }
        let l: L = self
            .call(Method::GET, "/v1/workers", None::<&()>, Self::TIMEOUT)
            .await?;
        Ok(l.workers)
    }

    /// Asks worker process `wid` to fetch no more jobs.
    pub async fn quiet_worker(&self, wid: &str) -> Result<WorkerProcess> {
        self.signal_worker(wid, "quiet").await
    }

    /// Asks worker process `wid` to fail back the jobs in hand and exit.
    pub async fn terminate_worker(&self, wid: &str) -> Result<WorkerProcess> {
        self.signal_worker(wid, "terminate").await
    }

    async fn signal_worker(&self, wid: &str, signal: &str) -> Result<WorkerProcess> {
        let path = format!("/v1/workers/{}/{signal}", escape(wid));
        self.call(Method::POST, &path, None::<&()>, Self::TIMEOUT)
            .await
    }
}

/// `wid` (or any text) as one path segment or query value: every byte but `[A-Za-z0-9._~-]` percent-encoded.
pub(crate) fn escape(wid: &str) -> String {
    wid.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'~' | b'-' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn worker_ids_are_one_path_segment() {
        assert_eq!(super::escape("w-1.a_b"), "w-1.a_b");
        assert_eq!(super::escape("a/b c"), "a%2Fb%20c");
    }
}
