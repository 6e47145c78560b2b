//! The projection contract: a read model kept up to date from events.

use std::future::Future;

use crate::model::{Committed, EventId, EventSet};
use crate::reactions::{ReactionError, ReactionOptions};

/// Which copy of a read model a batch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// The model being served: fed by the drain, like a reaction.
    Live,
    /// The copy a rebuild fills alongside the live one, swapped in by
    /// [`Projection::promote_next`] once it has caught up.
    Next,
}

/// A batch starts after events this model has not applied: its checkpoint is older than the
/// batch's start. The drain answers it by rewinding the projection's subscription, so the
/// events are delivered again from the start (and the ones already applied are skipped by
/// [`Batch::since`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the read model's checkpoint ({checkpoint:?}) is behind the batch's start ({after}): events between them were never applied to it"
)]
pub struct ProjectionGap {
    /// The model's checkpoint (`None`: it applied nothing yet).
    pub checkpoint: Option<EventId>,
    /// The id the batch starts after.
    pub after: EventId,
}

impl From<ProjectionGap> for ReactionError {
    fn from(gap: ProjectionGap) -> Self {
        ReactionError::fatal(gap)
    }
}

/// Events for a projection, in id order: all the claimed events of its subscription at
/// once in batch mode ([`Projection::BATCH`]), else one event.
///
/// A projection is at least once: after a crash the same events may come again. A model
/// stays exact by keeping its checkpoint (the last id it applied) in the same transaction as
/// its rows, and applying only [`Batch::since`] that checkpoint.
#[derive(Debug)]
pub struct Batch<'a, E: EventSet> {
    /// Which copy of the model to write.
    pub model: Model,
    /// The id the batch starts after: every event of the projection up to it was delivered
    /// before.
    pub after: EventId,
    /// The events, ordered by id.
    pub events: &'a [Committed<E>],
}

impl<'a, E: EventSet> Batch<'a, E> {
    /// The events a model with `checkpoint` (the last id it applied; `None` for none) has
    /// not applied yet. A checkpoint behind [`Batch::after`] is a [`ProjectionGap`]: return
    /// it (`?` converts it) and the projection is fed again from the start.
    ///
    /// ```
    /// use act_runtime::projections::{Batch, Model, ProjectionGap};
    /// # use act_runtime::prelude::*;
    /// # #[state(name = "Till", actions(Sell))]
    /// # #[derive(Debug, Clone, Default)]
    /// # pub struct Till { pub sold: u32 }
    /// # #[emits(Till)]
    /// # #[derive(Debug, Clone)]
    /// # pub enum TillEvent { Sold { total: f64 } }
    /// # impl Patch<TillEvent> for Till {
    /// #     fn patch(&mut self, e: &TillEvent) { match e { TillEvent::Sold { .. } => self.sold += 1 } }
    /// # }
    /// # #[action(Till, emit = TillEvent::Sold)]
    /// # pub struct Sell { pub total: f64 }
    /// let events: Vec<Committed<TillEvent>> = vec![];
    /// let batch = Batch { model: Model::Live, after: 10, events: &events };
    /// assert!(batch.since(Some(12)).unwrap().is_empty());
    /// assert_eq!(batch.since(Some(3)).unwrap_err(), ProjectionGap { checkpoint: Some(3), after: 10 });
    /// assert!(batch.since(None).is_err());
    /// ```
    pub fn since(&self, checkpoint: Option<EventId>) -> Result<&'a [Committed<E>], ProjectionGap> {
        let applied = checkpoint.unwrap_or(-1);
        if applied < self.after {
            return Err(ProjectionGap {
                checkpoint,
                after: self.after,
            });
        }
        let skip = self.events.partition_point(|e| e.id <= applied);
        Ok(&self.events[skip..])
    }

    /// The id of the batch's last event: the checkpoint to record with its rows.
    pub fn last_id(&self) -> Option<EventId> {
        self.events.last().map(|e| e.id)
    }
}

