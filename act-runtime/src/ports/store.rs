//! The store port: an append-only event log with optimistic concurrency, plus the
//! subscription table the reaction pipeline claims work from.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Report, StoreError};
use crate::model::{Committed, Data, EventId, EventMeta, Message, Version};

/// How a filter matches stream names.
///
/// `Pattern` uses the portable grammar: literals, `.` (any one character), `.*` (any run),
/// `^` and `$` anchors, matched case-sensitively; an unanchored pattern matches anywhere
/// in the name. Every adapter rejects a pattern outside this grammar with
/// [`StoreError::Invalid`] (never widening it or running it as a regex), so a pattern gets
/// the same answer on every store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamMatch {
    /// The stream name equals this string.
    Exact(String),
    /// The stream name matches this pattern.
    Pattern(String),
}

impl StreamMatch {
    /// The raw string of the filter.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Exact(s) | Self::Pattern(s) => s,
        }
    }
}

/// Which events a [`Store::query`] returns.
///
/// Bounds are exclusive and `0` is a real bound. `names: Some(vec![])` matches nothing.
/// Without `with_snaps`, `__snapshot__` events are left out. With `with_snaps` and an exact
/// stream (and no `after`), reading starts at that stream's latest snapshot, in both
/// directions. Results are ordered by id, ascending or (with `backward`) descending, then
/// cut at `limit`.
///
/// ```
/// use act_runtime::ports::Query;
///
/// let q = Query::stream("cart-1").names(["ItemAdded"]).after(10).limit(5);
/// assert_eq!(q.limit, Some(5));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// Stream filter; `None` reads every stream.
    pub stream: Option<StreamMatch>,
    /// Event names to keep; `None` keeps all.
    pub names: Option<Vec<String>>,
    /// Only events with `id > after`.
    pub after: Option<EventId>,
    /// Only events with `id < before`.
    pub before: Option<EventId>,
    /// Only events created strictly after this instant.
    pub created_after: Option<DateTime<Utc>>,
    /// Only events created strictly before this instant.
    pub created_before: Option<DateTime<Utc>>,
    /// At most this many events.
    pub limit: Option<usize>,
    /// Newest first.
    pub backward: bool,
    /// Only events of this correlation id.
    pub correlation: Option<String>,
    /// Include `__snapshot__` events (and, with an exact stream, start at the latest one).
    pub with_snaps: bool,
    /// The caller does not read the events' meta (a load folding a state): a store may
    /// hand them out with an empty meta instead of decoding each one. Everything else is
    /// as without it.
    #[serde(default)]
    pub skip_meta: bool,
}

impl Query {
    /// Every event of every stream.
    pub fn all() -> Self {
        Self::default()
    }

    /// The events of one stream (exact name).
    pub fn stream(stream: impl Into<String>) -> Self {
        Self {
            stream: Some(StreamMatch::Exact(stream.into())),
            ..Self::default()
        }
    }

    /// The events of the streams whose names match `pattern` (see [`StreamMatch`]).
    pub fn pattern(pattern: impl Into<String>) -> Self {
        Self {
            stream: Some(StreamMatch::Pattern(pattern.into())),
            ..Self::default()
        }
    }

    /// Keeps only these event names.
    #[must_use]
    pub fn names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Keeps only events with `id > id`.
    #[must_use]
    pub fn after(mut self, id: EventId) -> Self {
        self.after = Some(id);
        self
    }

    /// Keeps only events with `id < id`.
    #[must_use]
    pub fn before(mut self, id: EventId) -> Self {
        self.before = Some(id);
        self
    }

    /// Keeps only events created after `t`.
    #[must_use]
    pub fn created_after(mut self, t: DateTime<Utc>) -> Self {
        self.created_after = Some(t);
        self
    }

    /// Keeps only events created before `t`.
    #[must_use]
    pub fn created_before(mut self, t: DateTime<Utc>) -> Self {
        self.created_before = Some(t);
        self
    }

    /// Returns at most `n` events.
    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Newest first.
    #[must_use]
    pub fn backward(mut self) -> Self {
        self.backward = true;
        self
    }

