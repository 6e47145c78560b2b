//! The app end to end on the in-memory store: execute, load, query, snapshots, cache,
//! time travel, the JSON entry point, lifecycle and errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use act_runtime::app::{Lifecycle, RaceBackoff};
use act_runtime::async_trait;
use act_runtime::model::{EventMeta, Message};
use act_runtime::ports::TruncateTarget;
use act_runtime::prelude::*;
use act_tests::actor;
use act_tests::cart::{AddItem, Cart, CartEvent, CheckOut, RemoveItem};
use act_tests::clash::Till;
use act_tests::counter::{Counter, Increment};
use act_tests::intercept::{Intercept, Intercepted};
use serde_json::json;

fn cart_app() -> Act {
    act().with_state::<Cart>().build().unwrap()
}

fn add(sku: &str, qty: u32) -> AddItem {
    AddItem {
        sku: sku.into(),
        qty,
    }
}

fn target(stream: &str) -> Target {
    Target::new(stream, actor())
}

async fn count(app: &Act, q: Query) -> usize {
    app.query(&q).await.unwrap().len()
}

#[tokio::test]
async fn execute_commits_typed_events_with_versions_and_meta() {
    let app = cart_app();
    let out = app.execute(add("A1", 2), target("cart-1")).await.unwrap();
    assert_eq!(out.snapshot.version, 0);
    assert_eq!(out.snapshot.state.items, vec![("A1".to_string(), 2)]);
    assert_eq!(out.events.len(), 1);
    let e = &out.events[0];
    assert_eq!(e.name, "ItemAdded");
    assert_eq!(
        e.data,
        CartEvent::ItemAdded {
            sku: "A1".into(),
            qty: 2
        }
    );
    assert_eq!(e.stream, "cart-1");
    assert_eq!(e.meta.actor, actor());
    let cause = e.meta.causation.action.as_ref().unwrap();
    assert_eq!(cause.name, "AddItem");
    assert_eq!(cause.stream, "cart-1");
    assert!(e.meta.causation.event.is_none());
    assert!(
        e.meta.correlation.starts_with("cart-addi-"),
        "{}",
        e.meta.correlation
    );
    assert_eq!(
        out.to_json().unwrap().events[0]
            .data_as::<serde_json::Value>()
            .unwrap(),
        json!({"sku": "A1", "qty": 2})
    );

    let out = app.execute(add("B2", 1), target("cart-1")).await.unwrap();
    assert_eq!(out.snapshot.version, 1);
    assert!(out.events[0].id > e.id);
    assert_ne!(out.events[0].meta.correlation, e.meta.correlation);
}

#[tokio::test]
async fn load_folds_the_stream_and_uses_the_cache() {
    let app = cart_app();
    app.execute(add("A1", 2), target("c")).await.unwrap();
    app.execute(add("B2", 1), target("c")).await.unwrap();
    let warm = app.load::<Cart>("c").await.unwrap();
    assert!(warm.cache_hit);
    assert_eq!(warm.replayed, 0);
    assert_eq!(warm.version, 1);
    app.cache().clear().await.unwrap();
    let cold = app.load::<Cart>("c").await.unwrap();
    assert!(!cold.cache_hit);
    assert_eq!(cold.replayed, 2);
    assert_eq!(cold.state, warm.state);
    // the cold load filled the cache again
    assert!(app.load::<Cart>("c").await.unwrap().cache_hit);
}

#[tokio::test]
async fn an_empty_stream_loads_the_initial_state() {
    let app = cart_app();
    let s = app.load::<Cart>("nobody").await.unwrap();
    assert_eq!(s.state, Cart::default());
    assert_eq!((s.version, s.event_id, s.replayed), (-1, -1, 0));
}

#[tokio::test]
async fn broken_invariant_commits_nothing_and_names_the_invariant() {
    let app = cart_app();
    let err = app.execute(CheckOut, target("c")).await.unwrap_err();
    match err {
        ActError::Invariant(e) => {
            assert_eq!(e.description, "cart is empty");
            assert_eq!(e.action, "CheckOut");
            assert_eq!(e.stream, "c");
        }
        other => panic!("unexpected {other:?}"),
    }
    app.execute(add("A", 1), target("c")).await.unwrap();
    app.execute(CheckOut, target("c")).await.unwrap();
    let err = app.execute(add("B", 1), target("c")).await.unwrap_err();
    assert!(
        matches!(&err, ActError::Invariant(e) if e.description == "cart is checked out"),
        "{err}"
    );
    assert_eq!(count(&app, Query::stream("c")).await, 2);
}

