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

use std::collections::HashMap;
use std::future::Future;

use super::pipeline::in_window;
use super::snapshots;
use super::{Act, Lifecycle, validate_stream};
use crate::error::{ActError, StoreError};
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

/// A stream to close with [`Act::close`]: either for good (its events are replaced by a
/// tombstone) or restarted (replaced by a snapshot of its final state, at version 0).
///
/// ```
/// use act_runtime::app::CloseTarget;
/// # use act_runtime::prelude::*;
/// # #[state(name = "Counter")]
/// # #[derive(Debug, Clone, Default)]
/// # pub struct Counter { pub count: i64 }
/// # #[emits(Counter)]
/// # pub enum CounterEvent { Incremented { by: i64 } }
/// # impl Patch<CounterEvent> for Counter {
/// #     fn patch(&mut self, e: &CounterEvent) {
/// #         match e { CounterEvent::Incremented { by } => self.count += by }
/// #     }
/// # }
///
/// let retire = CloseTarget::new("counter-1");
/// assert_eq!(retire.restarts(), None);
/// let restart = CloseTarget::restart::<Counter>("counter-2");
/// assert_eq!(restart.restarts(), Some("Counter"));
/// let from_str: CloseTarget = "counter-3".into();
/// assert_eq!(from_str.stream(), "counter-3");
/// ```
#[derive(Debug, Clone)]
pub struct CloseTarget {
    stream: String,
    restart: Option<RestartAs>,
}

impl CloseTarget {
    /// Closes `stream` for good: its events are replaced by a `__tombstone__` at version 0,
    /// and every later write to it fails with
    /// [`StreamClosedError`](crate::error::StreamClosedError).
    pub fn new(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            restart: None,
        }
    }

    /// Closes `stream` and restarts it as state `S`: its events are replaced by a
    /// `__snapshot__` of its final state at version 0, so [`Act::load`] gives the same state
    /// as before and new actions continue at version 1.
    ///
    /// `S` must be registered with the app, and must own the stream's events: a stream
    /// whose last event is not one of `S`'s is skipped with [`SkipReason::NotOwned`] before
    /// anything is written (a restart as the wrong state would silently drop its history).
    pub fn restart<S: Emits>(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            restart: Some(RestartAs::of::<S>()),
        }
    }

    /// The stream.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The name of the state the stream restarts as; `None` when it closes for good.
    pub fn restarts(&self) -> Option<&'static str> {
        self.restart.map(|r| r.state)
    }
}

impl From<&str> for CloseTarget {
    fn from(stream: &str) -> Self {
        Self::new(stream)
    }
}

impl From<String> for CloseTarget {
    fn from(stream: String) -> Self {
        Self::new(stream)
    }
}

/// The final state of a stream to restart, ready to seed it.
struct Final {
    /// The snapshot event's data.
    data: Data,
    /// The state, for the cache.
    state: CachedState,
}

type FoldFinal =
    for<'a> fn(&'a Act, &'a str) -> BoxFuture<'a, Result<Result<Final, String>, ActError>>;

/// The state a restart target restarts as, type-erased.
#[derive(Clone, Copy)]
struct RestartAs {
    state: &'static str,
    registered: fn(&Act) -> bool,
    owns: fn(&str) -> bool,
    fold: FoldFinal,
}

impl std::fmt::Debug for RestartAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RestartAs").field(&self.state).finish()
    }
}

impl RestartAs {
    fn of<S: Emits>() -> Self {
        fn registered<S: Emits>(app: &Act) -> bool {
            app.inner.registry.has_state::<S>()
        }
        fn owns<S: Emits>(name: &str) -> bool {
            <S::Event as Event>::NAMES.contains(&name)
        }
        fn fold<'a, S: Emits>(
            app: &'a Act,
            stream: &'a str,
        ) -> BoxFuture<'a, Result<Result<Final, String>, ActError>> {
            Box::pin(async move {
                let loaded = app
                    .load_inner::<S>(stream, &Default::default())
                    .await?
                    .snapshot;
                let data = match snapshots::encode(&loaded.state) {
                    Ok(d) => d,
                    Err(e) => return Ok(Err(format!("the state does not serialize: {e}"))),
                };
                if let Some(path) = super::json::too_deep(data.get(), MAX_EVENT_DEPTH) {
                    return Ok(Err(format!(
                        "the state nests deeper than {MAX_EVENT_DEPTH} levels at {path}"
                    )));
                }
                Ok(Ok(Final {
                    data,
                    state: CachedState::typed(loaded.state),
                }))
            })
        }
        Self {
            state: S::NAME,
            registered: registered::<S>,
            owns: owns::<S>,
            fold: fold::<S>,
        }
    }
}