    /// Keeps only events of this correlation id.
    #[must_use]
    pub fn correlation(mut self, id: impl Into<String>) -> Self {
        self.correlation = Some(id.into());
        self
    }

    /// Includes snapshots (see the type's docs).
    #[must_use]
    pub fn with_snaps(mut self) -> Self {
        self.with_snaps = true;
        self
    }
}

/// A reaction target to register in the subscription table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The target stream (the row's key).
    pub stream: String,
    /// Where its events come from, read by the drain: `None` is every stream (the whole
    /// log), otherwise an exact stream name or, with `source_is_pattern`, a
    /// [`StreamMatch::Pattern`]-grammar pattern. The store only keeps it.
    pub source: Option<String>,
    /// Whether `source` is a pattern.
    pub source_is_pattern: bool,
    /// Claim priority; subscribe keeps the maximum ever given.
    pub priority: i32,
    /// The work mark: the highest event id that has work for this target. Subscribe keeps
    /// the maximum. A row without a mark is never claimable.
    pub correlated_at: Option<EventId>,
}

impl Subscription {
    /// A subscription of `stream` to its own events, unmarked, priority 0.
    pub fn new(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            source: None,
            source_is_pattern: false,
            priority: 0,
            correlated_at: None,
        }
    }
}

/// The result of [`Store::subscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Subscribed {
    /// How many rows were new.
    pub subscribed: usize,
    /// `max(at)` over all rows (`-1` when none).
    pub watermark: EventId,
    /// The correlation checkpoint after the call (`None` when never written).
    pub checkpoint: Option<EventId>,
}

/// An exclusive, expiring claim on one subscription row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The target stream.
    pub stream: String,
    /// The row's source (see [`Subscription::source`]).
    pub source: Option<String>,
    /// Whether the source is a pattern.
    pub source_is_pattern: bool,
    /// The watermark: the last event id handled. On ack, the new watermark.
    pub at: EventId,
    /// Who holds the lease.
    pub by: String,
    /// How many times the row was claimed since its last ack (0 on the first claim).
    pub retry: i32,
    /// Whether the row was claimed on the lagging frontier.
    pub lagging: bool,
    /// Set by the drain on a lease it hands back to [`Store::ack`] after a failure: the row
    /// takes the lease's `retry` as its retry count (the drain passes the failed attempts of
    /// the event it stopped at, less one, so the next claim counts the next attempt), moves
    /// its watermark to `at` (partial progress), and stays unclaimable until `due` (the
    /// lease's expiry becomes `due`). `None` on claimed leases and on ordinary acks.
    #[serde(default)]
    pub due: Option<DateTime<Utc>>,
}

/// A row of the subscription table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    /// The target stream.
    pub stream: String,
    /// Its source.
    pub source: Option<String>,
    /// Whether the source is a pattern.
    pub source_is_pattern: bool,
    /// The watermark (`-1`: nothing handled).
    pub at: EventId,
    /// Claims since the last ack (`-1`: none).
    pub retry: i32,
    /// Whether the row is blocked.
    pub blocked: bool,
    /// The error that blocked it.
    pub error: Option<String>,
    /// Claim priority.
    pub priority: i32,
    /// The lease holder, if leased.
    pub leased_by: Option<String>,
    /// When the lease expires.
    pub leased_until: Option<DateTime<Utc>>,
    /// The work mark.
    pub correlated_at: Option<EventId>,
}

/// Which subscription rows an operation applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamFilter {
    /// Target stream filter.
    pub stream: Option<StreamMatch>,
    /// Only blocked (`Some(true)`) or unblocked (`Some(false)`) rows.
    pub blocked: Option<bool>,
    /// Only rows with `stream > after` (paging, by name).
    pub after: Option<String>,
    /// At most this many rows (adapters default to 100).
    pub limit: Option<usize>,
}

