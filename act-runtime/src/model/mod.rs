//! The domain model: the traits the macros implement and the records the runtime moves around.
//!
//! * [`State`], [`Patch`] and [`Snapshot`]: what a stream folds into.
//! * [`Event`], [`Emits`], [`Committed`] and [`EventMeta`]: what a stream is made of.
//! * [`EventSet`]: the events a projection reads (one enum, or several with `event_set!`).
//! * [`Action`], [`Handle`], [`Target`] and [`Actor`]: what writes to a stream.

mod action;
mod event;
mod event_set;
mod state;

pub use action::{
    Action, Actor, BoxError, Emit, Handle, Predicate, StateAndActor, StateOnly, Target,
};
pub use event::{
    ActionCause, Causation, Committed, Data, Event, EventCause, EventId, EventMeta,
    MAX_EVENT_DEPTH, Message, SNAPSHOT_EVENT, TOMBSTONE_EVENT, Version, event_version, is_marker,
};
pub use event_set::EventSet;
pub use state::{Emits, EventOf, Patch, Snapshot, State};
