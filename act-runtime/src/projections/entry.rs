//! Projections in the registry: the type-erased entry the drain and the rebuild call.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::projection::{Batch, Model, Projection, ProjectionGap};
use crate::model::{Committed, EventId, EventSet};
use crate::reactions::{BoxFuture, ReactionError, ReactionOptions};

/// Events the projection's enum cannot decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {id} ({name}) does not decode for projection `{projection}`: {reason}")]
pub struct Undecodable {
    /// The projection.
    pub projection: &'static str,
    /// The event's id.
    pub id: EventId,
    /// The event's name.
    pub name: String,
    /// Why.
    pub reason: String,
}

trait Erased: Send + Sync {
    fn apply<'a>(
        &'a self,
        model: Model,
        after: EventId,
        events: &'a [Committed],
        applied: &'a AtomicI64,
    ) -> BoxFuture<'a, Result<(), ReactionError>>;
    fn clear_next(&self) -> BoxFuture<'_, Result<(), ReactionError>>;
    fn promote_next(&self) -> BoxFuture<'_, Result<(), ReactionError>>;
}

struct Typed<P>(P);

impl<P: Projection> Typed<P> {
    fn decode(events: &[Committed]) -> (Vec<Committed<P::Event>>, Option<Undecodable>) {
        let mut typed = Vec::with_capacity(events.len());
        for e in events {
            let reason = match e.typed::<P::Event>() {
                Ok(Some(t)) => {
                    typed.push(t);
                    continue;
                }
                Ok(None) => "not one of its events".to_owned(),
                Err(err) => crate::error::chain(&err),
            };
            let bad = Undecodable {
                projection: P::NAME,
                id: e.id,
                name: e.name.clone(),
                reason,
            };
            return (typed, Some(bad));
        }
        (typed, None)
    }
}

impl<P: Projection> Erased for Typed<P> {
    /// Decodes and applies `events`, raising `applied` to the last id applied after each
    /// call of the user's `apply` that succeeded.
    fn apply<'a>(
        &'a self,
        model: Model,
        after: EventId,
        events: &'a [Committed],
        applied: &'a AtomicI64,
    ) -> BoxFuture<'a, Result<(), ReactionError>> {
        Box::pin(async move {
            let (typed, bad) = Self::decode(events);
            if P::BATCH {
                if let Some(last) = typed.last() {
                    let batch = Batch {
                        model,
                        after,
                        events: &typed,
                    };
                    self.0.apply(batch).await?;
                    applied.store(last.id, Ordering::Release);
                }
            } else {
                let mut at = after;
                for (i, e) in typed.iter().enumerate() {
                    let batch = Batch {
                        model,
                        after: at,
                        events: &typed[i..=i],
                    };
                    self.0.apply(batch).await?;
                    at = e.id;
                    applied.store(at, Ordering::Release);
                }
            }
            match bad {
                Some(u) => Err(ReactionError::fatal(u)),
                None => Ok(()),
            }
        })
    }

    fn clear_next(&self) -> BoxFuture<'_, Result<(), ReactionError>> {
        Box::pin(self.0.clear_next())
    }

    fn promote_next(&self) -> BoxFuture<'_, Result<(), ReactionError>> {
        Box::pin(self.0.promote_next())
    }
}

/// The registry entry of one projection.
#[derive(Clone)]
pub struct ProjectionEntry {
    pub(crate) name: &'static str,
    pub(crate) events: Vec<&'static str>,
    pub(crate) batch: bool,
    pub(crate) options: ReactionOptions,
    erased: Arc<dyn Erased>,
}

impl std::fmt::Debug for ProjectionEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionEntry")
            .field("name", &self.name)
            .field("events", &self.events)
            .field("batch", &self.batch)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ProjectionEntry {
    /// The entry of projection `P`.
    pub fn of<P: Projection>(projection: P) -> Self {
        let events = if P::EVENTS.is_empty() {
            <P::Event as EventSet>::names()
        } else {
            P::EVENTS.to_vec()
        };
        Self {
            name: P::NAME,
            events,
            batch: P::BATCH,
            options: P::OPTIONS,
            erased: Arc::new(Typed(projection)),
        }
    }

    /// The projection's name (its target).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The events it reads.
    pub fn events(&self) -> &[&'static str] {
        &self.events
    }

    /// Whether it receives batches.
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// Its options.
    pub fn options(&self) -> ReactionOptions {
        self.options
    }

    /// Applies `events` (the projection's own, in id order, starting after `after`);
    /// `applied` is raised to the last id applied as the user's calls succeed, so a
    /// failure, a panic or a timeout keeps the progress made before it.
    pub(crate) fn apply<'a>(
        &'a self,
        model: Model,
        after: EventId,
        events: &'a [Committed],
        applied: &'a AtomicI64,
    ) -> BoxFuture<'a, Result<(), ReactionError>> {
        self.erased.apply(model, after, events, applied)
    }

    pub(crate) fn clear_next(&self) -> BoxFuture<'_, Result<(), ReactionError>> {
        self.erased.clear_next()
    }

    pub(crate) fn promote_next(&self) -> BoxFuture<'_, Result<(), ReactionError>> {
        self.erased.promote_next()
    }
}

/// Whether `error` is a [`ProjectionGap`].
pub(crate) fn is_gap(error: &ReactionError) -> bool {
    let (ReactionError::NonRetryable(e) | ReactionError::Retryable(e)) = error;
    e.downcast_ref::<ProjectionGap>().is_some()
}
