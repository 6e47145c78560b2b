//! Loading a state: cache, then snapshot floor, then replay; or time travel.

use chrono::{DateTime, Utc};

use super::snapshots::{self, Stored};
use super::{Act, validate_stream};
use crate::error::{ActError, Report};
use crate::model::{
    Committed, Emits, Event, EventId, SNAPSHOT_EVENT, Snapshot, State, TOMBSTONE_EVENT,
};
use crate::ports::{CacheEntry, CachedState, Query};

/// How to load a state. The default reads the latest state through the cache; any `as_of`
/// bound travels back in time and bypasses both the cache and snapshots.
///
/// ```
/// use act_runtime::prelude::*;
///
/// let opts = LoadOptions::default().before(42).limit(10);
/// assert!(opts.is_time_travel());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Only events with `id < before`.
    pub before: Option<EventId>,
    /// Only events created before this instant.
    pub created_before: Option<DateTime<Utc>>,
    /// Only the first `limit` events of the stream.
    pub limit: Option<usize>,
}

impl LoadOptions {
    /// The state as of (excluding) event id `id`.
    #[must_use]
    pub fn before(mut self, id: EventId) -> Self {
        self.before = Some(id);
        self
    }

    /// The state as of instant `t`.
    #[must_use]
    pub fn created_before(mut self, t: DateTime<Utc>) -> Self {
        self.created_before = Some(t);
        self
    }

    /// The state after its first `n` events.
    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Whether this is a time-travel load.
    pub fn is_time_travel(&self) -> bool {
        self.before.is_some() || self.created_before.is_some() || self.limit.is_some()
    }
}

/// A load's result plus whether the stream's head is a tombstone.
pub(crate) struct Loaded<S> {
    pub(crate) snapshot: Snapshot<S>,
    pub(crate) closed: bool,
}

/// Folds one stored event into a snapshot. A snapshot of another shape than `S`'s sets
/// `stale` (with the reason) and is not folded: the caller replays the stream from its
/// events instead.
fn fold<S: Emits>(
    snap: &mut Snapshot<S>,
    closed: &mut bool,
    stale: &mut Option<String>,
    e: &Committed,
) -> Result<(), ActError> {
    let corrupt = |source| ActError::Corrupt {
        id: e.id,
        name: e.name.clone(),
        stream: e.stream.clone(),
        source,
    };
    match e.name.as_str() {
        SNAPSHOT_EVENT => match snapshots::decode::<S>(&e.data) {
            Stored::Current(state) => {
                snap.state = state;
                snap.snaps += 1;
                snap.patches = 0;
                *closed = false;
            }
            Stored::Stale(reason) => {
                *stale = Some(format!("snapshot #{} {reason}", e.id));
                return Ok(());
            }
        },
        TOMBSTONE_EVENT => *closed = true,
        name => match <S::Event as Event>::from_data(name, &e.data).map_err(corrupt)? {
            Some(event) => {
                event.apply(&mut snap.state);
                snap.patches += 1;
                *closed = false;
            }
            None => tracing::warn!(
                state = S::NAME,
                event = name,
                id = e.id,
                "unknown event skipped while loading"
            ),
        },
    }
    snap.version = e.version;
    snap.event_id = e.id;
    snap.replayed += 1;
    Ok(())
}

impl Act {
    /// The current state of `stream`.
    ///
    /// Starts from the cache when it holds the stream (then reads only newer events), else
    /// from the stream's latest snapshot, else from the state's initial value.
    pub async fn load<S: Emits>(&self, stream: &str) -> Result<Snapshot<S>, ActError> {
        self.load_with::<S>(stream, &LoadOptions::default()).await
    }

    /// The state of `stream` as `options` say (see [`LoadOptions`]).
    pub async fn load_with<S: Emits>(
        &self,
        stream: &str,
        options: &LoadOptions,
    ) -> Result<Snapshot<S>, ActError> {
        self.check_live()?;
        Ok(self.load_inner::<S>(stream, options).await?.snapshot)
    }

    /// The current state of `stream` of the state named `state`, as JSON.
    pub async fn load_json(
        &self,
        state: &str,
        stream: &str,
    ) -> Result<serde_json::Value, ActError> {
        Ok(self.load_json_snapshot(state, stream).await?.state)
    }

