//! Closing the books: retire streams for good, or restart them from a snapshot of their
//! final state, after their reactions are done and their events are archived.
//!
//! ```text
//! correlate ─► heads ─► safety ─► guard ─► final state ─► archive ─► truncate ─► cache ─► Closed
//! (catch up)  (last    (pending  (__tomb-  (restart       (callback,  (seed at    (warm or
//!              event)   work?)    stone__)  targets)       per stream) version 0)  invalidate)
//! ```
//!
//! The guard is a `__tombstone__` committed at the stream's head version: a writer that
//! commits first makes it conflict (the stream is skipped, the writer's event kept), and
//! every write after it fails with [`StreamClosedError`](crate::error::StreamClosedError).
//! A close interrupted after the guard (a store failure, a failing archive) leaves the
//! stream guarded; the next close of it resumes there. A stream already closed is reported
//! and left alone, so closing twice changes nothing.

mod archive;
mod phases;
mod report;
mod target;

pub use report::{CloseReport, ClosedStream, SkipReason, Skipped};
pub use target::CloseTarget;

use archive::{ArchiveFn, Archiver, NoArchive};
use target::{Final, RestartAs};

use std::collections::HashMap;
use std::future::Future;

use super::pipeline::in_window;
use super::snapshots;
use super::{Act, Lifecycle, validate_stream};
use crate::error::{ActError, Report, StoreError};
use crate::model::{
    ActionCause, Actor, BoxError, Causation, Committed, Data, Emits, Event, EventId, EventMeta,
    MAX_EVENT_DEPTH, Message, SNAPSHOT_EVENT, TOMBSTONE_EVENT, Version,
};
use crate::ports::{CacheEntry, CachedState, Query, StreamFilter, StreamPosition, TruncateTarget};
use crate::reactions::{BoxFuture, Resolver};

/// The name of the action the close cycle's events are caused by (in their metadata).
pub const CLOSE_ACTION: &str = "__close__";

/// At most this many events per correlation pass while catching up before a close.
const CORRELATE_LIMIT: usize = 1000;
/// At most this many correlation passes while catching up before a close.
const CORRELATE_PASSES: usize = 20;
/// Subscription rows read per page by the safety check.
const ROWS_PAGE: usize = 100;

/// Where a target stands after the head lookup.
enum Head {
    /// Open, with its last event (snapshots included) at this version.
    Open { version: Version },
    /// Guarded by an earlier close that did not finish: the tombstone's id.
    Guarded { tombstone: EventId },
}

/// A target past the head lookup.
struct Candidate {
    index: usize,
    stream: String,
    restart: Option<RestartAs>,
    head: Head,
}

/// A target guarded by its tombstone.
struct Guarded {
    index: usize,
    stream: String,
    restart: Option<RestartAs>,
    /// The guard tombstone's id.
    tombstone: EventId,
    /// Whether an earlier close committed the guard.
    resumed: bool,
    /// The restart target's final state (phase 5).
    seed: Option<Final>,
}

