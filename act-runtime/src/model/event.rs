//! Events: what a stream is made of, before and after commit.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::{Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::action::Actor;
use super::state::State;

/// A global, increasing event id.
pub type EventId = i64;
/// A per-stream version, from 0; `-1` means "no events".
pub type Version = i64;
/// An event's payload: compact JSON text.
pub type Data = Box<RawValue>;

/// The deepest nesting of arrays and objects an event payload may have, measured on its
/// serialized JSON (the outermost object counts as 1, so `{"body": [[1]]}` is 3 deep).
///
/// `execute` refuses a deeper event with a
/// [`ValidationError`](crate::error::ValidationError) naming the event, with a JSON pointer
/// to the first array or object past the limit, and commits nothing: serde_json reads back
/// at most 128 levels, and the limit leaves margin for the readers that wrap the payload
/// (the typed decode of an event, a snapshot of a state holding it, a cache entry).
/// A state snapshot deeper than this is not taken (the state is replayed instead).
pub const MAX_EVENT_DEPTH: usize = 100;

/// The name of the events that persist a state snapshot.
pub const SNAPSHOT_EVENT: &str = "__snapshot__";
/// The name of the event that closes a stream for good.
pub const TOMBSTONE_EVENT: &str = "__tombstone__";

/// Whether `name` is one of the framework's marker events (snapshot or tombstone).
pub fn is_marker(name: &str) -> bool {
    name == SNAPSHOT_EVENT || name == TOMBSTONE_EVENT
}

/// The base name and version of an event name: `("Deposited", 2)` for `Deposited_v2`,
/// `("Deposited", 1)` for `Deposited` (a name without a `_vN` suffix is version 1).
/// `#[emits]` has already refused malformed suffixes (`_v1`, `_v02`); the suffix of a name
/// that is not an event version (`Moved_vertically`) is part of its base name.
///
/// ```
/// use act_runtime::model::event_version;
///
/// assert_eq!(event_version("Deposited_v2"), ("Deposited", 2));
/// assert_eq!(event_version("Deposited"), ("Deposited", 1));
/// assert_eq!(event_version("Moved_vertically"), ("Moved_vertically", 1));
/// ```
pub fn event_version(name: &str) -> (&str, u32) {
    name.rfind("_v")
        .filter(|&at| at > 0)
        .and_then(|at| Some((&name[..at], name[at + 2..].parse::<u32>().ok()?)))
        .filter(|&(_, v)| v >= 2)
        .unwrap_or((name, 1))
}

/// An event enum. Implemented by `#[emits(State)]`: the variant name is the event name.
///
/// The conversions to and from [`Data`] go through generated per-variant payload types, so
/// each event has its own JSON Schema and the payload JSON holds only the variant's fields.
pub trait Event: Send + Sync + Sized + 'static {
    /// The state these events belong to.
    type State: State;
    /// Every event name of the enum, in declaration order.
    const NAMES: &'static [&'static str];
    /// Event names superseded by a later `_vN` version (kept for reading old streams).
    const DEPRECATED: &'static [&'static str] = &[];

    /// This event's name.
    fn name(&self) -> &'static str;
    /// This event's payload as JSON.
    fn to_data(&self) -> Result<Data, serde_json::Error>;
    /// Rebuilds an event from its name and payload; `Ok(None)` when `name` is not one of
    /// [`Event::NAMES`].
    fn from_data(name: &str, data: &RawValue) -> Result<Option<Self>, serde_json::Error>;
    /// Applies this event to a state with the state's reducer.
    fn apply(&self, state: &mut Self::State);
    /// The JSON Schema of each event's payload, by name.
    fn schemas(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)>;
}

/// An event to commit: a name and its payload.
#[derive(Debug, Clone)]
pub struct Message {
    /// The event name.
    pub name: String,
    /// The payload.
    pub data: Data,
}

impl Message {
    /// A message from a name and a payload.
    pub fn new(name: impl Into<String>, data: Data) -> Self {
        Self {
            name: name.into(),
            data,
        }
    }
}

/// What caused an event: the action that committed it and, for reactions, the event the
/// action reacted to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Causation {
    /// The action that committed the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionCause>,
    /// The event a reaction was handling when it ran the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventCause>,
    /// The request's trace context (a W3C `traceparent`) when the action ran in a traced
    /// span (feature `otel`): a reaction to the event, in any process, joins that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// The action part of [`Causation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionCause {
    /// The action's name.
    pub name: String,
    /// The stream it targeted.
    pub stream: String,
    /// The version the caller pinned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<Version>,
}

/// The event part of [`Causation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCause {
    /// The triggering event's id.
    pub id: EventId,
    /// The triggering event's name.
    pub name: String,
    /// The triggering event's stream.
    pub stream: String,
}

/// The metadata of a committed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    /// The request trace: shared by every event a request (and its reactions) commits.
    pub correlation: String,
    /// What caused the event.
    #[serde(default)]
    pub causation: Causation,
    /// Who committed it.
    pub actor: Actor,
}

impl EventMeta {
    /// A meta with nothing in it: what a store may hand out for a query with
    /// [`skip_meta`](crate::ports::Query::skip_meta).
    pub fn empty() -> Self {
        Self {
            correlation: String::new(),
            causation: Causation::default(),
            actor: crate::model::Actor::new("", ""),
        }
    }
}

/// A committed event: `D` is the payload, raw JSON by default or a typed event enum.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Committed<D = Data> {
    /// Global, increasing id.
    pub id: EventId,
    /// The event name.
    pub name: String,
    /// The payload.
    pub data: D,
    /// The stream it belongs to.
    pub stream: String,
    /// Its version in the stream, from 0.
    pub version: Version,
    /// When it was committed.
    pub created: DateTime<Utc>,
    /// Correlation, causation and actor (shared by the events of one commit).
    pub meta: Arc<EventMeta>,
}

impl Committed<Data> {
    /// The payload parsed as `T` (for example `serde_json::Value`).
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.get())
    }

    /// The payload rebuilt as the typed event `E` (an `#[emits]` enum, or any
    /// [`EventSet`](crate::model::EventSet)); `Ok(None)` when the name is not one of `E`'s
    /// events.
    pub fn typed<E: crate::model::EventSet>(
        &self,
    ) -> Result<Option<Committed<E>>, serde_json::Error> {
        Ok(E::decode(&self.name, &self.data)?.map(|data| Committed {
            id: self.id,
            name: self.name.clone(),
            data,
            stream: self.stream.clone(),
            version: self.version,
            created: self.created,
            meta: self.meta.clone(),
        }))
    }
}
