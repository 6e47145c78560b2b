//! Settle: the production loop — debounce, then correlate → drain until nothing moves.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::drain::{DrainOptions, DrainSummary};
use crate::app::{Act, Lifecycle};
use crate::error::{ActError, Report};
use crate::model::EventId;
use crate::ports::Query;

impl Act {
    /// The id of the log's last event (`-1` when it is empty).
    async fn last_event_id(&self) -> Result<EventId, ActError> {
        let mut last = -1;
        self.inner
            .store
            .query(&Query::all().backward().limit(1), &mut |e| last = e.id)
            .await?;
        Ok(last)
    }
}

/// Resets the settling flag if the settle task ends without resetting it (a panic, an
/// abort), so that a later [`Act::settle`] starts a new one.
struct Settling<'a> {
    flag: &'a std::sync::atomic::AtomicBool,
    held: bool,
}

impl Settling<'_> {
    /// Clears the flag; `true` if the task got it back (another wake-up came in between).
    fn release_and_retake(&mut self) -> bool {
        self.flag.store(false, Ordering::SeqCst);
        self.held = !self.flag.swap(true, Ordering::SeqCst);
        self.held
    }
}

impl Drop for Settling<'_> {
    fn drop(&mut self) {
        if self.held {
            self.flag.store(false, Ordering::SeqCst);
        }
    }
}

/// How [`Act::settle`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleOptions {
    /// Wait this long after the last wake-up before running (coalesces bursts of commits).
    pub debounce: Duration,
    /// Events scanned per correlate pass.
    pub correlate_limit: usize,
    /// Stop after this many passes even if work remains (`usize::MAX`: until done).
    pub max_passes: usize,
    /// Each drain pass's limits.
    pub drain: DrainOptions,
}

impl Default for SettleOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(10),
            correlate_limit: 100,
            max_passes: usize::MAX,
            drain: DrainOptions::default(),
        }
    }
}

impl Act {
    /// Starts settling in the background and returns at once: after the debounce, runs
    /// correlate → drain until a pass makes no progress, then emits
    /// [`Lifecycle::Settled`] with the accumulated summary. A call while a settle is running
    /// is not lost: the running settle goes round again.
    pub fn settle(&self) {
        self.settle_with(SettleOptions::default());
    }

    /// [`Act::settle`] with options.
    pub fn settle_with(&self, options: SettleOptions) {
        let pipeline = &self.inner.pipeline;
        if self.check_live().is_err() {
            return;
        }
        pipeline.rearm.store(true, Ordering::SeqCst);
        if pipeline.settling.swap(true, Ordering::SeqCst) {
            return; // the running loop will see the re-arm
        }
        let app = self.clone();
        let handle = tokio::spawn(async move {
            let p = &app.inner.pipeline;
            let mut flag = Settling {
                flag: &p.settling,
                held: true,
            };
            loop {
                tokio::select! {
                    () = tokio::time::sleep(options.debounce) => {}
                    () = p.stopping.cancelled() => return,
                }
                p.rearm.store(false, Ordering::SeqCst);
                match app.settle_now(options).await {
                    Ok(summary) => app.emit(&Lifecycle::Settled(&summary)),
                    Err(ActError::ShutDown) => {}
                    Err(e) => tracing::error!(error = %Report::new(&e), "settle failed"),
                }
                if app.check_live().is_err() {
                    return;
                }
                if p.rearm.load(Ordering::SeqCst) {
                    continue;
                }
                // a wake-up between the check and the release would be lost: look again
                if !flag.release_and_retake() {
                    return;
                }
                if !p.rearm.load(Ordering::SeqCst) {
                    flag.held = false;
                    p.settling.store(false, Ordering::SeqCst);
                    return;
                }
            }
        });
        *pipeline.settle_task.lock() = Some(handle);
    }

    /// Runs correlate → drain passes until one makes no progress (or `max_passes`), and
    /// returns everything they did. What [`Act::settle`] runs in the background. A drain
    /// pass of this app already running (the background settle's, another [`Act::drain`]
    /// call's) is waited for before each of its own, so the events that pass was handling
    /// are handled when this returns. So are the leases a running [`Act::start`] worker of
    /// this app claimed: once its own passes are caught up, it waits for them to end, then
    /// passes again (unless called from inside a handler the worker runs). The leases other
    /// processes hold are not waited for. Retries scheduled with a backoff are not waited
    /// for: the worker runs them when due.
    pub async fn settle_now(&self, options: SettleOptions) -> Result<DrainSummary, ActError> {
        self.check_live()?;
        let mut total = DrainSummary::default();
        let mut passes = 0;
        let mut last = None;
        while passes < options.max_passes && !self.inner.pipeline.stopping.is_cancelled() {
            passes += 1;
            let before = self.inner.pipeline.checkpoint();
            let c = self.correlate(options.correlate_limit).await?;
            let d = self.drain_after_others(options.drain).await?;
            let progressed = c.subscribed > 0 || c.last_id != before || d.progressed();
            total.absorb(d);
            if !progressed {
                // Caught up, but the worker may still be handling what it claimed: wait for
                // its leases that can hold events up to the log's last id when it was first
                // found busy, then look again (their handlers may have made more work).
                if !self.worker_busy() {
                    break;
                }
                let last = match last {
                    Some(last) => last,
                    None => *last.insert(self.last_event_id().await?),
                };
                if !self.worker_leases_ended(last).await {
                    break;
                }
            }
        }
        Ok(total)
    }
}
