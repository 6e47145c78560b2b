//! Reactions in the registry: type-erased entries and the build-time classification.

use std::collections::HashMap;
use std::sync::Arc;

use super::Scope;
use super::reaction::{BoxFuture, Reaction, ReactionError, ReactionOptions, Resolved, Resolver};
use crate::error::BuildError;
use crate::model::Committed;
use crate::ports::Subscription;
use crate::projections::ProjectionEntry;

type ResolveFn = fn(&Committed) -> Result<Option<Resolved>, serde_json::Error>;

trait ErasedHandler: Send + Sync {
    fn handle<'a>(
        &'a self,
        event: &'a Committed,
        scope: &'a Scope,
    ) -> BoxFuture<'a, Result<(), ReactionError>>;
}

struct Typed<R>(R);

impl<R: Reaction> ErasedHandler for Typed<R> {
    fn handle<'a>(
        &'a self,
        event: &'a Committed,
        scope: &'a Scope,
    ) -> BoxFuture<'a, Result<(), ReactionError>> {
        Box::pin(async move {
            let typed = event
                .typed::<R::Event>()
                .map_err(ReactionError::fatal)?
                .ok_or_else(|| {
                    ReactionError::fatal(format!(
                        "event `{}` is not one of `{}`'s events",
                        event.name,
                        R::NAME
                    ))
                })?;
            self.0.handle(&typed, scope).await
        })
    }
}

/// Why a dynamic resolver could not route an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveFailure {
    /// The event's payload does not decode as the reaction's event type.
    #[error("the event does not decode: {0}")]
    Decode(String),
    /// The resolver panicked.
    #[error("the resolver panicked: {0}")]
    Panicked(String),
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

/// The registry entry of one reaction.
#[derive(Clone)]
pub struct ReactionEntry {
    pub(crate) name: &'static str,
    pub(crate) event: &'static str,
    pub(crate) resolver: Resolver,
    pub(crate) options: ReactionOptions,
    resolve: ResolveFn,
    handler: Arc<dyn ErasedHandler>,
}

impl std::fmt::Debug for ReactionEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactionEntry")
            .field("name", &self.name)
            .field("event", &self.event)
            .field("resolver", &self.resolver)
            .field("options", &self.options)
            .finish()
    }
}

impl ReactionEntry {
    /// The entry of reaction `R`.
    pub fn of<R: Reaction>(reaction: R) -> Self {
        fn resolve<R: Reaction>(e: &Committed) -> Result<Option<Resolved>, serde_json::Error> {
            match R::RESOLVER {
                Resolver::Dynamic => Ok(e.typed::<R::Event>()?.and_then(|t| R::resolve(&t))),
                r => Ok(r.route(&e.stream)),
            }
        }
        Self {
            name: R::NAME,
            event: R::EVENT,
            resolver: R::RESOLVER,
            options: R::OPTIONS,
            resolve: resolve::<R>,
            handler: Arc::new(Typed(reaction)),
        }
    }

    /// The entry marking projection `name`'s work for `event`: a static target, so its
    /// subscription is marked at commit. The drain feeds projections through their own
    /// entry ([`crate::projections::ProjectionEntry`]), never through this handler.
    pub(crate) fn of_projection(
        name: &'static str,
        event: &'static str,
        options: ReactionOptions,
    ) -> Self {
        struct FedByTheDrain(&'static str);
        impl ErasedHandler for FedByTheDrain {
            fn handle<'a>(
                &'a self,
                _: &'a Committed,
                _: &'a Scope,
            ) -> BoxFuture<'a, Result<(), ReactionError>> {
                let name = self.0;
                Box::pin(async move {
                    Err(ReactionError::fatal(format!(
                        "projection `{name}` is fed in order by the drain, not event by event"
                    )))
                })
            }
        }
        Self {
            name,
            event,
            resolver: Resolver::Static(name),
            options,
            resolve: |_| Ok(None),
            handler: Arc::new(FedByTheDrain(name)),
        }
    }

    /// The reaction's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The event it reacts to.
    pub fn event(&self) -> &'static str {
        self.event
    }

    /// How its target is found.
    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// Its options.
    pub fn options(&self) -> ReactionOptions {
        self.options
    }

    /// Where `event` goes. A payload that does not decode, or a resolver that panics, is a
    /// [`ResolveFailure`]: the pipeline blocks the event's poison row with it.
    pub fn try_resolve(&self, event: &Committed) -> Result<Option<Resolved>, ResolveFailure> {
        if self.resolver.is_static() {
            return Ok(self.resolver.route(&event.stream));
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.resolve)(event))) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(ResolveFailure::Decode(crate::error::chain(&e))),
            Err(panic) => Err(ResolveFailure::Panicked(panic_message(panic.as_ref()))),
        }
    }

    /// The subscription a commit of an event on `stream` marks at once: static targets
    /// (`to = "..."`, `_this_`) only; `None` for `void` and dynamic resolvers.
    pub fn mark_for(&self, stream: &str) -> Option<Subscription> {
        self.resolver.route(stream).map(|r| r.subscription(None))
    }

    pub(crate) fn handle<'a>(
        &'a self,
        event: &'a Committed,
        scope: &'a Scope,
    ) -> BoxFuture<'a, Result<(), ReactionError>> {
        self.handler.handle(event, scope)
    }
}

