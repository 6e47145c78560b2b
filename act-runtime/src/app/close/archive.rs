//! The archive callback: the events of each stream, before they are deleted.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Receives the events of each stream before they are deleted.
pub(super) trait Archiver: Sync {
    /// Whether there is anything to archive to (else events are not read at all).
    const ACTIVE: bool;
    fn archive(
        &self,
        stream: String,
        events: Vec<Committed>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

pub(super) struct NoArchive;

impl Archiver for NoArchive {
    const ACTIVE: bool = false;
    async fn archive(&self, _: String, _: Vec<Committed>) -> Result<(), BoxError> {
        Ok(())
    }
}

pub(super) struct ArchiveFn<F>(pub(super) F);

impl<F, Fut> Archiver for ArchiveFn<F>
where
    F: Fn(String, Vec<Committed>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    const ACTIVE: bool = true;
    fn archive(
        &self,
        stream: String,
        events: Vec<Committed>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        (self.0)(stream, events)
    }
}