/// A stream to close with [`Store::truncate`].
#[derive(Debug, Clone)]
pub struct TruncateTarget {
    /// The stream.
    pub stream: String,
    /// The seed event at version 0: a snapshot of this state, or a tombstone when `None`.
    pub snapshot: Option<Data>,
    /// The seed event's metadata.
    pub meta: EventMeta,
    /// When set, the stream is truncated only while its last event still has this id (the
    /// close cycle's guard): a stream whose head has moved since is left as it is, and left
    /// out of the result, as a stream without events is.
    pub expected_head: Option<EventId>,
}

/// What [`Store::truncate`] did to one stream.
#[derive(Debug, Clone)]
pub struct Truncated {
    /// Events deleted.
    pub deleted: u64,
    /// The seed event committed in their place.
    pub committed: Committed,
}

/// The subscriptions `marks` raise once their events are committed: each mark's target with
/// its work mark at the id of the `i`-th committed event (for [`Store::commit_marked`]).
pub fn marked(marks: &[(usize, Subscription)], committed: &[Committed]) -> Vec<Subscription> {
    marks
        .iter()
        .filter_map(|(i, sub)| {
            committed.get(*i).map(|e| Subscription {
                correlated_at: Some(e.id),
                ..sub.clone()
            })
        })
        .collect()
}

