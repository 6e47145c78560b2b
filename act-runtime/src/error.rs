//! Typed errors, one enum per boundary: [`StoreError`] for the store port, [`ActError`] for
//! the app. Each carries the data the caller needs.

use crate::model::{BoxError, EventId, Version};

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
    /// The backend failed (connection lost, I/O, ...). Nothing was written.
    #[error("store operation `{operation}` failed: {source}")]
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
#[error("cache operation `{operation}` failed: {source}")]
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
    #[error("action `{action}` on stream `{stream}` was rejected: {source}")]
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
    #[error("event {id} `{name}` on stream `{stream}` does not match its schema: {source}")]
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
            other => Self::Store(other),
        }
    }
}
