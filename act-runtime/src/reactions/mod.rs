//! The reaction contract: what `#[reaction]` generates, and the registry of reactions.
//!
//! * [`Reaction`]: an async handler of one event with its options; [`Resolver`] is its
//!   compile-time classification, [`Resolved`] what a dynamic resolver returns.
//! * [`ReactionEntry`] / [`Reactions`]: the type-erased registry entries and the build-time
//!   classification (static targets, whether correlate must scan).
//!
//! The pipeline that runs them (correlate → drain → settle → worker) lives under
//! [`crate::app`]: this module only states the contract.

mod entry;
mod reaction;

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use entry::panic_message;
pub use entry::{ReactionEntry, Reactions, ResolveFailure};
pub use reaction::{
    Backoff, BackoffStrategy, BoxFuture, IntoResolved, Reaction, ReactionError, ReactionOptions,
    Resolved, Resolver,
};

/// The handler's view of the app (defined by the app, named by the contract).
pub use crate::app::Scope;

/// A random factor in `[0, 1)` for backoff jitter (no cryptographic quality needed).
pub(crate) fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