/// The event store.
///
/// Object-safe and shared (`Arc<dyn Store>`): adapters synchronize internally. Every
/// method is atomic: on error nothing was written. The conformance kit
/// (`act_runtime::conformance`, feature `conformance`) checks an adapter honours this
/// contract.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates or upgrades the schema. Idempotent; run on every boot.
    async fn seed(&self) -> Result<(), StoreError>;

    /// Deletes every event and subscription (tests and tools).
    async fn drop_all(&self) -> Result<(), StoreError>;

    /// Appends `msgs` to `stream` in one atomic batch.
    ///
    /// With `expected_version = Some(v)` the stream must be at version `v` (`-1`: empty),
    /// else [`StoreError::Concurrency`] and nothing is written. Events onto a stream whose
    /// head is a tombstone (a retired stream) are refused with [`StoreError::Closed`]. Ids
    /// are global and increase; versions continue the stream's from 0. Every event gets
    /// `meta` and one `created` time.
    async fn commit(
        &self,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
        expected_version: Option<Version>,
    ) -> Result<Vec<Committed>, StoreError>;

    /// Commits like [`Store::commit`] and marks reaction targets: for each `(i, sub)` in
    /// `marks`, subscribes `sub` with its work mark raised to the id of the `i`-th committed
    /// event, so the target becomes claimable without a correlation scan.
    ///
    /// The default commits, then subscribes: a crash in between leaves the events unmarked
    /// (the next mark on the same target, or a correlation scan, picks them up); a failed
    /// mark is logged, never returned, since the events are committed. Adapters
    /// that can do both in one transaction should override it.
    async fn commit_marked(
        &self,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
        expected_version: Option<Version>,
        marks: &[(usize, Subscription)],
    ) -> Result<Vec<Committed>, StoreError> {
        let committed = self.commit(stream, msgs, meta, expected_version).await?;
        if !marks.is_empty() {
            let subs = marked(marks, &committed);
            // The events are committed: a failed mark must not turn into a failed commit
            // (the caller would retry and commit twice).
            if let Err(e) = self.subscribe(&subs, None).await {
                tracing::warn!(stream, error = %Report::new(&e), "events committed but their reaction marks were not");
            }
        }
        Ok(committed)
    }

    /// Commits like [`Store::commit_marked`] (or [`Store::commit`] when `marks` is empty),
    /// taking the messages and the meta by value: a store that keeps events in memory can
    /// move them into its log instead of copying them. The result is the same.
    ///
    /// The default borrows them and calls [`Store::commit`] or [`Store::commit_marked`], so
    /// a store (or a wrapper around one) that overrides those needs nothing more.
    async fn commit_owned(
        &self,
        stream: &str,
        msgs: Vec<Message>,
        meta: EventMeta,
        expected_version: Option<Version>,
        marks: &[(usize, Subscription)],
    ) -> Result<Vec<Committed>, StoreError> {
        if marks.is_empty() {
            self.commit(stream, &msgs, &meta, expected_version).await
        } else {
            self.commit_marked(stream, &msgs, &meta, expected_version, marks)
                .await
        }
    }

    /// Streams the events selected by `query` to `sink`, in order; returns how many.
    ///
    /// The sink is spelled `for<'e> FnMut(&'e Committed)` on purpose: `#[async_trait]` turns
    /// the elided lifetime of `FnMut(&Committed)` into a fixed one, which would make the
    /// store lend each event for the whole call. Implementations must spell it the same way.
    async fn query(
        &self,
        query: &Query,
        sink: &mut (dyn for<'e> FnMut(&'e Committed) + Send),
    ) -> Result<usize, StoreError>;

    /// Registers reaction targets (idempotent: existing rows keep the higher priority and the
    /// higher mark) and, when `checkpoint` is given, raises the durable correlation
    /// checkpoint to it in the same call. An empty `subs` with no checkpoint only reads.
    async fn subscribe(
        &self,
        subs: &[Subscription],
        checkpoint: Option<EventId>,
    ) -> Result<Subscribed, StoreError>;

    /// Claims up to `lagging` rows with the lowest watermarks and up to `leading` with the
    /// highest (no row twice) among the claimable ones: not blocked, `at < correlated_at`,
    /// and not leased or with an expired lease. Each claimed row gets `by` and an expiry
    /// `lease` from now, and its retry count goes up by one.
    async fn claim(
        &self,
        lagging: usize,
        leading: usize,
        by: &str,
        lease: Duration,
    ) -> Result<Vec<Lease>, StoreError>;

    /// Releases leases, moving each row's watermark to the lease's `at` and resetting its
    /// retry count to -1 — or, for a lease with `due`, setting the retry count to the lease's
    /// `retry` and holding the row until `due` (see [`Lease::due`]). A lease whose row is now held by someone else is
    /// dropped (not acked). Returns the leases that were acked.
    async fn ack(&self, leases: &[Lease]) -> Result<Vec<Lease>, StoreError>;

    /// Blocks the leased rows with their errors (only if still held by the lease's holder and
    /// not yet blocked), releasing their leases and moving each row's watermark to its lease's
    /// `at`: the drain passes the last event handled before the failure, so the progress
    /// made is kept and, after [`Store::unblock`], handling resumes at the failed event.
    /// The retry count and the mark are kept. Returns the rows after the update.
    async fn block(&self, leases: &[(Lease, String)]) -> Result<Vec<StreamPosition>, StoreError>;

    /// Rewinds rows to `at = -1`, unblocks them and clears errors and leases: their events
    /// are handled again. Returns how many rows changed.
    async fn reset(&self, streams: &[String]) -> Result<usize, StoreError>;

    /// Unblocks blocked rows, keeping their watermark. Returns how many were blocked.
    async fn unblock(&self, streams: &[String]) -> Result<usize, StoreError>;

    /// Lists subscription rows, ordered by stream name.
    async fn query_streams(&self, filter: &StreamFilter)
    -> Result<Vec<StreamPosition>, StoreError>;

    /// Replaces each target stream's events with one seed event at version 0 (a snapshot, or
    /// a tombstone). Subscriptions are untouched. Unknown streams are left out of the result.
    async fn truncate(
        &self,
        targets: &[TruncateTarget],
    ) -> Result<HashMap<String, Truncated>, StoreError>;

    /// Wake-ups from other processes sharing this store.
    ///
    /// The receiver is rung when another process may have committed work (events, reset or
    /// unblocked rows); spurious rings are fine, and a `Lagged` error is a ring too. A ring
    /// is a hint: correctness never depends on one arriving, so the worker still polls. A
    /// closed receiver (the store was disposed) rings no more. `None` (the default): the
    /// store cannot tell, and the worker only polls. Called from within a Tokio runtime.
    fn wakeups(&self) -> Option<tokio::sync::broadcast::Receiver<()>> {
        None
    }

    /// Releases resources (pools, files). Idempotent.
    async fn dispose(&self) -> Result<(), StoreError>;
}
