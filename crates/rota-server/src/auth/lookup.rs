//! Keys this server has not heard of yet. Another server sharing the store may have created a
//! key moments ago, before this server's reload (the change feed) brought it here; its holder
//! was already given the token, so refusing it for that moment would be wrong. A key id
//! missing from memory therefore costs one read of that key from the store before a 401:
//! one read per id at a time (later requests for the same id wait for its answer), a few
//! reads at once in all, and an id the store did not have is remembered as missing for a
//! short while, so a flood of made-up ids costs little.
//!
//! Revocations need none of this: a revoked key is in memory, and the change feed brings the
//! revocation within a second (docs/security.md). A rotation does, the other way round: a known
//! key whose token does not match may have been rotated on another server moments ago, so it
//! is read once more ([`Auth::refresh_key`]), at most once per [`MISSING_TTL`] per key.

use super::*;
use std::time::Duration;

/// How long an id the store did not have is answered from memory.
pub const MISSING_TTL: Duration = Duration::from_secs(2);
/// How many missing ids are remembered (past this, the expired ones are dropped, and then all).
const MAX_MISSING: usize = 10_000;
/// How many store reads for unknown ids run at once; others wait their turn.
const MAX_READS: usize = 4;

pub(super) struct Lookups {
    /// One read per key id at a time; it answers whether the key was found.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<bool>>>>,
    /// Ids the store did not have, and until when (ms) that answer stands.
    missing: Mutex<HashMap<String, i64>>,
    /// Known keys read again for a token that did not match, and until when (ms) they are not
    /// read again.
    refreshed: Mutex<HashMap<String, i64>>,
    reads: tokio::sync::Semaphore,
}

impl Default for Lookups {
    fn default() -> Self {
        Lookups {
            inflight: Default::default(),
            missing: Default::default(),
            refreshed: Default::default(),
            reads: tokio::sync::Semaphore::new(MAX_READS),
        }
    }
}

impl Lookups {
    /// Forgets every missing id (after a reload, which may have brought any of them).
    pub fn forget_missing(&self) {
        self.missing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Remembers `id` in `ids` for [`MISSING_TTL`] from `now` (ms); past [`MAX_MISSING`] ids, the
/// expired ones are dropped, and then all.
fn hold(ids: &Mutex<HashMap<String, i64>>, id: &str, now: i64) {
    let mut ids = ids.lock().unwrap_or_else(|e| e.into_inner());
    if ids.len() >= MAX_MISSING {
        ids.retain(|_, t| *t > now);
        if ids.len() >= MAX_MISSING {
            ids.clear();
        }
    }
    ids.insert(id.to_owned(), now + MISSING_TTL.as_millis() as i64);
}

/// Whether `id` is still remembered in `ids` at `now` (ms).
fn held(ids: &Mutex<HashMap<String, i64>>, id: &str, now: i64) -> bool {
    ids.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .is_some_and(|until| *until > now)
}

impl Auth {
    /// Whether key `id` is known here, after reading it from the store if it was not. A store
    /// that cannot answer is an error (503), not a refusal of a key that may well exist.
    pub(super) async fn learn_key(&self, id: &str) -> ApiResult<bool> {
        if self.read().keys.contains_key(id) {
            return Ok(true);
        }
        let now = self.clock.now().0;
        if held(&self.lookups.missing, id, now) {
            return Ok(false);
        }
        let cell = self
            .lookups
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_owned())
            .or_default()
            .clone();
        let found = cell.get_or_try_init(|| self.read_key(id)).await.copied();
        // The one that read (or any later) clears the entry; the answer is in memory or in
        // `missing` by then.
        {
            let mut inflight = self
                .lookups
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if inflight.get(id).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                inflight.remove(id);
            }
        }
        found
    }

    /// Reads known key `id` from the store again for a `token` its copy in memory does not
    /// match: the key may have been rotated on another server moments ago. `true` when the
    /// stored key takes the token (memory then has it). A token the stored key refuses too
    /// stops such reads for that key for [`MISSING_TTL`], so wrong secrets for a real key id
    /// cost one read per key per 2 s; legitimate rotations in quick succession are each read.
    pub(super) async fn refresh_key(&self, id: &str, token: &str) -> ApiResult<bool> {
        let now = self.clock.now();
        if held(&self.lookups.refreshed, id, now.0) {
            return Ok(false);
        }
        let _turn = self
            .lookups
            .reads
            .acquire()
            .await
            .expect("the semaphore is never closed");
        metrics::counter!("rota_auth_key_lookups_total").increment(1);
        let Some(record) = self.store.find_key(id).await? else {
            return Ok(false);
        };
        let takes = Secrets::of(&record).is_ok_and(|s| s.proven_by(token, now));
        if takes {
            let _one = self.changes.lock().await;
            let stale = self
                .read()
                .keys
                .get(id)
                .is_none_or(|e| e.record.hash != record.hash);
            if stale {
                self.remember_key(record);
            }
        } else {
            hold(&self.lookups.refreshed, id, now.0);
        }
        Ok(takes)
    }

    /// [`Auth::learn_key`] for the key a ticket or session names (made by another server for
    /// a key it created moments ago); whether it is known is then for the check to say.
    pub(super) async fn learn_signer(&self, key: Option<&str>) -> ApiResult<()> {
        if let Some(id) = key {
            self.learn_key(id).await?;
        }
        Ok(())
    }

    /// Reads key `id` from the store into memory; `false` (and remembered) when it is not
    /// there.
    async fn read_key(&self, id: &str) -> ApiResult<bool> {
        let _turn = self
            .lookups
            .reads
            .acquire()
            .await
            .expect("the semaphore is never closed");
        metrics::counter!("rota_auth_key_lookups_total").increment(1);
        let Some(record) = self.store.find_key(id).await? else {
            hold(&self.lookups.missing, id, self.clock.now().0);
            return Ok(false);
        };
        if self.tenant_exists(&record.tenant) {
            let _one = self.changes.lock().await;
            // A reload may have brought it meanwhile, with newer counters: keep those.
            if !self.read().keys.contains_key(id) {
                self.remember_key(record);
            }
        } else {
            // A key of a tenant made moments ago too: take everything.
            self.reload()
                .await
                .map_err(|e| ApiError::from(rota_store::StoreError::Unavailable(e)))?;
        }
        Ok(true)
    }
}
