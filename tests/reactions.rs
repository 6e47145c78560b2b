//! The reaction pipeline end to end on the in-memory store: static, same-stream and dynamic
//! resolvers, ordering, exactly-once handling, retries with backoff, blocking, unblocking,
//! competing drainers, settle and lifecycle events.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use act_runtime::app::Lifecycle;
use act_runtime::prelude::*;
use act_runtime::reactions::Resolver;
use act_tests::actor;
use act_tests::counter::{Counter, CounterEvent, Increment};
use act_tests::ledger::{Ledger, LedgerEvent, Record};

fn opts() -> DrainOptions {
    DrainOptions {
        stream_limit: 10,
        event_limit: 10,
        lease: Duration::from_secs(10),
    }
}

/// correlate + drain until a pass does nothing; returns the accumulated summary.
async fn settle(app: &Act) -> DrainSummary {
    app.settle_now(SettleOptions {
        drain: opts(),
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn inc(app: &Act, stream: &str) -> i64 {
    app.execute(Increment { by: 1 }, Target::new(stream, actor()))
        .await
        .unwrap()
        .events[0]
        .id
}

async fn ledger_lines(app: &Act, stream: &str) -> Vec<String> {
    app.load::<Ledger>(stream).await.unwrap().state.lines
}

// ---- static target -------------------------------------------------------------------

#[reaction(on = CounterEvent::Incremented, to = "ledger")]
async fn to_ledger(e: &Committed<CounterEvent>, app: &Scope) -> Result<(), ReactionError> {
    let CounterEvent::Incremented { amount } = e.data;
    app.execute(
        Record {
            line: format!("{}#{} +{amount}", e.stream, e.version),
        },
        Target::new("ledger", actor()),
    )
    .await?;
    Ok(())
}

fn ledger_app() -> Act {
    act()
        .with_state::<Counter>()
        .with_state::<Ledger>()
        .with_reaction(to_ledger)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_static_reaction_handles_every_event_once_in_order_without_correlating() {
    let app = ledger_app();
    assert_eq!(
        <to_ledger as Reaction>::RESOLVER,
        Resolver::Static("ledger")
    );
    for i in 0..5 {
        inc(&app, &format!("c-{}", i % 2)).await;
    }
    let c = app.correlate(100).await.unwrap();
    assert_eq!(c.subscribed, 0, "static targets need no scan");
    let s = settle(&app).await;
    assert_eq!(s.handled, 5);
    assert_eq!(
        ledger_lines(&app, "ledger").await,
        ["c-0#0 +1", "c-1#0 +1", "c-0#1 +1", "c-1#1 +1", "c-0#2 +1"]
    );
    // extra drains do no work
    let again = settle(&app).await;
    assert_eq!(again.handled, 0);
    assert!(again.leased.is_empty());
    assert_eq!(ledger_lines(&app, "ledger").await.len(), 5);
}

#[tokio::test]
async fn actions_run_by_reactions_carry_causation_and_correlation() {
    let app = ledger_app();
    let out = app
        .execute(Increment { by: 1 }, Target::new("c-1", actor()))
        .await
        .unwrap();
    settle(&app).await;
    let logged = app
        .query(&Query::stream("ledger").names(["Recorded"]))
        .await
        .unwrap();
    assert_eq!(logged.len(), 1);
    let meta = &logged[0].meta;
    assert_eq!(meta.correlation, out.events[0].meta.correlation);
    let cause = meta.causation.event.as_ref().unwrap();
    assert_eq!((cause.id, cause.stream.as_str()), (out.events[0].id, "c-1"));
    assert_eq!(cause.name, "Incremented");
    assert_eq!(meta.causation.action.as_ref().unwrap().name, "Record");
}

// ---- dynamic target ------------------------------------------------------------------

fn audit_stream(e: &Committed<CounterEvent>) -> Option<Resolved> {
    (!e.stream.starts_with("quiet"))
        .then(|| Resolved::to(format!("audit-{}", e.stream)).from_stream(&e.stream))
}

#[reaction(on = CounterEvent::Incremented, to = audit_stream)]
async fn audit(e: &Committed<CounterEvent>, app: &Scope) -> Result<(), ReactionError> {
    app.execute(
        Record {
            line: format!("v{}", e.version),
        },
        Target::new(format!("audit-{}", e.stream), actor()),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_dynamic_reaction_is_found_by_correlate() {
    let app = act()
        .with_state::<Counter>()
        .with_state::<Ledger>()
        .with_reaction(audit)
        .build()
        .unwrap();
    assert_eq!(<audit as Reaction>::RESOLVER, Resolver::Dynamic);
    for s in ["a", "b", "a", "quiet-1"] {
        inc(&app, s).await;
    }
    // without correlate nothing is claimable
    assert!(app.drain(opts()).await.unwrap().leased.is_empty());
    let c = app.correlate(100).await.unwrap();
    assert_eq!(c.subscribed, 2);
    assert!(c.last_id >= 4);
    let d = app.drain(opts()).await.unwrap();
    assert_eq!(d.handled, 3);
    assert_eq!(ledger_lines(&app, "audit-a").await, ["v0", "v1"]);
    assert_eq!(ledger_lines(&app, "audit-b").await, ["v0"]);
    assert_eq!(app.correlate(100).await.unwrap().subscribed, 0);
}

// ---- _this_ and void -----------------------------------------------------------------

static SEEN_THIS: OnceLock<Mutex<Vec<(String, i64)>>> = OnceLock::new();

#[reaction(on = LedgerEvent::Recorded, to = _this_)]
async fn echo(e: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    SEEN_THIS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .push((e.stream.clone(), e.version));
    Ok(())
}

static VOIDS: AtomicUsize = AtomicUsize::new(0);

#[reaction(on = LedgerEvent::Recorded, void)]
async fn count_voids(_: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    VOIDS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn same_stream_reactions_drain_each_stream_and_void_ones_run_inline() {
    let app = act()
        .with_state::<Ledger>()
        .with_reaction(echo)
        .with_reaction(count_voids)
        .build()
        .unwrap();
    assert_eq!(<echo as Reaction>::RESOLVER, Resolver::SameStream);
    assert_eq!(<count_voids as Reaction>::RESOLVER, Resolver::Void);
    for s in ["x", "y", "x"] {
        app.execute(Record { line: s.into() }, Target::new(s, actor()))
            .await
            .unwrap();
    }
    let s = settle(&app).await;
    assert_eq!(s.handled, 3);
    let mut seen = SEEN_THIS.get().unwrap().lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("x".to_string(), 0),
            ("x".to_string(), 1),
            ("y".to_string(), 0)
        ]
    );
    for _ in 0..100 {
        if VOIDS.load(Ordering::SeqCst) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(VOIDS.load(Ordering::SeqCst), 3);
}

// ---- retries, backoff, blocking ------------------------------------------------------

static FLAKY_FAILS: AtomicUsize = AtomicUsize::new(0);
static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[reaction(
    on = LedgerEvent::Recorded,
    to = "flaky-target",
    retries = 5,
    backoff(strategy = "fixed", base_ms = 20)
)]
async fn flaky(_: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    let left = FLAKY_FAILS.load(Ordering::SeqCst);
    if left > 0 {
        FLAKY_FAILS.store(left - 1, Ordering::SeqCst);
        return Err("not yet".into());
    }
    Ok(())
}

#[tokio::test]
async fn a_handler_failing_k_times_is_retried_with_backoff_then_acked() {
    let app = act()
        .with_state::<Ledger>()
        .with_reaction(flaky)
        .build()
        .unwrap();
    assert_eq!(<flaky as Reaction>::OPTIONS.max_retries, 5);
    FLAKY_FAILS.store(2, Ordering::SeqCst);
    app.execute(Record { line: "l".into() }, Target::new("f", actor()))
        .await
        .unwrap();
    let first = app.drain(opts()).await.unwrap();
    assert_eq!((first.handled, first.acked.len()), (0, 0));
    // held back by the backoff: not claimable right away
    assert!(app.drain(opts()).await.unwrap().leased.is_empty());
    tokio::time::sleep(Duration::from_millis(30)).await;
    let second = app.drain(opts()).await.unwrap();
    assert_eq!(second.leased[0].retry, 1);
    assert_eq!(second.handled, 0);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let third = app.drain(opts()).await.unwrap();
    assert_eq!(third.handled, 1);
    assert_eq!(third.acked.len(), 1);
    assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 3);
    assert!(app.blocked_streams().await.unwrap().is_empty());
}

static POISON_OK: AtomicUsize = AtomicUsize::new(0);

#[reaction(on = LedgerEvent::Recorded, to = "poisoned", retries = 2)]
async fn poison(_: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    if POISON_OK.load(Ordering::SeqCst) == 0 {
        return Err("downstream is down".into());
    }
    Ok(())
}

#[tokio::test]
async fn a_handler_that_always_fails_ends_blocked_and_unblock_lets_it_run_again() {
    let app = act()
        .with_state::<Ledger>()
        .with_reaction(poison)
        .build()
        .unwrap();
    let blocked = Arc::new(AtomicUsize::new(0));
    let b = blocked.clone();
    app.on(move |e| {
        if let Lifecycle::Blocked(list) = e {
            b.fetch_add(list.len(), Ordering::SeqCst);
        }
    });
    app.execute(Record { line: "l".into() }, Target::new("p", actor()))
        .await
        .unwrap();
    let mut passes = 0;
    while app.blocked_streams().await.unwrap().is_empty() {
        app.drain(opts()).await.unwrap();
        passes += 1;
        assert!(passes < 10, "never blocked");
    }
    assert_eq!(passes, 3, "first attempt plus two retries");
    assert_eq!(blocked.load(Ordering::SeqCst), 1);
    let rows = app.blocked_streams().await.unwrap();
    assert_eq!(rows[0].stream, "poisoned");
    assert!(
        rows[0]
            .error
            .as_deref()
            .unwrap()
            .contains("downstream is down")
    );
    // blocked streams are never claimed
    assert!(app.drain(opts()).await.unwrap().leased.is_empty());
    POISON_OK.store(1, Ordering::SeqCst);
    assert_eq!(app.unblock(&["poisoned".to_string()]).await.unwrap(), 1);
    let d = app.drain(opts()).await.unwrap();
    assert_eq!(d.handled, 1);
    assert!(app.blocked_streams().await.unwrap().is_empty());
}

#[reaction(on = LedgerEvent::Recorded, to = "fatal-target")]
async fn fatal(_: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    Err(ReactionError::fatal("malformed"))
}

#[tokio::test]
async fn a_non_retryable_error_blocks_at_once() {
    let app = act()
        .with_state::<Ledger>()
        .with_reaction(fatal)
        .build()
        .unwrap();
    app.execute(Record { line: "l".into() }, Target::new("p", actor()))
        .await
        .unwrap();
    let d = app.drain(opts()).await.unwrap();
    assert_eq!(d.blocked.len(), 1);
    assert!(d.blocked[0].error.contains("malformed"));
}

// ---- competing drainers --------------------------------------------------------------

static IN_FLIGHT: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
static OVERLAPS: AtomicUsize = AtomicUsize::new(0);
static HANDLED: OnceLock<Mutex<HashMap<String, Vec<i64>>>> = OnceLock::new();

#[reaction(on = LedgerEvent::Recorded, to = _this_)]
async fn exclusive(e: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    let set = IN_FLIGHT.get_or_init(Default::default);
    if !set.lock().unwrap().insert(e.stream.clone()) {
        OVERLAPS.fetch_add(1, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    set.lock().unwrap().remove(&e.stream);
    HANDLED
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(e.stream.clone())
        .or_default()
        .push(e.version);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_drainers_never_share_a_stream() {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let apps: Vec<Act> = (0..4)
        .map(|_| {
            act()
                .with_state::<Ledger>()
                .with_reaction(exclusive)
                .with_store_arc(store.clone())
                .build()
                .unwrap()
        })
        .collect();
    for i in 0..200 {
        apps[i % 4]
            .execute(
                Record {
                    line: i.to_string(),
                },
                Target::new(format!("s{}", i % 8), actor()),
            )
            .await
            .unwrap();
    }
    let workers: Vec<_> = apps
        .iter()
        .cloned()
        .map(|app| {
            tokio::spawn(async move {
                let mut idle = 0;
                while idle < 3 {
                    let d = app
                        .drain(DrainOptions {
                            stream_limit: 3,
                            event_limit: 5,
                            lease: Duration::from_secs(5),
                        })
                        .await
                        .unwrap();
                    idle = if d.leased.is_empty() { idle + 1 } else { 0 };
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        OVERLAPS.load(Ordering::SeqCst),
        0,
        "a stream was leased to two drainers at once"
    );
    let handled = HANDLED.get().unwrap().lock().unwrap();
    assert_eq!(handled.len(), 8);
    for (stream, versions) in handled.iter() {
        assert_eq!(
            versions,
            &(0..25).collect::<Vec<i64>>(),
            "{stream} handled out of order or twice"
        );
    }
}

// ---- settle and lifecycle ------------------------------------------------------------

#[tokio::test]
async fn settle_runs_in_the_background_and_emits_settled() {
    let app = ledger_app();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    app.on(move |e| {
        if let Lifecycle::Settled(s) = e {
            let _ = tx.send(s.handled);
        }
    });
    for i in 0..3 {
        inc(&app, &format!("c-{i}")).await;
        app.settle(); // coalesced by the debounce
    }
    let mut handled = 0;
    while handled < 3 {
        handled += tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("settled in time")
            .unwrap();
    }
    assert_eq!(handled, 3);
    assert_eq!(ledger_lines(&app, "ledger").await.len(), 3);
    app.shutdown().await.unwrap();
}

#[test]
fn build_refuses_a_reaction_to_an_unregistered_event() {
    let err = act()
        .with_state::<Counter>()
        .with_reaction(echo)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::UnknownEvent { .. }), "{err}");
    let err = act()
        .with_state::<Counter>()
        .with_state::<Ledger>()
        .with_reaction(to_ledger)
        .with_reaction(to_ledger)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "reaction `to_ledger` is registered twice on event `Incremented`"
    );
}

static SLOW_DONE: AtomicUsize = AtomicUsize::new(0);

#[reaction(on = LedgerEvent::Recorded, to = "slow-target")]
async fn slow(_: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    tokio::time::sleep(Duration::from_millis(40)).await;
    SLOW_DONE.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn a_wake_up_during_a_running_settle_is_not_lost_and_shutdown_waits_for_the_drain() {
    let app = act()
        .with_state::<Ledger>()
        .with_reaction(slow)
        .build()
        .unwrap();
    let settled = Arc::new(AtomicUsize::new(0));
    let s = settled.clone();
    app.on(move |e| {
        if let Lifecycle::Settled(_) = e {
            s.fetch_add(1, Ordering::SeqCst);
        }
    });
    app.execute(Record { line: "1".into() }, Target::new("w", actor()))
        .await
        .unwrap();
    app.settle();
    tokio::time::sleep(Duration::from_millis(30)).await; // the first handler is running
    app.execute(Record { line: "2".into() }, Target::new("w", actor()))
        .await
        .unwrap();
    app.settle(); // arrives mid-cycle
    for _ in 0..200 {
        if SLOW_DONE.load(Ordering::SeqCst) == 2 && settled.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(SLOW_DONE.load(Ordering::SeqCst), 2);
    assert!(settled.load(Ordering::SeqCst) >= 1);

    // a third event, drained while we shut down: the ack lands before the store closes
    app.execute(Record { line: "3".into() }, Target::new("w", actor()))
        .await
        .unwrap();
    let drainer = app.clone();
    let drain = tokio::spawn(async move { drainer.drain(DrainOptions::default()).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.shutdown().await.unwrap();
    let d = drain.await.unwrap().unwrap();
    assert_eq!(d.handled, 1);
    assert_eq!(d.acked.len(), 1);
    assert_eq!(SLOW_DONE.load(Ordering::SeqCst), 3);
    assert!(matches!(
        app.drain(DrainOptions::default()).await,
        Err(ActError::ShutDown)
    ));
}