#[tokio::test]
async fn a_handler_rejection_commits_nothing() {
    let app = cart_app();
    let err = app
        .execute(RemoveItem { sku: "X".into() }, target("c"))
        .await
        .unwrap_err();
    assert!(matches!(&err, ActError::Rejected { action, .. } if action == "RemoveItem"));
    // the handler's error is the source, not repeated in the message
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("X is not in the cart"), "{err}");
    assert!(!err.to_string().contains("X is not in the cart"), "{err}");
    assert_eq!(count(&app, Query::all()).await, 0);
}

#[tokio::test]
async fn a_pinned_version_is_checked_and_never_retried() {
    let app = cart_app();
    app.execute(add("A", 1), target("c")).await.unwrap();
    let err = app
        .execute(add("B", 1), target("c").expect_version(5))
        .await
        .unwrap_err();
    match err {
        ActError::Concurrency(c) => {
            assert_eq!((c.stream.as_str(), c.expected, c.actual), ("c", 5, 0));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(count(&app, Query::stream("c")).await, 1);
    app.execute(add("B", 1), target("c").expect_version(0))
        .await
        .unwrap();
    assert_eq!(count(&app, Query::stream("c")).await, 2);
}

/// Lets another writer win the first `races` commits to each stream; counts commits.
struct Races {
    races: AtomicUsize,
    commits: AtomicUsize,
}

#[async_trait]
impl Intercept for Races {
    async fn commit(
        &self,
        inner: &dyn Store,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
    ) -> Result<(), StoreError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        if self
            .races
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            // another writer sneaks in first
            inner.commit(stream, msgs, meta, None).await?;
        }
        Ok(())
    }
}

type RacyStore = Intercepted<Races>;

fn racy_store(races: usize) -> Arc<RacyStore> {
    Intercepted::new(
        Arc::new(InMemoryStore::new()),
        Races {
            races: AtomicUsize::new(races),
            commits: AtomicUsize::new(0),
        },
    )
}

fn racy_app(races: usize) -> (Act, Arc<RacyStore>) {
    let store = racy_store(races);
    let app = act()
        .with_state::<Counter>()
        .with_store_arc(store.clone())
        .build()
        .unwrap();
    (app, store)
}

#[tokio::test]
async fn a_lost_race_is_retried_on_the_new_state() {
    let (app, store) = racy_app(2);
    let out = app.execute(Increment { by: 1 }, target("n")).await.unwrap();
    // two interlopers won, then our retry committed on top of them
    assert_eq!(out.snapshot.version, 2);
    assert_eq!(out.snapshot.state.count, 3);
    assert_eq!(store.commits.load(Ordering::SeqCst), 3);
    assert_eq!(app.load::<Counter>("n").await.unwrap().state.count, 3);
}

#[tokio::test(start_paused = true)]
async fn lost_races_are_retried_after_a_jittered_pause() {
    let store = racy_store(3);
    let app = act()
        .with_state::<Counter>()
        .with_store_arc(store.clone())
        .with_race_backoff(RaceBackoff {
            base: std::time::Duration::from_millis(10),
            max: std::time::Duration::from_millis(30),
        })
        .build()
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let out = app.execute(Increment { by: 1 }, target("n")).await.unwrap();
    let waited = t0.elapsed();
    assert_eq!(out.snapshot.version, 3, "three lost races, then the commit");
    assert_eq!(store.commits.load(Ordering::SeqCst), 4);
    // Steps 10, 20, 30 ms (capped), each waited at least half: 5 + 10 + 15 (virtual time).
    assert!(
        waited >= std::time::Duration::from_millis(30),
        "retried without pausing: {waited:?}"
    );
    assert!(waited <= std::time::Duration::from_millis(60), "{waited:?}");
}

