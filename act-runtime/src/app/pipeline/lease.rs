//! One lease: fetch → match → handle (each attempt with a deadline, panics caught) → block
//! or ack. A lease always ends on its own: no other lease's hang, fetch error or failure
//! delays or aborts it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::Instrument as _;

use super::correlate::{ANY_REACTION, parse_poison, source_filter};
use super::drain::{Blocked, DrainOptions, Retrying};
use super::guard::{self, Failure};
use super::{Scope, chrono_ms};
use crate::app::{Act, Lifecycle, telemetry};
use crate::error::{Report, StoreError};
use crate::model::{Committed, EventId};
use crate::ports::{Lease, Query, Subscription};
use crate::projections::{Model, ProjectionEntry, is_gap};
use crate::reactions::{ReactionEntry, ReactionOptions, Resolver};

/// How a lease ended.
#[derive(Debug)]
pub(super) enum End {
    /// Acknowledged: the watermark moved to the lease's `at`.
    Acked(Lease),
    /// Blocked with an error, at the last event handled.
    Blocked(Blocked),
    /// Failed; retried when due.
    Retrying(Retrying),
    /// Nothing was recorded (a store error, or shutdown): the lease expires by itself.
    Released,
}

/// What handling one lease did.
#[derive(Debug)]
pub(super) struct Outcome {
    /// The lease as claimed.
    pub(super) lease: Lease,
    pub(super) fetched: usize,
    /// Events completed (all their reactions succeeded).
    pub(super) handled: usize,
    pub(super) end: End,
}

/// How long before a lease's end its handlers are stopped.
fn margin(lease: Duration) -> Duration {
    (lease / 10).min(Duration::from_secs(1))
}

/// An unreadable event met while fetching.
struct Unreadable {
    error: String,
}

impl Act {
    /// Runs one claimed lease to its end.
    pub(super) async fn run_lease(self, lease: Lease, options: DrainOptions) -> Outcome {
        let deadline = Instant::now() + options.lease.saturating_sub(margin(options.lease));
        let mut run = Run {
            app: &self,
            outcome: Outcome {
                lease,
                fetched: 0,
                handled: 0,
                end: End::Released,
            },
            deadline,
            last_created: None,
        };
        let projection = self
            .inner
            .reactions
            .projection(&run.outcome.lease.stream)
            .cloned();
        let end = if parse_poison(&run.outcome.lease.stream).is_some() {
            run.resolve_again(options.event_limit).await
        } else if let Some(p) = projection {
            run.project(&p, options.event_limit).await
        } else {
            run.handle(options.event_limit).await
        };
        let end = run.finish(end).await;
        run.outcome.end = end;
        run.outcome
    }
}

/// The decision a lease's handling reaches, before it is recorded in the store.
enum Decision {
    /// Acknowledge progress up to `at`.
    Ack(EventId),
    /// Block at `at` (the last event handled) with the error.
    Block(EventId, String),
    /// Retry after `delay`, keeping progress up to `at`; the row's retry count becomes
    /// the last field (the failed attempts of the event it stopped at, less one).
    Retry(EventId, String, Duration, i32),
    /// Rewind the row to the start (a projection's model missed events), with why.
    Rewind(String),
    /// Record nothing.
    Release,
}

struct Run<'a> {
    app: &'a Act,
    outcome: Outcome,
    deadline: Instant,
    /// When the last event handled was committed (for the lag gauge).
    last_created: Option<DateTime<Utc>>,
}

