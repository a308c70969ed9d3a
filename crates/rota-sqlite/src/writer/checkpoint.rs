//! WAL checkpoints off the writer's thread.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1,000 frames:
//! the writer copies those pages into the database file and fsyncs it before it answers that
//! commit's ops or starts its next batch, a stall of a few milliseconds every few thousand
//! pages written (BENCHMARKS.md, "Checkpoints off the writer's thread"). Here the writer only
//! counts the WAL's frames (its WAL hook replaces the automatic checkpoint) and asks a thread
//! of its shard, on a connection of its own, for a `PASSIVE` checkpoint: one that takes no
//! lock a writer needs, so commits go on while it copies and syncs.
//!
//! SQLite starts the WAL over from its beginning only when a write transaction begins with
//! every frame already copied, which a checkpoint racing a busy writer may never leave behind.
//! So past [`WRITER_CHECKPOINT_FRAMES`] the writer checkpoints itself between two batches, as
//! SQLite would have, and the next batch starts the WAL over. By then the background checkpoints
//! have copied nearly every frame, so that stall comes once per that many frames, not once per
//! thousand, and costs little more than the database file's fsync.
//!
//! Architecture Invariant: a checkpoint never stands between a commit and its answers except
//! past the hard size, and the WAL never grows much past it (an old reader's snapshot aside).

use rusqlite::hooks::Wal;
use rusqlite::{Connection, OpenFlags};
use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Frames written since the last request after which the background thread is asked for a
/// checkpoint (SQLite's own automatic checkpoint threshold).
pub const BACKGROUND_CHECKPOINT_FRAMES: i32 = 1_000;
/// WAL frames past which the writer checkpoints itself (32 MiB of 4 KiB pages).
pub const WRITER_CHECKPOINT_FRAMES: i32 = 8_192;

const CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

thread_local! {
    /// The frames in the WAL after the last commit on this thread's connection (the hook runs
    /// on the committing thread, and each writer has its own thread).
    static WAL_FRAMES: Cell<i32> = const { Cell::new(0) };
}

fn count_frames(_: &Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(frames));
    Ok(())
}

/// The writer's side: when to ask for a checkpoint, and the thread it asks.
pub struct Checkpoints {
    ask: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Whether the WAL hook replaced SQLite's automatic checkpoint.
    hooked: bool,
    /// The WAL's frames after the last commit (fewer after it: the WAL started over).
    last: i32,
    /// Frames at which the next background checkpoint is asked for.
    next_ask: i32,
    /// Frames at which the writer next checkpoints itself.
    next_own: i32,
}

impl Checkpoints {
    fn new() -> Self {
        Checkpoints {
            ask: None,
            thread: None,
            hooked: false,
            last: 0,
            next_ask: BACKGROUND_CHECKPOINT_FRAMES,
            next_own: WRITER_CHECKPOINT_FRAMES,
        }
    }

    /// Starts the checkpoint thread of the writer's connection `conn`, which calls `done`
    /// after each checkpoint it runs. Where it cannot (an in-memory database, a second
    /// connection refused), SQLite's automatic checkpoint stays.
    pub fn start(conn: &Connection, done: impl Fn() + Send + 'static) -> Self {
        let mut me = Self::new();
        let Some(path) = conn.path().filter(|p| !p.is_empty()).map(str::to_owned) else {
            return me;
        };
        let own = match Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| {
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            c.pragma_update(None, "synchronous", "FULL")?;
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a connection for background checkpoints; the writer checkpoints as it commits");
                return me;
            }
        };
        let (ask, asked) = sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name("rota-checkpoint".into())
            .spawn(move || {
                while asked.recv().is_ok() {
                    match own.query_row(CHECKPOINT, [], |r| r.get::<_, i64>(0)) {
                        Ok(0) => done(),
                        // Busy: the writer's own checkpoint held the lock.
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "background checkpoint failed"),
                    }
                }
            });
        match spawned {
            Ok(t) => {
                // Replaces SQLite's automatic checkpoint, which is itself a WAL hook.
                conn.wal_hook(Some(count_frames));
                me.hooked = true;
                me.ask = Some(ask);
                me.thread = Some(t);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the checkpoint thread; the writer checkpoints as it commits")
            }
        }
        me
    }

    /// After a commit on `conn`: asks for a background checkpoint every
    /// [`BACKGROUND_CHECKPOINT_FRAMES`] frames, and checkpoints in line past the hard size
    /// (true when it did, copying every frame).
    pub fn committed(&mut self, conn: &Connection) -> bool {
        if !self.hooked {
            return false;
        }
        let frames = WAL_FRAMES.with(Cell::get);
        if frames < self.last {
            self.next_ask = BACKGROUND_CHECKPOINT_FRAMES;
            self.next_own = WRITER_CHECKPOINT_FRAMES;
        }
        self.last = frames;
        if frames >= self.next_own {
            let done = conn.query_row(CHECKPOINT, [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            });
            match done {
                // Every frame copied: the next batch starts the WAL over.
                Ok((0, log, copied)) if copied >= log => return true,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
            }
            // The background thread held the checkpoint lock, or a reader's snapshot holds
            // frames back: try again a step later rather than at every commit.
            self.next_own = frames + BACKGROUND_CHECKPOINT_FRAMES;
        } else if frames >= self.next_ask {
            if let Some(ask) = &self.ask {
                match ask.try_send(()) {
                    // Already asked: the thread's next pass covers these frames too.
                    Ok(()) | Err(TrySendError::Full(())) => {}
                    // The thread is gone; the hard size still bounds the WAL.
                    Err(TrySendError::Disconnected(())) => self.ask = None,
                }
            }
            self.next_ask = frames + BACKGROUND_CHECKPOINT_FRAMES;
        }
        false
    }

    /// Ends the thread and closes its connection, before the writer's own connection closes
    /// (the last one to close checkpoints the WAL and deletes it).
    pub fn stop(&mut self) {
        self.ask = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> i32 {
        WAL_FRAMES.with(Cell::get)
    }

    #[test]
    fn past_the_hard_size_the_writer_checkpoints_and_the_wal_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("wal.db")).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.execute("CREATE TABLE t (b BLOB)", []).unwrap();
        // The hook without the thread: no background checkpoint ever frees the WAL, as under
        // a writer that never pauses.
        let mut c = Checkpoints::new();
        conn.wal_hook(Some(count_frames));
        c.hooked = true;
        let mut own = 0;
        let mut most = 0;
        for _ in 0..600 {
            conn.execute("INSERT INTO t VALUES (zeroblob(60000))", [])
                .unwrap();
            most = most.max(frames());
            if c.committed(&conn) {
                own += 1;
                // The next write starts the WAL over.
                conn.execute("INSERT INTO t VALUES (zeroblob(10))", [])
                    .unwrap();
                assert!(frames() < 10, "the WAL did not start over: {}", frames());
                assert!(!c.committed(&conn));
            }
        }
        // About 15 pages a row: 9,000 frames written, so the hard size was passed once.
        assert!(own >= 1, "the writer never checkpointed");
        assert!(
            most < WRITER_CHECKPOINT_FRAMES + 20,
            "the WAL grew to {most} frames"
        );
        assert_eq!(
            conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            600 + own
        );
    }
}