impl Act {
    /// Closes the books on `targets`: each stream is either retired (its events replaced by
    /// a tombstone, see [`CloseTarget::new`]) or restarted from a snapshot of its final
    /// state (see [`CloseTarget::restart`]).
    ///
    /// The cycle, per stream:
    /// 1. **correlate**: the reaction pipeline's correlation catches up, so the work the
    ///    stream's events make for dynamic reactions is known;
    /// 2. **head**: the stream's last event. A stream without events, or already closed,
    ///    is skipped; one guarded by an interrupted close resumes (the safety check runs
    ///    again, no second tombstone is committed);
    /// 3. **safety**: a stream whose events some reaction has yet to handle is skipped
    ///    ([`SkipReason::PendingReactions`]); an app without reactions skips the check;
    /// 4. **guard**: a `__tombstone__` is committed at the head's version, so a concurrent
    ///    writer either wins (the stream is skipped with [`SkipReason::ConcurrentWrite`])
    ///    or gets [`StreamClosedError`](crate::error::StreamClosedError) from then on;
    /// 5. **final state** of the restart targets, folded while guarded;
    /// 6. **archive** (with [`Act::close_with`]);
    /// 7. **truncate**: in one atomic store call, every stream's events are replaced by its
    ///    seed at version 0 (the snapshot, or a tombstone); then the cache is warmed with
    ///    the restarted states and invalidated for the others, and
    ///    [`Lifecycle::Closed`] is emitted with the report.
    ///
    /// Idempotent: a closed stream is reported as [`SkipReason::AlreadyClosed`] and left
    /// alone. On a store error the call returns it; every stream is then either untouched,
    /// guarded (a second close finishes it) or closed.
    ///
    /// Fails before anything is written on a bad stream name ([`ActError::Validation`])
    /// or a restart state the app does not register ([`ActError::UnknownState`]).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use act_runtime::app::{CloseTarget, SkipReason};
    /// use act_runtime::prelude::*;
    /// # #[state(name = "Counter", actions(Increment))]
    /// # #[derive(Debug, Clone, Default, PartialEq)]
    /// # pub struct Counter { pub count: i64 }
    /// # #[emits(Counter)]
    /// # pub enum CounterEvent { Incremented { by: i64 } }
    /// # impl Patch<CounterEvent> for Counter {
    /// #     fn patch(&mut self, e: &CounterEvent) {
    /// #         match e { CounterEvent::Incremented { by } => self.count += by }
    /// #     }
    /// # }
    /// # #[action(Counter, emit = CounterEvent::Incremented)]
    /// # pub struct Increment { pub by: i64 }
    ///
    /// let app = act().with_state::<Counter>().build().unwrap();
    /// let who = Actor::new("u1", "Ada");
    /// for stream in ["c-1", "c-2"] {
    ///     app.execute(Increment { by: 2 }, Target::new(stream, who.clone())).await.unwrap();
    /// }
    ///
    /// let report = app
    ///     .close([CloseTarget::new("c-1"), CloseTarget::restart::<Counter>("c-2")])
    ///     .await
    ///     .unwrap();
    /// assert!(report.is_closed("c-1") && report.is_closed("c-2"));
    ///
    /// // c-1 takes no more writes; c-2 kept its state and goes on at version 1.
    /// let err = app.execute(Increment { by: 1 }, Target::new("c-1", who.clone())).await;
    /// assert!(matches!(err, Err(ActError::StreamClosed(_))));
    /// assert_eq!(app.load::<Counter>("c-2").await.unwrap().state.count, 2);
    /// let next = app.execute(Increment { by: 1 }, Target::new("c-2", who)).await.unwrap();
    /// assert_eq!(next.snapshot.version, 1);
    ///
    /// // Closing again changes nothing.
    /// let again = app.close([CloseTarget::new("c-1")]).await.unwrap();
    /// assert_eq!(again.skip_reason("c-1"), Some(&SkipReason::AlreadyClosed));
    /// # });
    /// ```
    pub async fn close(
        &self,
        targets: impl IntoIterator<Item = impl Into<CloseTarget>>,
    ) -> Result<CloseReport, ActError> {
        self.check_live()?;
        self.close_cycle(targets, &NoArchive).await
    }

    /// [`Act::close`], handing each stream's events to `archive` before they are deleted.
    ///
    /// `archive(stream, events)` runs once per stream, one stream at a time, after the
    /// guard (the events cannot change any more). `events` are every event before the
    /// tombstone, in order, snapshots left out (they are derived from the events). When
    /// it fails or panics, the stream is skipped with [`SkipReason::ArchiveFailed`] and stays
    /// guarded: a later close runs the archive again, then finishes. The archive is *at
    /// least once*: a close that fails after archiving (the truncate failed) archives the
    /// stream again when it resumes, so make it idempotent (key it by stream and event id).
    /// It runs while this app's close is under way: it must not call `close` itself
    /// (closes in one process run one at a time, so that call would wait forever).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::{Arc, Mutex};
    /// use act_runtime::app::CloseTarget;
    /// use act_runtime::prelude::*;
    /// # #[state(name = "Counter", actions(Increment))]
    /// # #[derive(Debug, Clone, Default, PartialEq)]
    /// # pub struct Counter { pub count: i64 }
    /// # #[emits(Counter)]
    /// # pub enum CounterEvent { Incremented { by: i64 } }
    /// # impl Patch<CounterEvent> for Counter {
    /// #     fn patch(&mut self, e: &CounterEvent) {
    /// #         match e { CounterEvent::Incremented { by } => self.count += by }
    /// #     }
    /// # }
    /// # #[action(Counter, emit = CounterEvent::Incremented)]
    /// # pub struct Increment { pub by: i64 }
    ///
    /// let app = act().with_state::<Counter>().build().unwrap();
    /// for by in [1, 2, 3] {
    ///     app.execute(Increment { by }, Target::new("c-1", Actor::new("u1", "Ada")))
    ///         .await
    ///         .unwrap();
    /// }
    /// let archived = Arc::new(Mutex::new(Vec::new()));
    /// let sink = archived.clone();
    /// let report = app
    ///     .close_with([CloseTarget::new("c-1")], move |stream, events| {
    ///         let sink = sink.clone();
    ///         async move {
    ///             sink.lock().unwrap().push((stream, events.len()));
    ///             Ok(())
    ///         }
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert!(report.is_closed("c-1"));
    /// assert_eq!(*archived.lock().unwrap(), [("c-1".to_owned(), 3)]);
    /// # });
    /// ```
    pub async fn close_with<F, Fut>(
        &self,
        targets: impl IntoIterator<Item = impl Into<CloseTarget>>,
        archive: F,
    ) -> Result<CloseReport, ActError>
    where
        F: Fn(String, Vec<Committed>) -> Fut + Send + Sync,
        Fut: Future<Output = Result<(), BoxError>> + Send,
    {
        self.check_live()?;
        self.close_cycle(targets, &ArchiveFn(archive)).await
    }

