//! The phases of the cycle: catch up, head, safety, guard, and the close events' meta.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Act {
    /// Phase 1: runs correlation passes until the checkpoint stops moving (at most
    /// [`CORRELATE_PASSES`]); returns the checkpoint. Without dynamic reactions there is
    /// nothing to scan.
    pub(super) async fn catch_up(&self) -> Result<EventId, ActError> {
        if self.inner.reactions.is_empty() {
            return Ok(self.inner.pipeline.checkpoint());
        }
        let mut last = self.correlate(CORRELATE_LIMIT).await?.last_id;
        if self.inner.reactions.has_dynamic {
            for _ in 1..CORRELATE_PASSES {
                let next = self.correlate(CORRELATE_LIMIT).await?.last_id;
                if next == last {
                    break;
                }
                last = next;
            }
        }
        Ok(last)
    }

    /// Phase 2: where `target` stands (open at a version, or guarded), or why it is
    /// skipped.
    pub(super) async fn head_of(
        &self,
        target: &CloseTarget,
    ) -> Result<Result<Head, SkipReason>, ActError> {
        let mut last: Option<(EventId, Version, String)> = None;
        let mut head = Query::stream(&target.stream)
            .with_snaps()
            .backward()
            .limit(1);
        head.skip_meta = true;
        self.inner
            .store
            .query(&head, &mut |e: &Committed| {
                last = Some((e.id, e.version, e.name.clone()));
            })
            .await?;
        let Some((id, version, name)) = last else {
            return Ok(Err(SkipReason::NotFound));
        };
        let head = match name.as_str() {
            TOMBSTONE_EVENT if version == 0 => return Ok(Err(SkipReason::AlreadyClosed)),
            TOMBSTONE_EVENT => Head::Guarded { tombstone: id },
            SNAPSHOT_EVENT if version == 0 && target.restart.is_some() => {
                return Ok(Err(SkipReason::AlreadyClosed));
            }
            _ => Head::Open { version },
        };
        if let Some(r) = target.restart {
            // The last domain event (snapshots are left out; skip the guard tombstone).
            let mut domain = Query::stream(&target.stream).backward().limit(2);
            domain.skip_meta = true;
            let mut event: Option<String> = None;
            self.inner
                .store
                .query(&domain, &mut |e: &Committed| {
                    if event.is_none() && e.name != TOMBSTONE_EVENT {
                        event = Some(e.name.clone());
                    }
                })
                .await?;
            if let Some(event) = event
                && !(r.owns)(&event)
            {
                return Ok(Err(SkipReason::NotOwned {
                    state: r.state,
                    event,
                }));
            }
        }
        Ok(Ok(head))
    }

    /// Phase 4: commits the guard tombstone of `stream` at `version`; returns its id.
    ///
    /// It takes the stream's turn, as actions do from load to commit: an action of this
    /// process that loaded the stream before the guard commits before it (and the guard
    /// conflicts), never after the truncate, when the stream is back at version 0 and a
    /// commit expecting version 0 would land on the tombstone.
    pub(super) async fn guard(
        &self,
        stream: &str,
        version: Version,
    ) -> Result<EventId, StoreError> {
        let _turn = self.inner.turns.take(stream).await;
        let tombstone = [Message::new(
            TOMBSTONE_EVENT,
            serde_json::value::RawValue::from_string("{}".to_owned())
                .map_err(|e| StoreError::backend("commit", e))?,
        )];
        let meta = self.close_meta(stream, Some(version));
        let committed = self
            .inner
            .store
            .commit(stream, &tombstone, &meta, Some(version))
            .await?;
        committed
            .last()
            .map(|e| e.id)
            .ok_or_else(|| StoreError::backend("commit", "the guard tombstone was not committed"))
    }

    /// Phase 3: the candidates with reaction work pending, and why. A subscription row has
    /// pending work on a stream when its source covers the stream and the stream has an
    /// event with reactions after the row's watermark, up to its work mark; a stream with
    /// events that have dynamic reactions past the correlation `checkpoint` is not known
    /// to be safe either.
    pub(super) async fn pending(
        &self,
        candidates: &[Candidate],
        checkpoint: EventId,
    ) -> Result<HashMap<String, SkipReason>, ActError> {
        let reactions = &self.inner.reactions;
        let mut out = HashMap::new();
        // The events whose reactions use subscription rows (`void` ones run inline).
        let mut reactive: Vec<&'static str> = reactions
            .iter()
            .filter(|r| r.resolver() != Resolver::Void)
            .map(|r| r.event())
            .collect();
        reactive.sort_unstable();
        reactive.dedup();
        if reactive.is_empty() {
            return Ok(out);
        }
        if reactions.has_dynamic {
            for c in candidates {
                let late = Query::stream(&c.stream)
                    .names(reactions.dynamic_events.iter().copied())
                    .after(checkpoint)
                    .limit(1);
                if self.any(&late).await? {
                    out.insert(
                        c.stream.clone(),
                        SkipReason::CorrelationBehind { checkpoint },
                    );
                }
            }
        }
        // Rows with work left (a row without a mark, or with its watermark at the mark,
        // has none), read page by page.
        let mut rows: Vec<StreamPosition> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .inner
                .store
                .query_streams(&StreamFilter {
                    after: after.clone(),
                    limit: Some(ROWS_PAGE),
                    ..StreamFilter::default()
                })
                .await?;
            let full = page.len() >= ROWS_PAGE;
            after = page.last().map(|r| r.stream.clone());
            rows.extend(
                page.into_iter()
                    .filter(|r| r.correlated_at.is_some_and(|at| r.at < at)),
            );
            if !full || after.is_none() {
                break;
            }
        }
        for c in candidates {
            if out.contains_key(&c.stream) {
                continue;
            }
            let mut targets = Vec::new();
            for row in &rows {
                let Some(mark) = row.correlated_at else {
                    continue;
                };
                if !in_window(row.source.as_deref(), row.source_is_pattern, &c.stream) {
                    continue;
                }
                let work = Query::stream(&c.stream)
                    .names(reactive.iter().copied())
                    .after(row.at)
                    .before(mark.saturating_add(1))
                    .limit(1);
                if self.any(&work).await? {
                    targets.push(row.stream.clone());
                }
            }
            if !targets.is_empty() {
                out.insert(c.stream.clone(), SkipReason::PendingReactions { targets });
            }
        }
        Ok(out)
    }

    /// Whether `query` selects any event.
    async fn any(&self, query: &Query) -> Result<bool, ActError> {
        let mut query = query.clone();
        query.skip_meta = true;
        Ok(self
            .inner
            .store
            .query(&query, &mut |_: &Committed| {})
            .await?
            > 0)
    }

    /// The metadata of the close cycle's events on `stream`.
    pub(super) fn close_meta(&self, stream: &str, expected_version: Option<Version>) -> EventMeta {
        let actor = Actor::new("act", "close");
        EventMeta {
            correlation: self.inner.correlator.make(&crate::app::CorrelationContext {
                action: CLOSE_ACTION,
                state: "",
                stream,
                actor: &actor.id,
            }),
            causation: Causation {
                action: Some(ActionCause {
                    name: CLOSE_ACTION.to_owned(),
                    stream: stream.to_owned(),
                    expected_version,
                }),
                event: None,
                trace: crate::app::telemetry::current_trace(),
            },
            actor,
        }
    }
}
