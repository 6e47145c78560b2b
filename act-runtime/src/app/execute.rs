//! Executing an action: validate → load → invariants → handle → commit → patch → snapshot
//! → cache, retrying lost races when the expected version was derived by the framework.

use serde_json::Value;

use super::correlator::CorrelationContext;
use super::json::too_deep;
use super::lifecycle::Lifecycle;
use super::pipeline::Scope;
use super::telemetry;
use super::{Act, store_err, validate_stream};
use crate::error::{ActError, InvariantError, Report, StreamClosedError, ValidationError};
use crate::model::{
    ActionCause, Causation, Committed, Data, Emits, Event, EventCause, EventMeta, EventOf, Handle,
    MAX_EVENT_DEPTH, Message, SNAPSHOT_EVENT, Snapshot, State, Target,
};
use crate::ports::Subscription;
use crate::reactions::Resolver;
use tracing::Instrument as _;

/// What [`Act::execute`] did: the state after the commit and the events committed.
pub struct Executed<S: Emits> {
    /// The state after the action (and after any snapshot it triggered).
    pub snapshot: Snapshot<S>,
    /// The events committed, typed (empty when the handler emitted none).
    pub events: Vec<Committed<EventOf<S>>>,
    /// The committed payloads as stored, one per event: [`Executed::to_json`] renders the
    /// events from them, so it cannot fail after a commit.
    stored: Vec<Data>,
}

impl<S: Emits + std::fmt::Debug> std::fmt::Debug for Executed<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executed")
            .field("snapshot", &self.snapshot)
            .field(
                "events",
                &self
                    .events
                    .iter()
                    .map(|e| (e.id, e.name.as_str(), e.version))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<S: Emits> Executed<S> {
    /// The untyped form, for JSON edges: the events as committed, the version, and the
    /// state as JSON.
    ///
    /// Always `Ok`: the events were committed, so a state that cannot be rendered as JSON
    /// (a map with non-string keys, a failing `Serialize` impl) is reported in
    /// [`ExecutedJson::state_error`] with [`ExecutedJson::state`] `None`, never as an error
    /// a caller might retry (and so commit twice). The `Result` is kept for compatibility.
    pub fn to_json(&self) -> Result<ExecutedJson, ActError> {
        let events = self
            .events
            .iter()
            .zip(&self.stored)
            .map(|(e, data)| Committed {
                id: e.id,
                name: e.name.clone(),
                data: data.clone(),
                stream: e.stream.clone(),
                version: e.version,
                created: e.created,
                meta: e.meta.clone(),
            })
            .collect();
        let (state, state_error) = match serde_json::to_value(&self.snapshot.state) {
            Ok(state) => (Some(state), None),
            Err(e) => {
                tracing::warn!(
                    state = <S as State>::NAME,
                    error = %Report::new(&e),
                    "the state after a commit does not render as JSON"
                );
                (None, Some(e.to_string()))
            }
        };
        Ok(ExecutedJson {
            state,
            state_error,
            version: self.snapshot.version,
            events,
        })
    }
}

/// What [`Act::execute_json`] did.
///
/// It is returned whenever the action committed (or emitted nothing): `events` are the
/// events committed, even when the state after them cannot be rendered as JSON — then
/// `state` is `None` and `state_error` says why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExecutedJson {
    /// The state after the action, as JSON; `None` when it cannot be rendered as JSON
    /// (see `state_error`).
    pub state: Option<Value>,
    /// Why the state cannot be rendered as JSON (a map with non-string keys, say); `None`
    /// when `state` is set. Omitted from the serialized form when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_error: Option<String>,
    /// The stream version after the action.
    pub version: i64,
    /// The events committed.
    pub events: Vec<Committed>,
}

