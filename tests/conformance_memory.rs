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
async fn the_kits_have_at_least_120_checks() {
    let store = conformance::store::checks().len();
    let cache = conformance::cache::checks().len();
    assert!(store + cache >= 120, "store {store} + cache {cache}");
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
