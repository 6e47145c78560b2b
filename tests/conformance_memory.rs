//! The conformance kit against the in-memory adapters, plus the in-memory cache's own LRU
//! behaviour (adapter-specific, so not part of the kit).

use act_runtime::adapters::{InMemoryCache, InMemoryStore};
use act_runtime::conformance;
use act_runtime::ports::{Cache, CacheEntry, CachedState};

#[tokio::test]
async fn in_memory_store_passes_the_store_kit() {
    let report = conformance::store::run(|| async { InMemoryStore::new() }).await;
    println!("{report}{:?}", report.groups());
    assert!(report.total() >= 100, "{}", report.total());
}

#[tokio::test]
async fn in_memory_cache_passes_the_cache_kit() {
    let report = conformance::cache::run(|| async { InMemoryCache::new() }).await;
    println!("{report}");
}

#[tokio::test]
async fn a_tiny_in_memory_cache_passes_the_cache_kit() {
    // No check sets more than 8 keys, so a small LRU passes too.
    conformance::cache::run(|| async { InMemoryCache::with_capacity(8) }).await;
}

#[tokio::test]
async fn the_kits_have_as_many_checks_as_the_readme_says() {
    let store = conformance::store::checks().len();
    let cache = conformance::cache::checks().len();
    // README and docs/architecture/extension-points.md give these counts.
    assert_eq!((store, cache), (193, 19), "store and cache checks");
}

#[tokio::test]
async fn differential_in_memory_against_itself() {
    for seed in 0..4 {
        conformance::differential::run(|| async { InMemoryStore::new() }, seed, 400).await;
    }
}

fn entry(version: i64) -> CacheEntry {
    CacheEntry {
        state: CachedState::json("{}"),
        version,
        event_id: version,
        patches: 0,
        snaps: 0,
    }
}

#[tokio::test]
async fn in_memory_cache_evicts_the_least_recently_used() {
    let cache = InMemoryCache::with_capacity(2);
    cache.set("a", entry(1)).await.unwrap();
    cache.set("b", entry(2)).await.unwrap();
    // Touch `a`, so `b` is the least recently used.
    assert!(cache.get("a").await.unwrap().is_some());
    cache.set("c", entry(3)).await.unwrap();
    assert!(cache.get("b").await.unwrap().is_none(), "b was evicted");
    assert!(cache.get("a").await.unwrap().is_some());
    assert!(cache.get("c").await.unwrap().is_some());
    assert_eq!(cache.len(), 2);
    // Overwriting an entry refreshes it without evicting another.
    cache.set("a", entry(4)).await.unwrap();
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.get("a").await.unwrap().unwrap().version, 4);
}

#[tokio::test]
async fn in_memory_cache_defaults_to_1000_entries() {
    let cache = InMemoryCache::new();
    assert_eq!(cache.capacity(), InMemoryCache::DEFAULT_CAPACITY);
    for i in 0..1001 {
        cache.set(&format!("s{i}"), entry(i)).await.unwrap();
    }
    assert_eq!(cache.len(), 1000);
    assert!(
        cache.get("s0").await.unwrap().is_none(),
        "the oldest was evicted"
    );
    assert!(cache.get("s1000").await.unwrap().is_some());
}

/// An adapter written outside the crate, as `docs/architecture/extension-points.md` starts
/// one: every method delegates to an `InMemoryStore`, so it passes the kit on day one, and
/// each method is then replaced by the backend's own, re-running the kit after each.
mod delegating {
    use std::collections::HashMap;
    use std::time::Duration;

    use act_runtime::adapters::InMemoryStore;
    use act_runtime::error::StoreError;
    use act_runtime::model::{Committed, EventId, EventMeta, Message, Version};
    use act_runtime::ports::{
        Lease, Query, Store, StreamFilter, StreamPosition, Subscribed, Subscription,
        TruncateTarget, Truncated,
    };

    pub struct MyStore {
        inner: InMemoryStore,
    }

    impl MyStore {
        pub fn new() -> Self {
            Self {
                inner: InMemoryStore::new(),
            }
        }
    }

