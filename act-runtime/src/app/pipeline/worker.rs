//! The worker: the pipeline running by itself in production.
//!
//! ```text
//! loop: correlate → claim into free slots → spawn each lease ─┐
//!   caught up? emit `settled`, then sleep until: a local commit, another process's doorbell
//!   (stores with `Store::wakeups`), the earliest due retry, the poll interval (other
//!   processes' commits), or stop
//!   a store error: back off (exponential, capped) and go on
//! ```
//!
//! Leases run concurrently, up to `stream_limit`: a slow or hanging handler holds only its
//! own slot until its timeout, and the worker keeps claiming work for the others.

use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::drain::{DrainOptions, DrainSummary, Frontiers};
use super::lease::Outcome;
use crate::app::{Act, Lifecycle};
use crate::error::{ActError, Report};
use crate::model::EventId;

tokio::task_local! {
    /// Set while a worker lease runs: code inside it (its handlers) does not wait for the
    /// worker's leases, its own included.
    static IN_LEASE: ();
}

/// The worker's leases in flight: a ticket each, with the watermark it starts from.
#[derive(Debug, Default)]
pub(super) struct Leases {
    next: u64,
    running: Vec<(u64, EventId)>,
}

/// A worker lease being claimed or run, registered while it lives, so that
/// [`Act::settle_now`] can wait for the leases that handle events up to an id.
pub(super) struct InFlight {
    app: Act,
    ticket: u64,
}

impl InFlight {
    /// Registers a lease that handles the events after `at` (`EventId::MIN` while it is
    /// being claimed: it may handle anything).
    pub(super) fn new(app: &Act, at: EventId) -> Self {
        let mut leases = app.inner.pipeline.worker_leases.lock();
        let ticket = leases.next;
        leases.next += 1;
        leases.running.push((ticket, at));
        Self {
            app: app.clone(),
            ticket,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let pipeline = &self.app.inner.pipeline;
        pipeline
            .worker_leases
            .lock()
            .running
            .retain(|(ticket, _)| *ticket != self.ticket);
        pipeline.worker_lease_ended.notify_waiters();
    }
}

impl Act {
    /// Whether the worker claims or runs a lease now (never from inside one of them).
    pub(super) fn worker_busy(&self) -> bool {
        IN_LEASE.try_with(|()| ()).is_err()
            && !self.inner.pipeline.worker_leases.lock().running.is_empty()
    }

    /// Waits until no lease of the worker can still be handling an event with an id up to
    /// `last` (every one in flight started past it); whether there was one to wait for.
    /// Returns `false` at once from inside a worker lease, and when the app stops.
    pub(super) async fn worker_leases_ended(&self, last: EventId) -> bool {
        if IN_LEASE.try_with(|()| ()).is_ok() {
            return false;
        }
        let pipeline = &self.inner.pipeline;
        let mut waited = false;
        loop {
            let ended = pipeline.worker_lease_ended.notified();
            tokio::pin!(ended);
            // Registered before the leases are read: an end in between is not missed.
            ended.as_mut().enable();
            let behind = pipeline
                .worker_leases
                .lock()
                .running
                .iter()
                .any(|&(_, at)| at < last);
            if !behind {
                return waited;
            }
            waited = true;
            tokio::select! {
                () = ended => {}
                () = pipeline.stopping.cancelled() => return false,
            }
        }
    }
}

/// How [`Act::start`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Claims, leases and batch sizes; `stream_limit` is how many leases run at once.
    pub drain: DrainOptions,
    /// Events scanned per correlate pass.
    pub correlate_limit: usize,
    /// How often to look for work with nothing else waking the worker (commits by other
    /// processes, retries they scheduled).
    pub poll: Duration,
    /// Wait this long after a local commit wakes the worker (coalesces bursts).
    pub debounce: Duration,
    /// The first pause after a store error; doubled on each error in a row.
    pub error_backoff: Duration,
    /// The longest pause after store errors.
    pub max_error_backoff: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            drain: DrainOptions::default(),
            correlate_limit: 100,
            poll: Duration::from_secs(1),
            debounce: Duration::from_millis(1),
            error_backoff: Duration::from_millis(100),
            max_error_backoff: Duration::from_secs(10),
        }
    }
}

