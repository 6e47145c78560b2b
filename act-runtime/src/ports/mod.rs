//! Ports: the contracts the runtime needs from the outside world. Adapters implement them
//! (see [`crate::adapters`]); the conformance kit checks an adapter honours them.

pub mod cache;
mod clock;
pub(crate) mod pattern;
pub mod store;

pub use cache::{Cache, CacheEntry, CachedState};
pub use clock::Clock;
pub use store::{
    Lease, Query, Store, StreamFilter, StreamMatch, StreamPosition, Subscribed, Subscription,
    TruncateTarget, Truncated,
};
