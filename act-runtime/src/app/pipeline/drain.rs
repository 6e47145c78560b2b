//! Drain: one pass — claim leases, run each in its own task (see `lease.rs`), summarize.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::lease::{End, Outcome};
use crate::app::Act;
use crate::error::ActError;
use crate::ports::{Lease, StreamPosition};

/// How much one drain pass may take on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOptions {
    /// Streams claimed per pass (split between the lagging and the leading frontier).
    pub stream_limit: usize,
    /// Events fetched per stream per pass.
    pub event_limit: usize,
    /// How long a claim holds before another drainer may take it over. A handler still
    /// running near the lease's end is stopped (and the attempt counts as a failure), so a
    /// lease is never handled by two drainers at once while its holder is alive.
    pub lease: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self {
            stream_limit: 10,
            event_limit: 10,
            lease: Duration::from_secs(30),
        }
    }
}

/// A stream blocked by a drain, with the error that blocked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The lease that was being handled; its `at` is the last event handled.
    pub lease: Lease,
    /// The error.
    pub error: String,
}

/// A stream whose reaction failed and will be tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retrying {
    /// The lease that was being handled; its `at` is the last event handled.
    pub lease: Lease,
    /// The error.
    pub error: String,
    /// When the next attempt may run.
    pub due: DateTime<Utc>,
}

/// What a drain pass (or a whole settle) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainSummary {
    /// Events fetched.
    pub fetched: usize,
    /// Events handled: every reaction routed to the claimed stream succeeded on them.
    pub handled: usize,
    /// Leases claimed.
    pub leased: Vec<Lease>,
    /// Leases acknowledged (their watermark moved, or their fetch found nothing to do).
    pub acked: Vec<Lease>,
    /// Streams blocked.
    pub blocked: Vec<Blocked>,
    /// Streams that failed and will be retried.
    pub retrying: Vec<Retrying>,
}

impl DrainSummary {
    /// Whether the pass moved anything forward.
    pub fn progressed(&self) -> bool {
        self.handled > 0
            || !self.blocked.is_empty()
            || self.acked.iter().any(|a| {
                self.leased
                    .iter()
                    .any(|l| l.stream == a.stream && l.at < a.at)
            })
    }

    /// Whether the pass did nothing at all.
    pub fn is_empty(&self) -> bool {
        self.leased.is_empty() && self.fetched == 0
    }

    pub(crate) fn absorb(&mut self, other: DrainSummary) {
        self.fetched += other.fetched;
        self.handled += other.handled;
        self.leased.extend(other.leased);
        self.acked.extend(other.acked);
        self.blocked.extend(other.blocked);
        self.retrying.extend(other.retrying);
    }

    pub(super) fn add(&mut self, outcome: Outcome) {
        self.fetched += outcome.fetched;
        self.handled += outcome.handled;
        self.leased.push(outcome.lease);
        match outcome.end {
            End::Acked(l) => self.acked.push(l),
            End::Blocked(b) => self.blocked.push(b),
            End::Retrying(r) => self.retrying.push(r),
            End::Released => {}
        }
    }
}

/// Handled counts per frontier, for the lagging/leading split of the next claim.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Frontiers {
    pub(super) lagging: usize,
    pub(super) leading: usize,
    pub(super) lagging_handled: usize,
    pub(super) leading_handled: usize,
}

impl Frontiers {
    pub(super) fn count(&mut self, outcome: &Outcome) {
        if outcome.lease.lagging {
            self.lagging += 1;
            self.lagging_handled += outcome.handled;
        } else {
            self.leading += 1;
            self.leading_handled += outcome.handled;
        }
    }
}

impl Act {
    /// One drain pass: claims streams with pending work and handles each claimed stream's
    /// events in order, streams in parallel, each in its own task. Each lease ends on its
    /// own — acknowledged, scheduled for a retry, or blocked — as soon as its handlers are
    /// done, whatever the others do. A handler attempt is stopped at its reaction's timeout
    /// or near the lease's end, a panic is caught; both count as failures. Returns at once
    /// with an empty summary when another drain pass of this app is running.
    ///
    /// Run [`Act::correlate`] first when the app has dynamic resolvers; [`Act::settle`] does
    /// both in a loop, and [`Act::start`] keeps doing it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use act_runtime::prelude::*;
    ///
    /// let app = act().build().unwrap();
    /// let pass = app.drain(DrainOptions::default()).await.unwrap();
    /// assert!(pass.leased.is_empty()); // no reactions, nothing to claim
    /// # });
    /// ```
    pub async fn drain(&self, options: DrainOptions) -> Result<DrainSummary, ActError> {
        self.check_live()?;
        self.init_reactions().await?;
        let Ok(pass) = self.inner.pipeline.drain_lock.try_lock() else {
            return Ok(DrainSummary::default());
        };
        self.drain_pass(options, pass).await
    }

