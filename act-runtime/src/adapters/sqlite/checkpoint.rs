//! Checkpoints off the writer thread.
//!
//! In WAL mode a commit appends the pages it changed to the write-ahead log, and a
//! checkpoint copies them back into the database file and fsyncs it. SQLite runs a
//! checkpoint inside the commit that brings the log to 1,000 pages, so every thousandth page
//! one commit pays for all of them (about a sixth of the writer's time). Here the writer's
//! commits only count: each commit that brings the log past another [`BACKGROUND_AT`] pages
//! wakes a checkpoint thread with its own connection, which copies the log back while the
//! writer goes on committing (a `PASSIVE` checkpoint: it never waits for, nor blocks, a
//! reader or the writer).
//!
//! The log restarts from its beginning only when a write begins after a checkpoint has
//! copied all of it, which a checkpoint running beside the writer rarely manages. So the
//! commit that brings the log to [`INLINE_AT`] pages checkpoints itself, as SQLite would:
//! the background checkpoints have copied almost all of it, and this one copies the rest,
//! so the log restarts and never grows past about that many pages (a reader holding an old
//! snapshot can still hold it back, as with SQLite's own checkpoints).

use std::cell::{Cell, RefCell};
use std::ffi::c_int;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use rusqlite::Connection;
use rusqlite::hooks::{CheckpointMode, Wal};
use tokio::sync::oneshot;

use super::engine::open_reporting;
use crate::error::StoreError;

/// Log pages at which a commit wakes the checkpoint thread (SQLite's own checkpoint size).
pub(crate) const BACKGROUND_AT: c_int = 1000;
/// Log pages at which a commit checkpoints on the writer thread, restarting the log.
pub(crate) const INLINE_AT: c_int = 4 * BACKGROUND_AT;

thread_local! {
    /// The checkpoint thread of the store whose writer runs on this thread.
    static WAKE: RefCell<Option<Arc<Signal>>> = const { RefCell::new(None) };
    /// The last multiple of [`BACKGROUND_AT`] pages that woke it (0 after a restart).
    static RUNG: Cell<c_int> = const { Cell::new(0) };
}

/// The writer's call to the checkpoint thread: a checkpoint is wanted, or the store closes.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    wanted: bool,
    closed: bool,
}

impl Signal {
    fn ring(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.wanted {
            state.wanted = true;
            self.changed.notify_one();
        }
    }

    fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.closed = true;
        self.changed.notify_one();
    }

    /// Waits for the next checkpoint to run: `false` once the store closes.
    fn next(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !state.wanted && !state.closed {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.wanted = false;
        !state.closed
    }
}

/// Makes the writer connection `conn`, which must live on the current thread, count its
/// log and ring `signal` instead of checkpointing in its commits (see the module docs).
pub(crate) fn install(conn: &Connection, signal: Arc<Signal>) {
    WAKE.with(|w| *w.borrow_mut() = Some(signal));
    // Replaces SQLite's automatic checkpoint, which is the same kind of hook.
    conn.wal_hook(Some(after_commit));
}

/// Runs after each commit on the writer thread, with the pages now in the log.
fn after_commit(wal: &Wal, pages: c_int) -> rusqlite::Result<()> {
    if pages >= INLINE_AT {
        // What the background checkpoints have not copied yet; a reader in the way only
        // leaves some of it for the next one, so this commit still succeeds.
        if let Err(e) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
            tracing::warn!(error = %e, "sqlite store: checkpoint on the writer failed");
        }
        return Ok(());
    }
    let step = pages / BACKGROUND_AT;
    let rung = RUNG.get();
    if step < rung {
        // The log restarted.
        RUNG.set(step);
    } else if step > rung {
        RUNG.set(step);
        WAKE.with(|w| {
            if let Some(signal) = &*w.borrow() {
                signal.ring();
            }
        });
    }
    Ok(())
}

/// The checkpoint thread of one file store.
pub(crate) struct Checkpointer {
    signal: Arc<Signal>,
    exit: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Checkpointer {
    /// Starts the thread on the connection `open` makes (opened on that thread), answering
    /// `signal`; returns once the connection is open.
    pub(crate) async fn start(
        signal: Arc<Signal>,
        open: impl FnOnce() -> Result<Connection, StoreError> + Send + 'static,
    ) -> Result<Self, StoreError> {
        let (opened_tx, opened) = oneshot::channel();
        let (exit_tx, exit) = oneshot::channel();
        let thread_signal = Arc::clone(&signal);
        std::thread::Builder::new()
            .name("act-sqlite-checkpoint".to_owned())
            .spawn(move || {
                let Some(conn) = open_reporting(open, opened_tx) else {
                    return;
                };
                while thread_signal.next() {
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = done {
                        tracing::warn!(error = %e, "sqlite store: background checkpoint failed");
                    }
                }
                drop(conn);
                let _ = exit_tx.send(());
            })
            .map_err(|e| StoreError::backend("open", e))?;
        opened.await.map_err(|_| {
            StoreError::backend("open", "the SQLite checkpoint thread stopped".to_owned())
        })??;
        Ok(Self {
            signal,
            exit: Mutex::new(Some(exit)),
        })
    }

    /// Stops the thread (after the checkpoint it is running) and waits until its
    /// connection is closed.
    pub(crate) async fn close(&self) {
        self.signal.close();
        let exit = self
            .exit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(exit) = exit {
            let _ = exit.await;
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.signal.close();
    }
}
