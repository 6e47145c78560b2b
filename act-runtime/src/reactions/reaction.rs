//! The reaction contract: what `#[reaction]` generates for an async handler.

use std::future::Future;
use std::pin::Pin;

use super::Scope;
use crate::error::ActError;
use crate::model::{BoxError, Committed, Event};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a reaction finds the stream it works for, classified at compile time by
/// `#[reaction(to = ...)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `to = "target"`: one fixed target stream, fed by every stream. Subscribed once at
    /// start and marked at commit: no correlation scan.
    Static(&'static str),
    /// `to = _this_`: the event's own stream. Marked at commit: no correlation scan.
    SameStream,
    /// `void`: never drained; the handler runs right after the commit, best effort.
    Void,
    /// `to = function` or `to = |event| ...`: resolved per event by `correlate`.
    Dynamic,
}

impl Resolver {
    /// Whether the target is known without running user code (everything but `Dynamic`).
    pub fn is_static(self) -> bool {
        !matches!(self, Self::Dynamic)
    }

    /// Where an event of `stream` goes when the target is known without user code: the
    /// fixed target (fed by every stream), or the event's own stream (fed by itself).
    /// `None` for `Void` and `Dynamic`.
    ///
    /// ```
    /// use act_runtime::reactions::{Resolved, Resolver};
    ///
    /// assert_eq!(Resolver::Static("ledger").route("acct-1"), Some(Resolved::to("ledger")));
    /// assert_eq!(
    ///     Resolver::SameStream.route("acct-1"),
    ///     Some(Resolved::to("acct-1").from_stream("acct-1"))
    /// );
    /// assert_eq!(Resolver::Dynamic.route("acct-1"), None);
    /// ```
    pub fn route(self, stream: &str) -> Option<Resolved> {
        match self {
            Self::Static(target) => Some(Resolved::to(target)),
            Self::SameStream => Some(Resolved::to(stream).from_stream(stream)),
            Self::Void | Self::Dynamic => None,
        }
    }
}

/// Where a dynamic resolver sends an event: a target stream, and where the target's events
/// come from (`None`: every stream; else an exact stream name or a pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The target stream: the unit of ordering and leasing.
    pub target: String,
    /// The source of the target's events.
    pub source: Option<String>,
    /// Whether `source` is a pattern (see [`crate::ports::StreamMatch`]).
    pub source_is_pattern: bool,
    /// Claim priority (higher first).
    pub priority: i32,
}

impl Resolved {
    /// The subscription row this resolution registers, with its work mark at `mark`.
    pub fn subscription(&self, mark: Option<crate::model::EventId>) -> crate::ports::Subscription {
        crate::ports::Subscription {
            stream: self.target.clone(),
            source: self.source.clone(),
            source_is_pattern: self.source_is_pattern,
            priority: self.priority,
            correlated_at: mark,
        }
    }

    /// Work for `target`, fed by every stream.
    pub fn to(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            source: None,
            source_is_pattern: false,
            priority: 0,
        }
    }

    /// Feeds the target from one stream only.
    #[must_use]
    pub fn from_stream(mut self, stream: impl Into<String>) -> Self {
        self.source = Some(stream.into());
        self.source_is_pattern = false;
        self
    }

    /// Feeds the target from the streams matching `pattern`.
    #[must_use]
    pub fn from_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.source = Some(pattern.into());
        self.source_is_pattern = true;
        self
    }

    /// Sets the claim priority.
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}

/// What a dynamic resolver may return: a [`Resolved`], a target name, or `None` to skip.
pub trait IntoResolved {
    /// The resolution, if any.
    fn into_resolved(self) -> Option<Resolved>;
}

impl IntoResolved for Resolved {
    fn into_resolved(self) -> Option<Resolved> {
        Some(self)
    }
}

impl<T: IntoResolved> IntoResolved for Option<T> {
    fn into_resolved(self) -> Option<Resolved> {
        self.and_then(IntoResolved::into_resolved)
    }
}

impl IntoResolved for String {
    fn into_resolved(self) -> Option<Resolved> {
        Some(Resolved::to(self))
    }
}

impl IntoResolved for &str {
    fn into_resolved(self) -> Option<Resolved> {
        Some(Resolved::to(self))
    }
}

/// How retries are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffStrategy {
    /// `base` every time.
    Fixed,
    /// `base × (retry + 1)`.
    Linear,
    /// `base × 2^retry`, capped at `max`.
    Exponential,
}

/// Backoff between a failed attempt and the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The strategy.
    pub strategy: BackoffStrategy,
    /// The base delay, in milliseconds.
    pub base_ms: u64,
    /// The longest delay, in milliseconds (exponential only).
    pub max_ms: Option<u64>,
    /// Multiply each delay by a random factor in `[0.5, 1.5)`.
    pub jitter: bool,
}

