//! An LRU cache in process memory.

use std::num::NonZeroUsize;

use async_trait::async_trait;
use lru::LruCache;
use parking_lot::Mutex;

use crate::error::CacheError;
use crate::ports::{Cache, CacheEntry};

/// The default cache: an LRU of typed states in process memory (1000 entries by default).
///
/// ```
/// use act_runtime::adapters::InMemoryCache;
///
/// let cache = InMemoryCache::with_capacity(10);
/// assert_eq!(cache.capacity(), 10);
/// ```
pub struct InMemoryCache {
    entries: Mutex<LruCache<String, CacheEntry>>,
}

impl InMemoryCache {
    /// The default capacity.
    pub const DEFAULT_CAPACITY: usize = 1000;

    /// A cache holding at most 1000 streams.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A cache holding at most `capacity` streams (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::new(cap)),
        }
    }

    /// The maximum number of streams kept.
    pub fn capacity(&self) -> usize {
        self.entries.lock().cap().get()
    }

    /// How many streams are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for InMemoryCache {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Cache for InMemoryCache {
    async fn get(&self, stream: &str) -> Result<Option<CacheEntry>, CacheError> {
        Ok(self.entries.lock().get(stream).cloned())
    }

    async fn set(&self, stream: &str, entry: CacheEntry) -> Result<(), CacheError> {
        let mut entries = self.entries.lock();
        if let Some(slot) = entries.get_mut(stream) {
            *slot = entry;
        } else {
            entries.put(stream.to_owned(), entry);
        }
        Ok(())
    }

    async fn invalidate(&self, stream: &str) -> Result<(), CacheError> {
        self.entries.lock().pop(stream);
        Ok(())
    }

    async fn clear(&self) -> Result<(), CacheError> {
        self.entries.lock().clear();
        Ok(())
    }

    async fn dispose(&self) -> Result<(), CacheError> {
        self.clear().await
    }
}
