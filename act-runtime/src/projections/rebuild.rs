//! Rebuilding a projection from scratch without downtime: the [`Model::Next`] copy is filled
//! from the log while the live copy stays served, then promoted and caught up.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::Model;
use super::entry::ProjectionEntry;
use crate::app::{Act, guard};
use crate::error::{ActError, StoreError};
use crate::model::{Committed, EventId};

/// Where a rebuild is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildPhase {
    /// Filling the next copy from the log.
    Filling,
    /// The next copy was promoted; feeding it the events committed meanwhile.
    CatchingUp,
    /// Finished.
    Done,
}

/// A rebuild's progress, reported after every page of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildProgress {
    /// The projection.
    pub projection: &'static str,
    /// The phase.
    pub phase: RebuildPhase,
    /// The id of the last event applied.
    pub position: EventId,
    /// The id of the last of the projection's events in the log when the rebuild started
    /// (`-1`: none): `position / head` is how far it is.
    pub head: EventId,
    /// Events applied so far.
    pub applied: u64,
}

type OnProgress = Arc<dyn Fn(&RebuildProgress) + Send + Sync>;

/// How to rebuild (see [`Act::rebuild`]).
#[derive(Clone)]
#[must_use]
pub struct RebuildOptions {
    /// Events read from the log per page.
    pub page: usize,
    on_progress: Option<OnProgress>,
}

impl std::fmt::Debug for RebuildOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RebuildOptions")
            .field("page", &self.page)
            .field("on_progress", &self.on_progress.is_some())
            .finish()
    }
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            page: 500,
            on_progress: None,
        }
    }
}

impl RebuildOptions {
    /// Reads `n` events per page (at least 1).
    pub fn page(mut self, n: usize) -> Self {
        self.page = n.max(1);
        self
    }

    /// Calls `f` after every page (a progress bar: [`super::progress_bar`] with the
    /// `progress` feature).
    pub fn on_progress(mut self, f: impl Fn(&RebuildProgress) + Send + Sync + 'static) -> Self {
        self.on_progress = Some(Arc::new(f));
        self
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// The projection.
    pub projection: &'static str,
    /// Events applied to the next copy before it was promoted.
    pub filled: u64,
    /// Events applied to the promoted copy after (committed during the rebuild).
    pub caught_up: u64,
    /// The id of the last event applied.
    pub position: EventId,
}

/// Why a rebuild stopped. The live copy is untouched by a failure before the promotion; a
/// failure after it leaves the promoted copy live, and the drain catches it up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RebuildError {
    /// No projection has this name.
    #[error("no projection is named `{0}`")]
    Unknown(String),
    /// The projection's code failed in a phase (`clear_next`, `apply`, `promote_next`).
    #[error("rebuilding `{projection}` failed in `{phase}`: {error}")]
    Projection {
        /// The projection.
        projection: &'static str,
        /// The call that failed.
        phase: &'static str,
        /// What it said (a failure, a panic or a timeout).
        error: String,
    },
    /// The store failed.
    #[error("rebuilding `{projection}` failed reading the log")]
    Store {
        /// The projection.
        projection: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The app is shut down, or could not run the call.
    #[error(transparent)]
    App(#[from] ActError),
}

impl Act {
    /// Rebuilds projection `name` from scratch while its live model stays served: empties
    /// the next copy (`clear_next`), applies every one of its events in the log to it, page
    /// by page, promotes it (`promote_next`), then applies to the promoted copy the events
    /// committed meanwhile. The drain keeps feeding the live copy throughout; a model
    /// checkpointing as [`super::Batch::since`] describes stays exact across the swap.
    ///
    /// A rebuild that stops (an error, or the process dies) leaves the live copy as it
    /// was; running it again starts over. Run one rebuild of a projection at a time.
    ///
    /// ```
    /// # use act_runtime::prelude::*;
    /// use act_runtime::projections::{RebuildError, RebuildOptions};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let app = act().build()?;
    /// let r = app.rebuild("sales", RebuildOptions::default()).await;
    /// assert!(matches!(r, Err(RebuildError::Unknown(name)) if name == "sales"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn rebuild(
        &self,
        name: &str,
        options: RebuildOptions,
    ) -> Result<Rebuilt, RebuildError> {
        self.check_live()?;
        let p = self
            .reactions()
            .projections()
            .find(|p| p.name() == name)
            .cloned()
            .ok_or_else(|| RebuildError::Unknown(name.to_owned()))?;
        let run = Rebuild {
            app: self,
            p: &p,
            options,
        };
        run.call("clear_next", p.clear_next()).await?;
        let head = run.head().await?;
        let mut progress = RebuildProgress {
            projection: p.name(),
            phase: RebuildPhase::Filling,
            position: -1,
            head,
            applied: 0,
        };
        run.feed(Model::Next, &mut progress).await?;
        let filled = progress.applied;
        run.call("promote_next", p.promote_next()).await?;
        progress.phase = RebuildPhase::CatchingUp;
        run.feed(Model::Live, &mut progress).await?;
        progress.phase = RebuildPhase::Done;
        run.report(&progress);
        self.wake_pipeline();
        Ok(Rebuilt {
            projection: p.name(),
            filled,
            caught_up: progress.applied - filled,
            position: progress.position,
        })
    }
}

struct Rebuild<'a> {
    app: &'a Act,
    p: &'a ProjectionEntry,
    options: RebuildOptions,
}

