//! The app: builds from the registry and runs actions, loads and queries.
//!
//! * [`act`] / [`ActBuilder`]: register states, choose the store and cache, `build()`.
//! * [`Act::execute`]: validate → load → invariants → handle → commit → patch → snapshot
//!   → cache (in `execute.rs`).
//! * [`Act::load`]: cache, then snapshot floor, then replay; `as_of` time travel
//!   (in `load.rs`).
//! * [`Act::execute_json`]: the by-name JSON entry point, validated against the action's
//!   schema (in `json.rs`).
//! * [`Act::close`]: close the books on streams — correlate → heads → safety → guard →
//!   final state → archive → truncate (in `close/`).
//! * `pipeline/`: the reaction pipeline — [`Act::correlate`], [`Act::drain`],
//!   [`Act::settle`] and the worker ([`Act::start`]), with the handlers' [`Scope`].
//! * [`SchemaLock`]: the events' schemas locked in a file, and the check that a change
//!   keeps them readable (in `schema_lock/`).

mod builder;
mod close;
mod correlator;
mod diagram;
mod execute;
mod ids;
mod json;
mod lifecycle;
mod load;
mod pipeline;
mod race;
pub mod registry;
pub mod schema_lock;
mod snapshots;
pub(crate) mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use builder::{ActBuilder, act};
pub use close::{CLOSE_ACTION, CloseReport, CloseTarget, ClosedStream, SkipReason, Skipped};
pub use correlator::{CorrelationContext, Correlator};
pub(crate) use execute::Cause;
pub use execute::{Executed, ExecutedJson};
pub use lifecycle::{Lifecycle, ListenerId};
pub use load::LoadOptions;
pub use pipeline::{
    Blocked, Correlated, DrainOptions, DrainSummary, POISON_PREFIX, Retrying, Scope, SettleOptions,
    Worker, WorkerOptions,
};
pub use race::RaceBackoff;
pub use registry::{Catalog, Registry};
pub use schema_lock::{
    Breaking, Change, LockedEvent, SchemaLock, SchemaLockError, UPDATE_ENV, Verified,
};

use crate::error::{ActError, Report, StoreError, ValidationError};
use crate::model::Committed;
use crate::ports::{Cache, Query, Store};
use crate::reactions::Reactions;
use pipeline::Pipeline;
pub(crate) use pipeline::guard;