/// What [`Act::close`] did: the streams it closed and those it skipped, with the reason.
///
/// Both lists keep the order of the targets.
///
/// ```
/// use act_runtime::app::{CloseReport, ClosedStream, SkipReason, Skipped};
///
/// let report = CloseReport {
///     closed: vec![ClosedStream {
///         stream: "cart-1".into(),
///         deleted: 4,
///         restarted: false,
///         resumed: false,
///         seed_id: 9,
///     }],
///     skipped: vec![Skipped { stream: "cart-2".into(), reason: SkipReason::NotFound }],
/// };
/// assert!(report.is_closed("cart-1") && !report.is_closed("cart-2"));
/// assert_eq!(report.skip_reason("cart-2"), Some(&SkipReason::NotFound));
/// assert_eq!(report.skip_reason("cart-1"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseReport {
    /// The streams closed by this call.
    pub closed: Vec<ClosedStream>,
    /// The streams left as they were (or left guarded: see [`SkipReason`]).
    pub skipped: Vec<Skipped>,
}

impl CloseReport {
    /// Whether `stream` was closed by this call.
    pub fn is_closed(&self, stream: &str) -> bool {
        self.closed.iter().any(|c| c.stream == stream)
    }

    /// Why `stream` was skipped; `None` when it was not.
    pub fn skip_reason(&self, stream: &str) -> Option<&SkipReason> {
        self.skipped
            .iter()
            .find(|s| s.stream == stream)
            .map(|s| &s.reason)
    }
}

/// A stream [`Act::close`] closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedStream {
    /// The stream.
    pub stream: String,
    /// How many events were deleted (the guard tombstone included).
    pub deleted: u64,
    /// Whether it restarted from a snapshot (else it is tombstoned for good).
    pub restarted: bool,
    /// Whether this call finished a close an earlier call had guarded.
    pub resumed: bool,
    /// The id of the seed event now at version 0 (the snapshot or the tombstone).
    pub seed_id: EventId,
}

/// A stream [`Act::close`] did not close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The stream.
    pub stream: String,
    /// Why.
    pub reason: SkipReason,
}

/// Why [`Act::close`] skipped a stream.
///
/// Every reason but [`SkipReason::ArchiveFailed`] and [`SkipReason::RestartFailed`] leaves
/// the stream untouched. Those two come after the guard: the stream stays guarded (it
/// takes no more writes), and the next close of it resumes and finishes.
///
/// Its `Display` is a sentence for logs:
///
/// ```
/// use act_runtime::app::SkipReason;
///
/// let pending = SkipReason::PendingReactions { targets: vec!["ledger".into()] };
/// assert_eq!(
///     pending.to_string(),
///     "reactions have pending work on the stream (targets: ledger)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The stream has no events.
    NotFound,
    /// The stream is already closed: a tombstone at version 0 — or, for a restart target,
    /// nothing but its seed snapshot at version 0. Closing it again would change nothing.
    AlreadyClosed,
    /// The stream is listed more than once; only its first target is used.
    Duplicate,
    /// Reactions have yet to handle some of the stream's events: the subscription rows of
    /// these targets cover the stream and their watermarks are behind its events. Drain
    /// (or unblock) them, then close again.
    PendingReactions {
        /// The reaction targets (subscription rows) with pending work.
        targets: Vec<String>,
    },
    /// Correlation could not catch up with the stream's events in this call, so their
    /// dynamic reactions are not known yet.
    CorrelationBehind {
        /// The correlation checkpoint reached.
        checkpoint: EventId,
    },
    /// Another writer committed to the stream while it was being closed: its event is kept,
    /// and the stream is left open.
    ConcurrentWrite {
        /// The version the guard expected.
        expected: Version,
        /// The version the stream was at.
        actual: Version,
    },
    /// The restart state does not own the stream's last event.
    NotOwned {
        /// The restart state.
        state: &'static str,
        /// The stream's last event.
        event: String,
    },
    /// The final state of a restart target cannot be stored as a snapshot. The stream
    /// stays guarded.
    RestartFailed(String),
    /// The archive callback failed on the stream (its error's message). The stream stays
    /// guarded; close it again to retry the archive and finish.
    ArchiveFailed(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => f.write_str("the stream has no events"),
            Self::AlreadyClosed => f.write_str("the stream is already closed"),
            Self::Duplicate => f.write_str("the stream is listed more than once"),
            Self::PendingReactions { targets } => write!(
                f,
                "reactions have pending work on the stream (targets: {})",
                targets.join(", ")
            ),
            Self::CorrelationBehind { checkpoint } => write!(
                f,
                "correlation is behind the stream's events (checkpoint {checkpoint})"
            ),
            Self::ConcurrentWrite { expected, actual } => write!(
                f,
                "a concurrent write: expected version {expected}, found {actual}"
            ),
            Self::NotOwned { state, event } => write!(
                f,
                "state `{state}` does not own the stream's last event `{event}`"
            ),
            Self::RestartFailed(e) => write!(f, "the restart failed (stream guarded): {e}"),
            Self::ArchiveFailed(e) => write!(f, "the archive failed (stream guarded): {e}"),
        }
    }
}

