//! The clock the reaction pipeline and the in-memory store read.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The wall clock plus an offset that only moves forward when told: virtual time for
/// retries' backoff and lease expiries, so a test waits for neither. Clones share the
/// offset. The SQL stores read their own clocks; this one is for the app (when a retry is
/// due) and the in-memory store (leases, dues, `created`).
///
/// ```
/// use std::time::Duration;
/// use act_runtime::ports::Clock;
///
/// let clock = Clock::default();
/// let before = clock.now();
/// clock.advance(Duration::from_secs(3600));
/// assert!(clock.now() - before >= chrono::TimeDelta::hours(1));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Now: the wall clock plus the offset.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let now = Utc::now();
        if offset == 0 {
            now
        } else {
            now + TimeDelta::milliseconds(offset)
        }
    }

    /// Moves this clock (and its clones) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}
