//! Actions: the only way to write to a stream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::event::Version;
use super::state::{Emits, EventOf};

/// Any error, boxed: what an action handler may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an action handler returns: zero, one or many events of its state, or a rejection.
pub type Emit<E> = Result<Vec<E>, BoxError>;

/// Who runs an action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    /// A stable id.
    pub id: String,
    /// A display name.
    pub name: String,
}

impl Actor {
    /// An actor from an id and a name.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
        }
    }
}

/// Where an action runs: a stream, the actor, and optionally the version the caller expects.
///
/// ```
/// use act_runtime::prelude::*;
///
/// let target = Target::new("cart-1", Actor::new("u1", "Ada")).expect_version(3);
/// assert_eq!(target.expected_version, Some(3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The stream the action writes to.
    pub stream: String,
    /// Who runs the action.
    pub actor: Actor,
    /// When set, the commit fails with a concurrency error unless the stream is at this
    /// version (`-1`: the stream must be empty), and it is never retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<Version>,
    /// The request's incoming correlation id (a trace id from an HTTP edge or a message):
    /// the committed events carry it, and so does every event their reactions commit. When
    /// `None`, the app's correlator makes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

impl Target {
    /// A target with no pinned version.
    pub fn new(stream: impl Into<String>, actor: Actor) -> Self {
        Self {
            stream: stream.into(),
            actor,
            expected_version: None,
            correlation: None,
        }
    }

    /// Carries an incoming correlation id instead of making a new one.
    ///
    /// ```
    /// use act_runtime::prelude::*;
    ///
    /// let t = Target::new("cart-1", Actor::new("u1", "Ursula")).correlated("trace-4bf92f35");
    /// assert_eq!(t.correlation.as_deref(), Some("trace-4bf92f35"));
    /// ```
    #[must_use]
    pub fn correlated(mut self, correlation: impl Into<String>) -> Self {
        self.correlation = Some(correlation.into());
        self
    }

    /// Pins the version the stream must be at.
    #[must_use]
    pub fn expect_version(mut self, version: Version) -> Self {
        self.expected_version = Some(version);
        self
    }
}

/// An action of a state. Implemented by `#[action(State)]`.
pub trait Action: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The action's name in the registry.
    const NAME: &'static str;
    /// The state the action writes to.
    type State: Emits;
    /// The descriptions of the action's invariants, in the order they are checked.
    const INVARIANTS: &'static [&'static str] = &[];
    /// The events the action is known to emit: its passthrough event with
    /// `#[action(State, emit = Enum::Variant)]`; empty when a hand-written `Handle` decides.
    const EMITS: &'static [&'static str] = &[];
    /// How many times a commit that lost a race is retried when the expected version was
    /// derived by the framework (never when the caller pinned it).
    const RETRIES: u32 = 3;

    /// Checks the invariants in order; `Err` carries the description of the first that fails.
    fn given(state: &Self::State, actor: &Actor) -> Result<(), &'static str> {
        let _ = (state, actor);
        Ok(())
    }
}

/// The handler of an action: decides which events of its state to emit.
///
/// Users implement it (or get it from `#[action(State, emit = Event::Variant)]`). The return
/// type only admits the action's own state's events.
///
/// ```
/// use act_runtime::prelude::*;
///
/// #[state(name = "Counter", actions(Increment))]
/// #[derive(Debug, Clone, Default)]
/// pub struct Counter { pub count: i64 }
///
/// #[emits(Counter)]
/// #[derive(Debug, Clone)]
/// pub enum CounterEvent { Incremented { by: i64 } }
///
/// impl Patch<CounterEvent> for Counter {
///     fn patch(&mut self, event: &CounterEvent) {
///         match event { CounterEvent::Incremented { by } => self.count += by }
///     }
/// }
///
/// #[action(Counter)]
/// pub struct Increment { pub by: i64 }
///
/// impl Handle for Increment {
///     fn handle(&self, _: &Counter, _: &Target) -> Emit<CounterEvent> {
///         Ok(vec![CounterEvent::Incremented { by: self.by }])
///     }
/// }
/// ```
pub trait Handle: Action {
    /// Returns the events to commit (none means no commit) or rejects the action.
    fn handle(&self, state: &Self::State, target: &Target) -> Emit<EventOf<Self::State>>;
}

/// Marker for predicates that read only the state.
pub struct StateOnly;
/// Marker for predicates that read the state and the actor.
pub struct StateAndActor;

/// An invariant's predicate over state `S`: a `fn(&S) -> bool` or a `fn(&S, &Actor) -> bool`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an invariant predicate over `{S}`",
    label = "expected `fn(&{S}) -> bool` or `fn(&{S}, &Actor) -> bool`",
    note = "`#[given(predicate = \"description\")]` names a function that returns whether the invariant holds"
)]
pub trait Predicate<S, M> {
    /// Whether the invariant holds.
    fn holds(&self, state: &S, actor: &Actor) -> bool;
}

impl<S, F: Fn(&S) -> bool> Predicate<S, StateOnly> for F {
    fn holds(&self, state: &S, _: &Actor) -> bool {
        self(state)
    }
}

impl<S, F: Fn(&S, &Actor) -> bool> Predicate<S, StateAndActor> for F {
    fn holds(&self, state: &S, actor: &Actor) -> bool {
        self(state, actor)
    }
}
