//! A typed test harness (feature `testing`): `given` events → `when` an action → `then`
//! events or an error; `given` events → `drained` → `then` the commits on the targets.
//!
//! ```text
//! TestApp::new(builder)            in-memory store + cache, one virtual clock
//!   .given(stream, [events])       committed as history (reactions' targets marked)
//!   .when(action, target) ─► When<S>  .then([events of S]) / .then_error(..) / .state()
//!   .drained()            ─► Drained  .then::<S>(stream, [events of S]) / .blocked()
//!   .advance(duration)             backoff dues and lease expiries, without sleeping
//! ```
//!
//! Expecting an event of another state does not compile; a mismatch panics with each
//! expected and actual event side by side (name and JSON payload).
//!
//! ```
//! use act_runtime::prelude::*;
//! use act_runtime::testing::TestApp;
//!
//! #[state(name = "Counter", actions(Increment))]
//! #[derive(Debug, Clone, Default)]
//! pub struct Counter { pub count: i64 }
//!
//! #[emits(Counter)]
//! #[derive(Debug, Clone)]
//! pub enum CounterEvent { Incremented { by: i64 } }
//!
//! impl Patch<CounterEvent> for Counter {
//!     fn patch(&mut self, e: &CounterEvent) {
//!         match e { CounterEvent::Incremented { by } => self.count += by }
//!     }
//! }
//!
//! #[action(Counter, emit = CounterEvent::Incremented)]
//! #[given(small = "the counter is full")]
//! pub struct Increment { pub by: i64 }
//!
//! fn small(c: &Counter) -> bool { c.count < 10 }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let t = TestApp::new(act().with_state::<Counter>());
//! t.given("c-1", [CounterEvent::Incremented { by: 9 }]).await;
//! t.when(Increment { by: 1 }, "c-1").await.then([CounterEvent::Incremented { by: 1 }]);
//! t.when(Increment { by: 1 }, "c-1").await.then_error(|e| matches!(e, ActError::Invariant(_)));
//! # });
//! ```

mod then;

use std::time::Duration;

use crate::adapters::InMemoryStore;
use crate::app::{Act, ActBuilder, DrainSummary, SettleOptions};
use crate::model::{Actor, Committed, Event, EventMeta, Handle, Message, Target};
use crate::ports::{Clock, Query};

pub use then::{Drained, ExpectedEvent, When};

/// An app on a fresh in-memory store, with a virtual clock, driven step by step.
pub struct TestApp {
    app: Act,
    clock: Clock,
}

impl TestApp {
    /// Builds `builder` on a fresh in-memory store and cache sharing one [`Clock`].
    ///
    /// # Panics
    /// When the registry does not build (the [`crate::error::BuildError`] is the message).
    #[track_caller]
    pub fn new(builder: ActBuilder) -> Self {
        let clock = Clock::default();
        let app = builder
            .with_store(InMemoryStore::with_clock(clock.clone()))
            .with_clock(clock.clone())
            .build()
            .unwrap_or_else(|e| {
                panic!("the app does not build: {}", crate::error::Report::new(&e))
            });
        Self { app, clock }
    }

    /// The app under test.
    pub fn app(&self) -> &Act {
        &self.app
    }

    /// The actor `given` and `when` use for a bare stream name: `tester`.
    pub fn actor() -> Actor {
        Actor::new("tester", "tester")
    }

    /// Commits `events` on `stream` as its history, without running actions: the
    /// reducer folds them on the next load, and the reactions' fixed targets are marked as
    /// by a commit (dynamic ones are found by the drain's correlation scan).
    ///
    /// # Panics
    /// When the store refuses them (the error is the message).
    pub async fn given<E: Event>(
        &self,
        stream: &str,
        events: impl IntoIterator<Item = E>,
    ) -> &Self {
        let msgs: Vec<Message> = events
            .into_iter()
            .map(|e| {
                let data = e
                    .to_data()
                    .unwrap_or_else(|err| panic!("a given event does not serialize: {err}"));
                Message::new(e.name(), data)
            })
            .collect();
        if msgs.is_empty() {
            return self;
        }
        let mut meta = EventMeta::empty();
        meta.actor = Self::actor();
        meta.correlation = format!("given-{stream}");
        let marks = self.app.marks(stream, &msgs);
        self.app
            .store()
            .commit_marked(stream, &msgs, &meta, None, &marks)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the given events on `{stream}` are refused: {}",
                    crate::error::Report::new(&e)
                )
            });
        let _ = self.app.cache().invalidate(stream).await;
        if !marks.is_empty() {
            self.app.wake_pipeline();
        }
        self
    }

    /// Runs `action` on `target` (a [`Target`], or a stream name for the
    /// [`TestApp::actor`]) and keeps what came of it for [`When::then`].
    pub async fn when<A: Handle>(
        &self,
        action: A,
        target: impl Into<TestTarget>,
    ) -> When<A::State> {
        let target = target.into().0;
        When::new(self.app.execute(action, target).await)
    }

    /// Runs the reaction pipeline until nothing moves (correlate, drain, retries that are
    /// due) and returns what it committed, for [`Drained::then`].
    ///
    /// # Panics
    /// When the pipeline fails (a store error; a failing handler is not one: see
    /// [`Drained::blocked`] and [`Drained::retrying`]).
    pub async fn drained(&self) -> Drained {
        let head = self.head().await;
        let options = SettleOptions {
            debounce: Duration::ZERO,
            ..SettleOptions::default()
        };
        let summary: DrainSummary = self
            .app
            .settle_now(options)
            .await
            .unwrap_or_else(|e| panic!("the drain failed: {}", crate::error::Report::new(&e)));
        let mut committed: Vec<Committed> = Vec::new();
        let query = match head {
            Some(id) => Query::all().after(id),
            None => Query::all(),
        };
        self.app
            .query_with(&query, |e| committed.push(e.clone()))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "reading the drained commits failed: {}",
                    crate::error::Report::new(&e)
                )
            });
        Drained::new(committed, summary)
    }

    /// Moves the app's and the store's clock forward by `by`: retries whose backoff ends
    /// within it become due, leases within it expire — with no real waiting. (Timeouts
    /// and sleeps run on tokio's clock: with `#[tokio::test(start_paused = true)]` they pass
    /// in virtual time too.)
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    async fn head(&self) -> Option<i64> {
        let mut head = None;
        self.app
            .query_with(&Query::all().backward().limit(1), |e| head = Some(e.id))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "reading the log's head failed: {}",
                    crate::error::Report::new(&e)
                )
            });
        head
    }
}

/// A [`Target`], or a bare stream name acted on by [`TestApp::actor`].
pub struct TestTarget(Target);

impl From<Target> for TestTarget {
    fn from(t: Target) -> Self {
        Self(t)
    }
}

impl From<&str> for TestTarget {
    fn from(stream: &str) -> Self {
        Self(Target::new(stream, TestApp::actor()))
    }
}

impl From<String> for TestTarget {
    fn from(stream: String) -> Self {
        Self(Target::new(stream, TestApp::actor()))
    }
}