impl Backoff {
    /// The delay before the attempt after failed attempt number `retry` (0-based).
    pub fn delay_ms(&self, retry: i32) -> u64 {
        let r = retry.max(0) as u32;
        let delay = match self.strategy {
            BackoffStrategy::Fixed => self.base_ms,
            BackoffStrategy::Linear => self.base_ms.saturating_mul(u64::from(r) + 1),
            BackoffStrategy::Exponential => {
                let d = self
                    .base_ms
                    .saturating_mul(1u64.checked_shl(r).unwrap_or(u64::MAX));
                self.max_ms.map_or(d, |m| d.min(m))
            }
        };
        if self.jitter {
            (delay as f64 * (0.5 + super::jitter())) as u64
        } else {
            delay
        }
    }
}

/// Per-reaction options: `#[reaction(..., retries = 5, block_on_error = false,
/// backoff(exponential, base_ms = 100, max_ms = 5000, jitter))]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReactionOptions {
    /// Failed attempts tolerated before blocking the stream.
    pub max_retries: u32,
    /// Block the stream when the budget is spent (else retry forever).
    pub block_on_error: bool,
    /// Spacing between attempts; `None` retries on the next drain.
    pub backoff: Option<Backoff>,
    /// How long one attempt may run before it is stopped and counted as a failure. The
    /// drain also stops an attempt when its lease is about to expire, whichever comes first.
    pub timeout: std::time::Duration,
}

impl ReactionOptions {
    /// Three retries, block on error, no backoff, a 10 s timeout per attempt.
    pub const DEFAULT: Self = Self {
        max_retries: 3,
        block_on_error: true,
        backoff: None,
        timeout: std::time::Duration::from_secs(10),
    };
}

impl Default for ReactionOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a reaction failed.
#[derive(Debug, thiserror::Error)]
pub enum ReactionError {
    /// Worth another attempt (a store hiccup, a lost race, a remote service down). Its
    /// message and causes are the wrapped error's.
    #[error(transparent)]
    Retryable(BoxError),
    /// Will fail the same way every time: blocks the stream at once. Its message is
    /// `non-retryable`, its source the wrapped error (print both with
    /// [`Report`](crate::error::Report)).
    #[error("non-retryable")]
    NonRetryable(#[source] BoxError),
}

impl ReactionError {
    /// A retryable error.
    pub fn retry(e: impl Into<BoxError>) -> Self {
        Self::Retryable(e.into())
    }

    /// A non-retryable error: the stream blocks at once.
    pub fn fatal(e: impl Into<BoxError>) -> Self {
        Self::NonRetryable(e.into())
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

impl From<ActError> for ReactionError {
    fn from(e: ActError) -> Self {
        match e {
            // deterministic: the same input fails the same way next time
            ActError::Validation(_) | ActError::UnknownAction(_) | ActError::UnknownState(_) => {
                Self::NonRetryable(e.into())
            }
            other => Self::Retryable(other.into()),
        }
    }
}

impl From<String> for ReactionError {
    fn from(e: String) -> Self {
        Self::Retryable(e.into())
    }
}

impl From<&str> for ReactionError {
    fn from(e: &str) -> Self {
        Self::Retryable(e.into())
    }
}

impl From<BoxError> for ReactionError {
    fn from(e: BoxError) -> Self {
        Self::Retryable(e)
    }
}

/// A reaction: an async handler of one event, with a resolver and options. Implemented by
/// `#[reaction(on = Enum::Variant, to = ...)]` on an `async fn`.
pub trait Reaction: Send + Sync + 'static {
    /// The event enum the reaction's event belongs to.
    type Event: Event;
    /// The reaction's name (the handler's): unique per event.
    const NAME: &'static str;
    /// The name of the event it reacts to.
    const EVENT: &'static str;
    /// How its target is found.
    const RESOLVER: Resolver;
    /// Retry, block and backoff options.
    const OPTIONS: ReactionOptions = ReactionOptions::DEFAULT;

    /// Where `event` goes. The default follows [`Reaction::RESOLVER`]; `#[reaction]`
    /// overrides it for dynamic resolvers.
    fn resolve(event: &Committed<Self::Event>) -> Option<Resolved> {
        Self::RESOLVER.route(&event.stream)
    }

    /// Handles one event. Actions run through `scope` carry the event as their causation
    /// and keep its correlation id.
    fn handle<'a>(
        &'a self,
        event: &'a Committed<Self::Event>,
        scope: &'a Scope,
    ) -> BoxFuture<'a, Result<(), ReactionError>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{StoreError, chain};
    use std::error::Error as _;

    #[test]
    fn a_reaction_error_does_not_repeat_its_cause() {
        let fatal = ReactionError::fatal(StoreError::backend("commit", "disk full"));
        assert_eq!(fatal.to_string(), "non-retryable");
        assert_eq!(
            fatal.source().map(ToString::to_string).as_deref(),
            Some("store operation `commit` failed")
        );
        assert_eq!(
            chain(&fatal),
            "non-retryable: store operation `commit` failed: disk full"
        );

        // retryable adds no layer: its message and causes are the wrapped error's
        let retry = ReactionError::retry(StoreError::backend("commit", "disk full"));
        assert_eq!(retry.to_string(), "store operation `commit` failed");
        assert_eq!(
            retry.source().map(ToString::to_string).as_deref(),
            Some("disk full")
        );
        assert_eq!(chain(&retry), "store operation `commit` failed: disk full");
        assert_eq!(chain(&ReactionError::retry("boom")), "boom");
    }
}
