//! Drain: claim → fetch → match → handle → block → ack.

use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;

use super::scope::Scope;
use crate::app::{Act, Lifecycle};
use crate::error::ActError;
use crate::model::{Committed, EventId};
use crate::ports::{Lease, Query, StreamMatch, StreamPosition};

/// How much one drain pass may take on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOptions {
    /// Streams claimed per pass (split between the lagging and the leading frontier).
    pub stream_limit: usize,
    /// Events fetched per stream per pass.
    pub event_limit: usize,
    /// How long a claim holds before another drainer may take it over.
    pub lease: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self {
            stream_limit: 10,
            event_limit: 10,
            lease: Duration::from_secs(10),
        }
    }
}

/// A stream blocked by a drain, with the error that blocked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The lease that was being handled.
    pub lease: Lease,
    /// The error.
    pub error: String,
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
    /// Leases acknowledged (their watermark moved).
    pub acked: Vec<Lease>,
    /// Streams blocked.
    pub blocked: Vec<Blocked>,
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

    pub(crate) fn absorb(&mut self, other: DrainSummary) {
        self.fetched += other.fetched;
        self.handled += other.handled;
        self.leased.extend(other.leased);
        self.acked.extend(other.acked);
        self.blocked.extend(other.blocked);
    }
}

/// The outcome of handling one lease.
struct Handled {
    lease: Lease,
    fetched: usize,
    /// Events completed (all their reactions succeeded).
    handled: usize,
    /// The watermark to ack.
    at: EventId,
    /// The failure, if any.
    error: Option<String>,
    block: bool,
    /// When to try again (backoff).
    retry_at: Option<chrono::DateTime<Utc>>,
}

