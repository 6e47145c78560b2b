//! # act-runtime
//!
//! Event sourcing for Rust, as a declarative domain compiler. Annotate plain structs and
//! enums with [`state`], [`emits`] and [`action`]; the macros check the wiring at compile
//! time and expand into a statically typed registry; this crate runs it: the event store,
//! the cache, and the app that executes actions, loads states and queries events.
//!
//! ```
//! use act_runtime::prelude::*;
//!
//! #[state(name = "Counter", actions(Increment))]
//! #[derive(Debug, Clone, Default)]
//! pub struct Counter { pub count: i64 }
//!
//! #[emits(Counter)]
//! #[derive(Debug, Clone)]
//! pub enum CounterEvent { Incremented { by: i64 } }
//!
//! impl Patch<CounterEvent> for Counter {
//!     fn patch(&mut self, event: &CounterEvent) {
//!         match event { CounterEvent::Incremented { by } => self.count += by }
//!     }
//! }
//!
//! #[action(Counter)]
//! pub struct Increment { pub by: i64 }
//!
//! impl Handle for Increment {
//!     fn handle(&self, _: &Counter, _: &Target) -> Emit<CounterEvent> {
//!         Ok(vec![CounterEvent::Incremented { by: self.by }])
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = act().with_state::<Counter>().build()?;
//! let actor = Actor::new("u1", "Ada");
//! app.execute(Increment { by: 2 }, Target::new("counter-1", actor)).await?;
//! let snap = app.load::<Counter>("counter-1").await?;
//! assert_eq!(snap.state.count, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Layout: [`model`] (the traits the macros implement and the records), [`ports`] (the
//! store and cache contracts), [`adapters`] (their implementations), [`app`] (execute,
//! load, query, the registry and the JSON entry point), [`checks`] (the compile-time checks
//! the macros' error messages come from).

#![warn(missing_docs)]

// Lets generated code name this crate as `::act_runtime` from inside it too.
extern crate self as act_runtime;

pub mod adapters;
pub mod app;
pub mod checks;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod model;
pub mod ports;
pub mod projections;
pub mod reactions;
#[cfg(feature = "testing")]
pub mod testing;

pub use act_macros::{action, emits, given, reaction, state};
/// Re-exported so adapters written outside this crate implement the ports the same way.
pub use async_trait::async_trait;

/// Everything a domain module needs, in one import.
pub mod prelude {
    pub use crate::adapters::{InMemoryCache, InMemoryStore};
    pub use crate::app::{Act, ActBuilder, Executed, LoadOptions, act};
    pub use crate::app::{
        Blocked, Correlated, DrainOptions, DrainSummary, Lifecycle, Scope, SettleOptions, Worker,
        WorkerOptions,
    };
    pub use crate::app::{CloseReport, CloseTarget, SkipReason};
    pub use crate::error::{
        ActError, BuildError, ConcurrencyError, InvariantError, StoreError, StreamClosedError,
        ValidationError,
    };
    pub use crate::model::{
        Action, Actor, Committed, Emit, Emits, Event, EventMeta, Handle, Patch, Snapshot, State,
        Target,
    };
    pub use crate::ports::StreamFilter;
    pub use crate::ports::{Cache, Query, Store};
    pub use crate::reactions::{Reaction, ReactionError, Resolved};
    pub use act_macros::{action, emits, given, reaction, state};
}

/// Items the macros' generated code refers to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use schemars;
    pub use serde;
    pub use serde_json;

    pub use crate::model::{
        Action, Actor, Committed, Data, Emit, Emits, Event, EventOf, Handle, Patch, Predicate,
        Snapshot, State, Target,
    };
    pub use schemars::{JsonSchema, Schema, SchemaGenerator};
    pub use serde_json::value::RawValue;

    pub use crate::reactions::{
        Backoff, BackoffStrategy, BoxFuture, IntoResolved, Reaction, ReactionError,
        ReactionOptions, Resolved, Resolver, Scope,
    };

    use serde::{Serialize, de::DeserializeOwned};

    /// Whether two strings are equal, in const context.
    pub const fn str_eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Whether `name` is in `names`, in const context.
    pub const fn contains(names: &[&str], name: &str) -> bool {
        let mut i = 0;
        while i < names.len() {
            if str_eq(names[i], name) {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Serializes an event payload.
    #[inline]
    pub fn to_data<T: Serialize + ?Sized>(value: &T) -> Result<Data, serde_json::Error> {
        serde_json::value::to_raw_value(value)
    }

    /// Deserializes an event payload.
    #[inline]
    pub fn from_data<T: DeserializeOwned>(data: &RawValue) -> Result<T, serde_json::Error> {
        serde_json::from_str(data.get())
    }

    /// The standalone schema of `T` (its definitions included).
    pub fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
        generator.root_schema_for::<T>()
    }

    /// The registry entries of a state's actions: implemented by `#[state(actions(...))]`.
    pub use crate::app::registry::{ActionEntry, StateActions};

    /// The actions listed in `#[state(actions(...))]`, implemented by `#[state]` for every
    /// state. `#[emits(S)]` implements `StateActions for S` from it: `StateActions` needs the
    /// state's events, which a state without events does not have.
    pub trait ActionList: State {
        /// One entry per listed action, in order.
        fn actions() -> Vec<ActionEntry>;
    }
}
