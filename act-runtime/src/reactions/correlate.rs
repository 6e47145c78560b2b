//! Correlate: discover the targets of dynamic resolvers and raise their work marks.

use std::collections::HashMap;

use regex::Regex;

use crate::app::Act;
use crate::error::ActError;
use crate::model::{Committed, EventId};
use crate::ports::{Query, Subscription};

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
        Some(p) => Regex::new(p).map(|r| r.is_match(stream)).unwrap_or(false),
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
                let start = r.checkpoint.unwrap_or(-1);
                pipeline.set_checkpoint(start);
                Ok::<(), ActError>(())
            })
            .await?;
        Ok(())
    }

    /// Scans up to `limit` events after the checkpoint, resolves the dynamic reactions on
    /// them, subscribes their targets with raised work marks, and moves the checkpoint.
    ///
    /// Static targets (`to = "..."`, `_this_`) are marked when their events are committed,
    /// so an app without dynamic resolvers never scans: this returns at once.
    pub async fn correlate(&self, limit: usize) -> Result<Correlated, ActError> {
        self.check_live()?;
        self.init_reactions().await?;
        let reactions = &self.inner.reactions;
        let pipeline = &self.inner.pipeline;
        let checkpoint = pipeline.checkpoint();
        if !reactions.has_dynamic {
            return Ok(Correlated {
                subscribed: 0,
                last_id: checkpoint,
            });
        }
        let query = Query::all()
            .after(checkpoint)
            .limit(limit.max(1))
            .names(reactions.dynamic_events.iter().copied());
        let mut targets: HashMap<String, Subscription> = HashMap::new();
        let mut last_id = checkpoint;
        let mut scanned = 0usize;
        self.inner
            .store
            .query(&query, &mut |e: &Committed| {
                scanned += 1;
                last_id = last_id.max(e.id);
                for r in reactions.on(&e.name) {
                    if r.resolver.is_static() {
                        continue;
                    }
                    let Some(res) = r.resolve(e) else { continue };
                    let mark = in_window(res.source.as_deref(), res.source_is_pattern, &e.stream)
                        .then_some(e.id);
                    let sub = targets
                        .entry(res.target.clone())
                        .or_insert_with(|| Subscription {
                            stream: res.target.clone(),
                            source: res.source.clone(),
                            source_is_pattern: res.source_is_pattern,
                            priority: res.priority,
                            correlated_at: None,
                        });
                    sub.priority = sub.priority.max(res.priority);
                    sub.correlated_at = sub.correlated_at.max(mark);
                }
            })
            .await?;
        if scanned < limit.max(1) {
            // the end of the log for now: nothing up to here is left to route
            last_id = last_id.max(checkpoint);
        }
        let subs: Vec<Subscription> = targets.into_values().collect();
        let advance = (last_id > checkpoint).then_some(last_id);
        let subscribed = if subs.is_empty() && advance.is_none() {
            0
        } else {
            self.inner.store.subscribe(&subs, advance).await?.subscribed
        };
        pipeline.set_checkpoint(last_id);
        Ok(Correlated {
            subscribed,
            last_id,
        })
    }
}