/// An upper bound of the length of `meta` as JSON: every string byte escaped to at most 6
/// (`\u00XX`), plus room for the keys, punctuation and numbers.
fn meta_json_bound(meta: &EventMeta) -> usize {
    let mut strings = meta.correlation.len() + meta.actor.id.len() + meta.actor.name.len();
    if let Some(a) = &meta.causation.action {
        strings += a.name.len() + a.stream.len();
    }
    if let Some(e) = &meta.causation.event {
        strings += e.name.len() + e.stream.len();
    }
    if let Some(t) = &meta.causation.trace {
        strings += t.len();
    }
    strings.saturating_mul(6).saturating_add(512)
}

/// Checks that every event, as stored — its name, its payload and the commit's metadata
/// (serialized) — is at most `limit` bytes. Over it, a [`ValidationError`] names the event,
/// points at its largest part (`/name`, `/data` or `/meta`) and gives the total, each
/// part's size and the limit.
fn check_size(msgs: &[Message], meta: &EventMeta, limit: usize) -> Result<(), ActError> {
    // Most commits are far under the limit: a bound on the meta's JSON spares serializing it.
    let largest = msgs
        .iter()
        .map(|m| m.name.len() + m.data.get().len())
        .max()
        .unwrap_or(0);
    if largest.saturating_add(meta_json_bound(meta)) <= limit {
        return Ok(());
    }
    let meta_len = serde_json::to_string(meta)
        .map_err(|err| store_err("execute", err))?
        .len();
    for m in msgs {
        let (name, data) = (m.name.len(), m.data.get().len());
        let size = name + data + meta_len;
        if size > limit {
            let largest = if meta_len >= data && meta_len >= name {
                "/meta"
            } else if data >= name {
                "/data"
            } else {
                "/name"
            };
            return Err(ValidationError::new(
                m.name.as_str(),
                largest,
                format!(
                    "event is {size} bytes as stored (name {name} + data {data} + meta \
                     {meta_len}); at most {limit}"
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// The request context an action runs in: a correlation id and the event being reacted to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cause {
    pub(crate) correlation: Option<String>,
    pub(crate) event: Option<EventCause>,
}

impl Act {
    /// Executes `action` on `target`.
    ///
    /// Loads the target stream's state, checks the action's invariants, runs its handler and
    /// commits the events it emits. Actions on one stream in this process take turns, so
    /// they never race each other. When another writer commits first, the action is run
    /// again on the new state, after a short jittered pause (see
    /// [`RaceBackoff`](super::RaceBackoff)), up to `A::RETRIES` times (`#[action(retries =
    /// N)]`, 3 by default); then the [`ActError::Concurrency`] is returned. A caller that
    /// pinned `target.expected_version` is never retried.
    pub async fn execute<A: Handle>(
        &self,
        action: A,
        target: Target,
    ) -> Result<Executed<A::State>, ActError> {
        self.check_live()?;
        self.execute_caused(action, target, Cause::default()).await
    }

    pub(crate) async fn execute_caused<A: Handle>(
        &self,
        action: A,
        target: Target,
        cause: Cause,
    ) -> Result<Executed<A::State>, ActError> {
        let span = tracing::info_span!(
            "act.execute",
            action = A::NAME,
            stream = %target.stream,
            correlation = tracing::field::Empty,
        );
        let run = self.execute_retrying(&action, &target, &cause);
        // No subscriber wants the span: entering and leaving it at each poll is wasted.
        if span.is_disabled() {
            run.await
        } else {
            run.instrument(span).await
        }
    }

    async fn execute_retrying<A: Handle>(
        &self,
        action: &A,
        target: &Target,
        cause: &Cause,
    ) -> Result<Executed<A::State>, ActError> {
        let mut attempt = 0;
        loop {
            // In this process, actions on one stream take turns from load to commit: they
            // never race each other, only writers in other processes.
            let turn = self.inner.turns.take(&target.stream).await;
            let result = self.execute_once(action, target, cause).await;
            drop(turn);
            match result {
                Err(ActError::Concurrency(c))
                    if target.expected_version.is_none() && attempt < A::RETRIES =>
                {
                    attempt += 1;
                    let pause = self.inner.race_backoff.delay(attempt);
                    tracing::debug!(action = A::NAME, stream = %c.stream, attempt, ?pause, "retrying after a lost race");
                    if pause.is_zero() {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(pause).await;
                    }
                }
                other => return other,
            }
        }
    }

    async fn execute_once<A: Handle>(
        &self,
        action: &A,
        target: &Target,
        cause: &Cause,
    ) -> Result<Executed<A::State>, ActError> {
        validate_stream(&target.stream)?;
        let stream = target.stream.as_str();
        // A cached state is trusted as it is: the commit is guarded by its version, so if
        // another process wrote since, the commit conflicts and the retry reloads.
        let loaded = self
            .load_from::<A::State>(stream, &Default::default(), true)
            .await?;
        if loaded.closed {
            return Err(StreamClosedError {
                stream: stream.to_owned(),
            }
            .into());
        }
        let mut snap = loaded.snapshot;
        // Every commit, a reaction's included, is guarded by the version it was decided on.
        let expected = Some(target.expected_version.unwrap_or(snap.version));

        if let Err(description) = A::given(&snap.state, &target.actor) {
            return Err(InvariantError {
                action: A::NAME.to_owned(),
                stream: stream.to_owned(),
                description: description.to_owned(),
            }
            .into());
        }
        let events = action
            .handle(&snap.state, target)
            .map_err(|source| ActError::Rejected {
                action: A::NAME.to_owned(),
                stream: stream.to_owned(),
                source,
            })?;
        if events.is_empty() {
            return Ok(Executed {
                snapshot: snap,
                events: Vec::new(),
                stored: Vec::new(),
            });
        }
        let mut msgs = Vec::with_capacity(events.len());
        for msg in events.iter().map(|e| {
            // `#[action(emit = ...)]` refuses a deprecated version at compile time; a
            // hand-written handler is checked here, before anything is committed.
            if is_deprecated(e) {
                return Err(ValidationError::new(
                    e.name(),
                    "",
                    format!(
                        "action `{}` emits `{}`, a deprecated event version (kept only to \
                             read old streams); emit the latest version",
                        A::NAME,
                        e.name()
                    ),
                ));
            }
            let data = e.to_data().map_err(|err| {
                ValidationError::new(e.name(), "", format!("cannot serialize: {err}"))
            })?;
            if let Some(path) = too_deep(data.get(), MAX_EVENT_DEPTH) {
                return Err(ValidationError::new(
                    e.name(),
                    path,
                    format!(
                        "payload nests arrays and objects too deep to be read back; at \
                             most {MAX_EVENT_DEPTH} levels"
                    ),
                ));
            }
            Ok(Message::new(e.name(), data))
        }) {
            msgs.push(msg.map_err(ActError::from)?);
        }
        let meta = EventMeta {
            correlation: match cause.correlation.as_ref().or(target.correlation.as_ref()) {
                Some(c) => c.clone(),
                None => self.inner.correlator.make(&CorrelationContext {
                    action: A::NAME,
                    state: <A::State as State>::NAME,
                    stream,
                    actor: &target.actor.id,
                }),
            },
            causation: Causation {
                action: Some(ActionCause {
                    name: A::NAME.to_owned(),
                    stream: stream.to_owned(),
                    expected_version: target.expected_version,
                }),
                event: cause.event.clone(),
                trace: crate::app::telemetry::current_trace(),
            },
            actor: target.actor.clone(),
        };
        check_size(&msgs, &meta, self.inner.max_event_bytes)?;
        let current = tracing::Span::current();
        if !current.is_disabled() {
            current.record("correlation", meta.correlation.as_str());
        }

        let work = self.reaction_work(stream, &msgs);
        let commit = tracing::debug_span!("act.commit", stream, events = msgs.len());
        // The store takes the messages and the meta: an in-memory log keeps them as they are.
        let committing = self
            .inner
            .store
            .commit_owned(stream, msgs, meta, expected, &work.marks);
        let result = if commit.is_disabled() {
            committing.await
        } else {
            committing.instrument(commit).await
        };
        let committed = match result {
            Ok(c) => c,
            Err(e) => {
                let e = ActError::from(e);
                if matches!(e, ActError::Concurrency(_)) {
                    telemetry::conflict(<A::State as State>::NAME);
                    if let Err(err) = self.inner.cache.invalidate(stream).await {
                        tracing::error!(stream, error = %Report::new(&err), "cache invalidate failed after a conflict");
                    }
                }
                return Err(e);
            }
        };
        telemetry::committed(<A::State as State>::NAME, committed.len());
        self.emit(&Lifecycle::Committed(&committed));
        // wake the worker when a committed event has drained reactions (static or dynamic)
        if !work.marks.is_empty() || work.dynamic {
            self.inner.pipeline.wake();
        }
        if work.void {
            self.run_void_reactions(&committed);
        }

        let contiguous = committed.first().map(|c| c.version) == Some(snap.version + 1);
        for e in &events {
            e.apply(&mut snap.state);
        }
        if let Some(last) = committed.last() {
            snap.version = last.version;
            snap.event_id = last.id;
        }
        snap.patches += events.len() as u32;
        snap.cache_hit = false;

        if contiguous {
            if <A::State as State>::snap(&snap)
                && let Some(meta) = committed.first().map(|c| c.meta.clone())
            {
                self.take_snapshot(stream, &mut snap, &meta).await;
            }
            self.cache_set(stream, &snap).await;
        } else if let Err(err) = self.inner.cache.invalidate(stream).await {
            tracing::error!(stream, error = %Report::new(&err), "cache invalidate failed");
        }

        let mut typed = Vec::with_capacity(committed.len());
        let mut stored = Vec::with_capacity(committed.len());
        for (data, c) in events.into_iter().zip(committed) {
            typed.push(Committed {
                id: c.id,
                name: c.name,
                data,
                stream: c.stream,
                version: c.version,
                created: c.created,
                meta: c.meta,
            });
            stored.push(c.data);
        }
        Ok(Executed {
            snapshot: snap,
            events: typed,
            stored,
        })
    }

    /// The work marks a commit raises: static targets of the committed events' reactions,
    /// each marked at the last event that has work for it.
    #[cfg(feature = "testing")]
    pub(crate) fn marks(&self, stream: &str, msgs: &[Message]) -> Vec<(usize, Subscription)> {
        self.reaction_work(stream, msgs).marks
    }

    /// The reaction work of committing `msgs` to `stream`, from one look-up of each event's
    /// reactions: the marks to raise, whether a dynamic reaction has work (the worker must
    /// correlate) and whether a `void` reaction runs.
    fn reaction_work(&self, stream: &str, msgs: &[Message]) -> Work {
        let reactions = &self.inner.reactions;
        let mut work = Work {
            marks: Vec::new(),
            dynamic: false,
            void: false,
        };
        if reactions.is_empty() {
            return work;
        }
        for (i, m) in msgs.iter().enumerate() {
            for r in reactions.on(&m.name) {
                match r.resolver() {
                    Resolver::Dynamic => work.dynamic = true,
                    Resolver::Void => work.void = true,
                    _ => {}
                }
                if let Some(sub) = r.mark_for(stream) {
                    match work.marks.iter_mut().find(|(_, s)| s.stream == sub.stream) {
                        Some(slot) => slot.0 = i,
                        None => work.marks.push((i, sub)),
                    }
                }
            }
        }
        work
    }

    /// Runs `void` reactions on committed events, in the background, best effort.
    fn run_void_reactions(&self, committed: &[Committed]) {
        let reactions = &self.inner.reactions;
        if reactions.is_empty() {
            return;
        }
        for event in committed {
            for r in reactions.on(&event.name) {
                if r.resolver() != Resolver::Void {
                    continue;
                }
                let (app, r, event) = (self.clone(), r.clone(), event.clone());
                tokio::spawn(async move {
                    let scope = Scope::new(app, &event, &event.stream);
                    if let Err(e) = r.handle(&event, &scope).await {
                        tracing::warn!(reaction = r.name(), id = event.id, error = %Report::new(&e), "void reaction failed");
                    }
                });
            }
        }
    }

    async fn take_snapshot<S: State>(
        &self,
        stream: &str,
        snap: &mut Snapshot<S>,
        meta: &EventMeta,
    ) {
        let data = match super::snapshots::encode(&snap.state) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(stream, error = %Report::new(&e), "snapshot not taken: state does not serialize");
                return;
            }
        };
        // a snapshot the loads could not read back would make the stream unloadable
        if let Some(path) = too_deep(data.get(), MAX_EVENT_DEPTH) {
            tracing::warn!(
                stream,
                path = %path,
                "snapshot not taken: state nests deeper than {MAX_EVENT_DEPTH} levels"
            );
            return;
        }
        let msg = [Message::new(SNAPSHOT_EVENT, data)];
        match self
            .inner
            .store
            .commit(stream, &msg, meta, Some(snap.version))
            .await
        {
            Ok(c) => {
                if let Some(s) = c.last() {
                    snap.version = s.version;
                    snap.event_id = s.id;
                    snap.patches = 0;
                    snap.snaps += 1;
                }
            }
            Err(e) => tracing::warn!(stream, error = %Report::new(&e), "snapshot not taken"),
        }
    }

    /// Executes the action named `action` with a JSON payload: the by-name entry point for
    /// HTTP edges and CLIs.
    ///
    /// The payload is validated against the action's JSON Schema first; a bad payload
    /// returns [`ActError::Validation`] naming each offending field, and commits nothing.
    ///
    /// Once the events are committed the result is `Ok` and lists them, even when the new
    /// state cannot be rendered as JSON: then [`ExecutedJson::state`] is `None` and
    /// [`ExecutedJson::state_error`] says why — so an error never hides a commit that
    /// rendering the result failed on.
    pub async fn execute_json(
        &self,
        action: &str,
        target: Target,
        payload: Value,
    ) -> Result<ExecutedJson, ActError> {
        self.check_live()?;
        let entry = self
            .inner
            .registry
            .action(action)
            .ok_or_else(|| ActError::UnknownAction(action.to_owned()))?;
        super::json::validate(entry, &payload)?;
        entry.exec(self, payload, target).await
    }
}

/// What a commit hands the reactions (see `Act::reaction_work`).
struct Work {
    marks: Vec<(usize, Subscription)>,
    dynamic: bool,
    void: bool,
}

/// Whether `e` is a deprecated version of its event (one with a newer `_vN`).
fn is_deprecated<E: crate::model::Event>(e: &E) -> bool {
    E::DEPRECATED.contains(&e.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActionCause, Actor, Causation, EventCause};

    #[test]
    fn the_meta_bound_is_never_below_the_json_length() {
        let nasty = "\u{1}\"\\\n\u{7f}é✓".repeat(50);
        for text in ["", "plain", nasty.as_str()] {
            let meta = EventMeta {
                correlation: text.to_owned(),
                causation: Causation {
                    action: Some(ActionCause {
                        name: text.to_owned(),
                        stream: text.to_owned(),
                        expected_version: Some(i64::MIN),
                    }),
                    event: Some(EventCause {
                        id: i64::MIN,
                        name: text.to_owned(),
                        stream: text.to_owned(),
                    }),
                    trace: Some(text.to_owned()),
                },
                actor: Actor::new(text, text),
            };
            let len = serde_json::to_string(&meta).unwrap().len();
            assert!(meta_json_bound(&meta) >= len, "{len}");
        }
    }
}
