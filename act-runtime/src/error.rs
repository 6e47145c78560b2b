//! Typed errors, one enum per boundary: [`StoreError`] for the store port, [`ActError`] for
//! the app. Each carries the data the caller needs.
//!
//! An error's message describes its own layer only; what caused it is its
//! [`source()`](std::error::Error::source). [`Report`] and [`chain`] print the whole chain.

use std::error::Error;
use std::fmt;

use crate::model::{BoxError, EventId, Version};

/// An error and its causes on one line: each layer's message, outermost first, joined with
/// `": "`. A cause whose message the layer above already ends with (as `": {cause}"`) is
/// left out, as is an empty one: some errors outside this crate repeat their cause in their
/// own message.
///
/// Use it where an error becomes text for a person or a log: a tracing field
/// (`error = %Report::new(&e)`), a message, a stored reason. [`chain`] is the same as a
/// `String`.
///
/// ```
/// use act_runtime::error::{Report, StoreError};
///
/// let e = StoreError::backend("commit", "connection reset by peer");
/// assert_eq!(e.to_string(), "store operation `commit` failed");
/// assert_eq!(
///     Report::new(&e).to_string(),
///     "store operation `commit` failed: connection reset by peer"
/// );
/// ```
#[derive(Clone, Copy)]
pub struct Report<'a>(&'a (dyn Error + 'a));

impl<'a> Report<'a> {
    /// The report of `error` and its causes.
    pub fn new(error: &'a (dyn Error + 'a)) -> Self {
        Self(error)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut above = self.0.to_string();
        f.write_str(&above)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            let text = e.to_string();
            let repeated = above == text
                || above
                    .strip_suffix(text.as_str())
                    .is_some_and(|head| head.ends_with(": "));
            if !text.is_empty() && !repeated {
                write!(f, ": {text}")?;
            }
            above = text;
            cause = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `error` and its causes as one line, `outer: inner: ...`: see [`Report`].
///
/// ```
/// use act_runtime::error::{ActError, StoreError, chain};
///
/// let e = ActError::from(StoreError::backend("query", "disk full"));
/// assert_eq!(chain(&e), "store operation `query` failed: disk full");
/// ```
pub fn chain(error: &dyn Error) -> String {
    Report::new(error).to_string()
}

/// A commit lost the optimistic-concurrency race: the stream was not at the expected version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("concurrency conflict on stream `{stream}`: expected version {expected}, found {actual}")]
pub struct ConcurrencyError {
    /// The stream.
    pub stream: String,
    /// The version the commit expected (`-1`: empty).
    pub expected: Version,
    /// The version the stream is actually at (`-1`: empty).
    pub actual: Version,
}

/// The stream was closed (its head is a tombstone) and takes no more events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream `{stream}` is closed")]
pub struct StreamClosedError {
    /// The stream.
    pub stream: String,
}

/// An invariant did not hold: nothing was committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("action `{action}` on stream `{stream}` breaks an invariant: {description}")]
pub struct InvariantError {
    /// The action.
    pub action: String,
    /// The stream.
    pub stream: String,
    /// The invariant's description.
    pub description: String,
}

/// One problem found while validating input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// A JSON pointer to the offending value (`""` for the whole payload), e.g. `/qty`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The JSON Pointer (RFC 6901) of the value a deserializer failed on: `""` for the whole
/// payload, else one `/`-prefixed token per object key or array index (`/lines/1/at`),
/// `~` escaped as `~0` and `/` as `~1`. A segment the deserializer could not track ends
/// the pointer at the nearest known ancestor.
pub(crate) fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        let token = match segment {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
                continue;
            }
            Segment::Map { key } => key.as_str(),
            Segment::Enum { variant } => variant.as_str(),
            _ => break, // `Unknown`
        };
        out.push('/');
        out.push_str(&token.replace('~', "~0").replace('/', "~1"));
    }
    out
}

/// Input was rejected before anything was committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {target}: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ValidationError {
    /// What was validated: an action or event name, `stream`, `query`, ...
    pub target: String,
    /// Every problem found, each with the path of its field.
    pub problems: Vec<FieldError>,
}

impl ValidationError {
    /// A validation error with a single problem.
    pub fn new(
        target: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            target: target.into(),
            problems: vec![FieldError {
                path: path.into(),
                message: message.into(),
            }],
        }
    }

    /// The paths of the offending fields.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.problems.iter().map(|p| p.path.as_str())
    }
}