    /// [`Act::drain`], but a pass of this app already running is waited for, then this one
    /// runs: what the other pass was handling is done when it returns.
    pub(super) async fn drain_after_others(
        &self,
        options: DrainOptions,
    ) -> Result<DrainSummary, ActError> {
        self.check_live()?;
        self.init_reactions().await?;
        let pass = self.inner.pipeline.drain_lock.lock().await;
        self.check_live()?;
        self.drain_pass(options, pass).await
    }

    /// One pass, holding the app's drain lock (`_pass`).
    async fn drain_pass(
        &self,
        options: DrainOptions,
        _pass: tokio::sync::MutexGuard<'_, ()>,
    ) -> Result<DrainSummary, ActError> {
        let pipeline = &self.inner.pipeline;
        let leases = self.claim_leases(options.stream_limit, &options).await?;
        let mut summary = DrainSummary::default();
        if leases.is_empty() {
            return Ok(summary);
        }
        let mut frontiers = Frontiers::default();
        let mut tasks = JoinSet::new();
        let pass = tracing::info_span!("act.drain", leases = leases.len());
        for lease in leases {
            let span = tracing::info_span!(parent: &pass, "act.lease", target = %lease.stream, at = lease.at);
            tasks.spawn(self.clone().run_lease(lease, options).instrument(span));
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(outcome) => {
                    frontiers.count(&outcome);
                    summary.add(outcome);
                }
                Err(join) => tracing::error!(error = %join, "a lease task failed"),
            }
        }
        pipeline.update_ratio(frontiers);
        Ok(summary)
    }

    /// Claims up to `slots` leases, split between the frontiers by the current ratio.
    pub(super) async fn claim_leases(
        &self,
        slots: usize,
        options: &DrainOptions,
    ) -> Result<Vec<Lease>, ActError> {
        let pipeline = &self.inner.pipeline;
        let limit = slots.max(1);
        let lagging = ((limit as f64) * pipeline.ratio()).ceil() as usize;
        let leading = limit.saturating_sub(lagging);
        Ok(self
            .inner
            .store
            .claim(lagging, leading, &pipeline.by, options.lease)
            .await?)
    }

    /// Rewinds streams so their events are handled again; returns how many were reset.
    pub async fn reset<S: AsRef<str>>(&self, streams: &[S]) -> Result<usize, ActError> {
        self.check_live()?;
        let n = self.inner.store.reset(&owned(streams)).await?;
        self.inner.pipeline.wake();
        Ok(n)
    }

    /// Unblocks blocked streams, keeping their progress; returns how many were blocked.
    /// Unblocking a poison row (`!resolve/...`) runs its resolver again.
    pub async fn unblock<S: AsRef<str>>(&self, streams: &[S]) -> Result<usize, ActError> {
        self.check_live()?;
        let n = self.inner.store.unblock(&owned(streams)).await?;
        self.inner.pipeline.wake();
        Ok(n)
    }

    /// The blocked streams, with their errors.
    pub async fn blocked_streams(&self) -> Result<Vec<StreamPosition>, ActError> {
        self.check_live()?;
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .inner
                .store
                .query_streams(&crate::ports::StreamFilter {
                    blocked: Some(true),
                    after: after.clone(),
                    limit: Some(100),
                    ..Default::default()
                })
                .await?;
            let done = page.len() < 100;
            after = page.last().map(|p| p.stream.clone());
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }
}

fn owned<S: AsRef<str>>(streams: &[S]) -> Vec<String> {
    streams.iter().map(|s| s.as_ref().to_owned()).collect()
}

impl super::Pipeline {
    pub(super) fn update_ratio(&self, f: Frontiers) {
        self.update_ratio_from(f.lagging_handled, f.leading_handled, f.lagging, f.leading);
    }
}
