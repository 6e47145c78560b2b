//! Races for a stream: in one process, actions on one stream take turns (so they never
//! race each other); across processes, an action that lost a race pauses before it runs
//! again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard};

/// The turns of the actions on each stream in this process: an action holds its stream's
/// turn from load to commit, so two actions of one process never load the same version and
/// then race to commit it. Each stream has its own turn (a slow commit on one stream never
/// delays another), kept only while an action holds or waits for it.
#[derive(Default)]
pub(crate) struct StreamTurns {
    held: parking_lot::Mutex<Held>,
}

/// The turns held or waited for, and a few spare entries (key and lock) of turns given
/// back, reused for the next stream: taking and giving back a turn allocates nothing.
#[derive(Default)]
struct Held {
    turns: HashMap<String, Arc<Mutex<()>>, foldhash::fast::RandomState>,
    spare: Vec<(String, Arc<Mutex<()>>)>,
}

/// How many given-back entries are kept for reuse.
const SPARE: usize = 16;

/// A stream's turn, given back when dropped.
pub(crate) struct Turn<'t> {
    turns: &'t StreamTurns,
    stream: &'t str,
    lock: Arc<Mutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl StreamTurns {
    /// Waits for `stream`'s turn.
    pub(crate) async fn take<'t>(&'t self, stream: &'t str) -> Turn<'t> {
        let lock = {
            let mut held = self.held.lock();
            let Held { turns, spare } = &mut *held;
            match turns.get(stream) {
                Some(lock) => Arc::clone(lock),
                None => {
                    let (mut key, lock) = spare.pop().unwrap_or_default();
                    key.clear();
                    key.push_str(stream);
                    turns.insert(key, Arc::clone(&lock));
                    lock
                }
            }
        };
        // If this wait is cancelled, the clone is dropped and `Drop` below never runs for
        // it: the entry is then removed by the next holder that finds itself the last.
        let guard = Arc::clone(&lock).lock_owned().await;
        Turn {
            turns: self,
            stream,
            lock,
            guard: Some(guard),
        }
    }

    /// How many streams have a turn held or waited for.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().turns.len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut held = self.turns.held.lock();
        // Only the map and this turn still hold it: nobody else holds or waits for this
        // stream's turn (a clone is only taken under this lock).
        if Arc::strong_count(&self.lock) == 2
            && let Some((key, lock)) = held.turns.remove_entry(self.stream)
        {
            if Arc::ptr_eq(&lock, &self.lock) {
                if held.spare.len() < SPARE {
                    held.spare.push((key, lock));
                }
            } else {
                // Not this turn's entry (cannot happen while entries are only removed here,
                // but never drop someone else's): put it back.
                held.turns.insert(key, lock);
            }
        }
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

    #[tokio::test]
    async fn one_stream_takes_turns_others_do_not_wait_and_nothing_is_kept() {
        let turns = StreamTurns::default();
        let a = turns.take("a").await;
        // Another stream's turn is free while `a` is held.
        let b = tokio::time::timeout(Duration::from_secs(5), turns.take("b"))
            .await
            .expect("b waited for a");
        // `a` again waits until the first holder gives it back.
        let mut again = Box::pin(turns.take("a"));
        assert!(
            futures_poll_once(&mut again).await.is_none(),
            "a was taken twice"
        );
        drop(a);
        let a2 = again.await;
        drop((a2, b));
        assert_eq!(turns.len(), 0, "turns nobody holds are not kept");
    }

    /// Polls `f` once: `Some` if it completed.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

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
