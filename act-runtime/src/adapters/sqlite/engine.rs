//! The threads SQLite runs on: one writer and a few readers, none of them a tokio worker.
//!
//! SQLite calls block: on disk, on `fsync`, and for up to the busy timeout while another
//! process holds the write lock. So every connection lives on a dedicated OS thread and an
//! async call sends that thread a job, then awaits its answer; a tokio worker never runs a
//! statement. There is one writer thread (writes queue in the process instead of racing for
//! SQLite's lock) and, for a file, a pool of reader threads taking jobs from one queue (WAL
//! mode: readers never wait for the writer). An in-memory database has only the writer.
//!
//! A job runs to its end on its thread even when the caller stops waiting, so a transaction
//! is always committed or rolled back there. A job that panics is answered with an error and
//! the thread goes on with the next job.
//!
//! Between calls, the writer thread and the callers watch for a moment before they sleep
//! (see `watch.rs`), so a sequence of calls hands over without a wake-up while that pays.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::watch::Watch;
use crate::error::StoreError;
use crate::model::Committed;

/// A unit of work for a connection's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Events handed from a reader thread to the awaiting caller per message.
const ROWS_PER_CHUNK: usize = 256;

/// What a streaming read sends back: full chunks of rows, then the last rows with the
/// outcome (one message for a read that fits in a chunk).
enum Chunk {
    Rows(Vec<Committed>),
    Done(Vec<Committed>, Result<usize, StoreError>),
}

/// The writer lane and the reader lane (`None` for an in-memory database: the writer reads).
pub(crate) struct Engine {
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    readers: Mutex<Option<mpsc::Sender<Job>>>,
    /// One receiver per thread, answered when the thread has closed its connection.
    exits: Mutex<Vec<oneshot::Receiver<()>>>,
    /// How long callers of the writer, and of the readers, watch for their answer.
    write_watch: Watch,
    read_watch: Watch,
}

impl Engine {
    /// Starts the writer thread on the connection `open` makes, and `readers` reader
    /// threads on the connections `open_reader` makes (each opened on its own thread).
    pub(crate) async fn start(
        open: impl FnOnce() -> Result<Connection, StoreError> + Send + 'static,
        readers: usize,
        open_reader: impl Fn() -> Result<Connection, StoreError> + Send + Sync + 'static,
    ) -> Result<Self, StoreError> {
        let mut exits = Vec::new();
        let writer = spawn("act-sqlite-writer", open, None, &mut exits)?;
        writer.opened.await.map_err(|_| thread_lost("open"))??;
        let mut reader_lane = None;
        if readers > 0 {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(std::sync::Mutex::new(rx));
            let open_reader = Arc::new(open_reader);
            let mut waits = Vec::with_capacity(readers);
            for i in 0..readers {
                let open_reader = Arc::clone(&open_reader);
                let reader = spawn(
                    &format!("act-sqlite-reader-{i}"),
                    move || open_reader(),
                    Some(Arc::clone(&rx)),
                    &mut exits,
                )?;
                waits.push(reader.opened);
            }
            for opened in waits {
                opened.await.map_err(|_| thread_lost("open"))??;
            }
            reader_lane = Some(tx);
        }
        Ok(Self {
            writer: Mutex::new(Some(writer.lane)),
            readers: Mutex::new(reader_lane),
            exits: Mutex::new(exits),
            write_watch: Watch::default(),
            read_watch: Watch::default(),
        })
    }

