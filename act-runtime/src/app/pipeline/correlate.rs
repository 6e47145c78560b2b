//! Correlate: discover the targets of dynamic resolvers and raise their work marks.
//!
//! A resolver that panics, meets an event it cannot decode, or names a target the store
//! refuses (a NUL byte, a pattern the adapter cannot express) does not stop the scan: the
//! event is routed to a *poison row*, `!resolve/{reaction}/{event stream}`, which the next
//! drain blocks with the error. Unblocking the row runs the resolver again.

use std::collections::HashMap;

use super::POISON_PREFIX;
use crate::app::{Act, validate_stream};
use crate::error::{ActError, Report, StoreError};
use crate::model::{Committed, EventId};
use crate::ports::{Query, StreamMatch, Subscription};
use crate::reactions::{ReactionEntry, Reactions, Resolved};

/// What a [`Act::correlate`] pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Correlated {
    /// How many target streams were new.
    pub subscribed: usize,
    /// The correlation checkpoint after the pass: every event up to it has been routed.
    pub last_id: EventId,
}

/// Whether `stream` is inside a target's source window.
pub(crate) fn in_window(source: Option<&str>, is_pattern: bool, stream: &str) -> bool {
    match source {
        None => true,
        Some(s) if !is_pattern => s == stream,
        Some(p) => regex::RegexBuilder::new(p)
            .dot_matches_new_line(true)
            .build()
            .is_ok_and(|r| r.is_match(stream)),
    }
}

/// Refuses a resolution no store can keep: a target that is not a valid stream name, a
/// source pattern that does not compile, or a projection's own row (its events would be
/// fed to the projection, and the reaction would never run).
pub(crate) fn check_resolved(res: &Resolved, reactions: &Reactions) -> Result<(), String> {
    if let Err(e) = validate_stream(&res.target) {
        return Err(format!(
            "resolved to target {:?}, which is refused: {e}",
            res.target
        ));
    }
    if reactions.projection(&res.target).is_some() {
        return Err(format!(
            "resolved to target {:?}, which is a projection's: rename the target or the projection",
            res.target
        ));
    }
    if let (Some(p), true) = (&res.source, res.source_is_pattern)
        && let Err(e) = regex::Regex::new(p)
    {
        return Err(format!(
            "resolved target {:?} reads the pattern {p:?}, which is refused: {e}",
            res.target
        ));
    }
    Ok(())
}

/// The reaction name of a poison row for every dynamic reaction (an unreadable event).
pub(crate) const ANY_REACTION: &str = "*";

/// The poison row of `reaction` for the events of `stream`.
pub(crate) fn poison_row(reaction: &str, stream: &str) -> String {
    format!("{POISON_PREFIX}{reaction}/{stream}")
}

/// The reaction and source stream of a poison row.
pub(crate) fn parse_poison(row: &str) -> Option<(&str, &str)> {
    row.strip_prefix(POISON_PREFIX)?.split_once('/')
}

