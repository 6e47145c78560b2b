//! The cache kit: every behaviour of the [`Cache`] port, one named check each.
//!
//! Adapter-specific behaviour (eviction policy, capacity) is not part of the kit: the port
//! lets `get` miss at any time, so the kit only sets a handful of keys and expects them back.

use std::future::Future;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{BoxFuture, Check, Fail, Outcome, Report, Subject, checks, ensure, ensure_eq};
use crate::model::State;
use crate::ports::{Cache, CacheEntry, CachedState};

impl Subject for dyn Cache {
    fn prepare(self: Arc<Self>) -> BoxFuture<Outcome> {
        Box::pin(async { Ok(()) })
    }

    fn finish(self: Arc<Self>) -> BoxFuture<Outcome> {
        Box::pin(async move { Ok(self.dispose().await?) })
    }
}

/// Every cache check, in run order.
pub fn checks() -> Vec<Check<dyn Cache>> {
    checks![dyn Cache;
        "cache: get on an empty cache misses" => miss_empty,
        "cache: get of an unknown key misses" => miss_unknown,
        "cache: set then get returns the entry" => set_get,
        "cache: set overwrites the previous entry" => overwrite,
        "cache: entries are isolated by key" => isolated,
        "cache: keys are case-sensitive" => keys_case,
        "cache: invalidate removes the entry" => invalidate_one,
        "cache: invalidate leaves the other entries" => invalidate_leaves_others,
        "cache: invalidate of an unknown key succeeds" => invalidate_unknown,
        "cache: an invalidated key misses until the next set" => invalidate_then_set,
        "cache: clear removes every entry" => clear_all,
        "cache: clear of an empty cache succeeds" => clear_empty,
        "cache: the cache is usable after clear" => usable_after_clear,
        "cache: a typed state round-trips" => typed_round_trip,
        "cache: a typed state serializes to JSON" => typed_to_json,
        "cache: a JSON state round-trips" => json_round_trip,
        "cache: a JSON state reads back as its type" => json_to_state,
        "cache: concurrent sets of different keys all land" => concurrent_sets,
        "cache: dispose is idempotent" => dispose_idempotent,
    ]
}

/// Runs every cache check, each against a fresh cache from `factory` (disposed after), and
/// panics listing every failed check if any failed.
///
/// ```
/// use act_runtime::adapters::InMemoryCache;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = act_runtime::conformance::cache::run(|| async { InMemoryCache::new() }).await;
/// assert_eq!(report.failures.len(), 0);
/// # });
/// ```
pub async fn run<F, Fut, C>(factory: F) -> Report
where
    F: Fn() -> Fut,
    Fut: Future<Output = C>,
    C: Cache,
{
    let report = report(factory).await;
    report.assert_passed();
    report
}

/// Runs every cache check like [`run`], returning the [`Report`] instead of panicking.
///
/// ```
/// use act_runtime::adapters::InMemoryCache;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = act_runtime::conformance::cache::report(|| async { InMemoryCache::new() }).await;
/// assert!(report.is_ok(), "{report}");
/// # });
/// ```
#[must_use = "a report lists failed checks; call `assert_passed`"]
pub async fn report<F, Fut, C>(factory: F) -> Report
where
    F: Fn() -> Fut,
    Fut: Future<Output = C>,
    C: Cache,
{
    super::execute("cache", &checks(), &|_| true, || {
        let made = factory();
        async move { Arc::new(made.await) as Arc<dyn Cache> }
    })
    .await
}

/// A state to cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Probe {
    count: i64,
    items: Vec<String>,
}

impl State for Probe {
    const NAME: &'static str = "ConformanceProbe";

    fn init() -> Self {
        Self {
            count: 0,
            items: Vec::new(),
        }
    }
}

fn probe(count: i64) -> Probe {
    Probe {
        count,
        items: (0..count).map(|i| format!("item-{i}")).collect(),
    }
}

fn entry(count: i64) -> CacheEntry {
    CacheEntry {
        state: CachedState::typed(probe(count)),
        version: count,
        event_id: 100 + count,
        patches: u32::try_from(count).unwrap_or(0),
        snaps: 1,
    }
}

/// The `(count, version, event_id, patches, snaps)` of an entry.
fn key(e: &CacheEntry) -> Result<(i64, i64, i64, u32, u32), Fail> {
    let state: Probe = e.state.to_state()?;
    Ok((state.count, e.version, e.event_id, e.patches, e.snaps))
}

async fn get(c: &dyn Cache, stream: &str) -> Result<Option<(i64, i64, i64, u32, u32)>, Fail> {
    c.get(stream).await?.as_ref().map(key).transpose()
}

fn expect(count: i64) -> Option<(i64, i64, i64, u32, u32)> {
    Some((
        count,
        count,
        100 + count,
        u32::try_from(count).unwrap_or(0),
        1,
    ))
}

async fn miss_empty(c: Arc<dyn Cache>) -> Outcome {
    ensure!(c.get("s").await?.is_none(), "hit on an empty cache");
    Ok(())
}

async fn miss_unknown(c: Arc<dyn Cache>) -> Outcome {
    c.set("a", entry(1)).await?;
    ensure!(c.get("b").await?.is_none(), "hit on an unknown key");
    Ok(())
}

async fn set_get(c: Arc<dyn Cache>) -> Outcome {
    c.set("s", entry(3)).await?;
    ensure_eq!(get(&*c, "s").await?, expect(3), "entry");
    Ok(())
}

async fn overwrite(c: Arc<dyn Cache>) -> Outcome {
    c.set("s", entry(3)).await?;
    c.set("s", entry(5)).await?;
    ensure_eq!(get(&*c, "s").await?, expect(5), "entry");
    Ok(())
}