    /// Runs `f` on the writer connection, after the writes queued before it.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let lane = self.writer.lock().clone();
        call(lane, &self.write_watch, operation, f).await
    }

    /// Runs `f` on a free reader connection (the writer's, in memory).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let lane = self.read_lane();
        call(lane, &self.read_watch, operation, f).await
    }

    /// Runs `f` on a reader, streaming the events it emits to `sink` on the caller's task
    /// while `f` goes on reading; `f`'s emitter returns `false` once the caller has stopped
    /// listening (and `f` should stop). Returns `f`'s result.
    pub(crate) async fn read_events(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection, &mut dyn FnMut(Committed) -> bool) -> Result<usize, StoreError>
        + Send
        + 'static,
        sink: &mut (dyn for<'e> FnMut(&'e Committed) + Send),
    ) -> Result<usize, StoreError> {
        let lane = self.read_lane().ok_or(StoreError::Disposed)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(4);
        let job: Job = Box::new(move |conn| {
            let mut chunk = Vec::new();
            let mut open = true;
            let mut emit = |e: Committed| {
                chunk.push(e);
                if chunk.len() == ROWS_PER_CHUNK {
                    let rows = std::mem::replace(&mut chunk, Vec::with_capacity(ROWS_PER_CHUNK));
                    open = tx.blocking_send(Chunk::Rows(rows)).is_ok();
                }
                open
            };
            let result = catch_unwind(AssertUnwindSafe(|| f(conn, &mut emit)))
                .unwrap_or_else(|panic| Err(panicked(operation, &panic)));
            let _ = tx.blocking_send(Chunk::Done(chunk, result));
        });
        lane.send(job).map_err(|_| StoreError::Disposed)?;
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Chunk::Rows(rows) => rows.iter().for_each(&mut *sink),
                Chunk::Done(rows, result) => {
                    rows.iter().for_each(&mut *sink);
                    return result;
                }
            }
        }
        Err(thread_lost(operation))
    }

    fn read_lane(&self) -> Option<mpsc::Sender<Job>> {
        if let Some(readers) = &*self.readers.lock() {
            return Some(readers.clone());
        }
        self.writer.lock().clone()
    }

    /// Stops taking jobs and waits until every thread has finished the jobs queued before
    /// and closed its connection: readers first, then the writer (the last connection to
    /// close checkpoints the WAL). Calls after this one are [`StoreError::Disposed`].
    pub(crate) async fn close(&self) {
        let readers = self.readers.lock().take();
        let writer = self.writer.lock().take();
        drop(readers);
        drop(writer);
        let exits = std::mem::take(&mut *self.exits.lock());
        for exit in exits {
            let _ = exit.await;
        }
    }
}

/// Spawns a connection thread: it opens its connection with `open` (reporting the outcome
/// on the returned receiver), then runs jobs from its own queue, or from the shared
/// `queue` of a reader pool, until the queue closes.
fn spawn(
    name: &str,
    open: impl FnOnce() -> Result<Connection, StoreError> + Send + 'static,
    queue: Option<Arc<std::sync::Mutex<mpsc::Receiver<Job>>>>,
    exits: &mut Vec<oneshot::Receiver<()>>,
) -> Result<Spawned, StoreError> {
    let (tx, own) = mpsc::channel::<Job>();
    let (opened_tx, opened) = oneshot::channel();
    let (exit_tx, exit) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let Some(mut conn) = open_reporting(open, opened_tx) else {
                return;
            };
            let watch = Watch::default();
            loop {
                let job = match &queue {
                    // A poisoned queue lock only means another reader panicked while
                    // waiting; the receiver itself is intact.
                    Some(queue) => queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .recv(),
                    None => next_job(&own, &watch),
                };
                let Ok(job) = job else { break };
                // The job answers its caller; a panic drops the answer, which the caller
                // reports as an error.
                let _ = catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
            }
            drop(conn);
            let _ = exit_tx.send(());
        })
        .map_err(|e| StoreError::backend("open", e))?;
    exits.push(exit);
    Ok(Spawned { lane: tx, opened })
}

/// Opens a connection thread's connection with `open`, on that thread, and reports the
/// outcome to the caller waiting on `opened`: `None` when it failed.
pub(crate) fn open_reporting(
    open: impl FnOnce() -> Result<Connection, StoreError>,
    opened: oneshot::Sender<Result<(), StoreError>>,
) -> Option<Connection> {
    match open() {
        Ok(conn) => {
            let _ = opened.send(Ok(()));
            Some(conn)
        }
        Err(e) => {
            let _ = opened.send(Err(e));
            None
        }
    }
}

