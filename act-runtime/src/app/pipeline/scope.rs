//! The app as a reaction sees it.

use crate::app::{Act, Cause, Executed, LoadOptions};
use crate::error::ActError;
use crate::model::Emits;
use crate::model::{Committed, EventCause, Handle, Snapshot, Target};
use crate::ports::Query;

/// The app inside a reaction: actions executed here carry the triggering event as their
/// causation and keep its correlation id. They load, check their invariants and commit
/// against the version they loaded, retrying a lost race exactly as [`Act::execute`] does:
/// nothing is committed from stale state. A drain in flight when the app shuts down
/// finishes through its scope: these calls do not refuse work during its grace.
#[derive(Clone)]
pub struct Scope {
    app: Act,
    correlation: String,
    event: EventCause,
    stream: String,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("correlation", &self.correlation)
            .field("event", &self.event)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Scope {
    pub(crate) fn new(app: Act, event: &Committed, stream: &str) -> Self {
        Self {
            app,
            stream: stream.to_owned(),
            correlation: event.meta.correlation.clone(),
            event: EventCause {
                id: event.id,
                name: event.name.clone(),
                stream: event.stream.clone(),
            },
        }
    }

    /// The target stream the resolver chose for this event (the stream this handler works
    /// for): the literal of `to = "..."`, the event's own stream for `_this_` and `void`,
    /// the resolved target for a dynamic resolver.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The correlation id of the triggering event.
    pub fn correlation(&self) -> &str {
        &self.correlation
    }

    /// The triggering event.
    pub fn event(&self) -> &EventCause {
        &self.event
    }

    /// Executes an action caused by the triggering event.
    pub async fn execute<A: Handle>(
        &self,
        action: A,
        target: Target,
    ) -> Result<Executed<A::State>, ActError> {
        self.app
            .execute_caused(
                action,
                target,
                Cause {
                    correlation: Some(self.correlation.clone()),
                    event: Some(self.event.clone()),
                },
            )
            .await
    }

    /// Loads a state.
    pub async fn load<S: Emits>(&self, stream: &str) -> Result<Snapshot<S>, ActError> {
        Ok(self
            .app
            .load_inner::<S>(stream, &LoadOptions::default())
            .await?
            .snapshot)
    }

    /// Loads a state as of a point in time.
    pub async fn load_with<S: Emits>(
        &self,
        stream: &str,
        options: &LoadOptions,
    ) -> Result<Snapshot<S>, ActError> {
        Ok(self.app.load_inner::<S>(stream, options).await?.snapshot)
    }

    /// Queries events.
    pub async fn query(&self, query: &Query) -> Result<Vec<Committed>, ActError> {
        self.app.query_inner(query).await
    }

    /// The whole app (actions run through it directly carry no causation).
    pub fn app(&self) -> &Act {
        &self.app
    }
}
