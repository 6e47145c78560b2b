//! The reaction pipeline: the event store as the message backbone.
//!
//! ```text
//! commit ──► marks (static targets) ─┐
//!                                    ├─► subscriptions ──► drain: claim → per lease: fetch
//! correlate (dynamic resolvers) ─────┘        → match → handle (timeout, panic-safe)
//!                                             → block or ack, each lease on its own
//! settle = debounce, then correlate → drain until nothing moves, then `settled`
//! worker = settle forever: wakes on local commits, due retries and a poll interval
//! ```
//!
//! * `correlate.rs`: scans for dynamic resolvers' targets and raises work marks; a resolver
//!   that panics or names a target the store refuses becomes a blocked poison row.
//! * `drain.rs`: one pass — claim, run every lease in its own task, summarize.
//! * `lease.rs`: one lease — fetch, match, handle with a deadline, then block or ack.
//! * `guard.rs`: running user code (resolvers, handlers) so that a panic, a hang or an
//!   error stays with the stream that caused it.
//! * `settle.rs`: the debounced one-shot catch-up; `worker.rs`: the long-running loop.
//! * `scope.rs`: the app as a reaction handler sees it.

mod correlate;
mod drain;
pub(crate) mod guard;
mod lease;
mod scope;
mod settle;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use correlate::Correlated;
pub(crate) use correlate::in_window;
pub use drain::{Blocked, DrainOptions, DrainSummary, Retrying};
pub use scope::Scope;
pub use settle::SettleOptions;
pub use worker::{Worker, WorkerOptions};

/// The prefix of the poison rows correlate subscribes for events whose resolver failed:
/// `!resolve/{reaction}/{event stream}`.
pub const POISON_PREFIX: &str = "!resolve/";

/// Per-app pipeline state.
pub(crate) struct Pipeline {
    init: tokio::sync::OnceCell<()>,
    checkpoint: AtomicI64,
    /// The lagging share of each claim, as f64 bits.
    ratio: AtomicU64,
    /// Serializes [`crate::app::Act::drain`] passes of this app.
    drain_lock: tokio::sync::Mutex<()>,
    /// Serializes correlate passes (the checkpoint moves forward only).
    correlate_lock: tokio::sync::Mutex<()>,
    /// The lease holder id: unique across a fleet.
    by: String,
    settling: AtomicBool,
    rearm: AtomicBool,
    settle_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Rung by local commits that raise work marks.
    wake: Notify,
    /// The earliest retry this process scheduled (backoff `due`).
    next_due: Mutex<Option<DateTime<Utc>>>,
    /// Cancelled by shutdown: loops stop taking new work.
    stopping: CancellationToken,
    /// Cancelled when the shutdown grace has run out: running handlers are stopped.
    pub(crate) aborting: CancellationToken,
    worker: Mutex<Option<worker::Running>>,
    /// The leases the worker is claiming or running now (see `worker::InFlight`).
    worker_leases: Mutex<worker::Leases>,
    /// Rung when a lease of the worker ends.
    worker_lease_ended: Notify,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self {
            init: tokio::sync::OnceCell::new(),
            checkpoint: AtomicI64::new(-1),
            ratio: AtomicU64::new(0.5f64.to_bits()),
            drain_lock: tokio::sync::Mutex::new(()),
            correlate_lock: tokio::sync::Mutex::new(()),
            by: format!("drain-{}", uuid::Uuid::now_v7().simple()),
            settling: AtomicBool::new(false),
            rearm: AtomicBool::new(false),
            settle_task: Mutex::new(None),
            wake: Notify::new(),
            next_due: Mutex::new(None),
            stopping: CancellationToken::new(),
            aborting: CancellationToken::new(),
            worker: Mutex::new(None),
            worker_leases: Mutex::new(worker::Leases::default()),
            worker_lease_ended: Notify::new(),
        }
    }
}

impl Pipeline {
    pub(crate) fn checkpoint(&self) -> i64 {
        self.checkpoint.load(Ordering::SeqCst)
    }

    fn set_checkpoint(&self, at: i64) {
        self.checkpoint.fetch_max(at, Ordering::SeqCst);
    }

    fn ratio(&self) -> f64 {
        f64::from_bits(self.ratio.load(Ordering::Relaxed))
    }

    /// Wakes the worker (a local commit raised work marks).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Remembers a retry scheduled at `due`, so the worker wakes for it.
    fn schedule(&self, due: DateTime<Utc>) {
        let mut next = self.next_due.lock();
        if next.is_none_or(|n| due < n) {
            *next = Some(due);
        }
        drop(next);
        self.wake.notify_one();
    }

    /// Takes the earliest scheduled retry if it is due by `now`; else returns it.
    fn due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut next = self.next_due.lock();
        match *next {
            Some(d) if d <= now => {
                *next = None;
                Some(d)
            }
            other => other,
        }
    }

    /// Stops the pipeline: loops stop after their current step. Returns the worker's task.
    pub(crate) fn stop(
        &self,
    ) -> (
        Option<tokio::task::JoinHandle<()>>,
        Vec<tokio::task::JoinHandle<()>>,
    ) {
        self.stopping.cancel();
        self.wake.notify_waiters();
        let settle = self.settle_task.lock().take();
        let worker = self.worker.lock().take().map(|w| w.task);
        (settle, worker.into_iter().collect())
    }

    /// Stops running handlers (the shutdown grace ran out).
    pub(crate) fn abort(&self) {
        self.aborting.cancel();
    }

    /// Waits for an in-flight drain pass to end.
    pub(crate) async fn drained(&self) {
        let _pass = self.drain_lock.lock().await;
    }

    /// `lagging share = lagging average / (lagging average + leading average)`, clamped to
    /// 20–80 %; back to 50 % when nothing was handled.
    fn update_ratio_from(
        &self,
        lagging_handled: usize,
        leading_handled: usize,
        lagging: usize,
        leading: usize,
    ) {
        let lag = if lagging > 0 {
            lagging_handled as f64 / lagging as f64
        } else {
            0.0
        };
        let lead = if leading > 0 {
            leading_handled as f64 / leading as f64
        } else {
            0.0
        };
        let ratio = if lag + lead == 0.0 {
            0.5
        } else {
            (lag / (lag + lead)).clamp(0.2, 0.8)
        };
        self.ratio.store(ratio.to_bits(), Ordering::Relaxed);
    }
}

/// `d` as a chrono duration (saturating).
fn chrono_ms(d: Duration) -> chrono::Duration {
    chrono::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2))
}
