//! Task ids unique across servers. Each server reserves a block of ids from one row
//! (`rota_id_blocks`) in a short transaction of its own, starting no lower than the current
//! time's first id, and hands them out from memory; blocks never overlap, so no two servers
//! (or restarts of one) give out the same id. Ids stay time-ordered to within a block: a block
//! is used for at most [`BLOCK_AGE_MS`] before a new one is taken.

use crate::{db, PostgresStore};
use rota_core::{TaskId, Timestamp};
use rota_store::StoreResult;

/// Ids reserved at a time (at least; a larger batch reserves what it needs).
const BLOCK: i64 = 4_096;
/// A block older than this is replaced, so ids keep following the clock.
const BLOCK_AGE_MS: i64 = 1_000;
const SEQ_BITS: u32 = 20;

#[derive(Default)]
pub struct IdBlocks {
    current: tokio::sync::Mutex<Block>,
}

#[derive(Default)]
struct Block {
    next: i64,
    end: i64,
    taken_at: i64,
}

impl PostgresStore {
    /// `n` new ids, increasing.
    pub(crate) async fn new_ids(&self, n: usize, now: Timestamp) -> StoreResult<Vec<TaskId>> {
        let n = n as i64;
        let mut b = self.ids.current.lock().await;
        if b.end - b.next < n || now.0 - b.taken_at > BLOCK_AGE_MS || now.0 < b.taken_at {
            let size = n.max(BLOCK);
            let floor = now.0.max(0) << SEQ_BITS;
            // On a connection whose commit does not wait for the WAL flush: every enqueue
            // waits while a block is reserved, and the reservation needs no flush of its own.
            // A task with an id from it commits durably after it, and WAL is flushed in
            // order, so no durable task can use a block that a crash forgets.
            let client = self.lease_conn().await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE rota_id_blocks SET next = GREATEST(next, $1) + $2 RETURNING next",
                )
                .await
                .map_err(db)?;
            let end: i64 = client
                .query_one(&stmt, &[&floor, &size])
                .await
                .map_err(db)?
                .get(0);
            *b = Block {
                next: end - size,
                end,
                taken_at: now.0,
            };
        }
        let ids = (b.next..b.next + n).map(TaskId::from_i64).collect();
        b.next += n;
        Ok(ids)
    }
}
