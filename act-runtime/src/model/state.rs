//! States: the fold of a stream's events.

use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

use super::event::{Event, EventId, Version};

/// A state: the value a stream's events fold into.
///
/// Implemented by `#[state]`; users do not implement it by hand. The state's events come
/// from the enum marked `#[emits(ThisState)]` (see [`Emits`]) and its reducer is the user's
/// [`Patch`] impl.
///
/// ```
/// use act_runtime::prelude::*;
///
/// #[state(name = "Counter")]
/// #[derive(Debug, Clone, Default)]
/// pub struct Counter { pub count: i64 }
///
/// assert_eq!(<Counter as State>::NAME, "Counter");
/// assert_eq!(Counter::init().count, 0);
/// ```
pub trait State: Clone + Send + Sync + Serialize + DeserializeOwned + JsonSchema + 'static {
    /// The state's name in the registry and in the catalog.
    const NAME: &'static str;

    /// The state of a stream that has no events yet.
    fn init() -> Self;

    /// The snapshot predicate: after a commit, `true` persists the state as a
    /// `__snapshot__` event so later cold loads start from it. Never snapshots by default.
    fn snap(snapshot: &Snapshot<Self>) -> bool {
        let _ = snapshot;
        false
    }
}

/// The reducer of a state over one event enum: `match` on the event to make it exhaustive.
///
/// ```
/// use act_runtime::prelude::*;
///
/// #[state(name = "Counter")]
/// #[derive(Debug, Clone, Default)]
/// pub struct Counter { pub count: i64 }
///
/// #[emits(Counter)]
/// #[derive(Debug, Clone)]
/// pub enum CounterEvent { Incremented { by: i64 } }
///
/// impl Patch<CounterEvent> for Counter {
///     fn patch(&mut self, event: &CounterEvent) {
///         match event {
///             CounterEvent::Incremented { by } => self.count += by,
///         }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no reducer for `{E}`",
    label = "`{Self}` does not implement `Patch<{E}>`",
    note = "write `impl Patch<{E}> for {Self}` with a `match` over the events, or use `#[emits({Self}, passthrough)]`"
)]
pub trait Patch<E> {
    /// Applies one event to the state.
    fn patch(&mut self, event: &E);
}

/// Links a state to its event enum. Implemented by `#[emits(State)]`.
///
/// A state has exactly one event enum: a second `#[emits(S)]` for the same `S` is a
/// conflicting implementation and does not compile.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no events",
    label = "no enum is marked `#[emits({Self})]`",
    note = "declare the events of `{Self}` with `#[emits({Self})] enum ...`"
)]
pub trait Emits: State {
    /// The state's event enum.
    type Event: Event<State = Self>;
}

/// The event enum of state `S`.
pub type EventOf<S> = <S as Emits>::Event;

/// A state as of some event, with the bookkeeping of how it was obtained.
///
/// `version` and `event_id` are `-1` for a stream with no events.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Snapshot<S> {
    /// The folded state.
    pub state: S,
    /// The version of the last event folded (`-1` when none).
    pub version: Version,
    /// The global id of the last event folded (`-1` when none).
    pub event_id: EventId,
    /// Events folded since the last snapshot.
    pub patches: u32,
    /// Snapshots folded (or taken) on the way.
    pub snaps: u32,
    /// Whether the load started from the cache.
    pub cache_hit: bool,
    /// Events read from the store by this load.
    pub replayed: u32,
}

impl<S: State> Snapshot<S> {
    /// The snapshot of a stream with no events: the state's initial value.
    pub fn initial() -> Self {
        Self {
            state: S::init(),
            version: -1,
            event_id: -1,
            patches: 0,
            snaps: 0,
            cache_hit: false,
            replayed: 0,
        }
    }
}
