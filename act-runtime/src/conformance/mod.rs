//! The conformance kit: the behaviours every [`Store`](crate::ports::Store) and
//! [`Cache`](crate::ports::Cache) adapter must have, as named checks any adapter — including
//! one written outside this crate — runs with one call (feature `conformance`).
//!
//! * [`store::run`] runs every store check, each against a fresh store from a factory, and
//!   panics listing every failed check by name (it does not stop at the first).
//!   [`store::report`] returns the [`Report`] instead.
//! * [`cache::run`] / [`cache::report`]: the same for caches.
//! * [`differential::run`] runs a seeded random workload on an adapter and on a fresh
//!   [`InMemoryStore`](crate::adapters::InMemoryStore) (the oracle) side by side and requires
//!   identical results.
//!
//! The checks follow the doc comments of the ports (the contract) with PostgreSQL's
//! semantics where those are silent. Lease expiry is checked with short leases (30–50 ms)
//! and real sleeps, since an adapter's clock cannot be moved from outside; the whole store
//! kit takes a few seconds. Every check runs in its own Tokio task with a time limit, so a
//! panicking or hanging adapter fails that check only. Call the kit from a Tokio runtime
//! (`#[tokio::test]`).
//!
//! ```
//! use act_runtime::adapters::{InMemoryCache, InMemoryStore};
//! use act_runtime::conformance;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let report = conformance::store::run(|| async { InMemoryStore::new() }).await;
//! assert!(report.passed() >= 100);
//! conformance::cache::run(|| async { InMemoryCache::new() }).await;
//! conformance::differential::run(|| async { InMemoryStore::new() }, 7, 200).await;
//! # });
//! ```

pub mod cache;
pub mod differential;
pub mod store;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CacheError, StoreError};

/// A boxed, sendable future (what a check returns).
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Why a check failed: a message naming what was expected and what was found.
#[derive(Debug)]
pub(crate) struct Fail(pub(crate) String);

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self(format!(
            "unexpected store error: {}",
            crate::error::Report::new(&e)
        ))
    }
}

impl From<CacheError> for Fail {
    fn from(e: CacheError) -> Self {
        Self(format!(
            "unexpected cache error: {}",
            crate::error::Report::new(&e)
        ))
    }
}

impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Self {
        Self(format!("unexpected JSON error: {e}"))
    }
}

/// The result of one check.
pub(crate) type Outcome = Result<(), Fail>;

/// Fails the check with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::conformance::Fail(format!($($fmt)+)));
        }
    };
}

/// Fails the check unless `actual == expected`, showing both.
macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($fmt:tt)+) => {
        match (&$actual, &$expected) {
            (actual, expected) => {
                if actual != expected {
                    return Err($crate::conformance::Fail(format!(
                        "{}: expected {:?}, got {:?}",
                        format!($($fmt)+),
                        expected,
                        actual
                    )));
                }
            }
        }
    };
}

/// Builds a list of [`Check`]s over subject type `$t` from `"name" => async fn` pairs.
macro_rules! checks {
    ($t:ty; $($name:literal => $f:path),+ $(,)?) => {
        vec![$(
            $crate::conformance::Check::<$t>::new(
                $name,
                |s: ::std::sync::Arc<$t>| -> $crate::conformance::BoxFuture<$crate::conformance::Outcome> {
                    Box::pin($f(s))
                },
            )
        ),+]
    };
}

pub(crate) use {checks, ensure, ensure_eq};

/// The function a check runs against a fresh subject.
type CheckFn<T> = fn(Arc<T>) -> BoxFuture<Outcome>;

/// One named behaviour of a port, run against a fresh adapter instance.
///
/// The name says the behaviour (`"query: names [] matches nothing"`); the group is the part
/// before the colon.
pub struct Check<T: ?Sized> {
    name: &'static str,
    run: CheckFn<T>,
}

impl<T: ?Sized> Clone for Check<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Check<T> {}

impl<T: ?Sized> fmt::Debug for Check<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Check").field(&self.name).finish()
    }
}

