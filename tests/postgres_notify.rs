//! NOTIFY wake-ups on PostgreSQL: a commit in one process wakes the workers of the others
//! sharing the database, long before their poll would.

mod pg_support;

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use act_runtime::model::{Actor, EventMeta, Message};
use act_runtime::prelude::*;
use act_tests::actor;
use act_tests::counter::{Counter, CounterEvent, Increment};
use pg_support::Schemas;
use tokio::sync::broadcast::error::RecvError;

fn handled() -> &'static Mutex<BTreeSet<String>> {
    static H: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    H.get_or_init(Default::default)
}

#[reaction(on = CounterEvent::Incremented, to = _this_)]
async fn note(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    handled().lock().unwrap().insert(e.stream.clone());
    Ok(())
}

fn noted(e: &Committed<CounterEvent>) -> Option<Resolved> {
    Some(Resolved::to(format!("{}-noted", e.stream)).from_stream(&e.stream))
}

/// A dynamic target: found by B's correlation scan, not marked by A's commit.
#[reaction(on = CounterEvent::Incremented, to = noted)]
async fn note_dynamic(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    handled().lock().unwrap().insert(e.stream.clone());
    Ok(())
}

/// A long poll: only a doorbell can wake the worker within the test's deadlines.
fn long_poll() -> WorkerOptions {
    WorkerOptions {
        poll: Duration::from_secs(30),
        ..Default::default()
    }
}

async fn eventually(within: Duration, what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Process B runs a worker polling every 30 s; process A commits (with the static reaction
/// registered too, so its commit raises the marks, or without any reaction, for B's
/// dynamic one and its correlation scan); B's reaction runs within seconds.
async fn a_commit_in_a_wakes_the_worker_of_b(a_marks: bool) {
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let sa = pg_support::store_on(&schema).await;
    sa.seed().await.unwrap();
    let sb = pg_support::store_on(&schema).await;
    sb.seed().await.unwrap();
    let mut a = act().with_store(sa).with_state::<Counter>();
    if a_marks {
        a = a.with_reaction(note);
    }
    let a = a.build().unwrap();
    let b = act().with_store(sb).with_state::<Counter>();
    let b = if a_marks {
        b.with_reaction(note)
    } else {
        b.with_reaction(note_dynamic)
    };
    let b = b.build().unwrap();
    let _worker = b.start_with(long_poll()).unwrap();
    // let B's worker catch up, listen, and fall asleep on its 30 s poll
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for round in 0..3 {
        let stream = format!("{schema}-{a_marks}-{round}");
        a.execute(Increment { by: 1 }, Target::new(&stream, actor()))
            .await
            .unwrap();
        eventually(
            Duration::from_secs(5),
            &format!("B handles {stream}"),
            || handled().lock().unwrap().contains(&stream),
        )
        .await;
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_in_one_process_wakes_the_worker_of_another() {
    a_commit_in_a_wakes_the_worker_of_b(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marked_commit_in_one_process_wakes_the_worker_of_another() {
    a_commit_in_a_wakes_the_worker_of_b(true).await;
}

fn msg() -> Message {
    Message::new(
        "E",
        serde_json::value::RawValue::from_string("{}".to_owned()).expect("JSON"),
    )
}

fn meta() -> EventMeta {
    EventMeta {
        correlation: "c".into(),
        causation: Default::default(),
        actor: Actor::new("t", "Test"),
    }
}

/// Waits for one ring; `false` if none came within `within`.
async fn rung(rx: &mut tokio::sync::broadcast::Receiver<()>, within: Duration) -> bool {
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(Ok(()) | Err(RecvError::Lagged(_))) => true,
        Ok(Err(RecvError::Closed)) => panic!("the wake-ups closed"),
        Err(_) => false,
    }
}

/// The port's contract on PostgreSQL: other stores' commits ring, a store's own do not,
/// dispose closes the receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakeups_ring_for_other_stores_only_and_close_on_dispose() {
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let a = pg_support::store_on(&schema).await;
    a.seed().await.unwrap();
    let b = pg_support::store_on(&schema).await;
    b.seed().await.unwrap();
    let mut rx = a.wakeups().expect("PostgreSQL rings wake-ups");
    // the listener rings once when it has connected (doorbells before it are lost)
    assert!(
        rung(&mut rx, Duration::from_secs(5)).await,
        "a ring on connect"
    );
    // its own commits: no ring
    a.commit("own", &[msg()], &meta(), None).await.unwrap();
    assert!(
        !rung(&mut rx, Duration::from_millis(500)).await,
        "own doorbell ignored"
    );
    // another store's commits: a ring, coalesced for a burst
    for _ in 0..20 {
        b.commit("other", &[msg()], &meta(), None).await.unwrap();
    }
    assert!(
        rung(&mut rx, Duration::from_secs(5)).await,
        "other's doorbell"
    );
    // an empty commit changes nothing: no doorbell
    while rung(&mut rx, Duration::from_millis(300)).await {}
    b.commit("other", &[], &meta(), None).await.unwrap();
    assert!(
        !rung(&mut rx, Duration::from_millis(500)).await,
        "nothing committed"
    );
    // the memory store cannot tell: the worker polls
    assert!(InMemoryStore::new().wakeups().is_none());
    // dispose closes the wake-ups
    a.dispose().await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Err(RecvError::Closed) = rx.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "dispose closes the wake-ups");
    assert!(a.wakeups().is_none());
    b.dispose().await.unwrap();
    schemas.drop_all().await;
}