impl Run<'_> {
    fn lease(&self) -> &Lease {
        &self.outcome.lease
    }

    /// Fetches the lease's next events. An unreadable event ends the batch: the events
    /// before it are returned with it.
    async fn fetch(
        &mut self,
        limit: usize,
    ) -> Result<(Vec<Committed>, Option<Unreadable>), StoreError> {
        let lease = self.lease();
        let mut query = Query::all().after(lease.at).limit(limit.max(1));
        query.stream = source_filter(lease.source.as_deref(), lease.source_is_pattern);
        self.fetch_with(query).await
    }

    /// Fetches the events `query` selects, as [`Run::fetch`] does.
    async fn fetch_with(
        &mut self,
        query: Query,
    ) -> Result<(Vec<Committed>, Option<Unreadable>), StoreError> {
        let mut events = Vec::new();
        let store = &self.app.inner.store;
        let unreadable = match store.query(&query, &mut |e| events.push(e.clone())).await {
            Ok(_) => None,
            Err(StoreError::Corrupt { id, stream, reason }) => {
                events.clear();
                let before = query.before(id);
                store
                    .query(&before, &mut |e| events.push(e.clone()))
                    .await?;
                Some(Unreadable {
                    error: format!("event {id} on stream `{stream}` cannot be read: {reason}"),
                })
            }
            Err(e) => return Err(e),
        };
        self.outcome.fetched = events.len();
        Ok((events, unreadable))
    }

    /// Handles the events of an ordinary target.
    async fn handle(&mut self, event_limit: usize) -> Decision {
        let (events, unreadable) = match self.fetch(event_limit).await {
            Ok(r) => r,
            Err(e) => return self.store_failed("fetch", e),
        };
        let app = self.app;
        let target = self.lease().stream.clone();
        // The reactions that route each fetched event to this target, in order.
        let routed: Vec<(&Committed, Vec<&ReactionEntry>)> = events
            .iter()
            .map(|e| {
                let rs = app
                    .inner
                    .reactions
                    .on(&e.name)
                    .filter(|r| {
                        r.resolver() != Resolver::Void
                            && matches!(r.try_resolve(e), Ok(Some(res)) if res.target == target)
                    })
                    .collect();
                (e, rs)
            })
            .collect();
        let first = routed.iter().find_map(|(_, rs)| rs.first()).copied();
        let mut at = self.lease().at;
        if let Some(r) = first {
            let opts = r.options();
            let retry = self.lease().retry;
            if opts.block_on_error && retry > opts.max_retries as i32 {
                return Decision::Block(
                    at,
                    format!(
                        "blocked `{target}` after {retry} claims without progress: its drainer stopped (crashed or was killed) before each lease ended"
                    ),
                );
            }
        }
        for (event, rs) in &routed {
            if !rs.is_empty() {
                let scope = Scope::new(app.clone(), event, &target);
                for r in rs {
                    let now = Instant::now();
                    let left = self.deadline.saturating_duration_since(now);
                    if left.is_zero() {
                        // the lease's time is up between two handlers: keep what is done
                        return Decision::Ack(at);
                    }
                    let timeout = r.options().timeout;
                    let (budget, lease_end) = if left < timeout {
                        (left, true)
                    } else {
                        (timeout, false)
                    };
                    let span = tracing::info_span!(
                        "act.reaction",
                        reaction = r.name(),
                        target = %target,
                        event = event.id,
                        name = %event.name,
                        correlation = %event.meta.correlation,
                    );
                    telemetry::follow(&span, event.meta.causation.trace.as_deref());
                    let attempt = guard::attempt(
                        Box::pin(r.handle(event, &scope).instrument(span)),
                        budget,
                        lease_end,
                        &app.inner.pipeline.aborting,
                    )
                    .await;
                    if let Err(failure) = attempt {
                        return self.failed(r.name(), r.options(), event, at, failure);
                    }
                }
                self.outcome.handled += 1;
                self.last_created = Some(event.created);
            }
            at = event.id;
        }
        match unreadable {
            Some(u) => Decision::Block(at, u.error),
            None => Decision::Ack(at),
        }
    }

    /// Feeds a projection the events of its lease, one by one or as one batch, under one
    /// deadline; progress made before a failure is kept. A model that reports a
    /// [`ProjectionGap`](crate::projections::ProjectionGap) rewinds the row.
    async fn project(&mut self, p: &ProjectionEntry, event_limit: usize) -> Decision {
        let lease = self.lease();
        let query = Query::all()
            .after(lease.at)
            .limit(event_limit.max(1))
            .names(p.events().iter().copied());
        let (events, unreadable) = match self.fetch_with(query).await {
            Ok(r) => r,
            Err(e) => return self.store_failed("fetch", e),
        };
        let start = self.lease().at;
        let opts = p.options();
        let retry = self.lease().retry;
        if !events.is_empty() && opts.block_on_error && retry > opts.max_retries as i32 {
            return Decision::Block(
                start,
                format!(
                    "blocked `{}` after {retry} claims without progress: its drainer stopped (crashed or was killed) before each lease ended",
                    p.name()
                ),
            );
        }
        let applied = AtomicI64::new(start);
        let attempt = if events.is_empty() {
            Ok(())
        } else {
            let left = self.deadline.saturating_duration_since(Instant::now());
            let (budget, lease_end) = if left < opts.timeout {
                (left, true)
            } else {
                (opts.timeout, false)
            };
            let span = tracing::info_span!(
                "act.projection",
                projection = p.name(),
                after = start,
                events = events.len(),
            );
            guard::attempt(
                Box::pin(
                    p.apply(Model::Live, start, &events, &applied)
                        .instrument(span),
                ),
                budget,
                lease_end,
                &self.app.inner.pipeline.aborting,
            )
            .await
        };
        let upto = applied.load(Ordering::Acquire);
        self.outcome.handled = events.iter().take_while(|e| e.id <= upto).count();
        self.last_created = events
            .iter()
            .take_while(|e| e.id <= upto)
            .last()
            .map(|e| e.created);
        match attempt {
            Ok(()) => match unreadable {
                Some(u) => Decision::Block(upto, u.error),
                None => Decision::Ack(upto),
            },
            Err(Failure::Failed(e)) if is_gap(&e) => {
                Decision::Rewind(format!("projection `{}`: {}", p.name(), Report::new(&e)))
            }
            Err(failure) => {
                let Some(event) = events.iter().find(|e| e.id > upto) else {
                    return Decision::Ack(upto);
                };
                self.failed(p.name(), opts, event, upto, failure)
            }
        }
    }

    /// Re-runs the resolvers of a poison row: on success their targets are subscribed and
    /// the row is acked; a resolver that fails again blocks the row with its error.
    async fn resolve_again(&mut self, event_limit: usize) -> Decision {
        let (events, unreadable) = match self.fetch(event_limit).await {
            Ok(r) => r,
            Err(e) => return self.store_failed("fetch", e),
        };
        let Some((reaction, _)) = parse_poison(&self.lease().stream) else {
            return Decision::Release;
        };
        let mut subs: Vec<Subscription> = Vec::new();
        let mut at = self.lease().at;
        for e in &events {
            let dynamic = self.app.inner.reactions.on(&e.name).filter(|r| {
                !r.resolver().is_static() && (reaction == ANY_REACTION || r.name() == reaction)
            });
            for r in dynamic {
                match r.try_resolve(e) {
                    Ok(None) => {}
                    Ok(Some(res)) => {
                        if let Err(why) =
                            super::correlate::check_resolved(&res, &self.app.inner.reactions)
                        {
                            return Decision::Block(
                                at,
                                format!("{} on event {} ({}): {why}", r.name(), e.id, e.name),
                            );
                        }
                        let mark = super::correlate::in_window(
                            res.source.as_deref(),
                            res.source_is_pattern,
                            &e.stream,
                        )
                        .then_some(e.id);
                        subs.push(res.subscription(mark));
                    }
                    Err(f) => {
                        return Decision::Block(
                            at,
                            format!("{} on event {} ({}): {f}", r.name(), e.id, e.name),
                        );
                    }
                }
            }
            at = e.id;
        }
        if !subs.is_empty() {
            match self.app.inner.store.subscribe(&subs, None).await {
                Ok(_) => self.app.inner.pipeline.wake(),
                Err(StoreError::Invalid(v)) => {
                    return Decision::Block(
                        self.lease().at,
                        format!("a resolved target is refused by the store: {v}"),
                    );
                }
                Err(e) => return self.store_failed("subscribe", e),
            }
        }
        self.outcome.handled = events.len();
        match unreadable {
            Some(u) => Decision::Block(at, u.error),
            None => Decision::Ack(at),
        }
    }

    /// The decision after a failed attempt: block when the failure cannot succeed later or
    /// the retry budget is spent, else retry with backoff.
    fn failed(
        &self,
        name: &str,
        opts: ReactionOptions,
        event: &Committed,
        at: EventId,
        failure: Failure,
    ) -> Decision {
        if matches!(failure, Failure::Aborted) {
            return Decision::Ack(at);
        }
        // The failed attempts of this event before this one: the row's count when the
        // lease stopped at its first event, none when it made progress first.
        let retry = if at > self.lease().at {
            0
        } else {
            self.lease().retry
        };
        let block =
            opts.block_on_error && (!failure.is_retryable() || retry >= opts.max_retries as i32);
        let stream = &self.lease().stream;
        tracing::warn!(reaction = name, %stream, event = event.id, retry, block, error = %failure, "reaction failed");
        let error = format!("{name} on event {} ({}): {failure}", event.id, event.name);
        if block {
            Decision::Block(at, error)
        } else {
            let delay = opts
                .backoff
                .map_or(Duration::ZERO, |b| Duration::from_millis(b.delay_ms(retry)));
            Decision::Retry(at, error, delay, retry)
        }
    }

    /// A store call failed: a refusal (the row's source is a pattern the store cannot
    /// express, ...) blocks the stream; anything else hands the lease back for a retry
    /// soon, progress kept.
    fn store_failed(&self, op: &str, e: StoreError) -> Decision {
        if let StoreError::Invalid(v) = &e {
            return Decision::Block(
                self.lease().at,
                format!("{op} of the stream's events is refused by the store: {v}"),
            );
        }
        tracing::warn!(stream = %self.lease().stream, error = %Report::new(&e), "drain {op} failed; the stream is retried");
        // not the handler's failure: the next claim must not count against its budget
        Decision::Retry(
            self.lease().at,
            format!("{op} failed: {}", Report::new(&e)),
            Duration::from_secs(1),
            (self.lease().retry - 1).max(-1),
        )
    }

    /// Records the decision in the store and tells the listeners.
    async fn finish(&mut self, decision: Decision) -> End {
        let app = self.app;
        let store = &app.inner.store;
        let lease = self.lease().clone();
        match decision {
            Decision::Release => End::Released,
            Decision::Rewind(why) => {
                tracing::warn!(stream = %lease.stream, %why, "rewinding the projection: its events are delivered again from the start");
                match store.reset(std::slice::from_ref(&lease.stream)).await {
                    Ok(_) => app.inner.pipeline.wake(),
                    Err(e) => {
                        tracing::warn!(stream = %lease.stream, error = %Report::new(&e), "rewind failed; the lease expires by itself");
                    }
                }
                End::Released
            }
            Decision::Ack(at) => {
                let acked = Lease { at, ..lease };
                match store.ack(std::slice::from_ref(&acked)).await {
                    Ok(done) if !done.is_empty() => {
                        if let Some(created) = self.last_created {
                            telemetry::lag(&acked.stream, created);
                        }
                        app.emit(&Lifecycle::Acked(&done));
                        End::Acked(acked)
                    }
                    Ok(_) => {
                        tracing::warn!(stream = %acked.stream, "ack dropped: the lease was taken over (raise the lease time)");
                        End::Released
                    }
                    Err(e) => {
                        tracing::warn!(stream = %acked.stream, error = %Report::new(&e), "ack failed; the lease expires by itself");
                        End::Released
                    }
                }
            }
            Decision::Retry(at, error, delay, retry) => {
                let due = app.inner.clock.now() + chrono_ms(delay);
                let handed = Lease {
                    at,
                    retry,
                    due: Some(due),
                    ..lease
                };
                match store.ack(std::slice::from_ref(&handed)).await {
                    Ok(done) if !done.is_empty() => {
                        telemetry::retrying(&handed.stream);
                        app.inner.pipeline.schedule(due);
                        let retrying = Retrying {
                            lease: Lease {
                                due: None,
                                ..handed
                            },
                            error,
                            due,
                        };
                        app.emit(&Lifecycle::Retrying(std::slice::from_ref(&retrying)));
                        End::Retrying(retrying)
                    }
                    Ok(_) => End::Released,
                    Err(e) => {
                        tracing::warn!(stream = %handed.stream, error = %Report::new(&e), "retry hand-back failed; the lease expires by itself");
                        End::Released
                    }
                }
            }
            Decision::Block(at, error) => {
                let blocked = Lease { at, ..lease };
                match store.block(&[(blocked.clone(), error.clone())]).await {
                    Ok(rows) if rows.iter().any(|r| r.stream == blocked.stream) => {
                        telemetry::blocked(&blocked.stream);
                        let b = Blocked {
                            lease: blocked,
                            error,
                        };
                        app.emit(&Lifecycle::Blocked(std::slice::from_ref(&b)));
                        End::Blocked(b)
                    }
                    Ok(_) => End::Released,
                    Err(e) => {
                        tracing::warn!(stream = %blocked.stream, error = %Report::new(&e), "block failed; the lease expires by itself");
                        End::Released
                    }
                }
            }
        }
    }
}