/// A (reaction, event stream) pair that routed events to a target, with its last event.
type Contributor = (&'static str, String, EventId);

/// Routes events to targets, collecting one subscription per target and, for every target,
/// which (reaction, event stream) pairs contributed to it (so a refused target poisons
/// only them).
#[derive(Default)]
pub(crate) struct Router {
    targets: HashMap<String, (Subscription, Vec<Contributor>)>,
}

impl Router {
    /// Routes `event` through the dynamic `reaction`.
    pub(crate) fn route(
        &mut self,
        reactions: &Reactions,
        reaction: &ReactionEntry,
        event: &Committed,
    ) {
        match reaction.try_resolve(event) {
            Ok(None) => {}
            Ok(Some(res)) => match check_resolved(&res, reactions) {
                Ok(()) => self.add(reaction.name(), event, &res),
                Err(e) => self.poison(reaction.name(), event, e),
            },
            Err(e) => self.poison(reaction.name(), event, e.to_string()),
        }
    }

    fn add(&mut self, reaction: &'static str, event: &Committed, res: &Resolved) {
        let mark = in_window(res.source.as_deref(), res.source_is_pattern, &event.stream)
            .then_some(event.id);
        let (sub, from) = self
            .targets
            .entry(res.target.clone())
            .or_insert_with(|| (res.subscription(None), Vec::new()));
        sub.priority = sub.priority.max(res.priority);
        sub.correlated_at = sub.correlated_at.max(mark);
        // O(1) per event: runs of one (reaction, stream) share an entry; duplicates across
        // runs are merged only on the rare refused-target path
        match from.last_mut() {
            Some(f) if f.0 == reaction && f.1 == event.stream => f.2 = f.2.max(event.id),
            _ => from.push((reaction, event.stream.clone(), event.id)),
        }
    }

    fn poison(&mut self, reaction: &'static str, event: &Committed, error: String) {
        tracing::warn!(reaction, id = event.id, stream = %event.stream, %error, "the resolver failed; the event goes to a poison row");
        self.poison_row_for(reaction, &event.stream, event.id);
    }

    fn poison_row_for(&mut self, reaction: &str, stream: &str, id: EventId) {
        let row = poison_row(reaction, stream);
        let (sub, _) = self.targets.entry(row.clone()).or_insert_with(|| {
            (
                Subscription {
                    source: Some(stream.to_owned()),
                    ..Subscription::new(row)
                },
                Vec::new(),
            )
        });
        sub.correlated_at = sub.correlated_at.max(Some(id));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Subscribes every target (and raises the checkpoint to `checkpoint`). When the store
    /// refuses the batch as invalid, each target is tried alone and a refused one poisons
    /// the (reaction, stream) pairs that routed to it.
    pub(crate) async fn subscribe(
        self,
        app: &Act,
        checkpoint: Option<EventId>,
    ) -> Result<usize, ActError> {
        let store = &app.inner.store;
        let subs: Vec<Subscription> = self.targets.values().map(|(s, _)| s.clone()).collect();
        match store.subscribe(&subs, checkpoint).await {
            Ok(r) => return Ok(r.subscribed),
            Err(StoreError::Invalid(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let mut subscribed = 0;
        let mut poisoned: Vec<Subscription> = Vec::new();
        for (sub, from) in self.targets.into_values() {
            match store.subscribe(std::slice::from_ref(&sub), None).await {
                Ok(r) => subscribed += r.subscribed,
                Err(StoreError::Invalid(e)) => {
                    tracing::warn!(target = %sub.stream, error = %Report::new(&e), "the store refused a resolved target; its events go to poison rows");
                    for (reaction, stream, id) in from {
                        let row = poison_row(reaction, &stream);
                        match poisoned.iter_mut().find(|p| p.stream == row) {
                            Some(p) => p.correlated_at = p.correlated_at.max(Some(id)),
                            None => poisoned.push(Subscription {
                                source: Some(stream),
                                correlated_at: Some(id),
                                ..Subscription::new(row)
                            }),
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        subscribed += store.subscribe(&poisoned, checkpoint).await?.subscribed;
        Ok(subscribed)
    }
}

impl Act {
    /// Subscribes the static targets and reads the checkpoint, once. Retried on failure.
    pub(crate) async fn init_reactions(&self) -> Result<(), ActError> {
        let pipeline = &self.inner.pipeline;
        pipeline
            .init
            .get_or_try_init(|| async {
                let reactions = &self.inner.reactions;
                let r = self
                    .inner
                    .store
                    .subscribe(&reactions.static_targets, None)
                    .await?;
                pipeline.set_checkpoint(r.checkpoint.unwrap_or(-1));
                Ok::<(), ActError>(())
            })
            .await?;
        Ok(())
    }

    /// Scans up to `limit` events after the checkpoint, resolves the dynamic reactions on
    /// them, subscribes their targets with raised work marks, and moves the checkpoint.
    ///
    /// Static targets (`to = "..."`, `_this_`) are marked when their events are committed,
    /// so an app without dynamic resolvers never scans: this returns at once. A resolver
    /// that fails on an event routes it to a blocked poison row (see the module docs)
    /// instead of failing the pass.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use act_runtime::prelude::*;
    ///
    /// let app = act().build().unwrap();
    /// let c = app.correlate(100).await.unwrap();
    /// assert_eq!(c.subscribed, 0); // no dynamic resolvers: nothing to scan
    /// # });
    /// ```
    pub async fn correlate(&self, limit: usize) -> Result<Correlated, ActError> {
        use tracing::Instrument as _;
        let span = tracing::debug_span!("act.correlate", limit);
        self.correlate_traced(limit).instrument(span).await
    }

    async fn correlate_traced(&self, limit: usize) -> Result<Correlated, ActError> {
        self.check_live()?;
        self.init_reactions().await?;
        let reactions = &self.inner.reactions;
        let pipeline = &self.inner.pipeline;
        if !reactions.has_dynamic {
            return Ok(Correlated {
                subscribed: 0,
                last_id: pipeline.checkpoint(),
            });
        }
        let _pass = pipeline.correlate_lock.lock().await;
        let checkpoint = pipeline.checkpoint();
        let query = Query::all()
            .after(checkpoint)
            .limit(limit.max(1))
            .names(reactions.dynamic_events.iter().copied());
        let mut router = Router::default();
        let mut last_id = checkpoint;
        let mut scanned = 0usize;
        let mut scan = |e: &Committed| {
            scanned += 1;
            last_id = last_id.max(e.id);
            for r in reactions.on(&e.name).filter(|r| !r.resolver().is_static()) {
                router.route(reactions, r, e);
            }
        };
        match self.inner.store.query(&query, &mut scan).await {
            Ok(_) => {}
            // An unreadable event: route what comes before it, and send it to the poison
            // row of every dynamic reaction for its stream.
            Err(StoreError::Corrupt { id, stream, reason }) => {
                let before = query.clone().before(id);
                self.inner.store.query(&before, &mut scan).await?;
                tracing::warn!(id, %stream, %reason, "an unreadable event goes to a poison row");
                router.poison_row_for(ANY_REACTION, &stream, id);
                last_id = last_id.max(id);
            }
            Err(e) => return Err(e.into()),
        }
        let advance = (last_id > checkpoint).then_some(last_id);
        let subscribed = if router.is_empty() && advance.is_none() {
            0
        } else {
            router.subscribe(self, advance).await?
        };
        pipeline.set_checkpoint(last_id);
        Ok(Correlated {
            subscribed,
            last_id,
        })
    }
}

/// The query a lease's source reads.
pub(crate) fn source_filter(source: Option<&str>, is_pattern: bool) -> Option<StreamMatch> {
    source.map(|s| {
        if is_pattern {
            StreamMatch::Pattern(s.to_owned())
        } else {
            StreamMatch::Exact(s.to_owned())
        }
    })
}