async fn isolated(c: Arc<dyn Cache>) -> Outcome {
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        c.set(k, entry(i as i64 + 1)).await?;
    }
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        ensure_eq!(get(&*c, k).await?, expect(i as i64 + 1), "entry of `{k}`");
    }
    Ok(())
}

async fn keys_case(c: Arc<dyn Cache>) -> Outcome {
    c.set("Cart", entry(1)).await?;
    c.set("cart", entry(2)).await?;
    ensure_eq!(get(&*c, "Cart").await?, expect(1), "`Cart`");
    ensure_eq!(get(&*c, "cart").await?, expect(2), "`cart`");
    ensure!(c.get("CART").await?.is_none(), "hit on `CART`");
    Ok(())
}

async fn invalidate_one(c: Arc<dyn Cache>) -> Outcome {
    c.set("s", entry(1)).await?;
    c.invalidate("s").await?;
    ensure!(c.get("s").await?.is_none(), "hit after invalidate");
    Ok(())
}

async fn invalidate_leaves_others(c: Arc<dyn Cache>) -> Outcome {
    c.set("a", entry(1)).await?;
    c.set("b", entry(2)).await?;
    c.invalidate("a").await?;
    ensure_eq!(get(&*c, "b").await?, expect(2), "entry of `b`");
    Ok(())
}

async fn invalidate_unknown(c: Arc<dyn Cache>) -> Outcome {
    c.invalidate("nope").await?;
    c.set("a", entry(1)).await?;
    c.invalidate("nope").await?;
    ensure_eq!(get(&*c, "a").await?, expect(1), "entry of `a`");
    Ok(())
}

async fn invalidate_then_set(c: Arc<dyn Cache>) -> Outcome {
    c.set("s", entry(1)).await?;
    c.invalidate("s").await?;
    ensure!(c.get("s").await?.is_none(), "hit after invalidate");
    ensure!(c.get("s").await?.is_none(), "hit on the second get");
    c.set("s", entry(2)).await?;
    ensure_eq!(get(&*c, "s").await?, expect(2), "entry after set");
    Ok(())
}

async fn clear_all(c: Arc<dyn Cache>) -> Outcome {
    for k in ["a", "b", "c"] {
        c.set(k, entry(1)).await?;
    }
    c.clear().await?;
    for k in ["a", "b", "c"] {
        ensure!(c.get(k).await?.is_none(), "hit on `{k}` after clear");
    }
    Ok(())
}

async fn clear_empty(c: Arc<dyn Cache>) -> Outcome {
    c.clear().await?;
    c.clear().await?;
    ensure!(c.get("a").await?.is_none(), "hit");
    Ok(())
}

async fn usable_after_clear(c: Arc<dyn Cache>) -> Outcome {
    c.set("a", entry(1)).await?;
    c.clear().await?;
    c.set("a", entry(4)).await?;
    ensure_eq!(get(&*c, "a").await?, expect(4), "entry");
    Ok(())
}

async fn typed_round_trip(c: Arc<dyn Cache>) -> Outcome {
    c.set("s", entry(3)).await?;
    let got = c
        .get("s")
        .await?
        .ok_or_else(|| Fail("miss".into()))?
        .state
        .to_state::<Probe>()?;
    ensure_eq!(got, probe(3), "state");
    Ok(())
}

async fn typed_to_json(c: Arc<dyn Cache>) -> Outcome {
    c.set("s", entry(2)).await?;
    let text = c
        .get("s")
        .await?
        .ok_or_else(|| Fail("miss".into()))?
        .state
        .to_json()?;
    ensure_eq!(
        serde_json::from_str::<Value>(&text)?,
        json!({ "count": 2, "items": ["item-0", "item-1"] }),
        "JSON"
    );
    Ok(())
}

fn json_entry() -> CacheEntry {
    CacheEntry {
        state: CachedState::json(r#"{"count":7,"items":["ü"]}"#),
        version: 7,
        event_id: 70,
        patches: 0,
        snaps: 2,
    }
}

async fn json_round_trip(c: Arc<dyn Cache>) -> Outcome {
    c.set("s", json_entry()).await?;
    let e = c.get("s").await?.ok_or_else(|| Fail("miss".into()))?;
    ensure_eq!(
        serde_json::from_str::<Value>(&e.state.to_json()?)?,
        json!({ "count": 7, "items": ["ü"] }),
        "JSON"
    );
    ensure_eq!(
        (e.version, e.event_id, e.patches, e.snaps),
        (7, 70, 0, 2),
        "entry"
    );
    Ok(())
}

async fn json_to_state(c: Arc<dyn Cache>) -> Outcome {
    c.set("s", json_entry()).await?;
    let e = c.get("s").await?.ok_or_else(|| Fail("miss".into()))?;
    ensure_eq!(
        e.state.to_state::<Probe>()?,
        Probe {
            count: 7,
            items: vec!["ü".into()]
        },
        "state"
    );
    Ok(())
}

async fn concurrent_sets(c: Arc<dyn Cache>) -> Outcome {
    let mut tasks = Vec::new();
    for i in 0..8_i64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.set(&format!("k{i}"), entry(i)).await
        }));
    }
    for t in tasks {
        t.await.map_err(|e| Fail(format!("task: {e}")))??;
    }
    for i in 0..8_i64 {
        ensure_eq!(
            get(&*c, &format!("k{i}")).await?,
            expect(i),
            "entry of k{i}"
        );
    }
    Ok(())
}

async fn dispose_idempotent(c: Arc<dyn Cache>) -> Outcome {
    c.set("s", entry(1)).await?;
    c.dispose().await?;
    c.dispose().await?;
    Ok(())
}
