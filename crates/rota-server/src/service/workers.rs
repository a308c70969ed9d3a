//! Worker processes connected through the Faktory door: who they are, and an operator's
//! request that one quiet down or stop (answered to its next `BEAT`).

use super::*;
use crate::error::ErrorKind;
use crate::faktory::workers::{Signal, Worker};

fn worker_resource(wid: &str) -> String {
    format!("workers/{wid}")
}

impl Service {
    /// The tenant's worker processes connected to this server.
    pub fn workers(&self, caller: &Caller) -> ApiResult<Vec<Worker>> {
        caller.require(actions::WORKERS_READ, "workers/*")?;
        Ok(self.workers.list(&caller.tenant))
    }

    /// Asks worker process `wid` to quiet down (fetch nothing more) or terminate.
    pub fn signal_worker(&self, caller: &Caller, wid: &str, signal: Signal) -> ApiResult<Worker> {
        caller.require(actions::WORKERS_SIGNAL, &worker_resource(wid))?;
        if !self.workers.signal(&caller.tenant, wid, signal) {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                "worker_not_found",
                format!(
                    "no worker process `{wid}` is connected to this server (with several \
                     servers, ask the one it is connected to)"
                ),
            ));
        }
        self.workers
            .list(&caller.tenant)
            .into_iter()
            .find(|w| w.wid == wid)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::NotFound,
                    "worker_not_found",
                    format!("worker process `{wid}` disconnected"),
                )
            })
    }
}
