//! Lifecycle notifications: listeners observe the app; a failing listener never fails it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;

use super::Act;
use super::close::CloseReport;
use super::pipeline::{Blocked, DrainSummary, Retrying};
use crate::model::Committed;
use crate::ports::Lease;

/// What a listener is told.
#[derive(Debug)]
#[non_exhaustive]
pub enum Lifecycle<'a> {
    /// Events were committed (one batch, one stream).
    Committed(&'a [Committed]),
    /// A drain acknowledged progress on these streams.
    Acked(&'a [Lease]),
    /// A drain blocked these streams.
    Blocked(&'a [Blocked]),
    /// A reaction failed on these streams; they are retried when due.
    Retrying(&'a [Retrying]),
    /// A settle finished, or the worker caught up; the summary of what it did since.
    Settled(&'a DrainSummary),
    /// A close finished ([`Act::close`]): the streams it closed and those it skipped, with
    /// the reason.
    Closed(&'a CloseReport),
}

/// Identifies a listener, to remove it with [`Act::off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

type Listener = Arc<dyn Fn(&Lifecycle<'_>) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Listeners {
    any: AtomicBool,
    next: AtomicU64,
    list: RwLock<Vec<(ListenerId, Listener)>>,
}

impl Listeners {
    pub(crate) fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    pub(crate) fn emit(&self, event: &Lifecycle<'_>) {
        if self.is_empty() {
            return;
        }
        let list: Vec<Listener> = self.list.read().iter().map(|(_, l)| l.clone()).collect();
        for listener in list {
            if catch_unwind(AssertUnwindSafe(|| listener(event))).is_err() {
                tracing::error!(?event, "a lifecycle listener panicked; ignored");
            }
        }
    }
}

impl Act {
    /// Adds a listener; it runs after each lifecycle event, in the task that caused it.
    /// A listener that panics is logged and skipped: it never fails the operation.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
    /// use act_runtime::prelude::*;
    ///
    /// let app = act().build().unwrap();
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let s = seen.clone();
    /// let id = app.on(move |e| if let Lifecycle::Committed(events) = e {
    ///     s.fetch_add(events.len(), Ordering::SeqCst);
    /// });
    /// assert!(app.off(id));
    /// ```
    pub fn on(&self, listener: impl Fn(&Lifecycle<'_>) + Send + Sync + 'static) -> ListenerId {
        let l = &self.inner.listeners;
        let id = ListenerId(l.next.fetch_add(1, Ordering::Relaxed));
        let mut list = l.list.write();
        list.push((id, Arc::new(listener)));
        l.any.store(true, Ordering::Release);
        id
    }

    /// Removes a listener; `false` if it was not there.
    pub fn off(&self, id: ListenerId) -> bool {
        let l = &self.inner.listeners;
        let mut list = l.list.write();
        let before = list.len();
        list.retain(|(i, _)| *i != id);
        l.any.store(!list.is_empty(), Ordering::Release);
        list.len() != before
    }

    pub(crate) fn emit(&self, event: &Lifecycle<'_>) {
        self.inner.listeners.emit(event);
    }
}
