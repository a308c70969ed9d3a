//! The WAL's fsync, on a thread of its own, so the writer applies its next batch while the
//! last one is being synced.
//!
//! A durable batch commits with `synchronous=NORMAL`: its frames are written to the WAL file
//! (a killed process loses nothing) and readable, not yet synced. The writer hands the batch's
//! ops and answers here and goes on; this thread fsyncs the WAL file, which covers every frame
//! written before the call (the file is synced whole, whichever descriptor asks), and only then
//! answers them. Batches that committed while an fsync was running wait for the next one and
//! share it, so under load one fsync still carries many commits. Without this, a request that
//! arrived during a commit's fsync waited for that fsync and then for its own.
//!
//! Architecture Invariant: no op handed here is answered before an fsync of the WAL that began
//! after its commit.

use super::ops::{Answer, Op};
use crate::Shared;
use rota_store::StoreError;
use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Committed batches waiting for their fsync, past which the writer waits for this thread.
const MAX_WAITING_BATCHES: usize = 256;

type Committed = (Vec<Op>, Vec<Answer>);

pub struct Syncer {
    tx: Option<SyncSender<Committed>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread that fsyncs `wal`.
    pub fn start(wal: File, shared: Arc<Shared>) -> std::io::Result<Self> {
        Self::spawn(
            move || wal.sync_all(),
            move |synced| match synced {
                Ok(commits) => {
                    shared
                        .synced_commits
                        .fetch_add(commits as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    shared.write_failing.store(true, Ordering::Relaxed);
                    tracing::error!(error = %e, "cannot fsync the WAL after a commit");
                }
            },
        )
    }

    /// The thread, with its fsync and what it tells of each (the commits it covered).
    fn spawn(
        sync: impl FnMut() -> std::io::Result<()> + Send + 'static,
        synced: impl Fn(Result<usize, &std::io::Error>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(MAX_WAITING_BATCHES);
        let thread = std::thread::Builder::new()
            .name("rota-wal-sync".into())
            .spawn(move || run(sync, synced, &rx))?;
        Ok(Syncer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Answers `ops` after the next fsync of the WAL (their commit is done).
    pub fn after_sync(&self, ops: Vec<Op>, answers: Vec<Answer>) {
        let Some(tx) = &self.tx else {
            return answer_all(ops, Err(closed()));
        };
        if let Err(std::sync::mpsc::SendError((ops, _))) = tx.send((ops, answers)) {
            answer_all(ops, Err(closed()));
        }
    }

    /// Syncs and answers what is waiting, then ends the thread.
    pub fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the writer stopped before the write was synced".into())
}

pub(super) fn answer_all(ops: Vec<Op>, outcome: Result<Vec<Answer>, StoreError>) {
    match outcome {
        Ok(answers) => {
            for (op, answer) in ops.into_iter().zip(answers) {
                op.answer(Ok(answer));
            }
        }
        Err(e) => {
            for op in ops {
                op.answer(Err(e.clone()));
            }
        }
    }
}

fn run(
    mut sync: impl FnMut() -> std::io::Result<()>,
    synced: impl Fn(Result<usize, &std::io::Error>),
    rx: &Receiver<Committed>,
) {
    while let Ok(first) = rx.recv() {
        // Everything committed by now: one fsync covers it all.
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        match sync() {
            Ok(()) => {
                synced(Ok(waiting.len()));
                for (ops, answers) in waiting {
                    answer_all(ops, Ok(answers));
                }
            }
            // Committed and readable, but perhaps not on disk: no op is told it is, though the
            // writes stand (as after a crash before the answer).
            Err(e) => {
                synced(Err(&e));
                let err = StoreError::Unavailable(format!(
                    "the write was committed but could not be made durable: {e}"
                ));
                for (ops, _) in waiting {
                    answer_all(ops, Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rota_store::MaintenanceReport;
    use std::sync::mpsc::channel;
    use std::time::Duration;
    use tokio::sync::oneshot;

    type Reply = oneshot::Receiver<rota_store::StoreResult<MaintenanceReport>>;

    fn op() -> (Op, Answer, Reply) {
        let (tx, rx) = oneshot::channel();
        let answer = Answer::Report(Ok(MaintenanceReport::default()));
        (Op::Maintenance(tx), answer, rx)
    }

    /// An fsync that returns only when the test lets it, with what it should return.
    fn gated() -> (Syncer, std::sync::mpsc::Sender<std::io::Result<()>>) {
        let (open, gate) = channel::<std::io::Result<()>>();
        let gate = std::sync::Mutex::new(gate);
        let syncer = Syncer::spawn(
            move || {
                // Never longer than 5 s, so a failing assertion fails instead of hanging.
                let wait = Duration::from_secs(5);
                gate.lock().unwrap().recv_timeout(wait).unwrap_or(Ok(()))
            },
            |_| {},
        )
        .unwrap();
        (syncer, open)
    }

    fn waits(rx: &mut Reply) -> bool {
        std::thread::sleep(Duration::from_millis(50));
        matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty))
    }

    #[test]
    fn ops_are_answered_only_after_the_fsync_returns() {
        let (mut syncer, open) = gated();
        let (a, answer, mut rx) = op();
        syncer.after_sync(vec![a], vec![answer]);
        assert!(waits(&mut rx), "answered before the fsync returned");
        open.send(Ok(())).unwrap();
        syncer.stop();
        assert!(rx.try_recv().unwrap().is_ok());
    }

    #[test]
    fn a_failed_fsync_answers_an_error_that_says_the_write_may_not_be_durable() {
        let (mut syncer, open) = gated();
        let (a, answer, mut rx) = op();
        syncer.after_sync(vec![a], vec![answer]);
        open.send(Err(std::io::Error::other("EIO"))).unwrap();
        syncer.stop();
        let err = rx.try_recv().unwrap().unwrap_err().to_string();
        assert!(err.contains("could not be made durable"), "{err}");
    }

    #[test]
    fn commits_made_during_an_fsync_wait_for_the_next_one_and_share_it() {
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (open, gate) = channel::<std::io::Result<()>>();
        let gate = std::sync::Mutex::new(gate);
        let seen = count.clone();
        let mut syncer = Syncer::spawn(
            move || {
                // Never longer than 5 s, so a failing assertion fails instead of hanging.
                let wait = Duration::from_secs(5);
                gate.lock().unwrap().recv_timeout(wait).unwrap_or(Ok(()))
            },
            move |n| {
                seen.fetch_add(1, Ordering::SeqCst);
                assert!(n.is_ok());
            },
        )
        .unwrap();
        let (a, answer, mut first) = op();
        syncer.after_sync(vec![a], vec![answer]);
        std::thread::sleep(Duration::from_millis(50));
        // The first fsync is running; these two commit during it.
        let mut later = Vec::new();
        for _ in 0..2 {
            let (b, answer, rx) = op();
            syncer.after_sync(vec![b], vec![answer]);
            later.push(rx);
        }
        open.send(Ok(())).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(first.try_recv().is_ok());
        for rx in &mut later {
            assert!(
                waits(rx),
                "answered by an fsync that began before its commit"
            );
        }
        open.send(Ok(())).unwrap();
        syncer.stop();
        for mut rx in later {
            assert!(rx.try_recv().is_ok());
        }
        assert_eq!(
            count.load(Ordering::SeqCst),
            2,
            "two fsyncs for three commits"
        );
    }
}
