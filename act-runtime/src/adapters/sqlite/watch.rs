//! A self-tuning watch for the hand-over between a caller and a connection thread.
//!
//! Putting a thread to sleep and waking it again costs tens of microseconds on a virtual
//! machine, more than a whole SQLite commit. So before sleeping, a connection thread keeps
//! looking for its next job for a moment, and a caller keeps looking for its answer
//! (yielding to its other tasks in between) before it registers to be woken. A watch only
//! pays while the other side answers within it: on a machine whose cores are taken by other
//! work the other side is not running, and watching would only take its core. So a watch
//! keeps a running score of its waits (did the other side answer inside the window?) and
//! watches only while most of them do; while it is off, one wait in [`PROBE_EVERY`] is
//! watched to find out whether watching pays again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long one wait is watched.
const WINDOW: Duration = Duration::from_micros(60);
/// The score's scale: a score is the recent share of waits answered inside the window,
/// in units of `1 / SCALE`.
const SCALE: u32 = 1 << 16;
/// Each wait moves the score by `1 / WEIGHT` of the way to 0 or to [`SCALE`].
const WEIGHT: u32 = 16;
/// The watch is on while at least this share of recent waits was answered in time.
const ON: u32 = SCALE / 4 * 3;
/// One wait in this many is watched while the watch is off.
const PROBE_EVERY: u32 = 16;

/// A watch shared by the callers of one lane (or kept by one thread).
#[derive(Debug)]
pub(crate) struct Watch {
    /// The recent share of waits answered inside the window (see [`SCALE`]).
    score: AtomicU32,
    /// Waits since the last probe, while off.
    idle: AtomicU32,
}

impl Default for Watch {
    fn default() -> Self {
        Self {
            score: AtomicU32::new(SCALE),
            idle: AtomicU32::new(0),
        }
    }
}

impl Watch {
    /// The deadline of the next wait's watch, or `None` not to watch it.
    pub(crate) fn until(&self) -> Option<Instant> {
        if self.score.load(Ordering::Relaxed) < ON {
            if self.idle.fetch_add(1, Ordering::Relaxed) + 1 < PROBE_EVERY {
                return None;
            }
            self.idle.store(0, Ordering::Relaxed);
        }
        Some(Instant::now() + WINDOW)
    }

    /// The wait was answered inside its window: watching paid.
    pub(crate) fn hit(&self) {
        let score = self.score.load(Ordering::Relaxed);
        self.score
            .store(score + (SCALE - score) / WEIGHT, Ordering::Relaxed);
    }

    /// The wait ran past its window: watching cost a core for nothing.
    pub(crate) fn miss(&self) {
        let score = self.score.load(Ordering::Relaxed);
        self.score.store(score - score / WEIGHT, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(watch: &Watch, waits: u32) -> usize {
        (0..waits).filter(|_| watch.until().is_some()).count()
    }

    #[test]
    fn a_rare_miss_keeps_the_watch_on() {
        let watch = Watch::default();
        for i in 0..1000 {
            if i % 50 == 0 {
                watch.miss();
            } else {
                watch.hit();
            }
        }
        assert_eq!(watched(&watch, 100), 100);
    }

    #[test]
    fn frequent_misses_turn_it_off_and_probes_that_hit_turn_it_back_on() {
        let watch = Watch::default();
        for _ in 0..10 {
            watch.miss();
        }
        // off: one wait in PROBE_EVERY is watched
        assert_eq!(watched(&watch, PROBE_EVERY * 3), 3);
        for _ in 0..20 {
            watch.hit();
        }
        assert_eq!(watched(&watch, 100), 100);
    }
}