/// The reactions of an app, by event, with the build-time classification.
#[derive(Debug, Default)]
pub struct Reactions {
    pub(crate) entries: Vec<ReactionEntry>,
    by_event: HashMap<&'static str, Vec<usize>, foldhash::fast::RandomState>,
    /// Static literal targets, subscribed once at start.
    pub(crate) static_targets: Vec<Subscription>,
    /// Whether any reaction has a dynamic resolver (else correlate never scans).
    pub(crate) has_dynamic: bool,
    /// Event names with at least one dynamic reaction (what correlate scans for).
    pub(crate) dynamic_events: Vec<&'static str>,
    /// The projections, each fed as the static target named after it.
    pub(crate) projections: Vec<ProjectionEntry>,
}

impl Reactions {
    pub(crate) fn build(
        mut entries: Vec<ReactionEntry>,
        projections: Vec<ProjectionEntry>,
        known_event: impl Fn(&str) -> bool,
    ) -> Result<Self, BuildError> {
        let mut r = Reactions::default();
        for p in &projections {
            if r.projections.iter().any(|q| q.name == p.name) {
                return Err(BuildError::DuplicateProjection {
                    name: p.name.to_owned(),
                });
            }
            if let Some(reaction) = entries
                .iter()
                .find(|e| e.resolver == Resolver::Static(p.name))
            {
                return Err(BuildError::ProjectionTargetShared {
                    projection: p.name.to_owned(),
                    reaction: reaction.name.to_owned(),
                });
            }
            if let Some(event) = p.events.iter().find(|e| !known_event(e)) {
                return Err(BuildError::UnknownEvent {
                    reaction: p.name.to_owned(),
                    event: (*event).to_owned(),
                });
            }
            r.projections.push(p.clone());
        }
        entries.extend(projections.iter().flat_map(|p| {
            p.events
                .iter()
                .map(|e| ReactionEntry::of_projection(p.name, e, p.options))
        }));
        for entry in entries {
            if !known_event(entry.event) {
                return Err(BuildError::UnknownEvent {
                    reaction: entry.name.to_owned(),
                    event: entry.event.to_owned(),
                });
            }
            let list = r.by_event.entry(entry.event).or_default();
            if list.iter().any(|&i| r.entries[i].name == entry.name) {
                return Err(BuildError::DuplicateReaction {
                    name: entry.name.to_owned(),
                    event: entry.event.to_owned(),
                });
            }
            list.push(r.entries.len());
            match entry.resolver {
                Resolver::Static(t) => {
                    if !r.static_targets.iter().any(|s| s.stream == t) {
                        r.static_targets.extend(entry.mark_for(t));
                    }
                }
                Resolver::Dynamic => {
                    r.has_dynamic = true;
                    if !r.dynamic_events.contains(&entry.event) {
                        r.dynamic_events.push(entry.event);
                    }
                }
                Resolver::SameStream | Resolver::Void => {}
            }
            r.entries.push(entry);
        }
        Ok(r)
    }

    /// The reactions to event `name`.
    pub(crate) fn on(&self, name: &str) -> impl Iterator<Item = &ReactionEntry> {
        self.by_event
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| &self.entries[i])
    }

    /// The projection fed as target `stream`, if any.
    pub(crate) fn projection(&self, stream: &str) -> Option<&ProjectionEntry> {
        self.projections.iter().find(|p| p.name == stream)
    }

    /// Every projection entry.
    pub fn projections(&self) -> impl Iterator<Item = &ProjectionEntry> {
        self.projections.iter()
    }

    /// Whether there are no reactions.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every reaction entry.
    pub fn iter(&self) -> impl Iterator<Item = &ReactionEntry> {
        self.entries.iter()
    }
}
