//! The reaction pipeline: the event store as the message backbone.
//!
//! ```text
//! commit ──► marks (static targets) ─┐
//!                                    ├─► subscriptions ──► drain: claim → fetch → match
//! correlate (dynamic resolvers) ─────┘                      → handle → block → ack
//! settle = debounce, then correlate → drain until nothing moves, then `settled`
//! ```
//!
//! * [`Reaction`]: what `#[reaction]` generates; [`Resolver`] is its compile-time
//!   classification.
//! * `correlate.rs`: scans for dynamic resolvers' targets and raises work marks.
//! * `drain.rs`: leases, ordered handling, retries, blocking, the dual frontier.
//! * `settle.rs`: the debounced background loop.

mod correlate;
mod drain;
mod entry;
mod reaction;
mod scope;
mod settle;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

pub use correlate::Correlated;
pub use drain::{Blocked, DrainOptions, DrainSummary};
pub use entry::{ReactionEntry, Reactions};
pub use reaction::{
    Backoff, BackoffStrategy, BoxFuture, IntoResolved, Reaction, ReactionError, ReactionOptions,
    Resolved, Resolver,
};
pub use scope::Scope;
pub use settle::SettleOptions;

/// A random factor in `[0, 1)` for backoff jitter (no cryptographic quality needed).
pub(crate) fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Per-app pipeline state.
pub(crate) struct Pipeline {
    pub(crate) init: tokio::sync::OnceCell<()>,
    checkpoint: AtomicI64,
    /// The lagging share of each claim, as f64 bits.
    ratio: AtomicU64,
    pub(crate) drain_lock: tokio::sync::Mutex<()>,
    pub(crate) by: String,
    pub(crate) settling: AtomicBool,
    pub(crate) rearm: AtomicBool,
    pub(crate) settle_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self {
            init: tokio::sync::OnceCell::new(),
            checkpoint: AtomicI64::new(-1),
            ratio: AtomicU64::new(0.5f64.to_bits()),
            drain_lock: tokio::sync::Mutex::new(()),
            by: format!("drain-{:016x}", (jitter() * u64::MAX as f64) as u64),
            settling: AtomicBool::new(false),
            rearm: AtomicBool::new(false),
            settle_task: Mutex::new(None),
        }
    }
}

impl Pipeline {
    pub(crate) fn checkpoint(&self) -> i64 {
        self.checkpoint.load(Ordering::SeqCst)
    }

    pub(crate) fn set_checkpoint(&self, at: i64) {
        self.checkpoint.fetch_max(at, Ordering::SeqCst);
    }

    pub(crate) fn ratio(&self) -> f64 {
        f64::from_bits(self.ratio.load(Ordering::Relaxed))
    }

    /// `lagging share = lagging average / (lagging average + leading average)`, clamped to
    /// 20–80 %; back to 50 % when nothing was handled.
    fn update_ratio_from(
        &self,
        lagging_handled: usize,
        leading_handled: usize,
        lagging: usize,
        leading: usize,
    ) {
        let lag = if lagging > 0 {
            lagging_handled as f64 / lagging as f64
        } else {
            0.0
        };
        let lead = if leading > 0 {
            leading_handled as f64 / leading as f64
        } else {
            0.0
        };
        let ratio = if lag + lead == 0.0 {
            0.5
        } else {
            (lag / (lag + lead)).clamp(0.2, 0.8)
        };
        self.ratio.store(ratio.to_bits(), Ordering::Relaxed);
    }
}