/// An error at the store port.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A commit lost the optimistic-concurrency race.
    #[error(transparent)]
    Concurrency(#[from] ConcurrencyError),
    /// The input cannot be stored or expressed (NUL bytes, a pattern the adapter cannot
    /// match exactly, an unsafe identifier, ...). Nothing was written.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A commit onto a stream whose head is a tombstone (a retired stream). Nothing was
    /// written.
    #[error(transparent)]
    Closed(#[from] StreamClosedError),
    /// The backend failed (connection lost, I/O, ...). Nothing was written.
    #[error("store operation `{operation}` failed")]
    Backend {
        /// The port operation (`commit`, `query`, `claim`, ...).
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// A stored event cannot be read back (its payload or metadata does not decode). The
    /// events before it can still be read: query with `before = id`.
    #[error("stored event {id} on stream `{stream}` cannot be read back: {reason}")]
    Corrupt {
        /// The id of the unreadable event.
        id: EventId,
        /// Its stream.
        stream: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store was disposed.
    #[error("store is disposed")]
    Disposed,
}

impl StoreError {
    /// Wraps a backend error for `operation`.
    pub fn backend(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            operation,
            source: source.into(),
        }
    }
}

/// An error at the cache port. Loads treat cache failures as misses; only `invalidate`
/// failures are surfaced.
#[derive(Debug, thiserror::Error)]
#[error("cache operation `{operation}` failed")]
pub struct CacheError {
    /// The port operation.
    pub operation: &'static str,
    /// The backend's error.
    #[source]
    pub source: BoxError,
}

/// The app could not be built from its registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two actions share a name.
    #[error("action `{name}` is declared by both `{first}` and `{second}`")]
    DuplicateAction {
        /// The shared name.
        name: String,
        /// The state that declared it first.
        first: String,
        /// The state that declared it again.
        second: String,
    },
    /// Two states claim one event name.
    #[error("event `{name}` is emitted by both `{first}` and `{second}`")]
    DuplicateEvent {
        /// The shared name.
        name: String,
        /// The state that declared it first.
        first: String,
        /// The state that declared it again.
        second: String,
    },
    /// Two different state types share a name.
    #[error("two different states are named `{name}`")]
    DuplicateState {
        /// The shared name.
        name: String,
    },
    /// A reaction listens to an event no registered state emits.
    #[error(
        "reaction `{reaction}` listens to `{event}`, which no registered state emits; register its state with `with_state`"
    )]
    UnknownEvent {
        /// The reaction's name.
        reaction: String,
        /// The event.
        event: String,
    },
    /// Two reactions on one event share a name.
    #[error("reaction `{name}` is registered twice on event `{event}`")]
    DuplicateReaction {
        /// The reaction's name.
        name: String,
        /// The event.
        event: String,
    },
    /// Two projections share a name.
    #[error("projection `{name}` is registered twice")]
    DuplicateProjection {
        /// The shared name.
        name: String,
    },
    /// A reaction targets a projection's stream: a projection's target is its own.
    #[error(
        "reaction `{reaction}` targets `{projection}`, which is a projection's: rename the reaction's target or the projection"
    )]
    ProjectionTargetShared {
        /// The projection.
        projection: String,
        /// The reaction.
        reaction: String,
    },
}