    #[act_runtime::async_trait]
    impl Store for MyStore {
        async fn seed(&self) -> Result<(), StoreError> {
            self.inner.seed().await
        }
        async fn drop_all(&self) -> Result<(), StoreError> {
            self.inner.drop_all().await
        }
        async fn commit(
            &self,
            stream: &str,
            msgs: &[Message],
            meta: &EventMeta,
            expected_version: Option<Version>,
        ) -> Result<Vec<Committed>, StoreError> {
            self.inner
                .commit(stream, msgs, meta, expected_version)
                .await
        }
        async fn query(
            &self,
            query: &Query,
            sink: &mut (dyn for<'e> FnMut(&'e Committed) + Send),
        ) -> Result<usize, StoreError> {
            self.inner.query(query, sink).await
        }
        async fn subscribe(
            &self,
            subs: &[Subscription],
            checkpoint: Option<EventId>,
        ) -> Result<Subscribed, StoreError> {
            self.inner.subscribe(subs, checkpoint).await
        }
        async fn claim(
            &self,
            lagging: usize,
            leading: usize,
            by: &str,
            lease: Duration,
        ) -> Result<Vec<Lease>, StoreError> {
            self.inner.claim(lagging, leading, by, lease).await
        }
        async fn ack(&self, leases: &[Lease]) -> Result<Vec<Lease>, StoreError> {
            self.inner.ack(leases).await
        }
        async fn block(
            &self,
            leases: &[(Lease, String)],
        ) -> Result<Vec<StreamPosition>, StoreError> {
            self.inner.block(leases).await
        }
        async fn reset(&self, streams: &[String]) -> Result<usize, StoreError> {
            self.inner.reset(streams).await
        }
        async fn unblock(&self, streams: &[String]) -> Result<usize, StoreError> {
            self.inner.unblock(streams).await
        }
        async fn query_streams(
            &self,
            filter: &StreamFilter,
        ) -> Result<Vec<StreamPosition>, StoreError> {
            self.inner.query_streams(filter).await
        }
        async fn truncate(
            &self,
            targets: &[TruncateTarget],
        ) -> Result<HashMap<String, Truncated>, StoreError> {
            self.inner.truncate(targets).await
        }
        async fn dispose(&self) -> Result<(), StoreError> {
            self.inner.dispose().await
        }
    }
}

/// A cache written outside the crate: a map behind a mutex, holding typed states.
mod map_cache {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use act_runtime::error::CacheError;
    use act_runtime::ports::{Cache, CacheEntry};

    #[derive(Default)]
    pub struct MapCache {
        entries: Mutex<HashMap<String, CacheEntry>>,
    }

    impl MapCache {
        fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, CacheEntry>> {
            // a panic while holding the lock leaves a map that is still whole
            self.entries.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    #[act_runtime::async_trait]
    impl Cache for MapCache {
        async fn get(&self, stream: &str) -> Result<Option<CacheEntry>, CacheError> {
            Ok(self.map().get(stream).cloned())
        }
        async fn set(&self, stream: &str, entry: CacheEntry) -> Result<(), CacheError> {
            self.map().insert(stream.to_owned(), entry);
            Ok(())
        }
        async fn invalidate(&self, stream: &str) -> Result<(), CacheError> {
            self.map().remove(stream);
            Ok(())
        }
        async fn clear(&self) -> Result<(), CacheError> {
            self.map().clear();
            Ok(())
        }
        async fn dispose(&self) -> Result<(), CacheError> {
            Ok(())
        }
    }
}

#[tokio::test]
async fn an_adapter_written_outside_the_crate_is_certified_by_the_kits() {
    use delegating::MyStore;
    use map_cache::MapCache;
    let store = conformance::store::run(|| async { MyStore::new() }).await;
    assert_eq!(store.total(), conformance::store::checks().len());
    for seed in 0..2 {
        conformance::differential::run(|| async { MyStore::new() }, seed, 300).await;
    }
    let cache = conformance::cache::run(|| async { MapCache::default() }).await;
    assert_eq!(cache.total(), conformance::cache::checks().len());
    // and an app runs on them
    let app = act_runtime::prelude::act()
        .with_store(MyStore::new())
        .with_cache(MapCache::default())
        .with_state::<act_tests::counter::Counter>()
        .build()
        .unwrap();
    let add = act_tests::counter::Increment { by: 2 };
    let target = act_runtime::prelude::Target::new("c-1", act_tests::actor());
    app.execute(add, target).await.unwrap();
    let loaded = app
        .load::<act_tests::counter::Counter>("c-1")
        .await
        .unwrap();
    assert_eq!(loaded.state.count, 2);
}
