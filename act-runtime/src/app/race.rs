//! Races for a stream: in one process, actions on one stream take turns (so they never
//! race each other); across processes, an action that lost a race pauses before it runs
//! again.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};

/// Stripes of the per-stream turn locks (streams hashing to one stripe share its turns).
const STRIPES: usize = 1024;

/// The turns of the actions on each stream in this process: an action holds its stream's
/// turn from load to commit, so two actions of one process never load the same version and
/// then race to commit it. Streams share a fixed number of stripes (a few bytes each).
pub(crate) struct StreamTurns {
    stripes: Box<[Mutex<()>]>,
    hasher: RandomState,
}

impl Default for StreamTurns {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl StreamTurns {
    /// Waits for `stream`'s turn.
    pub(crate) async fn take(&self, stream: &str) -> MutexGuard<'_, ()> {
        let i = (self.hasher.hash_one(stream) % STRIPES as u64) as usize;
        self.stripes[i].lock().await
    }
}

/// How long an action that lost a race waits before it runs again on the new state.
///
/// An action whose commit finds that another writer committed to the stream first (and
/// whose caller did not pin a version) is run again, up to the action's retry budget
/// (`#[action(retries = N)]`, 3 by default). Before retry `k` (1, 2, ...) it waits between
/// half and all of `min(max, base · 2^(k-1))`, at random ("equal jitter"): writers that
/// collided spread out instead of colliding again, and each retry still waits at least
/// half its step. `RaceBackoff::NONE` retries at once.
///
/// ```
/// use std::time::Duration;
/// use act_runtime::app::RaceBackoff;
///
/// let b = RaceBackoff::default();
/// assert_eq!((b.base, b.max), (Duration::from_millis(1), Duration::from_millis(64)));
/// let d = b.delay(3); // the third retry: between 2 and 4 ms
/// assert!(d >= Duration::from_millis(2) && d <= Duration::from_millis(4));
/// let app = act_runtime::prelude::act()
///     .with_race_backoff(RaceBackoff { base: Duration::from_millis(5), ..b })
///     .build()?;
/// # Ok::<(), act_runtime::error::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaceBackoff {
    /// The first retry's step.
    pub base: Duration,
    /// The largest step.
    pub max: Duration,
}

impl RaceBackoff {
    /// No pause: retry at once.
    pub const NONE: Self = Self {
        base: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// The pause before retry `attempt` (counted from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(30);
        let step = self.base.saturating_mul(1 << shift).min(self.max);
        let half = step / 2;
        let random = super::ids::random_u64();
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 { 0 } else { random % (nanos + 1) };
        half + Duration::from_nanos(jitter)
    }
}

impl Default for RaceBackoff {
    /// 1 ms doubling to 64 ms.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(1),
            max: Duration::from_millis(64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_double_up_to_the_cap_and_stay_between_half_and_whole() {
        let b = RaceBackoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        for (attempt, step) in [(1, 10), (2, 20), (3, 40), (4, 50), (40, 50)] {
            let step = Duration::from_millis(step);
            for _ in 0..50 {
                let d = b.delay(attempt);
                assert!(d >= step / 2 && d <= step, "retry {attempt}: {d:?}");
            }
        }
        assert_eq!(RaceBackoff::NONE.delay(3), Duration::ZERO);
    }

    #[test]
    fn the_jitter_spreads_writers_out() {
        let b = RaceBackoff::default();
        let delays: std::collections::HashSet<_> = (0..20).map(|_| b.delay(5)).collect();
        assert!(delays.len() > 1, "every writer waited the same");
    }
}