pub(crate) struct Running {
    pub(crate) task: JoinHandle<()>,
    stop: CancellationToken,
}

/// A handle on the running worker of an app. Dropping it leaves the worker running;
/// [`Worker::stop`] or [`Act::shutdown`] stops it.
#[derive(Debug, Clone)]
#[must_use = "the worker runs until stopped: keep the handle to stop it, or call `shutdown`"]
pub struct Worker {
    stop: CancellationToken,
    app: Act,
}

impl Worker {
    /// Stops the worker: it takes no new work, lets the leases it is running end (bounded by
    /// their handlers' timeouts), and returns. The app stays usable.
    pub async fn stop(&self) {
        self.stop.cancel();
        let running = {
            let mut slot = self.app.inner.pipeline.worker.lock();
            match &*slot {
                Some(r) if r.stop.is_cancelled() => slot.take(),
                _ => None,
            }
        };
        if let Some(r) = running {
            let _ = r.task.await;
        }
    }

    /// Whether the worker is still running.
    pub fn is_running(&self) -> bool {
        !self.stop.is_cancelled()
    }
}

/// Waits for a doorbell: `true` when rung (a lag is a ring: rings were missed), `false` when
/// the store closed the subscription (or there is none).
async fn ring(doorbells: &mut Option<tokio::sync::broadcast::Receiver<()>>) -> bool {
    use tokio::sync::broadcast::error::RecvError;
    match doorbells {
        Some(rx) => match rx.recv().await {
            Ok(()) | Err(RecvError::Lagged(_)) => {
                // one wake-up for the burst
                while let Ok(()) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
                    rx.try_recv()
                {}
                true
            }
            Err(RecvError::Closed) => false,
        },
        None => false,
    }
}

impl Act {
    /// Starts the app's worker with default options (see [`Act::start_with`]).
    pub fn start(&self) -> Result<Worker, ActError> {
        self.start_with(WorkerOptions::default())
    }

    /// Starts the app's worker: a background task that keeps the reaction pipeline
    /// drained. It wakes on local commits, on other processes' doorbells when the store rings
    /// them ([`Store::wakeups`](crate::ports::Store::wakeups): PostgreSQL's `NOTIFY`), at the
    /// earliest retry a failure scheduled, and every `poll` (for work committed by other
    /// processes); it survives store errors with a capped exponential backoff, and emits
    /// [`Lifecycle::Settled`] each time it has caught up. One worker per app: while one
    /// runs, this returns a handle to it. [`Act::shutdown`] stops it within the shutdown
    /// grace.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use act_runtime::prelude::*;
    ///
    /// let app = act().build().unwrap();
    /// let worker = app.start().unwrap();
    /// assert!(worker.is_running());
    /// app.shutdown().await.unwrap(); // stops the worker too
    /// assert!(!worker.is_running());
    /// # });
    /// ```
    pub fn start_with(&self, options: WorkerOptions) -> Result<Worker, ActError> {
        self.check_live()?;
        let pipeline = &self.inner.pipeline;
        let mut slot = pipeline.worker.lock();
        if let Some(r) = &*slot
            && !r.stop.is_cancelled()
            && !r.task.is_finished()
        {
            return Ok(Worker {
                stop: r.stop.clone(),
                app: self.clone(),
            });
        }
        let stop = pipeline.stopping.child_token();
        let task = tokio::spawn(self.clone().work(options, stop.clone()));
        *slot = Some(Running {
            task,
            stop: stop.clone(),
        });
        Ok(Worker {
            stop,
            app: self.clone(),
        })
    }

