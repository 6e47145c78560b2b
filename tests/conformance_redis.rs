//! The cache conformance kit against `RedisCache`, plus its own behaviour: the
//! compare-and-set on event ids, the key layout and TTL, tenant isolation, corrupt entries,
//! and apps that keep working when Redis is down or silent.
//!
//! Needs Redis at `redis://127.0.0.1:6379` (or `ACT_REDIS_URL`): without it these tests
//! fail, never skip. Every test works under its own random key prefixes and removes them
//! when it ends (even when it fails).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use act_runtime::adapters::RedisCache;
use act_runtime::conformance;
use act_runtime::ports::{Cache, CacheEntry, CachedState};
use act_runtime::prelude::*;
use act_tests::actor;
use act_tests::counter::{Counter, Increment};
use cleanup::Prefixes;

fn url() -> String {
    std::env::var("ACT_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Live-Redis tests check behaviour, not latency: generous timeouts keep them steady on a
/// loaded machine. The outage tests use the defaults.
const LIVE: Duration = Duration::from_secs(5);

/// A prefix no other test (or run) uses.
fn fresh_prefix(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "act-test:{tag}:{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A raw connection, for looking under the adapter. Panics when Redis is not running.
async fn raw() -> redis::aio::MultiplexedConnection {
    let url = url();
    let client = redis::Client::open(url.as_str()).expect("ACT_REDIS_URL");
    let mut conn = tokio::time::timeout(
        Duration::from_secs(10),
        client.get_multiplexed_async_connection(),
    )
    .await
    .unwrap_or_else(|_| panic!("Redis at {url} did not answer"))
    .unwrap_or_else(|e| panic!("Redis must run at {url} (or set ACT_REDIS_URL): {e}"));
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    conn
}

/// Every entry key of `prefix` (`<prefix>:{<stream>}`), sorted.
async fn keys_under(prefix: &str) -> Vec<String> {
    let mut conn = raw().await;
    let mut keys = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:{{*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            keys.sort();
            return keys;
        }
    }
}

mod cleanup {
    //! The prefixes a test made, cleared when it ends.

    use std::sync::Mutex;

    use act_runtime::adapters::RedisCache;
    use act_runtime::ports::Cache;

    /// Hands out caches under fresh prefixes, and clears them all on drop (also when the
    /// test panics).
    #[derive(Default)]
    pub struct Prefixes(Mutex<Vec<String>>);

    impl Prefixes {
        /// A fresh prefix, cleared on drop.
        pub fn prefix(&self, tag: &str) -> String {
            let p = super::fresh_prefix(tag);
            self.adopt(&p);
            p
        }

        /// Clears `prefix` on drop too.
        pub fn adopt(&self, prefix: &str) {
            self.0.lock().unwrap().push(prefix.to_owned());
        }

        /// A live cache under a fresh prefix.
        pub fn cache(&self, tag: &str) -> RedisCache {
            super::live(&self.prefix(tag))
        }

        /// Clears every prefix, and checks that no key is left.
        pub async fn clean(&self) {
            let prefixes = std::mem::take(&mut *self.0.lock().unwrap());
            for p in prefixes {
                super::live(&p).clear().await.expect("clear");
                let left = super::keys_under(&p).await;
                assert!(left.is_empty(), "left under {p}: {left:?}");
            }
        }
    }

    impl Drop for Prefixes {
        fn drop(&mut self) {
            let left = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
            if left.is_empty() {
                return;
            }
            let this = Prefixes(Mutex::new(left));
            // Inside a (possibly panicking) test's runtime: clean on a runtime of our own.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(this.clean());
            })
            .join();
        }
    }
}

/// A cache on the live Redis under `prefix`.
fn live(prefix: &str) -> RedisCache {
    RedisCache::new(&url(), prefix)
        .unwrap()
        .with_timeout(LIVE)
        .with_invalidate_timeout(LIVE)
}

fn entry(event_id: i64, count: i64) -> CacheEntry {
    CacheEntry {
        state: CachedState::json(format!(r#"{{"count":{count}}}"#)),
        version: count,
        event_id,
        patches: 1,
        snaps: 0,
    }
}

async fn count_of(cache: &dyn Cache, stream: &str) -> Option<(i64, i64)> {
    let e = cache.get(stream).await.unwrap()?;
    let state: serde_json::Value = serde_json::from_str(&e.state.to_json().unwrap()).unwrap();
    Some((e.event_id, state["count"].as_i64().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_passes_the_cache_kit() {
    raw().await;
    let prefixes = Prefixes::default();
    // A fresh prefix per check: each starts from an empty cache.
    let report = conformance::cache::report(|| {
        let cache = prefixes.cache("kit");
        async move { cache }
    })
    .await;
    prefixes.clean().await;
    println!("{report}");
    report.assert_passed();
}

#[tokio::test]
async fn the_newer_state_wins_when_an_older_one_is_set_after_it() {
    raw().await;
    let prefixes = Prefixes::default();
    let prefix = prefixes.prefix("cas");
    // Two processes of a fleet, sharing the tenant's entries.
    let (fast, slow) = (live(&prefix), live(&prefix));

    fast.set("s", entry(10, 10)).await.unwrap();
    slow.set("s", entry(7, 7)).await.unwrap();
    assert_eq!(
        count_of(&fast, "s").await,
        Some((10, 10)),
        "older set kept out"
    );
    assert_eq!(count_of(&slow, "s").await, Some((10, 10)));

    slow.set("s", entry(10, 99)).await.unwrap();
    assert_eq!(
        count_of(&slow, "s").await,
        Some((10, 10)),
        "same id kept out"
    );

    slow.set("s", entry(12, 12)).await.unwrap();
    assert_eq!(
        count_of(&fast, "s").await,
        Some((12, 12)),
        "newer set lands"
    );

    // Versions may restart (a truncated stream); ids never do, and the id decides.
    slow.set("s", entry(13, 0)).await.unwrap();
    assert_eq!(count_of(&fast, "s").await, Some((13, 0)));

    // Other streams are independent.
    fast.set("t", entry(1, 1)).await.unwrap();
    assert_eq!(count_of(&slow, "t").await, Some((1, 1)));

    // After invalidate (or clear), any entry lands again: every entry is self-consistent.
    fast.invalidate("s").await.unwrap();
    assert_eq!(count_of(&slow, "s").await, None);
    slow.set("s", entry(7, 7)).await.unwrap();
    assert_eq!(count_of(&fast, "s").await, Some((7, 7)));
    fast.clear().await.unwrap();
    slow.set("s", entry(3, 3)).await.unwrap();
    assert_eq!(count_of(&fast, "s").await, Some((3, 3)));

    // Concurrent sets of one stream: the highest id wins, whatever the order.
    let fast = Arc::new(fast);
    fast.invalidate("c").await.unwrap();
    let mut tasks = Vec::new();
    for id in [5_i64, 40, 12, 33, 1, 39, 20] {
        let c = fast.clone();
        tasks.push(tokio::spawn(async move { c.set("c", entry(id, id)).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(count_of(&slow, "c").await, Some((40, 40)));
    prefixes.clean().await;
}

async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test]
async fn entries_are_hashes_under_the_prefix_with_a_ttl() {
    let mut conn = raw().await;
    let prefixes = Prefixes::default();
    let cache = prefixes.cache("layout");
    let prefix = cache.prefix().to_owned();
    cache.set("cart-1", entry(41, 4)).await.unwrap();
    let key = format!("{prefix}:{{cart-1}}");
    assert_eq!(cache.key("cart-1"), key);
    assert_eq!(keys_under(&prefix).await, vec![key.clone()]);

    let (e, v): (String, String) = redis::cmd("HMGET")
        .arg(&key)
        .arg("e")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(e, "41");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&v).unwrap(),
        serde_json::json!({"state": {"count": 4}, "version": 4, "patches": 1, "snaps": 0})
    );

    let ttl = pttl(&mut conn, &key).await;
    assert!(
        ttl > 3_590_000 && ttl <= 3_600_000,
        "default TTL 1 h: {ttl}"
    );

    let short = live(&prefix).with_ttl(Some(Duration::from_secs(60)));
    short.set("cart-1", entry(42, 5)).await.unwrap();
    let ttl = pttl(&mut conn, &key).await;
    assert!(ttl > 50_000 && ttl <= 60_000, "TTL 60 s: {ttl}");

    let forever = live(&prefix).with_ttl(None);
    forever.set("cart-1", entry(43, 6)).await.unwrap();
    assert_eq!(pttl(&mut conn, &key).await, -1, "no TTL");

    // A refused (older) set leaves the entry and its TTL alone.
    short.set("cart-1", entry(1, 1)).await.unwrap();
    assert_eq!(pttl(&mut conn, &key).await, -1);
    assert_eq!(count_of(&cache, "cart-1").await, Some((43, 6)));
    prefixes.clean().await;
}

#[tokio::test]
async fn clear_and_invalidate_touch_only_their_own_tenant() {
    let mut conn = raw().await;
    let prefixes = Prefixes::default();
    let base = prefixes.prefix("tenants");
    let others = [
        format!("{base}:b"),
        format!("{base}-b"),
        format!("{base}:"),
        format!("{base}.x"),
    ];
    for p in &others {
        prefixes.adopt(p);
    }
    let mine = live(&base);
    let theirs: Vec<RedisCache> = others.iter().map(|p| live(p)).collect();
    mine.set("s", entry(1, 1)).await.unwrap();
    mine.set("b:{s}", entry(1, 1)).await.unwrap();
    for c in &theirs {
        c.set("s", entry(2, 2)).await.unwrap();
        c.set("{s}", entry(2, 2)).await.unwrap();
    }
    // A key of another application that merely starts with the prefix.
    let foreign = format!("{base}:foreign");
    redis::cmd("SET")
        .arg(&foreign)
        .arg("x")
        .arg("EX")
        .arg(600)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();

    mine.invalidate("s").await.unwrap();
    mine.clear().await.unwrap();
    assert_eq!(count_of(&mine, "s").await, None);
    assert_eq!(count_of(&mine, "b:{s}").await, None);
    for c in &theirs {
        assert_eq!(count_of(c, "s").await, Some((2, 2)), "{}", c.prefix());
        assert_eq!(count_of(c, "{s}").await, Some((2, 2)), "{}", c.prefix());
    }
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&foreign)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 1, "clear removed a key it does not own");
    redis::cmd("DEL")
        .arg(&foreign)
        .query_async::<i64>(&mut conn)
        .await
        .unwrap();
    prefixes.clean().await;
}

#[tokio::test]
async fn clear_removes_many_entries_in_batches() {
    raw().await;
    let prefixes = Prefixes::default();
    let cache = prefixes.cache("many");
    for i in 0..2500 {
        cache.set(&format!("s{i}"), entry(i, i)).await.unwrap();
    }
    assert_eq!(keys_under(cache.prefix()).await.len(), 2500);
    cache.clear().await.unwrap();
    assert!(keys_under(cache.prefix()).await.is_empty());
    prefixes.clean().await;
}

#[tokio::test]
async fn a_corrupt_entry_is_a_miss_and_is_replaced_by_the_next_set() {
    let mut conn = raw().await;
    let prefixes = Prefixes::default();
    let cache = prefixes.cache("corrupt");
    let key = cache.key("s");
    for (e, v) in [
        ("x", r#"{"state":{},"version":1,"patches":0,"snaps":0}"#),
        ("5", "not json"),
        ("5", r#"{"state":{}}"#),
    ] {
        redis::cmd("HSET")
            .arg(&key)
            .arg("e")
            .arg(e)
            .arg("v")
            .arg(v)
            .query_async::<i64>(&mut conn)
            .await
            .unwrap();
        assert!(cache.get("s").await.unwrap().is_none(), "{e} {v}");
    }
    // Only `e` present: a miss.
    redis::cmd("HDEL")
        .arg(&key)
        .arg("v")
        .query_async::<i64>(&mut conn)
        .await
        .unwrap();
    assert!(cache.get("s").await.unwrap().is_none());
    // A non-numeric id does not block the next set.
    redis::cmd("HSET")
        .arg(&key)
        .arg("e")
        .arg("x")
        .query_async::<i64>(&mut conn)
        .await
        .unwrap();
    cache.set("s", entry(6, 6)).await.unwrap();
    assert_eq!(count_of(&cache, "s").await, Some((6, 6)));
    prefixes.clean().await;
}

#[test]
fn invalid_prefixes_and_urls_are_refused() {
    for prefix in [
        "", "act:*", "act:?", "act:[a]", "act:{t}", "act:t}", "act t", "act\\t", "act:ü",
    ] {
        let err = RedisCache::new("redis://127.0.0.1:6379", prefix).unwrap_err();
        assert_eq!(err.operation, "new", "{prefix:?}");
    }
    assert!(RedisCache::new("redis://127.0.0.1:6379", &"a".repeat(129)).is_err());
    assert!(RedisCache::new("redis://127.0.0.1:6379", &"a".repeat(128)).is_ok());
    assert!(RedisCache::new("http://127.0.0.1:6379", "act").is_err());
    assert!(RedisCache::new("not a url", "act").is_err());
    // Building connects to nothing, so it succeeds outside a runtime and while Redis is down.
    let cache = RedisCache::new("redis://127.0.0.1:1", "act:tenant-1.a_b").unwrap();
    assert_eq!(cache.timeout(), RedisCache::DEFAULT_TIMEOUT);
    assert_eq!(
        cache.invalidate_timeout(),
        RedisCache::DEFAULT_INVALIDATE_TIMEOUT
    );
    // The URL's password never shows.
    let secret = RedisCache::new("redis://:hunter2@127.0.0.1:6379", "act").unwrap();
    assert!(!format!("{secret:?}").contains("hunter2"), "{secret:?}");
}

fn counter_app(cache: RedisCache) -> Act {
    act()
        .with_state::<Counter>()
        .with_cache(cache)
        .build()
        .unwrap()
}

/// Executes `n` increments of `stream` and loads it: every result is right, from the store.
async fn run_counter(app: &Act, stream: &str, n: i64) {
    for i in 1..=n {
        let out = app
            .execute(Increment { by: 1 }, Target::new(stream, actor()))
            .await
            .unwrap();
        assert_eq!(out.snapshot.state.count, i);
    }
    let loaded = app.load::<Counter>(stream).await.unwrap();
    assert_eq!(loaded.state.count, n);
    assert_eq!(loaded.version, n - 1);
    assert!(!loaded.cache_hit, "no cache to hit");
}

#[tokio::test]
async fn an_app_on_a_dead_redis_still_executes_and_loads() {
    // Nothing listens on port 1: every cache call fails, and the app does not notice.
    let cache = RedisCache::new("redis://127.0.0.1:1", &fresh_prefix("dead")).unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), async {
        assert!(cache.get("s").await.is_err(), "a get failure is an error");
        assert!(cache.set("s", entry(1, 1)).await.is_err());
        // Invalidate is never silently `Ok` when nothing was removed for sure.
        assert!(cache.invalidate("s").await.is_err());
        assert!(cache.clear().await.is_err());
        cache.dispose().await.unwrap();
        cache.dispose().await.unwrap();

        let app =
            counter_app(RedisCache::new("redis://127.0.0.1:1", &fresh_prefix("dead")).unwrap());
        run_counter(&app, "c-1", 5).await;
        run_counter(&app, "c-2", 3).await;
        app.shutdown().await.unwrap();
    })
    .await
    .expect("an app on a dead Redis stalled");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test]
async fn a_silent_redis_bounds_every_call() {
    // A server that accepts connections and never answers: worse than a dead one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("redis://{addr}");
    let cache = RedisCache::new(&url, &fresh_prefix("silent"))
        .unwrap()
        .with_timeout(Duration::from_millis(100))
        .with_invalidate_timeout(Duration::from_millis(300));

    let t = Instant::now();
    assert!(cache.get("s").await.is_err());
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "get took {took:?}");
    // Backing off: get and set fail at once.
    let t = Instant::now();
    assert!(cache.get("s").await.is_err());
    assert!(cache.set("s", entry(1, 1)).await.is_err());
    assert!(t.elapsed() < Duration::from_millis(90), "{:?}", t.elapsed());
    // Invalidate always tries, within its own timeout.
    let t = Instant::now();
    assert!(cache.invalidate("s").await.is_err());
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "invalidate took {took:?}");
    assert!(cache.clear().await.is_err());

    // An app with the defaults (250 ms per get or set, 1 s back-off) still works.
    let app = counter_app(RedisCache::new(&url, &fresh_prefix("silent")).unwrap());
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), run_counter(&app, "c-1", 4))
        .await
        .expect("an app on a silent Redis stalled");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
    app.shutdown().await.unwrap();
    server.abort();
}

#[tokio::test]
async fn apps_on_a_live_redis_share_the_cache() {
    raw().await;
    let prefixes = Prefixes::default();
    let prefix = prefixes.prefix("app");
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let app = |cache: RedisCache| {
        act()
            .with_state::<Counter>()
            .with_store_arc(store.clone())
            .with_cache(cache)
            .build()
            .unwrap()
    };
    let first = app(live(&prefix));
    for _ in 0..3 {
        first
            .execute(Increment { by: 2 }, Target::new("c", actor()))
            .await
            .unwrap();
    }
    let warm = first.load::<Counter>("c").await.unwrap();
    assert!(warm.cache_hit);
    assert_eq!((warm.state.count, warm.version), (6, 2));

    // Another process on the same store and tenant reads the entry as JSON.
    let second = app(live(&prefix));
    let shared = second.load::<Counter>("c").await.unwrap();
    assert!(shared.cache_hit, "second process hits the shared cache");
    assert_eq!((shared.state.count, shared.version), (6, 2));
    // It writes on top of it, and the first process sees the newer entry.
    second
        .execute(Increment { by: 1 }, Target::new("c", actor()))
        .await
        .unwrap();
    let seen = first.load::<Counter>("c").await.unwrap();
    assert!(seen.cache_hit);
    assert_eq!((seen.state.count, seen.version), (7, 3));

    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
    // Shutting down (dispose) leaves the fleet's entries in place.
    assert_eq!(keys_under(&prefix).await, vec![format!("{prefix}:{{c}}")]);
    prefixes.clean().await;
}