#[tokio::test]
async fn retries_run_out() {
    let (app, store) = racy_app(100);
    let err = app
        .execute(Increment { by: 1 }, target("n"))
        .await
        .unwrap_err();
    assert!(matches!(err, ActError::Concurrency(_)), "{err}");
    // one attempt plus the default three retries
    assert_eq!(store.commits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_pinned_version_that_loses_a_race_is_not_retried() {
    let (app, store) = racy_app(1);
    let err = app
        .execute(Increment { by: 1 }, target("n").expect_version(-1))
        .await
        .unwrap_err();
    assert!(matches!(err, ActError::Concurrency(_)), "{err}");
    assert_eq!(store.commits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn snapshots_are_taken_by_the_predicate_and_cold_loads_start_there() {
    let app = cart_app();
    for i in 0..7 {
        app.execute(add(&format!("S{i}"), 1), target("c"))
            .await
            .unwrap();
    }
    let snaps = app
        // `after(0)` is a real bound: it reads past the latest snapshot's floor
        .query(
            &Query::stream("c")
                .names(["__snapshot__"])
                .with_snaps()
                .after(0),
        )
        .await
        .unwrap();
    assert_eq!(snaps.len(), 2, "a snapshot after every 3 patches");
    assert_eq!(
        count(&app, Query::stream("c")).await,
        7,
        "snapshots are hidden by default"
    );
    app.cache().clear().await.unwrap();
    let cold = app.load::<Cart>("c").await.unwrap();
    assert_eq!(cold.state.items.len(), 7);
    assert_eq!(cold.replayed, 2, "the latest snapshot plus one event");
    assert_eq!(cold.snaps, 1);
    assert_eq!(cold.patches, 1);
    assert_eq!(cold.version, 8, "7 events and 2 snapshots: versions 0..=8");
}

#[tokio::test]
async fn time_travel_bypasses_cache_and_snapshots() {
    let app = cart_app();
    let mut ids = vec![];
    for i in 0..5 {
        let out = app
            .execute(add(&format!("S{i}"), 1), target("c"))
            .await
            .unwrap();
        ids.push(out.events[0].id);
    }
    let by_count = app
        .load_with::<Cart>("c", &LoadOptions::default().limit(2))
        .await
        .unwrap();
    assert_eq!(by_count.state.items.len(), 2);
    assert!(!by_count.cache_hit);
    assert_eq!(by_count.snaps, 0);
    let by_id = app
        .load_with::<Cart>("c", &LoadOptions::default().before(ids[3]))
        .await
        .unwrap();
    assert_eq!(by_id.state.items.len(), 3);
    let all = app.query(&Query::stream("c")).await.unwrap();
    let by_time = app
        .load_with::<Cart>(
            "c",
            &LoadOptions::default()
                .created_before(all[0].created + chrono::Duration::microseconds(1)),
        )
        .await
        .unwrap();
    assert!(!by_time.state.items.is_empty());
    // the cache still holds the latest state
    assert_eq!(app.load::<Cart>("c").await.unwrap().state.items.len(), 5);
}

#[tokio::test]
async fn execute_json_validates_against_the_schema_and_commits_nothing_on_bad_input() {
    let app = cart_app();
    let t = || target("c");
    let wrong_type = app
        .execute_json("AddItem", t(), json!({"sku": "A", "qty": "two"}))
        .await
        .unwrap_err();
    match &wrong_type {
        ActError::Validation(v) => {
            assert_eq!(v.target, "AddItem");
            assert_eq!(v.paths().collect::<Vec<_>>(), vec!["/qty"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    let missing = app
        .execute_json("AddItem", t(), json!({"sku": "A"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, ActError::Validation(v) if v.to_string().contains("qty")),
        "{missing}"
    );
    let unknown_field = app
        .execute_json(
            "AddItem",
            t(),
            json!({"sku": "A", "qty": 1, "color": "red"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&unknown_field, ActError::Validation(v) if v.to_string().contains("color")),
        "{unknown_field}"
    );
    let negative = app
        .execute_json("AddItem", t(), json!({"sku": "A", "qty": -1}))
        .await
        .unwrap_err();
    assert!(
        matches!(&negative, ActError::Validation(v) if v.paths().any(|p| p == "/qty")),
        "{negative}"
    );
    let not_object = app
        .execute_json("AddItem", t(), json!([1, 2]))
        .await
        .unwrap_err();
    assert!(matches!(not_object, ActError::Validation(_)));
    let unknown = app
        .execute_json("Teleport", t(), json!({}))
        .await
        .unwrap_err();
    assert!(matches!(&unknown, ActError::UnknownAction(n) if n == "Teleport"));
    assert_eq!(
        count(&app, Query::all().with_snaps()).await,
        0,
        "nothing committed"
    );

    let ok = app
        .execute_json("AddItem", t(), json!({"sku": "A", "qty": 3}))
        .await
        .unwrap();
    assert_eq!(
        ok.state,
        Some(json!({"items": [["A", 3]], "checked_out": false}))
    );
    assert_eq!(ok.state_error, None);
    assert_eq!(ok.events[0].name, "ItemAdded");
    assert_eq!(app.load_json("Cart", "c").await.unwrap()["items"][0][1], 3);
    assert!(matches!(
        app.load_json("Nope", "c").await,
        Err(ActError::UnknownState(_))
    ));
}

#[tokio::test]
async fn bad_stream_names_are_rejected_before_anything_runs() {
    let app = cart_app();
    for bad in ["", "a\0b", "line\nbreak", &"x".repeat(2000)] {
        let err = app.execute(add("A", 1), target(bad)).await.unwrap_err();
        assert!(
            matches!(&err, ActError::Validation(v) if v.target == "stream"),
            "{err}"
        );
        assert!(matches!(
            app.load::<Cart>(bad).await,
            Err(ActError::Validation(_))
        ));
    }
    assert_eq!(count(&app, Query::all()).await, 0);
}

#[tokio::test]
async fn the_catalog_lists_states_events_and_actions_with_schemas() {
    let app = cart_app();
    let catalog = serde_json::to_value(app.catalog()).unwrap();
    let cart = &catalog["states"][0];
    assert_eq!(cart["name"], "Cart");
    let events: Vec<_> = cart["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["ItemAdded", "ItemRemoved", "CheckedOut"]);
    let actions: Vec<_> = cart["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["AddItem", "RemoveItem", "CheckOut"]);
    let add = &cart["actions"][0];
    assert_eq!(add["invariants"], json!(["cart is checked out"]));
    assert_eq!(add["schema"]["properties"]["qty"]["type"], "integer");
    assert_eq!(
        cart["events"][0]["schema"]["properties"]["sku"]["type"],
        "string"
    );
    assert_eq!(
        cart["schema"]["properties"]["checked_out"]["type"],
        "boolean"
    );
}

#[test]
fn build_refuses_two_states_claiming_one_event_name() {
    let err = act()
        .with_state::<Cart>()
        .with_state::<Till>()
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::DuplicateEvent {
            name: "CheckedOut".into(),
            first: "Cart".into(),
            second: "Till".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "event `CheckedOut` is emitted by both `Cart` and `Till`"
    );
    // registering one state twice is harmless
    assert!(
        act()
            .with_state::<Cart>()
            .with_state::<Cart>()
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn committed_listeners_see_every_batch_and_cannot_break_the_app() {
    let app = cart_app();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    app.on(move |e| {
        if let Lifecycle::Committed(events) = e {
            s.fetch_add(events.len(), Ordering::SeqCst);
        }
    });
    let panicky = app.on(|_| panic!("listener bug"));
    app.execute(add("A", 1), target("c")).await.unwrap();
    app.execute(add("B", 1), target("c")).await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert!(app.off(panicky));
    assert!(!app.off(panicky));
}

#[tokio::test]
async fn a_closed_stream_refuses_actions() {
    let app = cart_app();
    app.execute(add("A", 1), target("c")).await.unwrap();
    let meta = EventMeta {
        correlation: "close".into(),
        causation: Default::default(),
        actor: actor(),
    };
    app.store()
        .truncate(&[TruncateTarget {
            stream: "c".into(),
            snapshot: None,
            meta,
            expected_head: None,
        }])
        .await
        .unwrap();
    app.cache().invalidate("c").await.unwrap();
    let err = app.execute(add("B", 1), target("c")).await.unwrap_err();
    assert!(
        matches!(&err, ActError::StreamClosed(e) if e.stream == "c"),
        "{err}"
    );
}

#[tokio::test]
async fn unregistered_states_and_shut_down_apps_are_errors() {
    let app = cart_app();
    assert!(matches!(
        app.execute(Increment { by: 1 }, target("n")).await,
        Err(ActError::UnknownState(s)) if s == "Counter"
    ));
    app.shutdown().await.unwrap();
    app.shutdown().await.unwrap();
    assert!(matches!(
        app.execute(add("A", 1), target("c")).await,
        Err(ActError::ShutDown)
    ));
}

#[tokio::test]
async fn concurrent_actions_on_one_stream_all_land_in_order() {
    let app = act().with_state::<Counter>().build().unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.execute(Increment { by: 1 }, target("hot")).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    let s = app.load::<Counter>("hot").await.unwrap();
    assert_eq!(s.state.count, ok);
    assert_eq!(s.version, ok - 1);
}

#[tokio::test]
async fn an_event_payload_over_the_limit_is_refused_and_nothing_commits() {
    let app = act()
        .with_state::<Cart>()
        .with_max_event_bytes(256)
        .build()
        .unwrap();
    app.execute(add("A", 1), target("c")).await.unwrap();
    let err = app
        .execute(add(&"x".repeat(300), 1), target("c"))
        .await
        .unwrap_err();
    match &err {
        ActError::Validation(v) => {
            assert_eq!(v.target, "ItemAdded");
            assert_eq!(v.paths().collect::<Vec<_>>(), vec!["/data"]);
            assert!(v.to_string().contains("at most 256"), "{v}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(count(&app, Query::stream("c")).await, 1);
}
