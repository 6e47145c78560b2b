//! What to close: a stream to retire, or to restart as a state.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A stream to close with [`Act::close`]: either for good (its events are replaced by a
/// tombstone) or restarted (replaced by a snapshot of its final state, at version 0).
///
/// ```
/// use act_runtime::app::CloseTarget;
/// # use act_runtime::prelude::*;
/// # #[state(name = "Counter")]
/// # #[derive(Debug, Clone, Default)]
/// # pub struct Counter { pub count: i64 }
/// # #[emits(Counter)]
/// # pub enum CounterEvent { Incremented { by: i64 } }
/// # impl Patch<CounterEvent> for Counter {
/// #     fn patch(&mut self, e: &CounterEvent) {
/// #         match e { CounterEvent::Incremented { by } => self.count += by }
/// #     }
/// # }
///
/// let retire = CloseTarget::new("counter-1");
/// assert_eq!(retire.restarts(), None);
/// let restart = CloseTarget::restart::<Counter>("counter-2");
/// assert_eq!(restart.restarts(), Some("Counter"));
/// let from_str: CloseTarget = "counter-3".into();
/// assert_eq!(from_str.stream(), "counter-3");
/// ```
#[derive(Debug, Clone)]
pub struct CloseTarget {
    pub(super) stream: String,
    pub(super) restart: Option<RestartAs>,
}

impl CloseTarget {
    /// Closes `stream` for good: its events are replaced by a `__tombstone__` at version 0,
    /// and every later write to it fails with
    /// [`StreamClosedError`](crate::error::StreamClosedError).
    pub fn new(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            restart: None,
        }
    }

    /// Closes `stream` and restarts it as state `S`: its events are replaced by a
    /// `__snapshot__` of its final state at version 0, so [`Act::load`] gives the same state
    /// as before and new actions continue at version 1.
    ///
    /// `S` must be registered with the app, and must own the stream's events: a stream
    /// whose last event is not one of `S`'s is skipped with [`SkipReason::NotOwned`] before
    /// anything is written (a restart as the wrong state would silently drop its history).
    pub fn restart<S: Emits>(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            restart: Some(RestartAs::of::<S>()),
        }
    }

    /// The stream.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The name of the state the stream restarts as; `None` when it closes for good.
    pub fn restarts(&self) -> Option<&'static str> {
        self.restart.map(|r| r.state)
    }
}

impl From<&str> for CloseTarget {
    fn from(stream: &str) -> Self {
        Self::new(stream)
    }
}

impl From<String> for CloseTarget {
    fn from(stream: String) -> Self {
        Self::new(stream)
    }
}

/// The final state of a stream to restart, ready to seed it.
pub(super) struct Final {
    /// The snapshot event's data.
    pub(super) data: Data,
    /// The state, for the cache.
    pub(super) state: CachedState,
}

type FoldFinal =
    for<'a> fn(&'a Act, &'a str) -> BoxFuture<'a, Result<Result<Final, String>, ActError>>;

/// The state a restart target restarts as, type-erased.
#[derive(Clone, Copy)]
pub(super) struct RestartAs {
    pub(super) state: &'static str,
    pub(super) registered: fn(&Act) -> bool,
    pub(super) owns: fn(&str) -> bool,
    pub(super) fold: FoldFinal,
}

impl std::fmt::Debug for RestartAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RestartAs").field(&self.state).finish()
    }
}

impl RestartAs {
    pub(super) fn of<S: Emits>() -> Self {
        fn registered<S: Emits>(app: &Act) -> bool {
            app.inner.registry.has_state::<S>()
        }
        fn owns<S: Emits>(name: &str) -> bool {
            <S::Event as Event>::NAMES.contains(&name)
        }
        fn fold<'a, S: Emits>(
            app: &'a Act,
            stream: &'a str,
        ) -> BoxFuture<'a, Result<Result<Final, String>, ActError>> {
            Box::pin(async move {
                let loaded = app
                    .load_inner::<S>(stream, &Default::default())
                    .await?
                    .snapshot;
                let data = match snapshots::encode(&loaded.state) {
                    Ok(d) => d,
                    Err(e) => return Ok(Err(format!("the state does not serialize: {e}"))),
                };
                if let Some(path) = crate::app::json::too_deep(data.get(), MAX_EVENT_DEPTH) {
                    return Ok(Err(format!(
                        "the state nests deeper than {MAX_EVENT_DEPTH} levels at {path}"
                    )));
                }
                Ok(Ok(Final {
                    data,
                    state: CachedState::typed(loaded.state),
                }))
            })
        }
        Self {
            state: S::NAME,
            registered: registered::<S>,
            owns: owns::<S>,
            fold: fold::<S>,
        }
    }
}
