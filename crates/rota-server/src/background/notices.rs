//! Key expiry notices (`key.expiring`, `key.expired`; see `auth/notices.rs`), looked for by
//! the elected server every second. A pass reads the keys in memory and writes only when a
//! notice is due, each one once per key whichever server writes it.

use crate::auth::Auth;
use rota_core::Clock;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(1);

pub async fn run(auth: Arc<Auth>, clock: Arc<dyn Clock>, stop: CancellationToken) {
    loop {
        match auth.log_key_notices(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(notices = n, "key expiry notices logged"),
            Err(e) => tracing::warn!(error = %e, "cannot log key expiry notices; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}
