//! The cache port: the latest folded state per stream, so a load does not replay the stream.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::CacheError;
use crate::model::{EventId, State, Version};

type ToJson = fn(&(dyn Any + Send + Sync)) -> Result<String, serde_json::Error>;

/// A cached state: typed in-process, or JSON text when it came from (or goes to) an
/// out-of-process cache. In-process caches keep the typed value and never serialize it.
#[derive(Clone)]
pub struct CachedState(Repr);

#[derive(Clone)]
enum Repr {
    Typed {
        value: Arc<dyn Any + Send + Sync>,
        to_json: ToJson,
    },
    Json(Arc<str>),
}

impl std::fmt::Debug for CachedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Repr::Typed { .. } => f.write_str("CachedState(<typed>)"),
            Repr::Json(s) => write!(f, "CachedState({s})"),
        }
    }
}

impl CachedState {
    /// Wraps a typed state.
    pub fn typed<S: State>(state: S) -> Self {
        fn to_json<S: State>(v: &(dyn Any + Send + Sync)) -> Result<String, serde_json::Error> {
            match v.downcast_ref::<S>() {
                Some(s) => serde_json::to_string(s),
                None => Err(serde::ser::Error::custom("cached state of another type")),
            }
        }
        Self(Repr::Typed {
            value: Arc::new(state),
            to_json: to_json::<S>,
        })
    }

    /// Wraps a state's JSON text.
    pub fn json(text: impl Into<Arc<str>>) -> Self {
        Self(Repr::Json(text.into()))
    }

    /// The state as JSON text (serializes a typed state).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        match &self.0 {
            Repr::Typed { value, to_json } => to_json(value.as_ref()),
            Repr::Json(s) => Ok(s.to_string()),
        }
    }

    /// The state as `S`: a clone of a typed value, or parsed from JSON.
    pub fn to_state<S: State>(&self) -> Result<S, serde_json::Error> {
        match &self.0 {
            Repr::Typed { value, .. } => match value.downcast_ref::<S>() {
                Some(s) => Ok(s.clone()),
                None => serde_json::from_str(&self.to_json()?),
            },
            Repr::Json(s) => serde_json::from_str(s),
        }
    }
}

/// One cache entry: a state checkpoint equal to the fold of its stream up to `event_id`.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// The folded state.
    pub state: CachedState,
    /// The stream version it was folded to.
    pub version: Version,
    /// The id of the last event folded.
    pub event_id: EventId,
    /// Events folded since the last snapshot.
    pub patches: u32,
    /// Snapshots folded.
    pub snaps: u32,
}

/// The cache. `get` may miss at any time and `set` is best effort, but `invalidate` must be
/// reliable: after it returns, `get` misses until the next `set`.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// The entry of `stream`, if cached.
    async fn get(&self, stream: &str) -> Result<Option<CacheEntry>, CacheError>;
    /// Stores the entry of `stream`, replacing any previous one.
    async fn set(&self, stream: &str, entry: CacheEntry) -> Result<(), CacheError>;
    /// Removes the entry of `stream`.
    async fn invalidate(&self, stream: &str) -> Result<(), CacheError>;
    /// Removes every entry.
    async fn clear(&self) -> Result<(), CacheError>;
    /// Releases resources. Idempotent.
    async fn dispose(&self) -> Result<(), CacheError>;
}
