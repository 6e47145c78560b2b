//! Building an app from its states.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::correlator::{CorrelationContext, Correlator};
use super::pipeline::Pipeline;
use super::registry::{Registry, StateActions, StateEntry};
use super::{Act, Inner, lifecycle};
use crate::adapters::{InMemoryCache, InMemoryStore};
use crate::error::BuildError;
use crate::ports::{Cache, Clock, Store};
use crate::projections::{Projection, ProjectionEntry};
use crate::reactions::{Reaction, ReactionEntry, Reactions};

/// Starts building an app.
///
/// ```
/// use act_runtime::prelude::*;
///
/// let app = act().build().unwrap(); // an app with no states, on the in-memory store
/// assert_eq!(app.registry().state_names().count(), 0);
/// ```
pub fn act() -> ActBuilder {
    ActBuilder::default()
}

/// Collects states and ports, then [`build`](ActBuilder::build)s an [`Act`].
#[derive(Default)]
#[must_use]
pub struct ActBuilder {
    states: Vec<StateEntry>,
    store: Option<Arc<dyn Store>>,
    cache: Option<Arc<dyn Cache>>,
    correlator: Option<Correlator>,
    reactions: Vec<ReactionEntry>,
    projections: Vec<ProjectionEntry>,
    max_event_bytes: Option<usize>,
    grace: Option<std::time::Duration>,
    race_backoff: Option<super::RaceBackoff>,
    clock: Option<Clock>,
}

impl ActBuilder {
    /// Registers a state with its events and the actions listed in `#[state(actions(...))]`.
    /// Registering one state twice is harmless.
    pub fn with_state<S: StateActions>(mut self) -> Self {
        self.states.push(StateEntry::of::<S>());
        self
    }

    /// Registers a reaction (the value `#[reaction]` makes of a handler).
    pub fn with_reaction<R: Reaction>(mut self, reaction: R) -> Self {
        self.reactions.push(ReactionEntry::of(reaction));
        self
    }

    /// Registers a projection: a read model fed by the drain (see [`Projection`]).
    pub fn with_projection<P: Projection>(mut self, projection: P) -> Self {
        self.projections.push(ProjectionEntry::of(projection));
        self
    }

    /// Uses `store` instead of a fresh [`InMemoryStore`].
    pub fn with_store(self, store: impl Store) -> Self {
        self.with_store_arc(Arc::new(store))
    }

    /// Uses a shared store.
    pub fn with_store_arc(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Uses `cache` instead of a fresh [`InMemoryCache`].
    pub fn with_cache(self, cache: impl Cache) -> Self {
        self.with_cache_arc(Arc::new(cache))
    }

    /// Uses a shared cache.
    pub fn with_cache_arc(mut self, cache: Arc<dyn Cache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Refuses events larger than `bytes` as stored — name, JSON payload and metadata
    /// together (1 MiB by default) — with a
    /// [`ValidationError`](crate::error::ValidationError) naming the event and its largest
    /// part: nothing is committed. Payloads nesting deeper than
    /// [`MAX_EVENT_DEPTH`](crate::model::MAX_EVENT_DEPTH) are refused the same way.
    pub fn with_max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = Some(bytes);
        self
    }

    /// How long an action that lost a race for its stream waits before it runs again (see
    /// [`RaceBackoff`](super::RaceBackoff); 1 ms doubling to 64 ms, jittered, by default).
    pub fn with_race_backoff(mut self, backoff: super::RaceBackoff) -> Self {
        self.race_backoff = Some(backoff);
        self
    }

    /// How long [`Act::shutdown`] lets in-flight reaction handlers run before stopping
    /// them (5 s by default).
    pub fn with_shutdown_grace(mut self, grace: std::time::Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// Reads `clock` for when a retry is due (the default: the wall clock). Shared with an
    /// [`InMemoryStore::with_clock`], it makes backoff virtual time: advancing the clock
    /// makes retries due at once.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses `f` to make correlation ids for requests that do not carry one.
    pub fn with_correlator(
        mut self,
        f: impl Fn(&CorrelationContext<'_>) -> String + Send + Sync + 'static,
    ) -> Self {
        self.correlator = Some(Correlator::custom(f));
        self
    }

    /// Checks the registry (no action, event or state name twice; every reaction's event
    /// registered; no reaction name twice on one event) and builds the app.
    pub fn build(self) -> Result<Act, BuildError> {
        let registry = Registry::build(self.states)?;
        let reactions = Reactions::build(self.reactions, self.projections, |e| {
            registry.event_state(e).is_some()
        })?;
        Ok(Act {
            inner: Arc::new(Inner {
                store: self.store.unwrap_or_else(|| Arc::new(InMemoryStore::new())),
                cache: self.cache.unwrap_or_else(|| Arc::new(InMemoryCache::new())),
                registry,
                correlator: self.correlator.unwrap_or_default(),
                listeners: lifecycle::Listeners::default(),
                shut_down: AtomicBool::new(false),
                reactions,
                pipeline: Pipeline::default(),
                max_event_bytes: self
                    .max_event_bytes
                    .unwrap_or(super::DEFAULT_MAX_EVENT_BYTES),
                grace: self.grace.unwrap_or(super::DEFAULT_SHUTDOWN_GRACE),
                race_backoff: self.race_backoff.unwrap_or_default(),
                turns: Default::default(),
                clock: self.clock.unwrap_or_default(),
                closing: Default::default(),
            }),
        })
    }
}
