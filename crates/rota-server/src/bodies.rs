//! Request bodies: read only once the caller may make the request, within byte budgets, and
//! parsed a few at a time per tenant.
//!
//! A body is charged its declared length (or `limits.max_body_bytes` when it has none) against
//! the server's budget (`limits.max_body_bytes_in_flight`: a request waits for room) and against
//! its credential's and its tenant's (`limits.max_body_bytes_in_flight_per_client`: a request
//! past it answers 503 with Retry-After). Reading and parsing then take one of the tenant's
//! parse slots (as many as the machine has cores), so one tenant's flood of large batches
//! queues behind itself while other tenants' requests are parsed at once. After a burst of large
//! bodies the allocator is asked to give freed memory back to the system.

use crate::auth::limits::ClientState;
use crate::error::ApiError;
use crate::error::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct BodyBudget {
    server: Arc<Semaphore>,
    server_bytes: usize,
    per_client: usize,
    /// A large body was read since memory was last handed back.
    large_since_trim: AtomicBool,
}

/// A body's hold on the budgets; returned when dropped.
pub struct BodyPermit {
    _server: Option<OwnedSemaphorePermit>,
    clients: Vec<Arc<ClientState>>,
    bytes: usize,
}

impl Drop for BodyPermit {
    fn drop(&mut self) {
        for c in &self.clients {
            c.body_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

/// Bodies at least this large count as a burst worth handing memory back after.
const LARGE_BODY: usize = 1 << 20;

impl BodyBudget {
    pub fn new(limits: &rota_core::Limits) -> Self {
        BodyBudget {
            server: Arc::new(Semaphore::new(limits.max_body_bytes_in_flight)),
            server_bytes: limits.max_body_bytes_in_flight,
            per_client: limits.max_body_bytes_in_flight_per_client,
            large_since_trim: AtomicBool::new(false),
        }
    }

    /// Charges `bytes` to each of `clients` (refusing at once past a client's budget), then
    /// waits for room in the server's budget.
    pub async fn admit(
        &self,
        clients: &[Arc<ClientState>],
        label: &str,
        bytes: usize,
    ) -> Result<BodyPermit, ApiError> {
        let mut permit = BodyPermit {
            _server: None,
            clients: Vec::with_capacity(clients.len()),
            bytes,
        };
        if bytes == 0 {
            return Ok(permit);
        }
        for (i, c) in clients.iter().enumerate() {
            let before = c.body_bytes.fetch_add(bytes, Ordering::AcqRel);
            permit.clients.push(c.clone());
            if before + bytes > self.per_client {
                let who = if i + 1 == clients.len() && clients.len() > 1 {
                    "its tenant".to_owned()
                } else {
                    label.to_owned()
                };
                return Err(ApiError::new(
                    ErrorKind::Unavailable,
                    "too_many_in_flight",
                    format!(
                        "{who} has {before} bytes of request bodies in flight; with this one's {bytes} that passes its limit of {} (limits.max_body_bytes_in_flight_per_client); retry when they finish",
                        self.per_client
                    ),
                )
                .retry_after(1));
            }
        }
        let n = u32::try_from(bytes.min(self.server_bytes)).unwrap_or(u32::MAX);
        permit._server = Some(
            self.server
                .clone()
                .acquire_many_owned(n)
                .await
                .expect("the body semaphore is never closed"),
        );
        if bytes >= LARGE_BODY {
            self.large_since_trim.store(true, Ordering::Relaxed);
        }
        Ok(permit)
    }

    /// After large bodies were read, and none is being read now, hands freed heap memory back
    /// to the system (glibc keeps it otherwise). Called from the server's upkeep loop.
    pub fn return_memory(&self) {
        if self.server.available_permits() < self.server_bytes.min(u32::MAX as usize) {
            return;
        }
        if self.large_since_trim.swap(false, Ordering::Relaxed) {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only walks the allocator's own free lists.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

/// Answer for a body that does not arrive within `limits.body_read_timeout_ms`.
pub fn read_timeout(ms: u64) -> ApiError {
    ApiError::new(
        ErrorKind::Timeout,
        "request_timeout",
        format!("the request body did not arrive within {ms} ms (limits.body_read_timeout_ms)"),
    )
}