    /// Whether `stream` is closed: its last event is a tombstone (it was closed with
    /// [`CloseTarget::new`], or a close of it is under way). A closed stream loads as its
    /// state's initial value and takes no more writes.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use act_runtime::prelude::*;
    ///
    /// let app = act().build().unwrap();
    /// assert!(!app.is_closed("nothing-here").await.unwrap());
    /// # });
    /// ```
    pub async fn is_closed(&self, stream: &str) -> Result<bool, ActError> {
        self.check_live()?;
        validate_stream(stream)?;
        let mut query = Query::stream(stream).with_snaps().backward().limit(1);
        query.skip_meta = true;
        let mut closed = false;
        self.inner
            .store
            .query(&query, &mut |e: &Committed| {
                closed = e.name == TOMBSTONE_EVENT
            })
            .await?;
        Ok(closed)
    }

    async fn close_cycle<A: Archiver>(
        &self,
        targets: impl IntoIterator<Item = impl Into<CloseTarget>>,
        archive: &A,
    ) -> Result<CloseReport, ActError> {
        let targets: Vec<CloseTarget> = targets.into_iter().map(Into::into).collect();
        if targets.is_empty() {
            return Ok(CloseReport::default());
        }
        for t in &targets {
            validate_stream(&t.stream)?;
            if let Some(r) = t.restart
                && !(r.registered)(self)
            {
                return Err(ActError::UnknownState(r.state.to_owned()));
            }
        }
        // One close at a time in this process: two closes resuming one guarded stream
        // would both truncate it, the second after writes to the first's restart.
        let _closing = self.inner.closing.lock().await;
        let mut skipped: Vec<(usize, Skipped)> = Vec::new();
        let skip = |skipped: &mut Vec<(usize, Skipped)>, index, stream: &str, reason| {
            skipped.push((
                index,
                Skipped {
                    stream: stream.to_owned(),
                    reason,
                },
            ));
        };

        // 1. correlate: the dynamic reactions' work on the targets becomes known.
        let checkpoint = self.catch_up().await?;

        // 2. heads.
        let mut candidates: Vec<Candidate> = Vec::new();
        for (index, t) in targets.into_iter().enumerate() {
            if candidates.iter().any(|c| c.stream == t.stream)
                || skipped.iter().any(|(_, s)| s.stream == t.stream)
            {
                skip(&mut skipped, index, &t.stream, SkipReason::Duplicate);
                continue;
            }
            match self.head_of(&t).await? {
                Err(reason) => skip(&mut skipped, index, &t.stream, reason),
                Ok(head) => candidates.push(Candidate {
                    index,
                    stream: t.stream,
                    restart: t.restart,
                    head,
                }),
            }
        }

        // 3. safety.
        if !candidates.is_empty() {
            let pending = self.pending(&candidates, checkpoint).await?;
            candidates.retain(|c| match pending.get(&c.stream) {
                Some(reason) => {
                    skip(&mut skipped, c.index, &c.stream, reason.clone());
                    false
                }
                None => true,
            });
        }

        // 4. guard.
        let mut guarded = Vec::with_capacity(candidates.len());
        for c in candidates {
            let (tombstone, resumed) = match c.head {
                Head::Guarded { tombstone } => (tombstone, true),
                Head::Open { version } => match self.guard(&c.stream, version).await {
                    Ok(tombstone) => (tombstone, false),
                    Err(StoreError::Concurrency(e)) => {
                        tracing::info!(stream = %c.stream, expected = e.expected, actual = e.actual, "close skipped: a concurrent write");
                        skip(
                            &mut skipped,
                            c.index,
                            &c.stream,
                            SkipReason::ConcurrentWrite {
                                expected: e.expected,
                                actual: e.actual,
                            },
                        );
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            guarded.push(Guarded {
                index: c.index,
                stream: c.stream,
                restart: c.restart,
                tombstone,
                resumed,
                seed: None,
            });
        }

        // 5. the final state of the restart targets, while guarded.
        let mut ready = Vec::with_capacity(guarded.len());
        for mut c in guarded {
            if let Some(r) = c.restart {
                match (r.fold)(self, &c.stream).await? {
                    Ok(seed) => c.seed = Some(seed),
                    Err(reason) => {
                        tracing::warn!(stream = %c.stream, %reason, "restart failed; the stream stays guarded");
                        skip(
                            &mut skipped,
                            c.index,
                            &c.stream,
                            SkipReason::RestartFailed(reason),
                        );
                        continue;
                    }
                }
            }
            ready.push(c);
        }

        // 6. archive, one stream at a time.
        if A::ACTIVE {
            let mut archived = Vec::with_capacity(ready.len());
            for c in ready {
                let events = self
                    .query_inner(&Query::stream(&c.stream).before(c.tombstone))
                    .await?;
                // A panic in the user's archive is that stream's failure, like an `Err`.
                let run = crate::app::pipeline::guard::CatchUnwind(Box::pin(
                    archive.archive(c.stream.clone(), events),
                ))
                .await
                .unwrap_or_else(|panic| Err(format!("the archive panicked: {panic}").into()));
                match run {
                    Ok(()) => archived.push(c),
                    Err(e) => {
                        tracing::warn!(stream = %c.stream, error = %Report::new(&*e), "archive failed; the stream stays guarded");
                        skip(
                            &mut skipped,
                            c.index,
                            &c.stream,
                            SkipReason::ArchiveFailed(Report::new(&*e).to_string()),
                        );
                    }
                }
            }
            ready = archived;
        }

        // 7. truncate, then the cache, then tell the listeners.
        let mut closed: Vec<(usize, ClosedStream)> = Vec::new();
        if !ready.is_empty() {
            let seeds: Vec<TruncateTarget> = ready
                .iter()
                .map(|c| TruncateTarget {
                    stream: c.stream.clone(),
                    snapshot: c.seed.as_ref().map(|s| s.data.clone()),
                    meta: self.close_meta(&c.stream, None),
                    // Only while the guard is still the head: another process's close may
                    // have truncated the stream, and a writer landed on its seed, since.
                    expected_head: Some(c.tombstone),
                })
                .collect();
            let mut truncated = self.inner.store.truncate(&seeds).await?;
            for c in ready {
                let Some(t) = truncated.remove(&c.stream) else {
                    // Its head moved since the guard: another process (or tool) closed it.
                    skip(&mut skipped, c.index, &c.stream, SkipReason::AlreadyClosed);
                    continue;
                };
                match &c.seed {
                    Some(seed) if t.committed.name == SNAPSHOT_EVENT => {
                        let entry = CacheEntry {
                            state: seed.state.clone(),
                            version: t.committed.version,
                            event_id: t.committed.id,
                            patches: 0,
                            snaps: 1,
                        };
                        if let Err(e) = self.inner.cache.set(&c.stream, entry).await {
                            tracing::warn!(stream = %c.stream, error = %Report::new(&e), "cache warm after a restart failed");
                        }
                    }
                    _ => {
                        // A stale entry is still coherent (a load reads the seed after it),
                        // so a failure here is only logged.
                        if let Err(e) = self.inner.cache.invalidate(&c.stream).await {
                            tracing::error!(stream = %c.stream, error = %Report::new(&e), "cache invalidate after a close failed");
                        }
                    }
                }
                closed.push((
                    c.index,
                    ClosedStream {
                        stream: c.stream,
                        deleted: t.deleted,
                        restarted: c.seed.is_some(),
                        resumed: c.resumed,
                        seed_id: t.committed.id,
                    },
                ));
            }
        }
        closed.sort_by_key(|(i, _)| *i);
        skipped.sort_by_key(|(i, _)| *i);
        let report = CloseReport {
            closed: closed.into_iter().map(|(_, c)| c).collect(),
            skipped: skipped.into_iter().map(|(_, s)| s).collect(),
        };
        self.emit(&Lifecycle::Closed(&report));
        Ok(report)
    }
}