    async fn work(self, options: WorkerOptions, stop: CancellationToken) {
        let pipeline = &self.inner.pipeline;
        let slots = options.drain.stream_limit.max(1);
        let mut running: JoinSet<Outcome> = JoinSet::new();
        let mut since = DrainSummary::default();
        let mut frontiers = Frontiers::default();
        let mut errors = 0u32;
        let mut reported = false;
        // other processes' doorbells, when the store can ring them (else: poll only)
        let mut doorbells = self.inner.store.wakeups();
        let absorb = |joined: Result<Outcome, tokio::task::JoinError>,
                      since: &mut DrainSummary,
                      frontiers: &mut Frontiers| match joined {
            Ok(outcome) => {
                frontiers.count(&outcome);
                since.add(outcome);
            }
            Err(e) => tracing::error!(error = %Report::new(&e), "a lease task failed"),
        };
        while !stop.is_cancelled() {
            let step = self
                .step(
                    &options,
                    slots - running.len(),
                    &mut running,
                    &mut frontiers,
                )
                .await;
            let (moved, claimed) = match step {
                Ok(s) => {
                    errors = 0;
                    s
                }
                Err(ActError::ShutDown) => break,
                Err(e) => {
                    errors = errors.saturating_add(1);
                    let pause = options
                        .error_backoff
                        .saturating_mul(1 << errors.min(16).saturating_sub(1))
                        .min(options.max_error_backoff);
                    tracing::warn!(error = %Report::new(&e), errors, ?pause, "the worker met a store error; it backs off");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                        Some(j) = running.join_next(), if !running.is_empty() => absorb(j, &mut since, &mut frontiers),
                    }
                    continue;
                }
            };
            while let Some(j) = running.try_join_next() {
                absorb(j, &mut since, &mut frontiers);
            }
            if moved || claimed > 0 {
                continue; // there may be more: claim again at once
            }
            if running.is_empty() {
                // caught up: report it once per stretch of work
                if !reported || !since.is_empty() {
                    self.emit(&Lifecycle::Settled(&since));
                    since = DrainSummary::default();
                    reported = true;
                }
            }
            let now = self.inner.clock.now();
            let wait = match pipeline.due(now) {
                Some(due) if due <= now => continue,
                Some(due) => (due - now).to_std().unwrap_or_default().min(options.poll),
                None => options.poll,
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = pipeline.wake.notified() => {
                    tokio::time::sleep(options.debounce).await;
                }
                rung = ring(&mut doorbells), if doorbells.is_some() => {
                    if rung {
                        tokio::time::sleep(options.debounce).await;
                    } else {
                        doorbells = None; // closed: keep polling
                    }
                }
                () = tokio::time::sleep(wait) => {}
                Some(j) = running.join_next(), if !running.is_empty() => absorb(j, &mut since, &mut frontiers),
            }
        }
        // stopped: let the running leases end (shutdown stops their handlers at its grace)
        while let Some(j) = running.join_next().await {
            absorb(j, &mut since, &mut frontiers);
        }
        if !since.is_empty() {
            self.emit(&Lifecycle::Settled(&since));
        }
    }

    /// One step: correlate, then claim into the free slots. Returns whether correlate
    /// moved and how many leases were claimed.
    async fn step(
        &self,
        options: &WorkerOptions,
        free: usize,
        running: &mut JoinSet<Outcome>,
        frontiers: &mut Frontiers,
    ) -> Result<(bool, usize), ActError> {
        self.check_live()?;
        self.init_reactions().await?;
        let before = self.inner.pipeline.checkpoint();
        let c = self.correlate(options.correlate_limit).await?;
        let moved = c.subscribed > 0 || c.last_id != before;
        if free == 0 {
            return Ok((moved, 0));
        }
        if frontiers.lagging + frontiers.leading > 0 {
            self.inner.pipeline.update_ratio(std::mem::take(frontiers));
        }
        // Counted from before the claim: a lease leased in the store but not yet running
        // is in flight too.
        let claiming = InFlight::new(self, EventId::MIN);
        let leases = self.claim_leases(free, &options.drain).await?;
        let claimed = leases.len();
        for lease in leases {
            let span = tracing::info_span!("act.lease", target = %lease.stream, at = lease.at);
            let held = InFlight::new(self, lease.at);
            let run = self.clone().run_lease(lease, options.drain);
            running.spawn(
                IN_LEASE
                    .scope((), async move {
                        let _held = held;
                        run.await
                    })
                    .instrument(span),
            );
        }
        drop(claiming);
        Ok((moved, claimed))
    }
}