/// Receives the events of each stream before they are deleted.
trait Archiver: Sync {
    /// Whether there is anything to archive to (else events are not read at all).
    const ACTIVE: bool;
    fn archive(
        &self,
        stream: String,
        events: Vec<Committed>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

struct NoArchive;

impl Archiver for NoArchive {
    const ACTIVE: bool = false;
    async fn archive(&self, _: String, _: Vec<Committed>) -> Result<(), BoxError> {
        Ok(())
    }
}

struct ArchiveFn<F>(F);

impl<F, Fut> Archiver for ArchiveFn<F>
where
    F: Fn(String, Vec<Committed>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    const ACTIVE: bool = true;
    fn archive(
        &self,
        stream: String,
        events: Vec<Committed>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        (self.0)(stream, events)
    }
}

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
    /// it fails, the stream is skipped with [`SkipReason::ArchiveFailed`] and stays
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
                match archive.archive(c.stream.clone(), events).await {
                    Ok(()) => archived.push(c),
                    Err(e) => {
                        tracing::warn!(stream = %c.stream, error = %e, "archive failed; the stream stays guarded");
                        skip(
                            &mut skipped,
                            c.index,
                            &c.stream,
                            SkipReason::ArchiveFailed(e.to_string()),
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
                })
                .collect();
            let mut truncated = self.inner.store.truncate(&seeds).await?;
            for c in ready {
                let Some(t) = truncated.remove(&c.stream) else {
                    // Gone since the head lookup (another tool truncated it).
                    skip(&mut skipped, c.index, &c.stream, SkipReason::NotFound);
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
                            tracing::warn!(stream = %c.stream, error = %e, "cache warm after a restart failed");
                        }
                    }
                    _ => {
                        // A stale entry is still coherent (a load reads the seed after it),
                        // so a failure here is only logged.
                        if let Err(e) = self.inner.cache.invalidate(&c.stream).await {
                            tracing::error!(stream = %c.stream, error = %e, "cache invalidate after a close failed");
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

    /// Phase 1: runs correlation passes until the checkpoint stops moving (at most
    /// [`CORRELATE_PASSES`]); returns the checkpoint. Without dynamic reactions there is
    /// nothing to scan.
    async fn catch_up(&self) -> Result<EventId, ActError> {
        if self.inner.reactions.is_empty() {
            return Ok(self.inner.pipeline.checkpoint());
        }
        let mut last = self.correlate(CORRELATE_LIMIT).await?.last_id;
        if self.inner.reactions.has_dynamic {
            for _ in 1..CORRELATE_PASSES {
                let next = self.correlate(CORRELATE_LIMIT).await?.last_id;
                if next == last {
                    break;
                }
                last = next;
            }
        }
        Ok(last)
    }

    /// Phase 2: where `target` stands (open at a version, or guarded), or why it is
    /// skipped.
    async fn head_of(&self, target: &CloseTarget) -> Result<Result<Head, SkipReason>, ActError> {
        let mut last: Option<(EventId, Version, String)> = None;
        let mut head = Query::stream(&target.stream)
            .with_snaps()
            .backward()
            .limit(1);
        head.skip_meta = true;
        self.inner
            .store
            .query(&head, &mut |e: &Committed| {
                last = Some((e.id, e.version, e.name.clone()));
            })
            .await?;
        let Some((id, version, name)) = last else {
            return Ok(Err(SkipReason::NotFound));
        };
        let head = match name.as_str() {
            TOMBSTONE_EVENT if version == 0 => return Ok(Err(SkipReason::AlreadyClosed)),
            TOMBSTONE_EVENT => Head::Guarded { tombstone: id },
            SNAPSHOT_EVENT if version == 0 && target.restart.is_some() => {
                return Ok(Err(SkipReason::AlreadyClosed));
            }
            _ => Head::Open { version },
        };
        if let Some(r) = target.restart {
            // The last domain event (snapshots are left out; skip the guard tombstone).
            let mut domain = Query::stream(&target.stream).backward().limit(2);
            domain.skip_meta = true;
            let mut event: Option<String> = None;
            self.inner
                .store
                .query(&domain, &mut |e: &Committed| {
                    if event.is_none() && e.name != TOMBSTONE_EVENT {
                        event = Some(e.name.clone());
                    }
                })
                .await?;
            if let Some(event) = event
                && !(r.owns)(&event)
            {
                return Ok(Err(SkipReason::NotOwned {
                    state: r.state,
                    event,
                }));
            }
        }
        Ok(Ok(head))
    }

    /// Phase 4: commits the guard tombstone of `stream` at `version`; returns its id.
    ///
    /// It takes the stream's turn, as actions do from load to commit: an action of this
    /// process that loaded the stream before the guard commits before it (and the guard
    /// conflicts), never after the truncate, when the stream is back at version 0 and a
    /// commit expecting version 0 would land on the tombstone.
    async fn guard(&self, stream: &str, version: Version) -> Result<EventId, StoreError> {
        let _turn = self.inner.turns.take(stream).await;
        let tombstone = [Message::new(
            TOMBSTONE_EVENT,
            serde_json::value::RawValue::from_string("{}".to_owned())
                .map_err(|e| StoreError::backend("commit", e))?,
        )];
        let meta = self.close_meta(stream, Some(version));
        let committed = self
            .inner
            .store
            .commit(stream, &tombstone, &meta, Some(version))
            .await?;
        committed
            .last()
            .map(|e| e.id)
            .ok_or_else(|| StoreError::backend("commit", "the guard tombstone was not committed"))
    }

    /// Phase 3: the candidates with reaction work pending, and why. A subscription row has
    /// pending work on a stream when its source covers the stream and the stream has an
    /// event with reactions after the row's watermark, up to its work mark; a stream with
    /// events that have dynamic reactions past the correlation `checkpoint` is not known
    /// to be safe either.
    async fn pending(
        &self,
        candidates: &[Candidate],
        checkpoint: EventId,
    ) -> Result<HashMap<String, SkipReason>, ActError> {
        let reactions = &self.inner.reactions;
        let mut out = HashMap::new();
        // The events whose reactions use subscription rows (`void` ones run inline).
        let mut reactive: Vec<&'static str> = reactions
            .iter()
            .filter(|r| r.resolver() != Resolver::Void)
            .map(|r| r.event())
            .collect();
        reactive.sort_unstable();
        reactive.dedup();
        if reactive.is_empty() {
            return Ok(out);
        }
        if reactions.has_dynamic {
            for c in candidates {
                let late = Query::stream(&c.stream)
                    .names(reactions.dynamic_events.iter().copied())
                    .after(checkpoint)
                    .limit(1);
                if self.any(&late).await? {
                    out.insert(
                        c.stream.clone(),
                        SkipReason::CorrelationBehind { checkpoint },
                    );
                }
            }
        }
        // Rows with work left (a row without a mark, or with its watermark at the mark,
        // has none), read page by page.
        let mut rows: Vec<StreamPosition> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .inner
                .store
                .query_streams(&StreamFilter {
                    after: after.clone(),
                    limit: Some(ROWS_PAGE),
                    ..StreamFilter::default()
                })
                .await?;
            let full = page.len() >= ROWS_PAGE;
            after = page.last().map(|r| r.stream.clone());
            rows.extend(
                page.into_iter()
                    .filter(|r| r.correlated_at.is_some_and(|at| r.at < at)),
            );
            if !full || after.is_none() {
                break;
            }
        }
        for c in candidates {
            if out.contains_key(&c.stream) {
                continue;
            }
            let mut targets = Vec::new();
            for row in &rows {
                let Some(mark) = row.correlated_at else {
                    continue;
                };
                if !in_window(row.source.as_deref(), row.source_is_pattern, &c.stream) {
                    continue;
                }
                let work = Query::stream(&c.stream)
                    .names(reactive.iter().copied())
                    .after(row.at)
                    .before(mark.saturating_add(1))
                    .limit(1);
                if self.any(&work).await? {
                    targets.push(row.stream.clone());
                }
            }
            if !targets.is_empty() {
                out.insert(c.stream.clone(), SkipReason::PendingReactions { targets });
            }
        }
        Ok(out)
    }

    /// Whether `query` selects any event.
    async fn any(&self, query: &Query) -> Result<bool, ActError> {
        let mut query = query.clone();
        query.skip_meta = true;
        Ok(self
            .inner
            .store
            .query(&query, &mut |_: &Committed| {})
            .await?
            > 0)
    }

    /// The metadata of the close cycle's events on `stream`.
    fn close_meta(&self, stream: &str, expected_version: Option<Version>) -> EventMeta {
        let actor = Actor::new("act", "close");
        EventMeta {
            correlation: self.inner.correlator.make(&super::CorrelationContext {
                action: CLOSE_ACTION,
                state: "",
                stream,
                actor: &actor.id,
            }),
            causation: Causation {
                action: Some(ActionCause {
                    name: CLOSE_ACTION.to_owned(),
                    stream: stream.to_owned(),
                    expected_version,
                }),
                event: None,
                trace: super::telemetry::current_trace(),
            },
            actor,
        }
    }
}