    /// [`Act::load_json`] with the bookkeeping of [`Act::load`]: the state as JSON, and the
    /// version and event id it is at (`-1` for a stream with no events).
    ///
    /// ```
    /// use act_runtime::prelude::*;
    ///
    /// #[state(name = "Counter", actions(Increment))]
    /// #[derive(Debug, Clone, Default)]
    /// pub struct Counter { pub count: i64 }
    ///
    /// #[emits(Counter)]
    /// #[derive(Debug, Clone)]
    /// pub enum CounterEvent { Incremented { by: i64 } }
    ///
    /// impl Patch<CounterEvent> for Counter {
    ///     fn patch(&mut self, event: &CounterEvent) {
    ///         match event { CounterEvent::Incremented { by } => self.count += by }
    ///     }
    /// }
    ///
    /// #[action(Counter, emit = CounterEvent::Incremented)]
    /// pub struct Increment { pub by: i64 }
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let app = act().with_state::<Counter>().build()?;
    /// let target = Target::new("counter-1", Actor::new("u1", "Ada"));
    /// app.execute(Increment { by: 2 }, target).await?;
    /// let snap = app.load_json_snapshot("Counter", "counter-1").await?;
    /// assert_eq!((snap.state["count"].as_i64(), snap.version), (Some(2), 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn load_json_snapshot(
        &self,
        state: &str,
        stream: &str,
    ) -> Result<Snapshot<serde_json::Value>, ActError> {
        self.check_live()?;
        let entry = self
            .inner
            .registry
            .state_entry(state)
            .ok_or_else(|| ActError::UnknownState(state.to_owned()))?;
        (entry.load_json)(self, stream).await
    }

    pub(crate) async fn load_inner<S: Emits>(
        &self,
        stream: &str,
        options: &LoadOptions,
    ) -> Result<Loaded<S>, ActError> {
        self.load_from::<S>(stream, options, false).await
    }

    /// [`Act::load_inner`]; with `trust_cache`, a cached state is returned as it is, without
    /// reading the events committed after it. Only `execute` asks for that: it commits
    /// against the version it decided on, so a stale cached state (another process wrote
    /// since) is a conflict, and the retry reloads. A cached version 0 is always checked:
    /// a stream closed or truncated elsewhere restarts at version 0 and would otherwise
    /// match it.
    pub(crate) async fn load_from<S: Emits>(
        &self,
        stream: &str,
        options: &LoadOptions,
        trust_cache: bool,
    ) -> Result<Loaded<S>, ActError> {
        use tracing::Instrument as _;
        let span = tracing::debug_span!("act.load", state = S::NAME, stream);
        let load = self.load_traced::<S>(stream, options, trust_cache);
        // No subscriber wants the span: entering and leaving it at each poll is wasted.
        if span.is_disabled() {
            load.await
        } else {
            load.instrument(span).await
        }
    }

    async fn load_traced<S: Emits>(
        &self,
        stream: &str,
        options: &LoadOptions,
        trust_cache: bool,
    ) -> Result<Loaded<S>, ActError> {
        validate_stream(stream)?;
        if !self.inner.registry.has_state::<S>() {
            return Err(ActError::UnknownState(S::NAME.to_owned()));
        }
        let travel = options.is_time_travel();
        let mut snap = Snapshot::<S>::initial();
        let mut after = None;
        if !travel {
            match self.inner.cache.get(stream).await {
                Ok(Some(entry)) => match entry.state.to_state::<S>() {
                    Ok(state) => {
                        snap.state = state;
                        snap.version = entry.version;
                        snap.event_id = entry.event_id;
                        snap.patches = entry.patches;
                        snap.snaps = entry.snaps;
                        snap.cache_hit = true;
                        if trust_cache && entry.version > 0 {
                            return Ok(Loaded {
                                snapshot: snap,
                                closed: false,
                            });
                        }
                        after = Some(entry.event_id);
                    }
                    Err(e) => {
                        tracing::warn!(stream, error = %Report::new(&e), "cached state unreadable; replaying")
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(stream, error = %Report::new(&e), "cache get failed; replaying")
                }
            }
        }
        // Built past the cache: a trusted cache hit reads no events.
        let mut query = Query::stream(stream);
        // The fold reads names, payloads, versions and ids only.
        query.skip_meta = true;
        if travel {
            query.before = options.before;
            query.created_before = options.created_before;
            query.limit = options.limit;
        } else {
            query.with_snaps = true;
            query.after = after;
        }
        let mut closed = false;
        let mut stale = None;
        let mut failed = None;
        self.inner
            .store
            .query(&query, &mut |e: &Committed| {
                if failed.is_none()
                    && stale.is_none()
                    && let Err(err) = fold(&mut snap, &mut closed, &mut stale, e)
                {
                    failed = Some(err);
                }
            })
            .await?;
        if let Some(err) = failed {
            return Err(err);
        }
        if let Some(reason) = stale {
            // The state changed shape since the snapshot: replay every event instead
            // (snapshots hidden), so changing a state never needs a migration.
            tracing::warn!(
                state = S::NAME,
                stream,
                reason = %reason,
                "snapshot skipped: replaying the stream from its events"
            );
            snap = Snapshot::<S>::initial();
            closed = false;
            let mut replay = Query::stream(stream);
            replay.skip_meta = true;
            let mut ignored = None;
            self.inner
                .store
                .query(&replay, &mut |e: &Committed| {
                    if failed.is_none()
                        && let Err(err) = fold(&mut snap, &mut closed, &mut ignored, e)
                    {
                        failed = Some(err);
                    }
                })
                .await?;
            if let Some(err) = failed {
                return Err(err);
            }
        }
        if !travel && snap.replayed > 0 && !closed {
            self.cache_set(stream, &snap).await;
        }
        Ok(Loaded {
            snapshot: snap,
            closed,
        })
    }

    pub(crate) async fn cache_set<S: State>(&self, stream: &str, snap: &Snapshot<S>) {
        let entry = CacheEntry {
            state: CachedState::typed(snap.state.clone()),
            version: snap.version,
            event_id: snap.event_id,
            patches: snap.patches,
            snaps: snap.snaps,
        };
        if let Err(e) = self.inner.cache.set(stream, entry).await {
            tracing::warn!(stream, error = %Report::new(&e), "cache set failed");
        }
    }
}