impl<T: ?Sized> Check<T> {
    pub(crate) const fn new(name: &'static str, run: CheckFn<T>) -> Self {
        Self { name, run }
    }

    /// The behaviour this check verifies.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The group of the check: its name up to the first `:`.
    pub fn group(&self) -> &'static str {
        group_of(self.name)
    }
}

fn group_of(name: &str) -> &str {
    name.split_once(':').map_or(name, |(g, _)| g)
}

/// A check that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check's name.
    pub name: &'static str,
    /// What went wrong.
    pub message: String,
}

/// What a kit run found: every check's name, and the failures with their reasons.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Which kit ran (`"store"`, `"cache"`).
    pub kit: &'static str,
    /// The names of the checks that passed, in run order.
    pub passed: Vec<&'static str>,
    /// The checks that failed, in run order.
    pub failures: Vec<Failure>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl Report {
    /// How many checks passed.
    pub fn passed(&self) -> usize {
        self.passed.len()
    }

    /// How many checks ran.
    pub fn total(&self) -> usize {
        self.passed.len() + self.failures.len()
    }

    /// Whether every check passed.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// How many checks ran per group (the part of a name before `:`), in first-seen order.
    pub fn groups(&self) -> Vec<(&'static str, usize)> {
        let mut out: Vec<(&'static str, usize)> = Vec::new();
        let names = self
            .passed
            .iter()
            .copied()
            .chain(self.failures.iter().map(|f| f.name));
        for name in names {
            let g = group_of(name);
            match out.iter_mut().find(|(n, _)| *n == g) {
                Some((_, c)) => *c += 1,
                None => out.push((g, 1)),
            }
        }
        out
    }

    /// Panics listing every failed check, if any.
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.is_ok() {
            panic!("{self}");
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} conformance: {} of {} checks passed in {:?}",
            self.kit,
            self.passed(),
            self.total(),
            self.elapsed
        )?;
        for failure in &self.failures {
            writeln!(f, "  FAILED {}\n         {}", failure.name, failure.message)?;
        }
        Ok(())
    }
}

/// The longest a check may run before it fails as hung.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// What the runner needs from a subject: seed before, dispose after.
pub(crate) trait Subject: Send + Sync + 'static {
    fn prepare(self: Arc<Self>) -> BoxFuture<Outcome>;
    fn finish(self: Arc<Self>) -> BoxFuture<Outcome>;
}

/// Runs `checks` (those `filter` accepts), each against a fresh subject from `make`, and
/// collects every failure.
pub(crate) async fn execute<T, F, Fut>(
    kit: &'static str,
    checks: &[Check<T>],
    filter: &dyn Fn(&str) -> bool,
    make: F,
) -> Report
where
    T: ?Sized + Subject,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<T>>,
{
    let started = Instant::now();
    let mut seen = std::collections::HashSet::new();
    for c in checks {
        assert!(seen.insert(c.name), "duplicate check name `{}`", c.name);
    }
    let mut report = Report {
        kit,
        ..Report::default()
    };
    for check in checks.iter().filter(|c| filter(c.name)) {
        let subject = make().await;
        let run = check.run;
        let task = tokio::spawn(async move {
            subject.clone().prepare().await.map_err(|Fail(m)| {
                Fail(format!("setup (seed) failed before the check ran: {m}"))
            })?;
            let outcome = run(subject.clone()).await;
            let finished = subject.finish().await;
            outcome?;
            finished.map_err(|Fail(m)| Fail(format!("dispose failed after the check: {m}")))
        });
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) if e.is_panic() => Err(Fail(format!("panicked: {}", panic_message(e)))),
            Ok(Err(e)) => Err(Fail(format!("task failed: {e}"))),
            Err(_) => Err(Fail(format!("did not finish within {CHECK_TIMEOUT:?}"))),
        };
        match outcome {
            Ok(()) => report.passed.push(check.name),
            Err(Fail(message)) => report.failures.push(Failure {
                name: check.name,
                message,
            }),
        }
    }
    report.elapsed = started.elapsed();
    report
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic payload>".to_owned())
}
