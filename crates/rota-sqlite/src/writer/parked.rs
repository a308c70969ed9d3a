//! Serving parked claims (see `rota_store::ParkedClaim`): after a batch's ops, the claims
//! waiting on the queues it made ready (or, in a queue with limits or groups, made room in)
//! claim in the same transaction, so one commit covers the enqueue and the start.

use super::ctx::Ctx;
use super::{Batch, MAX_ROWS_PER_COMMIT};

impl Ctx<'_> {
    /// Claims for the parked claims of the queues `b` made ready, oldest claim first, up to one
    /// commit's row budget. Each claim taken is recorded in `b.served` before its statements
    /// run, so a rollback gives it back (see `Batch::give_back`).
    pub fn serve_parked(&mut self, b: &mut Batch) -> rusqlite::Result<()> {
        let mut queues: Vec<i64> = b.ready.iter().copied().collect();
        for &qid in &b.delta.freed {
            if self.flow.grouped(qid) || self.settings_of(b, qid).limited() {
                queues.push(qid);
            }
        }
        queues.sort_unstable();
        queues.dedup();
        let mut budget = MAX_ROWS_PER_COMMIT;
        for qid in queues {
            let Some(key) = self.queue_key(b, qid) else {
                continue;
            };
            for claim in self.shared.parked.waiting(&key) {
                let req = claim.request();
                if req.max > budget {
                    return Ok(());
                }
                if !claim.take() {
                    continue;
                }
                b.served.push((claim.clone(), key.clone(), Vec::new()));
                // A refusal (a paused queue, say) leaves the claim waiting: its caller looks
                // for itself when woken, and hears the refusal then.
                let tasks = self
                    .claim(b, &key, req)?
                    .map(|c| c.tasks)
                    .unwrap_or_default();
                budget -= tasks.len();
                let found_none = tasks.is_empty();
                if let Some(last) = b.served.last_mut() {
                    last.2 = tasks;
                }
                // A claim of any kind found nothing: nothing is left for the others either.
                if found_none && req.kinds.is_empty() {
                    break;
                }
            }
        }
        Ok(())
    }
}
