//! Running user code so that its faults stay with the stream that caused them: a handler
//! attempt is stopped at its deadline, a panic is caught with its message, and both are
//! failures like an `Err`.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::reactions::{BoxFuture, ReactionError};

/// How one handler attempt ended, when it did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The handler returned an error.
    Failed(ReactionError),
    /// The handler panicked, with this message.
    Panicked(String),
    /// The handler ran past its deadline and was stopped.
    TimedOut {
        after: Duration,
        /// Whether the lease's end (not the reaction's timeout) was the deadline.
        lease_end: bool,
    },
    /// The app's shutdown grace ran out: the attempt was stopped, and counts for nothing.
    Aborted,
}

impl Failure {
    /// Whether another attempt may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Failed(e) => e.is_retryable(),
            Self::Panicked(_) | Self::TimedOut { .. } | Self::Aborted => true,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "{}", crate::error::Report::new(e)),
            Self::Panicked(msg) => write!(f, "panicked: {msg}"),
            Self::TimedOut {
                after,
                lease_end: false,
            } => write!(f, "timed out after {after:?}"),
            Self::TimedOut {
                after,
                lease_end: true,
            } => write!(
                f,
                "stopped after {after:?} at the end of its lease (raise the drain's lease, or lower the reaction's timeout)"
            ),
            Self::Aborted => f.write_str("stopped by shutdown"),
        }
    }
}

/// Polls a boxed future, turning a panic into an `Err` with its payload.
pub(crate) struct CatchUnwind<'a, T>(pub(crate) BoxFuture<'a, T>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = Result<T, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(crate::reactions::panic_message(panic.as_ref()))),
        }
    }
}

/// Runs one handler attempt for at most `budget`, stopped early by `abort`.
pub(crate) async fn attempt(
    handler: BoxFuture<'_, Result<(), ReactionError>>,
    budget: Duration,
    lease_end: bool,
    abort: &CancellationToken,
) -> Result<(), Failure> {
    if abort.is_cancelled() {
        return Err(Failure::Aborted);
    }
    let mut run = CatchUnwind(handler);
    // Fast path: a handler that finishes without waiting needs no timer.
    let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut run).poll(cx))).await;
    if let Poll::Ready(done) = first {
        return match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Failed(e)),
            Err(msg) => Err(Failure::Panicked(msg)),
        };
    }
    tokio::select! {
        biased;
        () = abort.cancelled() => Err(Failure::Aborted),
        run = tokio::time::timeout(budget, run) => match run {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(Failure::Failed(e)),
            Ok(Err(msg)) => Err(Failure::Panicked(msg)),
            Err(_) => Err(Failure::TimedOut { after: budget, lease_end }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text a blocked stream records for a failed attempt keeps the whole chain.
    #[test]
    fn a_failure_shows_the_handler_error_with_its_causes() {
        let store = crate::error::StoreError::backend("commit", "disk full");
        let failure = Failure::Failed(ReactionError::fatal(store));
        assert_eq!(
            failure.to_string(),
            "non-retryable: store operation `commit` failed: disk full"
        );
    }

    #[tokio::test]
    async fn a_panic_is_a_failure_with_its_message() {
        let abort = CancellationToken::new();
        let r = attempt(
            Box::pin(async { panic!("boom {}", 7) }),
            Duration::from_secs(1),
            false,
            &abort,
        )
        .await;
        assert!(matches!(r, Err(Failure::Panicked(m)) if m == "boom 7"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hang_is_stopped_at_the_deadline() {
        let abort = CancellationToken::new();
        let r = attempt(
            Box::pin(std::future::pending()),
            Duration::from_millis(50),
            true,
            &abort,
        )
        .await;
        let e = r.unwrap_err();
        assert!(matches!(
            e,
            Failure::TimedOut {
                lease_end: true,
                ..
            }
        ));
        assert!(e.to_string().contains("end of its lease"), "{e}");
    }

    #[tokio::test]
    async fn abort_stops_an_attempt() {
        let abort = CancellationToken::new();
        abort.cancel();
        let r = attempt(
            Box::pin(std::future::pending()),
            Duration::from_secs(60),
            false,
            &abort,
        )
        .await;
        assert!(matches!(r, Err(Failure::Aborted)));
    }
}