/// A built app: cheap to clone, shared across tasks.
///
/// Every app has its own store and cache (the in-memory ones unless
/// [`ActBuilder::with_store`] / [`ActBuilder::with_cache`] say otherwise), so several apps
/// (tenants) can live in one process.
#[derive(Clone)]
pub struct Act {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    registry: Registry,
    correlator: Correlator,
    listeners: lifecycle::Listeners,
    shut_down: AtomicBool,
    reactions: Reactions,
    pipeline: Pipeline,
    max_event_bytes: usize,
    grace: std::time::Duration,
    /// The pause before retrying an action that lost a race.
    race_backoff: RaceBackoff,
    /// The turns of the actions on each stream in this process.
    turns: race::StreamTurns,
    /// When retries are due.
    clock: crate::ports::Clock,
    /// Held by a close from its first phase to its last: closes in this process run one at
    /// a time, so two never resume one guarded stream together.
    closing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Act {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Act")
            .field(
                "states",
                &self.inner.registry.state_names().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The longest stream name accepted, in bytes.
pub const MAX_STREAM_LEN: usize = 1024;

/// The default shutdown grace (see [`ActBuilder::with_shutdown_grace`]).
pub const DEFAULT_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The default largest stored event (name, payload and metadata), in bytes (see
/// [`ActBuilder::with_max_event_bytes`]).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

impl Act {
    /// The app's store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The app's cache.
    pub fn cache(&self) -> &Arc<dyn Cache> {
        &self.inner.cache
    }

    /// The app's registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The app's reactions.
    pub fn reactions(&self) -> &Reactions {
        &self.inner.reactions
    }

    /// Every state, event and action with its JSON Schema.
    pub fn catalog(&self) -> Catalog {
        self.inner.registry.catalog()
    }

    /// The events selected by `query`, in order.
    pub async fn query(&self, query: &Query) -> Result<Vec<Committed>, ActError> {
        self.check_live()?;
        self.query_inner(query).await
    }

    pub(crate) async fn query_inner(&self, query: &Query) -> Result<Vec<Committed>, ActError> {
        let mut out = Vec::new();
        self.inner
            .store
            .query(query, &mut |e: &Committed| out.push(e.clone()))
            .await?;
        Ok(out)
    }

    /// Streams the events selected by `query` to `sink`; returns how many.
    pub async fn query_with(
        &self,
        query: &Query,
        mut sink: impl FnMut(&Committed) + Send,
    ) -> Result<usize, ActError> {
        self.check_live()?;
        Ok(self.inner.store.query(query, &mut sink).await?)
    }

    /// Shuts the app down gracefully, within the grace set by
    /// [`ActBuilder::with_shutdown_grace`] (5 s by default): new calls fail with
    /// [`ActError::ShutDown`], the worker and a running settle take no new work, in-flight
    /// leases finish (their acks land); handlers still running when the grace runs out are
    /// stopped (their events are handled again by the next drainer). Then the store and the
    /// cache are disposed. Idempotent.
    pub async fn shutdown(&self) -> Result<(), ActError> {
        self.shutdown_with(self.inner.grace).await
    }

    /// [`Act::shutdown`] with this grace.
    pub async fn shutdown_with(&self, grace: std::time::Duration) -> Result<(), ActError> {
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let pipeline = &self.inner.pipeline;
        let (settle, workers) = pipeline.stop();
        let finish = async {
            if let Some(task) = settle {
                let _ = task.await;
            }
            for task in workers {
                let _ = task.await;
            }
            pipeline.drained().await;
        };
        tokio::pin!(finish);
        if tokio::time::timeout(grace, &mut finish).await.is_err() {
            tracing::warn!(
                ?grace,
                "shutdown grace ran out: stopping the handlers still running"
            );
            pipeline.abort();
            finish.await;
        }
        if let Err(e) = self.inner.cache.dispose().await {
            tracing::warn!(error = %Report::new(&e), "cache dispose failed");
        }
        self.inner.store.dispose().await?;
        Ok(())
    }

    /// Wakes the worker.
    pub(crate) fn wake_pipeline(&self) {
        self.inner.pipeline.wake();
    }

    /// Cancelled when the shutdown grace runs out: user code still running is stopped.
    pub(crate) fn aborting(&self) -> &tokio_util::sync::CancellationToken {
        &self.inner.pipeline.aborting
    }

    /// The shutdown guard: every public entry point (`execute`, `execute_json`, `load`,
    /// `load_with`, `load_json`, `load_json_snapshot`, `query`, `query_with`, `correlate`,
    /// `drain`, `settle`, `start`, `reset`, `unblock`, `blocked_streams`, `close`,
    /// `close_with`, `is_closed`, `projections`, `rebuild`)
    /// calls it first, so that after [`Act::shutdown`] each fails with
    /// [`ActError::ShutDown`] whatever the store (a disposed store would answer
    /// `Store(Disposed)`, or, in memory, still answer). The [`Scope`] of a handler
    /// finishing within the shutdown grace goes around it.
    pub(crate) fn check_live(&self) -> Result<(), ActError> {
        if self.inner.shut_down.load(Ordering::Relaxed) {
            Err(ActError::ShutDown)
        } else {
            Ok(())
        }
    }
}

/// Checks a stream name: not empty, at most [`MAX_STREAM_LEN`] bytes, no control characters.
pub fn validate_stream(stream: &str) -> Result<(), ValidationError> {
    let problem = if stream.is_empty() {
        Some("must not be empty".to_owned())
    } else if stream.len() > MAX_STREAM_LEN {
        Some(format!(
            "is {} bytes long; at most {MAX_STREAM_LEN}",
            stream.len()
        ))
    } else if has_control(stream) {
        Some("must not contain control characters (NUL, newline, ...)".to_owned())
    } else {
        None
    };
    match problem {
        Some(message) => Err(ValidationError::new("stream", "/stream", message)),
        None => Ok(()),
    }
}

/// Whether `s` holds a control character (`char::is_control`), reading ASCII text byte by
/// byte.
fn has_control(s: &str) -> bool {
    if s.is_ascii() {
        s.bytes().any(|b| b.is_ascii_control())
    } else {
        s.chars().any(char::is_control)
    }
}

pub(crate) fn store_err(op: &'static str, e: impl Into<crate::model::BoxError>) -> ActError {
    ActError::Store(StoreError::backend(op, e))
}