/// The writer's next job: watched for while `watch` says it pays, then waited for.
fn next_job(own: &mpsc::Receiver<Job>, watch: &Watch) -> Result<Job, mpsc::RecvError> {
    if let Some(until) = watch.until() {
        loop {
            match own.try_recv() {
                Ok(job) => {
                    watch.hit();
                    return Ok(job);
                }
                Err(mpsc::TryRecvError::Disconnected) => return Err(mpsc::RecvError),
                Err(mpsc::TryRecvError::Empty) if Instant::now() < until => {
                    std::hint::spin_loop();
                }
                Err(mpsc::TryRecvError::Empty) => {
                    watch.miss();
                    break;
                }
            }
        }
    }
    own.recv()
}

/// A started connection thread: its own job queue, and the outcome of opening its
/// connection.
struct Spawned {
    lane: mpsc::Sender<Job>,
    opened: oneshot::Receiver<Result<(), StoreError>>,
}

/// Sends `f` down `lane` and awaits its answer.
async fn call<T: Send + 'static>(
    lane: Option<mpsc::Sender<Job>>,
    watch: &Watch,
    operation: &'static str,
    f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let lane = lane.ok_or(StoreError::Disposed)?;
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move |conn| {
        let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|panic| Err(panicked(operation, &panic)));
        let _ = tx.send(result);
    });
    lane.send(job).map_err(|_| StoreError::Disposed)?;
    answer(rx, watch)
        .await
        .map_err(|_| thread_lost(operation))?
}

/// Awaits a connection thread's answer: watched for between yields to the caller's other
/// tasks while `watch` says it pays, then by registering to be woken. The caller's thread
/// is never held: each look is one poll.
async fn answer<T>(
    mut rx: oneshot::Receiver<T>,
    watch: &Watch,
) -> Result<T, oneshot::error::RecvError> {
    if let Some(until) = watch.until() {
        loop {
            match rx.try_recv() {
                Ok(value) => {
                    watch.hit();
                    return Ok(value);
                }
                Err(oneshot::error::TryRecvError::Closed) => break,
                Err(oneshot::error::TryRecvError::Empty) if Instant::now() < until => {
                    tokio::task::yield_now().await;
                }
                Err(oneshot::error::TryRecvError::Empty) => {
                    watch.miss();
                    break;
                }
            }
        }
    }
    rx.await
}

fn panicked(operation: &'static str, panic: &Box<dyn std::any::Any + Send>) -> StoreError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    StoreError::backend(operation, format!("the SQLite call panicked: {message}"))
}

fn thread_lost(operation: &'static str) -> StoreError {
    StoreError::backend(
        operation,
        "the SQLite connection thread stopped before answering".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn memory() -> Engine {
        Engine::start(
            || Connection::open_in_memory().map_err(|e| StoreError::backend("open", e)),
            0,
            || unreachable!("no readers"),
        )
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_job_is_an_error_and_the_thread_goes_on() {
        let engine = memory().await;
        let err = engine
            .write("probe", |_| -> Result<(), StoreError> { panic!("boom") })
            .await
            .unwrap_err();
        let text = crate::error::chain(&err);
        assert!(text.contains("boom"), "{text}");
        let one = engine
            .write("probe", |c| {
                c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                    .map_err(|e| StoreError::backend("probe", e))
            })
            .await
            .unwrap();
        assert_eq!(one, 1);
        engine.close().await;
        assert!(matches!(
            engine.write("probe", |_| Ok(())).await,
            Err(StoreError::Disposed)
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_job_never_stalls_the_runtime() {
        let engine = memory().await;
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let held = engine.write("probe", move |_| {
            let _ = wait.recv();
            Ok(())
        });
        let ticker = async {
            // The one runtime thread keeps running while the job blocks its own thread.
            for _ in 0..3 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            release.send(()).unwrap();
        };
        let (held, ()) = tokio::join!(held, ticker);
        held.unwrap();
        engine.close().await;
    }
}