impl Rebuild<'_> {
    fn report(&self, progress: &RebuildProgress) {
        if let Some(f) = &self.options.on_progress {
            f(progress);
        }
    }

    fn store_error(&self, source: StoreError) -> RebuildError {
        RebuildError::Store {
            projection: self.p.name(),
            source,
        }
    }

    /// Runs one call of the projection's code: a panic, a timeout or shutdown is an error.
    async fn call(
        &self,
        phase: &'static str,
        f: crate::reactions::BoxFuture<'_, Result<(), crate::reactions::ReactionError>>,
    ) -> Result<(), RebuildError> {
        guard::attempt(f, self.p.options().timeout, false, self.app.aborting())
            .await
            .map_err(|failure| RebuildError::Projection {
                projection: self.p.name(),
                phase,
                error: failure.to_string(),
            })
    }

    /// The id of the projection's last event in the log (`-1`: none).
    async fn head(&self) -> Result<EventId, RebuildError> {
        let mut head = -1;
        let query = crate::ports::Query::all()
            .names(self.p.events().iter().copied())
            .backward()
            .limit(1);
        self.app
            .store()
            .query(&query, &mut |e| head = e.id)
            .await
            .map_err(|e| self.store_error(e))?;
        Ok(head)
    }

    /// Applies the log's events after `progress.position` to `model`, page by page, until a
    /// page comes back empty.
    async fn feed(&self, model: Model, progress: &mut RebuildProgress) -> Result<(), RebuildError> {
        loop {
            self.app.check_live()?;
            let query = crate::ports::Query::all()
                .names(self.p.events().iter().copied())
                .after(progress.position)
                .limit(self.options.page);
            let mut events: Vec<Committed> = Vec::new();
            self.app
                .store()
                .query(&query, &mut |e| events.push(e.clone()))
                .await
                .map_err(|e| self.store_error(e))?;
            let Some(last) = events.last().map(|e| e.id) else {
                return Ok(());
            };
            let applied = AtomicI64::new(progress.position);
            let result = self
                .call(
                    "apply",
                    self.p.apply(model, progress.position, &events, &applied),
                )
                .await;
            let upto = applied.load(Ordering::Acquire);
            progress.applied += events.iter().filter(|e| e.id <= upto).count() as u64;
            progress.position = upto;
            result?;
            progress.position = last;
            self.report(progress);
        }
    }
}
