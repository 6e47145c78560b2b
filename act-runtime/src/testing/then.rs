//! The expectations: events compared by name and JSON payload, with a side-by-side report.

use std::fmt::Write as _;

use crate::app::{Blocked, DrainSummary, Executed, Retrying};
use crate::error::{ActError, Report};
use crate::model::{Committed, Emits, Event, Snapshot};

/// An event that may be expected of state `S`: one of `S`'s events.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event of `{S}`",
    label = "expected an event of `{S}`",
    note = "an action of `{S}` emits only `{S}`'s events, and a stream of `{S}` holds only them"
)]
pub trait ExpectedEvent<S>: Event {}

impl<E: Event> ExpectedEvent<E::State> for E {}

/// An event as compared: its name and its JSON payload.
fn render<E: Event>(e: &E) -> String {
    match e.to_data() {
        Ok(data) => format!("{} {}", e.name(), data.get()),
        Err(err) => format!("{} (does not serialize: {err})", e.name()),
    }
}

/// Panics with a report when `actual` is not `expected`.
#[track_caller]
fn compare(what: &str, expected: Vec<String>, actual: Vec<String>) {
    if expected == actual {
        return;
    }
    let mut report = format!(
        "{what}: expected {} event(s), got {}\n",
        expected.len(),
        actual.len()
    );
    for i in 0..expected.len().max(actual.len()) {
        let (e, a) = (expected.get(i), actual.get(i));
        let mark = if e == a { ' ' } else { '≠' };
        let _ = writeln!(
            report,
            "{mark} #{i}\n    expected: {}\n    actual:   {}",
            e.map_or("(none)", String::as_str),
            a.map_or("(none)", String::as_str)
        );
    }
    panic!("{report}");
}

/// What an action did, for its expectations.
pub struct When<S: Emits> {
    result: Result<Executed<S>, ActError>,
}

impl<S: Emits> When<S> {
    pub(super) fn new(result: Result<Executed<S>, ActError>) -> Self {
        Self { result }
    }

    /// Expects the action to have committed exactly `events`, in order (compared by name
    /// and JSON payload). An event of another state does not compile.
    ///
    /// # Panics
    /// When the action failed, or committed other events: the report lists both sides.
    #[track_caller]
    pub fn then<E: ExpectedEvent<S>>(self, events: impl IntoIterator<Item = E>) -> Self {
        let expected: Vec<String> = events.into_iter().map(|e| render(&e)).collect();
        match &self.result {
            Ok(done) => {
                let actual = done.events.iter().map(|c| render(&c.data)).collect();
                compare("the action's events", expected, actual);
            }
            Err(e) => panic!(
                "expected the action to commit {} event(s), but it failed: {}",
                expected.len(),
                Report::new(e)
            ),
        }
        self
    }

    /// Expects the action to have failed with an error `check` accepts; returns it.
    ///
    /// # Panics
    /// When the action succeeded, or `check` refuses its error.
    #[track_caller]
    pub fn then_error(self, check: impl FnOnce(&ActError) -> bool) -> ActError {
        match self.result {
            Ok(done) => panic!(
                "expected the action to fail, but it committed {} event(s): {}",
                done.events.len(),
                done.events
                    .iter()
                    .map(|c| render(&c.data))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) if check(&e) => e,
            Err(e) => panic!(
                "the action failed with another error: {} ({e:?})",
                Report::new(&e)
            ),
        }
    }

    /// The state after the action.
    ///
    /// # Panics
    /// When the action failed.
    #[track_caller]
    pub fn state(&self) -> &Snapshot<S> {
        match &self.result {
            Ok(done) => &done.snapshot,
            Err(e) => panic!("the action failed, there is no state: {}", Report::new(&e)),
        }
    }

    /// What the action returned.
    pub fn into_result(self) -> Result<Executed<S>, ActError> {
        self.result
    }
}

/// What a drain committed, for its expectations.
#[derive(Debug)]
pub struct Drained {
    committed: Vec<Committed>,
    summary: DrainSummary,
}

impl Drained {
    pub(super) fn new(committed: Vec<Committed>, summary: DrainSummary) -> Self {
        Self { committed, summary }
    }

    /// Expects the drain to have committed exactly `events` on `stream`, in order; the
    /// stream's events are read as `E` (its state's enum).
    ///
    /// # Panics
    /// When the stream got other events: the report lists both sides.
    #[track_caller]
    pub fn then<E: Event>(&self, stream: &str, events: impl IntoIterator<Item = E>) -> &Self {
        let expected: Vec<String> = events.into_iter().map(|e| render(&e)).collect();
        let actual: Vec<String> = self
            .committed
            .iter()
            .filter(|c| c.stream == stream)
            .map(|c| match c.typed::<E>() {
                Ok(Some(t)) => render(&t.data),
                Ok(None) => format!("{} (not an event of this state) {}", c.name, c.data.get()),
                Err(err) => format!("{} (does not decode: {err}) {}", c.name, c.data.get()),
            })
            .collect();
        compare(
            &format!("the drain's commits on `{stream}`"),
            expected,
            actual,
        );
        self
    }

    /// Every event the drain committed, on any stream.
    pub fn committed(&self) -> &[Committed] {
        &self.committed
    }

    /// The streams the drain blocked, with their errors.
    pub fn blocked(&self) -> &[Blocked] {
        &self.summary.blocked
    }

    /// The streams that failed and are retried when due ([`super::TestApp::advance`]).
    pub fn retrying(&self) -> &[Retrying] {
        &self.summary.retrying
    }

    /// The drain's summary.
    pub fn summary(&self) -> &DrainSummary {
        &self.summary
    }
}