impl Act {
    /// One drain pass: claims streams with pending work, handles their events in order
    /// (streams in parallel), blocks the streams whose reactions ran out of retries, then
    /// acknowledges the progress. Returns at once with an empty summary when another drain
    /// of this app is running.
    ///
    /// Run [`Act::correlate`] first when the app has dynamic resolvers; [`Act::settle`] does
    /// both in a loop.
    pub async fn drain(&self, options: DrainOptions) -> Result<DrainSummary, ActError> {
        self.check_live()?;
        self.init_reactions().await?;
        let pipeline = &self.inner.pipeline;
        let Ok(_guard) = pipeline.drain_lock.try_lock() else {
            return Ok(DrainSummary::default());
        };
        let ratio = pipeline.ratio();
        let limit = options.stream_limit.max(1);
        let lagging = ((limit as f64) * ratio).ceil() as usize;
        let leading = limit.saturating_sub(lagging);
        let leases = self
            .inner
            .store
            .claim(lagging, leading, &pipeline.by, options.lease)
            .await?;
        if leases.is_empty() {
            return Ok(DrainSummary::default());
        }

        let mut tasks = JoinSet::new();
        for lease in leases.iter().cloned() {
            let app = self.clone();
            let event_limit = options.event_limit.max(1);
            tasks.spawn(async move { app.handle_lease(lease, event_limit).await });
        }
        let mut results = Vec::with_capacity(leases.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(h)) => results.push(h),
                Ok(Err(e)) => return Err(e),
                Err(join) => {
                    tracing::error!(error = %join, "a drain task panicked");
                }
            }
        }
        // A lease whose fetch found nothing keeps its watermark. (Moving it to what other
        // leases fetched would be unsafe: their handlers commit while this pass runs, so an
        // event this lease never saw could fall below that mark.)

        // Block before ack, so a stream is never acked past an event that failed.
        let to_block: Vec<(Lease, String)> = results
            .iter()
            .filter(|h| h.block)
            .map(|h| (h.lease.clone(), h.error.clone().unwrap_or_default()))
            .collect();
        let blocked_rows: Vec<StreamPosition> = if to_block.is_empty() {
            vec![]
        } else {
            self.inner.store.block(&to_block).await?
        };
        let blocked: Vec<Blocked> = to_block
            .into_iter()
            .filter(|(l, _)| blocked_rows.iter().any(|r| r.stream == l.stream))
            .map(|(lease, error)| Blocked { lease, error })
            .collect();

        let mut submit = Vec::new();
        for h in &results {
            if h.block {
                continue;
            }
            let progressed = h.handled > 0 || h.error.is_none();
            let at = if progressed { h.at } else { h.lease.at };
            let due = match (&h.error, h.retry_at) {
                (None, _) => None,
                (Some(_), Some(t)) => Some(t),
                (Some(_), None) => Some(Utc::now()),
            };
            submit.push(Lease {
                at,
                due,
                ..h.lease.clone()
            });
        }
        let acked = if submit.is_empty() {
            vec![]
        } else {
            self.inner.store.ack(&submit).await?
        };
        let dropped = submit.len() - acked.len();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "acks dropped: their leases were taken over (raise the lease time)"
            );
        }

        pipeline.update_ratio(&results, lagging, leading);
        let summary = DrainSummary {
            fetched: results.iter().map(|h| h.fetched).sum(),
            handled: results.iter().map(|h| h.handled).sum(),
            leased: leases,
            acked: acked.into_iter().filter(|l| l.due.is_none()).collect(),
            blocked,
        };
        if !summary.acked.is_empty() {
            self.emit(&Lifecycle::Acked(&summary.acked));
        }
        if !summary.blocked.is_empty() {
            self.emit(&Lifecycle::Blocked(&summary.blocked));
        }
        Ok(summary)
    }

    async fn handle_lease(&self, lease: Lease, event_limit: usize) -> Result<Handled, ActError> {
        let mut query = Query::all().after(lease.at).limit(event_limit);
        query.stream = lease.source.clone().map(|s| {
            if lease.source_is_pattern {
                StreamMatch::Pattern(s)
            } else {
                StreamMatch::Exact(s)
            }
        });
        let events = self.query_inner(&query).await?;
        let fetched = events.len();
        let mut out = Handled {
            at: events.last().map_or(lease.at, |e| e.id),
            lease,
            fetched,
            handled: 0,
            error: None,
            block: false,
            retry_at: None,
        };
        let reactions = &self.inner.reactions;
        // The reactions that route each fetched event to this target, in order.
        let payloads: Vec<(&Committed, Vec<&super::entry::ReactionEntry>)> = events
            .iter()
            .map(|e| {
                let rs = reactions
                    .on(&e.name)
                    .filter(|r| {
                        r.resolver != super::Resolver::Void
                            && r.resolve(e)
                                .is_some_and(|res| res.target == out.lease.stream)
                    })
                    .collect();
                (e, rs)
            })
            .collect();
        if payloads.iter().all(|(_, rs)| rs.is_empty()) {
            return Ok(out); // nothing for this target: fast-forward
        }
        let options = payloads
            .iter()
            .find_map(|(_, rs)| rs.first())
            .map(|r| r.options)
            .unwrap_or_default();
        if options.block_on_error && out.lease.retry > options.max_retries as i32 {
            out.error = Some(format!(
                "blocked `{}` after {} claims without progress: the lease expired every time; raise the lease time, then unblock",
                out.lease.stream, out.lease.retry
            ));
            out.block = true;
            out.at = out.lease.at;
            return Ok(out);
        }
        let mut at = out.lease.at;
        for (event, rs) in payloads {
            let has_reactions = !rs.is_empty();
            if has_reactions {
                let scope = Scope::new(self.clone(), event);
                for r in rs {
                    if let Err(e) = r.handle(event, &scope).await {
                        let opts = r.options;
                        let block = opts.block_on_error
                            && (!e.is_retryable() || out.lease.retry >= opts.max_retries as i32);
                        tracing::warn!(reaction = r.name, stream = %out.lease.stream, event = event.id, retry = out.lease.retry, block, error = %e, "reaction failed");
                        out.error = Some(format!(
                            "{} on event {} ({}): {e}",
                            r.name, event.id, event.name
                        ));
                        out.block = block;
                        if !block {
                            out.retry_at = opts.backoff.map(|b| {
                                Utc::now()
                                    + chrono::Duration::milliseconds(
                                        b.delay_ms(out.lease.retry) as i64
                                    )
                            });
                        }
                        out.at = at;
                        return Ok(out);
                    }
                }
            }
            at = event.id;
            if has_reactions {
                out.handled += 1;
            }
        }
        out.at = out.at.max(at);
        Ok(out)
    }

    /// Rewinds streams so their events are handled again; returns how many were reset.
    pub async fn reset(&self, streams: &[String]) -> Result<usize, ActError> {
        Ok(self.inner.store.reset(streams).await?)
    }

    /// Unblocks blocked streams, keeping their progress; returns how many were blocked.
    pub async fn unblock(&self, streams: &[String]) -> Result<usize, ActError> {
        Ok(self.inner.store.unblock(streams).await?)
    }

    /// The blocked streams, with their errors.
    pub async fn blocked_streams(&self) -> Result<Vec<StreamPosition>, ActError> {
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

impl super::Pipeline {
    fn update_ratio(&self, results: &[Handled], lagging: usize, leading: usize) {
        let (mut lag, mut lead) = (0, 0);
        for h in results {
            if h.lease.lagging {
                lag += h.handled;
            } else {
                lead += h.handled;
            }
        }
        self.update_ratio_from(lag, lead, lagging, leading);
    }
}