/// An error from the app: `execute`, `load`, `query` and the JSON entry point.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActError {
    /// Input was rejected; nothing was committed.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// An invariant did not hold; nothing was committed.
    #[error(transparent)]
    Invariant(#[from] InvariantError),
    /// The commit lost the race (and was not retried, or ran out of retries).
    #[error(transparent)]
    Concurrency(#[from] ConcurrencyError),
    /// The stream is closed.
    #[error(transparent)]
    StreamClosed(#[from] StreamClosedError),
    /// The action's handler rejected it; nothing was committed.
    #[error("action `{action}` on stream `{stream}` was rejected")]
    Rejected {
        /// The action.
        action: String,
        /// The stream.
        stream: String,
        /// The handler's error.
        #[source]
        source: BoxError,
    },
    /// No action of that name is registered.
    #[error("unknown action `{0}`")]
    UnknownAction(String),
    /// No state of that name (or type) is registered.
    #[error("unknown state `{0}`")]
    UnknownState(String),
    /// A stored event could not be read back as its type.
    #[error("event {id} `{name}` on stream `{stream}` does not match its schema")]
    Corrupt {
        /// The event id.
        id: i64,
        /// The event name.
        name: String,
        /// The stream.
        stream: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The app was shut down.
    #[error("the app is shut down")]
    ShutDown,
}

impl From<StoreError> for ActError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Concurrency(c) => Self::Concurrency(c),
            StoreError::Invalid(v) => Self::Validation(v),
            StoreError::Closed(c) => Self::StreamClosed(c),
            other => Self::Store(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each error that wraps a source names it through `source()` only: `to_string()` does
    /// not repeat the source's text (a reporter walking the chain would print it twice).
    #[test]
    fn errors_with_a_source_do_not_repeat_it_in_their_message() {
        const SOURCE: &str = "connection reset by peer";
        let json = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        let json_text = json.to_string();
        let cases: Vec<(Box<dyn std::error::Error>, String)> = vec![
            (
                Box::new(StoreError::backend("commit", SOURCE)),
                SOURCE.to_owned(),
            ),
            (
                Box::new(CacheError {
                    operation: "get",
                    source: SOURCE.into(),
                }),
                SOURCE.to_owned(),
            ),
            (
                Box::new(ActError::Rejected {
                    action: "Withdraw".into(),
                    stream: "acct-1".into(),
                    source: SOURCE.into(),
                }),
                SOURCE.to_owned(),
            ),
            (
                Box::new(ActError::Corrupt {
                    id: 7,
                    name: "Deposited".into(),
                    stream: "acct-1".into(),
                    source: json,
                }),
                json_text,
            ),
        ];
        for (err, source) in cases {
            let message = err.to_string();
            assert!(!message.contains(&source), "{message:?} repeats {source:?}");
            let chained = err.source().map(ToString::to_string);
            assert_eq!(chained.as_deref(), Some(source.as_str()), "{message}");
        }
    }

    #[test]
    fn a_backend_error_shows_its_operation_and_its_cause_only_through_source() {
        let e = StoreError::backend("commit", "connection reset by peer");
        assert_eq!(e.to_string(), "store operation `commit` failed");
        assert!(!e.to_string().contains("connection reset"), "{e}");
        let text = chain(&e);
        assert_eq!(
            text,
            "store operation `commit` failed: connection reset by peer"
        );
        assert_eq!(text.matches("connection reset by peer").count(), 1);
        // through the app's error too (`Store` is transparent: no layer of its own)
        let app = ActError::from(e);
        assert_eq!(chain(&app), text);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] BoxError);

    #[derive(Debug, thiserror::Error)]
    #[error("repeats its cause: {0}")]
    struct Repeats(#[source] BoxError);

    #[test]
    fn a_report_joins_every_layer_and_skips_a_cause_already_shown() {
        let deep = Outer(Box::new(StoreError::backend("query", "disk full")));
        assert_eq!(
            chain(&deep),
            "outer: store operation `query` failed: disk full"
        );
        assert_eq!(format!("{}", Report::new(&deep)), chain(&deep));
        assert_eq!(format!("{:?}", Report::new(&deep)), chain(&deep));
        let repeats = Repeats("disk full".into());
        assert_eq!(chain(&repeats), "repeats its cause: disk full");
        // a cause that only appears inside the message above is still shown
        let rejected = ActError::Rejected {
            action: "Close".into(),
            stream: "s".into(),
            source: "rejected".into(),
        };
        assert_eq!(
            chain(&rejected),
            "action `Close` on stream `s` was rejected: rejected"
        );
        assert_eq!(chain(&ActError::ShutDown), "the app is shut down");
    }

    /// The variants without a source of their own keep their whole message.
    #[test]
    fn transparent_and_leaf_errors_keep_their_message() {
        let e = ActError::from(StoreError::Concurrency(ConcurrencyError {
            stream: "s".into(),
            expected: 1,
            actual: 2,
        }));
        assert!(e.to_string().contains("expected version 1, found 2"), "{e}");
        assert_eq!(ActError::ShutDown.to_string(), "the app is shut down");
    }

    fn pointer_of(json: &str) -> String {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Line {
            at: u8,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum Kind {
            Bulk { lines: Vec<Line> },
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Payload {
            #[serde(default)]
            lines: Vec<Line>,
            #[serde(default)]
            tags: std::collections::HashMap<String, u8>,
            #[serde(default)]
            kind: Option<Kind>,
        }
        let mut de = serde_json::Deserializer::from_str(json);
        let err = serde_path_to_error::deserialize::<_, Payload>(&mut de).unwrap_err();
        json_pointer(err.path())
    }

    #[test]
    fn decode_paths_are_json_pointers() {
        assert_eq!(pointer_of(r#""x""#), "");
        assert_eq!(
            pointer_of(r#"{"lines": [{"at": 1}, {"at": -1}]}"#),
            "/lines/1/at"
        );
        assert_eq!(pointer_of(r#"{"tags": {"a/b~c": -1}}"#), "/tags/a~1b~0c");
        assert_eq!(pointer_of(r#"{"tags": {"": -1}}"#), "/tags/");
        assert_eq!(
            pointer_of(r#"{"kind": {"Bulk": {"lines": [{"at": 300}]}}}"#),
            "/kind/Bulk/lines/0/at"
        );
    }
}
