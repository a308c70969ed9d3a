//! The maintenance service: promotes due tasks, returns expired leases and enforces retention,
//! waking exactly when the store says something is due (or when a write makes something due
//! sooner), and at least every `maintenance_interval_ms` for the retention cleaner.

use rota_core::Clock;
use rota_store::DynStore;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn run(
    store: DynStore,
    clock: Arc<dyn Clock>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let signal = store.maintenance_signal();
    loop {
        // Listening before the pass: a write that makes something due while it runs still
        // wakes the next wait (`notify_waiters` keeps no permit).
        let woken = signal.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let wait = match store.run_maintenance().await {
            Ok(report) => {
                crate::metrics::maintenance(&report);
                if report.expired > 0 {
                    tracing::info!(
                        expired = report.expired,
                        "returned tasks with expired leases"
                    );
                }
                match report.next_due {
                    Some(due) => {
                        let ms = due.millis().saturating_sub(clock.now().millis()).max(0) as u64;
                        Duration::from_millis(ms).min(interval)
                    }
                    None => interval,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "maintenance pass failed; retrying");
                interval.min(Duration::from_secs(1))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = woken => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
