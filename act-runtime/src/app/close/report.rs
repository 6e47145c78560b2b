//! What a close did: the streams closed, and those skipped with why.

#[allow(clippy::wildcard_imports)]
use super::*;

/// What [`Act::close`] did: the streams it closed and those it skipped, with the reason.
///
/// Both lists keep the order of the targets.
///
/// ```
/// use act_runtime::app::{CloseReport, ClosedStream, SkipReason, Skipped};
///
/// let report = CloseReport {
///     closed: vec![ClosedStream {
///         stream: "cart-1".into(),
///         deleted: 4,
///         restarted: false,
///         resumed: false,
///         seed_id: 9,
///     }],
///     skipped: vec![Skipped { stream: "cart-2".into(), reason: SkipReason::NotFound }],
/// };
/// assert!(report.is_closed("cart-1") && !report.is_closed("cart-2"));
/// assert_eq!(report.skip_reason("cart-2"), Some(&SkipReason::NotFound));
/// assert_eq!(report.skip_reason("cart-1"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseReport {
    /// The streams closed by this call.
    pub closed: Vec<ClosedStream>,
    /// The streams left as they were (or left guarded: see [`SkipReason`]).
    pub skipped: Vec<Skipped>,
}

impl CloseReport {
    /// Whether `stream` was closed by this call.
    pub fn is_closed(&self, stream: &str) -> bool {
        self.closed.iter().any(|c| c.stream == stream)
    }

    /// Why `stream` was skipped; `None` when it was not.
    pub fn skip_reason(&self, stream: &str) -> Option<&SkipReason> {
        self.skipped
            .iter()
            .find(|s| s.stream == stream)
            .map(|s| &s.reason)
    }
}

/// A stream [`Act::close`] closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedStream {
    /// The stream.
    pub stream: String,
    /// How many events were deleted (the guard tombstone included).
    pub deleted: u64,
    /// Whether it restarted from a snapshot (else it is tombstoned for good).
    pub restarted: bool,
    /// Whether this call finished a close an earlier call had guarded.
    pub resumed: bool,
    /// The id of the seed event now at version 0 (the snapshot or the tombstone).
    pub seed_id: EventId,
}

/// A stream [`Act::close`] did not close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The stream.
    pub stream: String,
    /// Why.
    pub reason: SkipReason,
}

/// Why [`Act::close`] skipped a stream.
///
/// Every reason but [`SkipReason::ArchiveFailed`] and [`SkipReason::RestartFailed`] leaves
/// the stream untouched. Those two come after the guard: the stream stays guarded (it
/// takes no more writes), and the next close of it resumes and finishes.
///
/// Its `Display` is a sentence for logs:
///
/// ```
/// use act_runtime::app::SkipReason;
///
/// let pending = SkipReason::PendingReactions { targets: vec!["ledger".into()] };
/// assert_eq!(
///     pending.to_string(),
///     "reactions have pending work on the stream (targets: ledger)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The stream has no events.
    NotFound,
    /// The stream is already closed: a tombstone at version 0 — or, for a restart target,
    /// nothing but its seed snapshot at version 0. Closing it again would change nothing.
    AlreadyClosed,
    /// The stream is listed more than once; only its first target is used.
    Duplicate,
    /// Reactions have yet to handle some of the stream's events: the subscription rows of
    /// these targets cover the stream and their watermarks are behind its events. Drain
    /// (or unblock) them, then close again.
    PendingReactions {
        /// The reaction targets (subscription rows) with pending work.
        targets: Vec<String>,
    },
    /// Correlation could not catch up with the stream's events in this call, so their
    /// dynamic reactions are not known yet.
    CorrelationBehind {
        /// The correlation checkpoint reached.
        checkpoint: EventId,
    },
    /// Another writer committed to the stream while it was being closed: its event is kept,
    /// and the stream is left open.
    ConcurrentWrite {
        /// The version the guard expected.
        expected: Version,
        /// The version the stream was at.
        actual: Version,
    },
    /// The restart state does not own the stream's last event.
    NotOwned {
        /// The restart state.
        state: &'static str,
        /// The stream's last event.
        event: String,
    },
    /// The final state of a restart target cannot be stored as a snapshot. The stream
    /// stays guarded.
    RestartFailed(String),
    /// The archive callback failed on the stream (its error's message). The stream stays
    /// guarded; close it again to retry the archive and finish.
    ArchiveFailed(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => f.write_str("the stream has no events"),
            Self::AlreadyClosed => f.write_str("the stream is already closed"),
            Self::Duplicate => f.write_str("the stream is listed more than once"),
            Self::PendingReactions { targets } => write!(
                f,
                "reactions have pending work on the stream (targets: {})",
                targets.join(", ")
            ),
            Self::CorrelationBehind { checkpoint } => write!(
                f,
                "correlation is behind the stream's events (checkpoint {checkpoint})"
            ),
            Self::ConcurrentWrite { expected, actual } => write!(
                f,
                "a concurrent write: expected version {expected}, found {actual}"
            ),
            Self::NotOwned { state, event } => write!(
                f,
                "state `{state}` does not own the stream's last event `{event}`"
            ),
            Self::RestartFailed(e) => write!(f, "the restart failed (stream guarded): {e}"),
            Self::ArchiveFailed(e) => write!(f, "the archive failed (stream guarded): {e}"),
        }
    }
}