/// A projection: a read model kept up to date from the events of one `#[emits]` enum,
/// drained like a reaction to a fixed target named [`Projection::NAME`] (at least once,
/// retried with backoff, blocked with the error when the budget is spent), with a batch
/// mode, a catch-up status ([`Act::projections`](crate::app::Act::projections)) and a
/// rebuild that fills a second copy while the live one stays served
/// ([`Act::rebuild`](crate::app::Act::rebuild)).
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
/// use act_runtime::prelude::*;
/// use act_runtime::projections::{Batch, Model, Projection};
/// use act_runtime::reactions::ReactionError;
///
/// # #[state(name = "Till", actions(Sell))]
/// # #[derive(Debug, Clone, Default)]
/// # pub struct Till { pub sold: u32 }
/// # #[emits(Till)]
/// # #[derive(Debug, Clone)]
/// # pub enum TillEvent { Sold { total: f64 } }
/// # impl Patch<TillEvent> for Till {
/// #     fn patch(&mut self, e: &TillEvent) { match e { TillEvent::Sold { .. } => self.sold += 1 } }
/// # }
/// # #[action(Till, emit = TillEvent::Sold)]
/// # pub struct Sell { pub total: f64 }
/// #[derive(Default)]
/// struct Totals { live: Mutex<(Option<i64>, f64)> }
///
/// #[derive(Clone, Default)]
/// struct Revenue(Arc<Totals>);
///
/// impl Projection for Revenue {
///     type Event = TillEvent;
///     const NAME: &'static str = "revenue";
///
///     async fn apply(&self, batch: Batch<'_, TillEvent>) -> Result<(), ReactionError> {
///         let mut model = self.0.live.lock().unwrap();  // one "transaction"
///         for e in batch.since(model.0)? {
///             let TillEvent::Sold { total } = e.data;
///             model.1 += total;
///         }
///         model.0 = batch.last_id().or(model.0);
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let revenue = Revenue::default();
/// let app = act().with_state::<Till>().with_projection(revenue.clone()).build()?;
/// app.execute(Sell { total: 2.5 }, Target::new("till-1", Actor::new("u", "U"))).await?;
/// app.settle_now(SettleOptions::default()).await?;
/// assert_eq!(revenue.0.live.lock().unwrap().1, 2.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub trait Projection: Send + Sync + 'static {
    /// The events it reads: an `#[emits]` enum, or the events of several states joined with
    /// [`event_set!`](crate::event_set).
    type Event: EventSet;
    /// Its name: the target its subscription row is kept under. No reaction may target it.
    const NAME: &'static str;
    /// The events of [`Projection::Event`] it reads; empty (the default) for all of them.
    const EVENTS: &'static [&'static str] = &[];
    /// Batch mode: [`Projection::apply`] receives all the claimed events of a drain at once
    /// instead of one at a time.
    const BATCH: bool = false;
    /// Retry, block, backoff and timeout options, as for reactions.
    const OPTIONS: ReactionOptions = ReactionOptions::DEFAULT;

    /// Applies events to the model `batch.model` names. An error is retried with backoff,
    /// then blocks the projection with it; a [`ProjectionGap`] rewinds it.
    fn apply(
        &self,
        batch: Batch<'_, Self::Event>,
    ) -> impl Future<Output = Result<(), ReactionError>> + Send;

    /// Empties (or creates) the [`Model::Next`] copy: the first step of a rebuild.
    fn clear_next(&self) -> impl Future<Output = Result<(), ReactionError>> + Send {
        async {
            Err(ReactionError::fatal(format!(
                "projection `{}` cannot be rebuilt: it does not implement `clear_next` and `promote_next`",
                Self::NAME
            )))
        }
    }

    /// Makes the [`Model::Next`] copy the live one, checkpoint included, in one step (a
    /// transaction renaming tables, a pointer swap): the last step of a rebuild.
    fn promote_next(&self) -> impl Future<Output = Result<(), ReactionError>> + Send {
        async {
            Err(ReactionError::fatal(format!(
                "projection `{}` cannot be rebuilt: it does not implement `clear_next` and `promote_next`",
                Self::NAME
            )))
        }
    }
}
