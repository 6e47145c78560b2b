//! Closing the books (`Act::close`) on the in-memory store, SQLite (a file) and PostgreSQL
//! (a schema per test): retire and restart, idempotence, a fault injected in each phase
//! (the next close finishes the stream), concurrent writers (no event is ever lost),
//! pending reactions (skipped until drained), the `Closed` notification, and a property
//! over random carts.

#[path = "pg_support.rs"]
mod pg_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use act_runtime::adapters::SqliteStore;
use act_runtime::app::{CloseReport, CloseTarget, SkipReason};
use act_runtime::async_trait;
use act_runtime::model::{BoxError, EventId, Message, SNAPSHOT_EVENT, TOMBSTONE_EVENT, Version};
use act_runtime::ports::TruncateTarget;
use act_runtime::prelude::*;
use act_tests::cart::{AddItem, Cart, CheckOut, RemoveItem};
use act_tests::counter::{Counter, CounterEvent, Increment};
use act_tests::intercept::{Intercept, Intercepted};
use act_tests::ledger::{Ledger, Record};
use act_tests::{TempDb, actor};
use proptest::prelude::*;

// ---- stores ----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

const BACKENDS: [Backend; 3] = [Backend::Memory, Backend::Sqlite, Backend::Postgres];

/// The files and schemas of a test's stores, removed by [`Env::cleanup`] (files also on
/// drop).
#[derive(Default)]
struct Env {
    dbs: Vec<TempDb>,
    schemas: pg_support::Schemas,
}

impl Env {
    /// A fresh, seeded store of `backend`.
    async fn store(&mut self, backend: Backend) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = match backend {
            Backend::Memory => Arc::new(InMemoryStore::new()),
            Backend::Sqlite => {
                let db = TempDb::new("close");
                let s = SqliteStore::open(&db.0).await.expect("open SQLite");
                self.dbs.push(db);
                Arc::new(s)
            }
            Backend::Postgres => Arc::new(self.schemas.store().await),
        };
        store.seed().await.expect("seed");
        store
    }

    async fn cleanup(self) {
        self.schemas.drop_all().await;
    }
}

/// A store call to fail (or, for `RaceGuard`, to lose a race) once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The head lookup (the first query of a close).
    HeadLookup,
    /// The commit of the guard tombstone.
    Guard,
    /// The load of a restart target's final state (a forward query without meta).
    FinalState,
    /// The truncate.
    Truncate,
    /// The archive callback (not a store call: the test's callback fails).
    Archive,
    /// Reading the subscription rows (the safety check).
    Rows,
    /// Another writer commits to the stream just before the guard tombstone.
    RaceGuard,
    /// Correlation scans (queries of every stream by event name) see no events, for as
    /// long as it is armed.
    BlindCorrelation,
    /// Just before the truncate, another process's close of the same streams finishes and
    /// a writer commits on its seed.
    RivalClose,
    /// Just before a writer's commit, another process retires the stream (guard, then a
    /// tombstone seed at version 0).
    RivalRetire,
}

/// The hooks that inject one [`Fault`] when armed.
struct Faults {
    armed: Mutex<Option<Fault>>,
    /// The event the racing writers of [`Fault::RaceGuard`] and [`Fault::RivalClose`] commit.
    racer: Message,
}

/// A store that injects one [`Fault`] when armed.
type Faulty = Intercepted<Faults>;

fn faulty(inner: Arc<dyn Store>) -> Arc<Faulty> {
    let racer = CounterEvent::Incremented { amount: 100 };
    Intercepted::new(
        inner,
        Faults {
            armed: Mutex::new(None),
            racer: Message::new(racer.name(), racer.to_data().expect("data")),
        },
    )
}

impl Faults {
    fn arm(&self, fault: Fault) {
        *self.armed.lock().unwrap() = Some(fault);
    }

    fn is_armed(&self) -> bool {
        self.armed.lock().unwrap().is_some()
    }

    /// Whether `fault` is armed; disarms it.
    fn fire(&self, fault: Fault) -> bool {
        let mut armed = self.armed.lock().unwrap();
        if *armed == Some(fault) {
            *armed = None;
            true
        } else {
            false
        }
    }
}

fn injected(op: &'static str) -> StoreError {
    StoreError::backend(op, "injected fault")
}

#[async_trait]
impl Intercept for Faults {
    async fn commit(
        &self,
        inner: &dyn Store,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
    ) -> Result<(), StoreError> {
        let guard = msgs.first().is_some_and(|m| m.name == TOMBSTONE_EVENT);
        if guard && self.fire(Fault::Guard) {
            return Err(injected("commit"));
        }
        if guard && self.fire(Fault::RaceGuard) {
            inner
                .commit(stream, std::slice::from_ref(&self.racer), meta, None)
                .await?;
        }
        if !guard && self.fire(Fault::RivalRetire) {
            let tombstone = Message::new(
                TOMBSTONE_EVENT,
                serde_json::value::RawValue::from_string("{}".into()).expect("json"),
            );
            inner.commit(stream, &[tombstone], meta, None).await?;
            let seed = TruncateTarget {
                stream: stream.into(),
                snapshot: None,
                meta: meta.clone(),
                expected_head: None,
            };
            inner.truncate(&[seed]).await?;
        }
        Ok(())
    }

    fn query(&self, q: &Query) -> Option<Result<usize, StoreError>> {
        if q.backward && q.with_snaps && q.limit == Some(1) && self.fire(Fault::HeadLookup) {
            return Some(Err(injected("query")));
        }
        if !q.backward && q.skip_meta && self.fire(Fault::FinalState) {
            return Some(Err(injected("query")));
        }
        if q.stream.is_none()
            && q.names.is_some()
            && *self.armed.lock().unwrap() == Some(Fault::BlindCorrelation)
        {
            return Some(Ok(0));
        }
        None
    }

    fn query_streams(&self) -> Result<(), StoreError> {
        if self.fire(Fault::Rows) {
            return Err(injected("query_streams"));
        }
        Ok(())
    }

    async fn truncate(
        &self,
        inner: &dyn Store,
        targets: &[TruncateTarget],
    ) -> Result<(), StoreError> {
        if self.fire(Fault::Truncate) {
            return Err(injected("truncate"));
        }
        if self.fire(Fault::RivalClose) {
            let rival: Vec<TruncateTarget> = targets
                .iter()
                .map(|t| TruncateTarget {
                    expected_head: None,
                    ..t.clone()
                })
                .collect();
            inner.truncate(&rival).await?;
            for t in targets {
                let racer = std::slice::from_ref(&self.racer);
                inner.commit(&t.stream, racer, &t.meta, Some(0)).await?;
            }
        }
        Ok(())
    }
}

// ---- helpers ---------------------------------------------------------------------------

/// Every stored event of `stream` (snapshots included) as (id, name, version, data).
async fn stored(store: &dyn Store, stream: &str) -> Vec<(EventId, String, Version, String)> {
    let mut out = Vec::new();
    // `with_snaps` on an exact stream starts at the latest snapshot: read by pattern.
    let q = Query::pattern(format!("^{stream}$")).with_snaps();
    store
        .query(&q, &mut |e: &Committed| {
            out.push((e.id, e.name.clone(), e.version, e.data.get().to_owned()))
        })
        .await
        .expect("query");
    out
}

/// Every stored event of every stream (snapshots included), as [`stored`] gives them.
async fn stored_all(store: &dyn Store) -> Vec<(EventId, String, Version, String)> {
    let mut out = Vec::new();
    store
        .query(&Query::all().with_snaps(), &mut |e: &Committed| {
            out.push((e.id, e.name.clone(), e.version, e.data.get().to_owned()))
        })
        .await
        .expect("query");
    out
}

async fn inc(app: &Act, stream: &str, by: i64) -> Result<Executed<Counter>, ActError> {
    app.execute(Increment { by }, Target::new(stream, actor()))
        .await
}

fn counter_app(store: Arc<dyn Store>) -> Act {
    act()
        .with_state::<Counter>()
        .with_store_arc(store)
        .build()
        .expect("build")
}

/// One archive call: the stream and its events as (id, name, version).
type Archived = (String, Vec<(EventId, String, Version)>);

/// Archives into a shared list; fails its first call when `fail_first`.
#[derive(Clone, Default)]
struct Archive {
    seen: Arc<Mutex<Vec<Archived>>>,
    fail_first: Arc<AtomicBool>,
}

impl Archive {
    fn failing_once() -> Self {
        let a = Self::default();
        a.fail_first.store(true, Ordering::SeqCst);
        a
    }

    async fn close(&self, app: &Act, targets: &[CloseTarget]) -> Result<CloseReport, ActError> {
        let (seen, fail) = (self.seen.clone(), self.fail_first.clone());
        app.close_with(targets.to_vec(), move |stream, events| {
            let (seen, fail) = (seen.clone(), fail.clone());
            async move {
                if fail.swap(false, Ordering::SeqCst) {
                    return Err::<(), BoxError>("archive unavailable".into());
                }
                let events = events
                    .iter()
                    .map(|e| (e.id, e.name.clone(), e.version))
                    .collect();
                seen.lock().unwrap().push((stream, events));
                Ok(())
            }
        })
        .await
    }

    fn archived(&self) -> Vec<Archived> {
        self.seen.lock().unwrap().clone()
    }
}

fn target(stream: &str, restart: bool) -> CloseTarget {
    if restart {
        CloseTarget::restart::<Counter>(stream)
    } else {
        CloseTarget::new(stream)
    }
}

// ---- retire, restart, idempotence ------------------------------------------------------

async fn retire_and_restart(backend: Backend) {
    let mut env = Env::default();
    let store = env.store(backend).await;
    let app = counter_app(store.clone());
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    app.on(move |e| {
        if let Lifecycle::Closed(report) = e {
            r.lock().unwrap().push((*report).clone());
        }
    });
    for by in [1, 2, 3] {
        inc(&app, "gone", by).await.unwrap();
        inc(&app, "again", by * 10).await.unwrap();
    }
    let before = app.load::<Counter>("again").await.unwrap().state;

    let report = app
        .close([
            target("gone", false),
            target("again", true),
            target("never", false),
        ])
        .await
        .unwrap();
    let streams: Vec<(&str, bool, bool, u64)> = report
        .closed
        .iter()
        .map(|c| (c.stream.as_str(), c.restarted, c.resumed, c.deleted))
        .collect();
    // three events and the guard tombstone each
    assert_eq!(
        streams,
        [("gone", false, false, 4), ("again", true, false, 4)],
        "{backend:?}"
    );
    assert_eq!(report.skip_reason("never"), Some(&SkipReason::NotFound));
    assert_eq!(
        *reports.lock().unwrap(),
        std::slice::from_ref(&report),
        "one notification"
    );

    // retired: one tombstone at version 0, no more writes
    let gone = stored(store.as_ref(), "gone").await;
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!((gone[0].1.as_str(), gone[0].2), (TOMBSTONE_EVENT, 0));
    assert_eq!(gone[0].3, "{}", "a tombstone carries no data");
    assert!(app.is_closed("gone").await.unwrap());
    assert!(matches!(
        inc(&app, "gone", 1).await,
        Err(ActError::StreamClosed(e)) if e.stream == "gone"
    ));

    // restarted: one snapshot at version 0 with the same state, also for a fresh app
    let again = stored(store.as_ref(), "again").await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!((again[0].1.as_str(), again[0].2), (SNAPSHOT_EVENT, 0));
    assert!(!app.is_closed("again").await.unwrap());
    let warm = app.load::<Counter>("again").await.unwrap();
    assert!(
        warm.cache_hit,
        "the cache is warmed with the restarted state"
    );
    assert_eq!((warm.state.clone(), warm.version), (before.clone(), 0));
    let fresh = counter_app(store.clone());
    let cold = fresh.load::<Counter>("again").await.unwrap();
    assert_eq!((cold.state, cold.version), (before.clone(), 0));

    // closing twice changes nothing
    let all_before = stored_all(store.as_ref()).await;
    let twice = app
        .close([target("gone", false), target("again", true)])
        .await
        .unwrap();
    assert!(twice.closed.is_empty(), "{twice:?}");
    assert_eq!(twice.skip_reason("gone"), Some(&SkipReason::AlreadyClosed));
    assert_eq!(twice.skip_reason("again"), Some(&SkipReason::AlreadyClosed));
    assert_eq!(stored_all(store.as_ref()).await.len(), all_before.len());
    assert_eq!(stored(store.as_ref(), "gone").await, gone);
    assert_eq!(stored(store.as_ref(), "again").await, again);

    // the restarted stream goes on at version 1
    let next = inc(&app, "again", 5).await.unwrap();
    assert_eq!(next.snapshot.version, 1);
    assert_eq!(next.snapshot.state.count, before.count + 5);
    let cold = fresh.load::<Counter>("again").await.unwrap();
    assert_eq!((cold.state.count, cold.version), (before.count + 5, 1));

    // an empty close does nothing and tells no one
    let empty = app.close(Vec::<CloseTarget>::new()).await.unwrap();
    assert_eq!(empty, CloseReport::default());
    assert_eq!(reports.lock().unwrap().len(), 2);
    env.cleanup().await;
}

#[tokio::test]
async fn retire_restart_and_close_twice_on_memory() {
    retire_and_restart(Backend::Memory).await;
}

#[tokio::test]
async fn retire_restart_and_close_twice_on_sqlite() {
    retire_and_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn retire_restart_and_close_twice_on_postgres() {
    retire_and_restart(Backend::Postgres).await;
}

#[tokio::test]
async fn a_restart_needs_a_registered_state_that_owns_the_stream() {
    let app = act()
        .with_state::<Counter>()
        .with_state::<Cart>()
        .build()
        .unwrap();
    inc(&app, "c", 1).await.unwrap();
    let report = app
        .close([CloseTarget::restart::<Cart>("c")])
        .await
        .unwrap();
    assert_eq!(
        report.skip_reason("c"),
        Some(&SkipReason::NotOwned {
            state: "Cart",
            event: "Incremented".into()
        })
    );
    assert_eq!(stored(app.store().as_ref(), "c").await.len(), 1);

    let counters = counter_app(Arc::new(InMemoryStore::new()));
    inc(&counters, "c", 1).await.unwrap();
    let err = counters
        .close([CloseTarget::restart::<Cart>("c")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ActError::UnknownState(s) if s == "Cart"),
        "{err:?}"
    );
    let err = counters.close(["bad\nname"]).await.unwrap_err();
    assert!(matches!(err, ActError::Validation(_)), "{err:?}");
    assert_eq!(stored(counters.store().as_ref(), "c").await.len(), 1);
}

/// Two closes of one stream at once (SQLite runs off the task, so they interleave): one
/// closes it, the other finds it closed; the stream is seeded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_closes_at_once_close_a_stream_once() {
    let mut env = Env::default();
    let store = env.store(Backend::Sqlite).await;
    let app = counter_app(store.clone());
    for by in [1, 2, 3] {
        inc(&app, "s", by).await.unwrap();
    }
    let (a, b) = tokio::join!(
        app.close([target("s", true)]),
        app.close([target("s", true)])
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let closed = [&a, &b].iter().filter(|r| r.is_closed("s")).count();
    assert_eq!(closed, 1, "{a:?} {b:?}");
    let other = if a.is_closed("s") { &b } else { &a };
    assert_eq!(other.skip_reason("s"), Some(&SkipReason::AlreadyClosed));
    let left = stored(store.as_ref(), "s").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(app.load::<Counter>("s").await.unwrap().state.count, 6);
    env.cleanup().await;
}

#[tokio::test]
async fn a_stream_listed_twice_is_closed_once() {
    let app = counter_app(Arc::new(InMemoryStore::new()));
    inc(&app, "c", 1).await.unwrap();
    let report = app.close(["c", "c"]).await.unwrap();
    assert_eq!(report.closed.len(), 1);
    assert_eq!(report.skip_reason("c"), Some(&SkipReason::Duplicate));
}

#[tokio::test]
async fn the_archive_sees_every_event_before_the_tombstone_without_snapshots() {
    for backend in BACKENDS {
        archive_without_snapshots(backend).await;
    }
}

/// A cart (snapshots every 3 events) retired with an archive; then the same on a restart.
async fn archive_without_snapshots(backend: Backend) {
    let mut env = Env::default();
    let store = env.store(backend).await;
    let app = act()
        .with_state::<Cart>()
        .with_store_arc(store.clone())
        .build()
        .unwrap();
    for sku in ["a", "b", "c", "d"] {
        app.execute(
            AddItem {
                sku: sku.into(),
                qty: 1,
            },
            Target::new("cart", actor()),
        )
        .await
        .unwrap();
    }
    let all = stored(store.as_ref(), "cart").await;
    assert!(all.iter().any(|e| e.1 == SNAPSHOT_EVENT), "{all:?}");
    let archive = Archive::default();
    let report = archive
        .close(&app, &[CloseTarget::new("cart")])
        .await
        .unwrap();
    assert!(report.is_closed("cart"));
    let expected: Vec<(EventId, String, Version)> = all
        .into_iter()
        .filter(|e| e.1 != SNAPSHOT_EVENT)
        .map(|e| (e.0, e.1, e.2))
        .collect();
    assert_eq!(
        archive.archived(),
        [("cart".to_owned(), expected)],
        "{backend:?}"
    );

    // a restart of a stream whose head is a snapshot
    for sku in ["a", "b", "c"] {
        app.execute(
            AddItem {
                sku: sku.into(),
                qty: 2,
            },
            Target::new("cart-2", actor()),
        )
        .await
        .unwrap();
    }
    let head = stored(store.as_ref(), "cart-2").await;
    assert_eq!(head.last().map(|e| e.1.as_str()), Some(SNAPSHOT_EVENT));
    let before = app.load::<Cart>("cart-2").await.unwrap().state;
    let report = archive
        .close(&app, &[CloseTarget::restart::<Cart>("cart-2")])
        .await
        .unwrap();
    assert!(report.is_closed("cart-2"), "{backend:?}: {report:?}");
    assert_eq!(archive.archived()[1].1.len(), 3, "{backend:?}");
    let fresh = act()
        .with_state::<Cart>()
        .with_store_arc(store.clone())
        .build()
        .unwrap();
    assert_eq!(fresh.load::<Cart>("cart-2").await.unwrap().state, before);
    env.cleanup().await;
}

#[tokio::test]
async fn a_panicking_archive_skips_its_stream_and_the_next_close_finishes() {
    for backend in BACKENDS {
        let mut env = Env::default();
        let store = env.store(backend).await;
        let app = counter_app(store.clone());
        for stream in ["p-1", "p-2"] {
            inc(&app, stream, 1).await.unwrap();
        }
        let targets = [CloseTarget::new("p-1"), CloseTarget::new("p-2")];
        let report = app
            .close_with(targets.to_vec(), |stream, _events| async move {
                if stream == "p-1" {
                    panic!("archive bucket gone");
                }
                Ok::<(), BoxError>(())
            })
            .await
            .unwrap();
        assert!(report.is_closed("p-2"), "{backend:?}: {report:?}");
        let skip = report.skipped.iter().find(|s| s.stream == "p-1");
        assert!(
            matches!(skip.map(|s| &s.reason), Some(SkipReason::ArchiveFailed(m)) if m.contains("archive bucket gone")),
            "{backend:?}: {report:?}"
        );
        // the panic touched nothing else: the app still writes, and a second close finishes
        inc(&app, "p-3", 1).await.unwrap();
        let archive = Archive::default();
        let report = archive
            .close(&app, &[CloseTarget::new("p-1")])
            .await
            .unwrap();
        assert!(report.is_closed("p-1"), "{backend:?}: {report:?}");
        assert_eq!(archive.archived().len(), 1, "{backend:?}");
        env.cleanup().await;
    }
}

#[tokio::test]
async fn a_rival_close_that_finished_first_keeps_the_event_written_on_its_seed() {
    for backend in BACKENDS {
        let mut env = Env::default();
        let inner = env.store(backend).await;
        let faulty = faulty(inner.clone());
        let app = counter_app(faulty.clone());
        inc(&app, "r", 1).await.unwrap();
        inc(&app, "r", 1).await.unwrap();
        faulty.arm(Fault::RivalClose);
        let report = app
            .close(vec![CloseTarget::restart::<Counter>("r")])
            .await
            .unwrap();
        assert!(!faulty.is_armed(), "{backend:?}: the rival never ran");
        assert!(report.closed.is_empty(), "{backend:?}: {report:?}");
        assert!(
            matches!(report.skipped.as_slice(), [s] if s.stream == "r" && s.reason == SkipReason::AlreadyClosed),
            "{backend:?}: {report:?}"
        );
        let events = stored(inner.as_ref(), "r").await;
        assert_eq!(
            events
                .iter()
                .map(|e| (e.1.as_str(), e.2))
                .collect::<Vec<_>>(),
            [(SNAPSHOT_EVENT, 0), ("Incremented", 1)],
            "{backend:?}"
        );
        let fresh = counter_app(inner.clone());
        assert_eq!(
            fresh.load::<Counter>("r").await.unwrap().state.count,
            102,
            "{backend:?}"
        );
        env.cleanup().await;
    }
}

#[tokio::test]
async fn a_writer_that_loaded_before_another_process_retired_the_stream_gets_stream_closed() {
    for backend in BACKENDS {
        let mut env = Env::default();
        let inner = env.store(backend).await;
        let faulty = faulty(inner.clone());
        let app = counter_app(faulty.clone());
        // one event: the writer's expected version (0) is the seed's version after a retire
        inc(&app, "w", 1).await.unwrap();
        faulty.arm(Fault::RivalRetire);
        let refused = inc(&app, "w", 1).await;
        assert!(!faulty.is_armed(), "{backend:?}: the rival never ran");
        assert!(
            matches!(&refused, Err(ActError::StreamClosed(c)) if c.stream == "w"),
            "{backend:?}: {refused:?}"
        );
        let events = stored(inner.as_ref(), "w").await;
        assert_eq!(
            events
                .iter()
                .map(|e| (e.1.as_str(), e.2))
                .collect::<Vec<_>>(),
            [(TOMBSTONE_EVENT, 0)],
            "{backend:?}: the retired stream stays closed"
        );
        assert!(app.is_closed("w").await.unwrap(), "{backend:?}");
        env.cleanup().await;
    }
}

// ---- a fault in each phase -------------------------------------------------------------

async fn fault_then_finish(backend: Backend, fault: Fault, restart: bool) {
    let mut env = Env::default();
    let faulty = faulty(env.store(backend).await);
    let app = counter_app(faulty.clone());
    for by in [1, 2, 3] {
        inc(&app, "s", by).await.unwrap();
    }
    let archive = if fault == Fault::Archive {
        Archive::failing_once()
    } else {
        Archive::default()
    };
    if fault != Fault::Archive {
        faulty.arm(fault);
    }
    let targets = [target("s", restart)];
    let case = format!("{backend:?} {fault:?} restart={restart}");

    let first = archive.close(&app, &targets).await;
    assert!(!faulty.is_armed(), "{case}: the fault was never hit");
    let guarded = match fault {
        Fault::HeadLookup | Fault::Guard => {
            assert!(
                matches!(first, Err(ActError::Store(_))),
                "{case}: {first:?}"
            );
            false
        }
        Fault::FinalState | Fault::Truncate => {
            assert!(
                matches!(first, Err(ActError::Store(_))),
                "{case}: {first:?}"
            );
            true
        }
        Fault::Archive => {
            let report = first.unwrap();
            assert!(
                matches!(report.skip_reason("s"), Some(SkipReason::ArchiveFailed(m)) if m == "archive unavailable"),
                "{case}: {report:?}"
            );
            true
        }
        Fault::Rows
        | Fault::RaceGuard
        | Fault::BlindCorrelation
        | Fault::RivalClose
        | Fault::RivalRetire => {
            unreachable!()
        }
    };
    assert_eq!(app.is_closed("s").await.unwrap(), guarded, "{case}");
    if guarded {
        // guarded: no more writes, even before the close finishes
        assert!(
            matches!(inc(&app, "s", 4).await, Err(ActError::StreamClosed(_))),
            "{case}"
        );
    } else {
        // untouched: still open
        inc(&app, "s", 4).await.unwrap();
    }
    let expected = app.load::<Counter>("s").await.unwrap().state;
    let domain: Vec<(EventId, String, Version)> = stored(faulty.as_ref(), "s")
        .await
        .into_iter()
        .filter(|e| e.1 == "Incremented")
        .map(|e| (e.0, e.1, e.2))
        .collect();

    let second = archive.close(&app, &targets).await.unwrap();
    assert_eq!(second.closed.len(), 1, "{case}: {second:?}");
    assert_eq!(second.closed[0].resumed, guarded, "{case}");
    assert_eq!(second.closed[0].restarted, restart, "{case}");
    // every archive run sees every event; a truncate that failed after the archive ran
    // makes the resumed close archive again (the archive is at least once)
    let runs = if fault == Fault::Truncate { 2 } else { 1 };
    assert_eq!(
        archive.archived(),
        vec![("s".to_owned(), domain); runs],
        "{case}"
    );
    let left = stored(faulty.as_ref(), "s").await;
    assert_eq!(left.len(), 1, "{case}: {left:?}");
    if restart {
        assert_eq!(
            (left[0].1.as_str(), left[0].2),
            (SNAPSHOT_EVENT, 0),
            "{case}"
        );
        assert_eq!(
            app.load::<Counter>("s").await.unwrap().state,
            expected,
            "{case}"
        );
        assert_eq!(
            inc(&app, "s", 1).await.unwrap().snapshot.version,
            1,
            "{case}"
        );
    } else {
        assert_eq!(
            (left[0].1.as_str(), left[0].2),
            (TOMBSTONE_EVENT, 0),
            "{case}"
        );
        assert!(
            matches!(inc(&app, "s", 1).await, Err(ActError::StreamClosed(_))),
            "{case}"
        );
        let third = archive.close(&app, &targets).await.unwrap();
        assert_eq!(third.skip_reason("s"), Some(&SkipReason::AlreadyClosed));
    }
    env.cleanup().await;
}

async fn every_fault(backend: Backend) {
    for fault in [
        Fault::HeadLookup,
        Fault::Guard,
        Fault::Archive,
        Fault::Truncate,
    ] {
        for restart in [false, true] {
            fault_then_finish(backend, fault, restart).await;
        }
    }
    // only a restart loads the final state
    fault_then_finish(backend, Fault::FinalState, true).await;
}

#[tokio::test]
async fn a_fault_in_each_phase_leaves_a_stream_the_next_close_finishes_on_memory() {
    every_fault(Backend::Memory).await;
}

#[tokio::test]
async fn a_fault_in_each_phase_leaves_a_stream_the_next_close_finishes_on_sqlite() {
    every_fault(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_fault_in_each_phase_leaves_a_stream_the_next_close_finishes_on_postgres() {
    every_fault(Backend::Postgres).await;
}

// ---- concurrent writers ----------------------------------------------------------------

async fn a_writer_racing_the_guard(backend: Backend) {
    let mut env = Env::default();
    let faulty = faulty(env.store(backend).await);
    let app = counter_app(faulty.clone());
    inc(&app, "s", 1).await.unwrap();
    faulty.arm(Fault::RaceGuard);
    let report = app.close(["s"]).await.unwrap();
    assert!(!faulty.is_armed());
    assert_eq!(
        report.skip_reason("s"),
        Some(&SkipReason::ConcurrentWrite {
            expected: 0,
            actual: 1
        }),
        "{backend:?}"
    );
    // the racer's event is kept and the stream is open
    assert!(!app.is_closed("s").await.unwrap());
    assert_eq!(app.load::<Counter>("s").await.unwrap().state.count, 101);
    inc(&app, "s", 1).await.unwrap();
    let report = app.close(["s"]).await.unwrap();
    assert!(report.is_closed("s"), "{report:?}");
    env.cleanup().await;
}

/// Writers hammer one stream while it is closed (again and again, until a close wins):
/// every write that succeeded is in the archive, every other one failed with
/// `StreamClosed` or lost a race.
async fn writers_during_close(backend: Backend) {
    let mut env = Env::default();
    let store = env.store(backend).await;
    let app = counter_app(store.clone());
    // a stream of one event: a writer that loaded it at version 0 before the guard must
    // not commit after the truncate, when the stream is at version 0 again
    for round in 0..5 {
        writers_during_close_of(&app, backend, &format!("hot-{round}")).await;
    }
    env.cleanup().await;
}

async fn writers_during_close_of(app: &Act, backend: Backend, hot: &str) {
    const WRITERS: usize = 4;
    const WRITES: usize = 40;
    let first = inc(app, hot, 1).await.unwrap().events[0].id;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (app, hot) = (app.clone(), hot.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            for i in 0..WRITES {
                match inc(&app, &hot, (w * WRITES + i) as i64).await {
                    Ok(done) => ok.push(done.events[0].id),
                    Err(ActError::StreamClosed(_)) => break,
                    Err(ActError::Concurrency(_)) => {}
                    Err(other) => panic!("a writer failed with {other:?}"),
                }
            }
            ok
        }));
    }
    let archive = Archive::default();
    let mut closes = 0;
    let report = loop {
        closes += 1;
        let report = archive.close(app, &[CloseTarget::new(hot)]).await.unwrap();
        if report.is_closed(hot) {
            break report;
        }
        assert!(
            matches!(
                report.skip_reason(hot),
                Some(SkipReason::ConcurrentWrite { .. })
            ),
            "{report:?}"
        );
        assert!(closes < 10_000, "the close never won");
        tokio::task::yield_now().await;
    };
    let mut written = vec![first];
    for t in tasks {
        written.extend(t.await.unwrap());
    }
    let archived: Vec<EventId> = archive.archived()[0].1.iter().map(|e| e.0).collect();
    for id in &written {
        assert!(
            archived.contains(id),
            "{backend:?}: event {id} was acknowledged but is not archived"
        );
    }
    assert_eq!(archived.len(), written.len(), "{backend:?}: {report:?}");
    assert_eq!(
        archive.archived().len(),
        1,
        "one archive, by the close that won"
    );
    assert!(app.is_closed(hot).await.unwrap(), "{backend:?}: reopened");
}

#[tokio::test]
async fn a_writer_racing_the_guard_keeps_its_event_on_memory() {
    a_writer_racing_the_guard(Backend::Memory).await;
}

#[tokio::test]
async fn a_writer_racing_the_guard_keeps_its_event_on_sqlite() {
    a_writer_racing_the_guard(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_writer_racing_the_guard_keeps_its_event_on_postgres() {
    a_writer_racing_the_guard(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_during_a_close_lose_no_event() {
    for backend in BACKENDS {
        writers_during_close(backend).await;
    }
}

// ---- pending reactions -----------------------------------------------------------------

#[reaction(on = CounterEvent::Incremented, to = "ledger")]
async fn to_ledger(e: &Committed<CounterEvent>, app: &Scope) -> Result<(), ReactionError> {
    app.execute(
        Record {
            line: format!("{}#{}", e.stream, e.version),
        },
        Target::new("ledger", actor()),
    )
    .await?;
    Ok(())
}

fn audit_of(e: &Committed<CounterEvent>) -> Option<Resolved> {
    Some(Resolved::to(format!("audit-{}", e.stream)).from_stream(&e.stream))
}

#[reaction(on = CounterEvent::Incremented, to = audit_of)]
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

async fn pending_reactions(backend: Backend) {
    let mut env = Env::default();
    let faulty = faulty(env.store(backend).await);
    let app = act()
        .with_state::<Counter>()
        .with_state::<Ledger>()
        .with_reaction(to_ledger)
        .with_reaction(audit)
        .with_store_arc(faulty.clone())
        .build()
        .unwrap();
    inc(&app, "c-1", 1).await.unwrap();
    inc(&app, "c-1", 2).await.unwrap();
    let before = stored(faulty.as_ref(), "c-1").await;

    // the dynamic target is only known once the close has correlated
    let report = app.close(["c-1"]).await.unwrap();
    assert_eq!(
        report.skip_reason("c-1"),
        Some(&SkipReason::PendingReactions {
            targets: vec!["audit-c-1".into(), "ledger".into()]
        }),
        "{backend:?}"
    );
    assert_eq!(stored(faulty.as_ref(), "c-1").await, before, "untouched");
    inc(&app, "c-1", 3).await.unwrap();

    // a failing safety probe fails the close and touches nothing
    faulty.arm(Fault::Rows);
    assert!(matches!(app.close(["c-1"]).await, Err(ActError::Store(_))));
    assert!(!app.is_closed("c-1").await.unwrap());

    app.settle_now(SettleOptions::default()).await.unwrap();
    assert_eq!(
        app.load::<Ledger>("ledger")
            .await
            .unwrap()
            .state
            .lines
            .len(),
        3
    );
    let report = app.close(["c-1"]).await.unwrap();
    assert!(report.is_closed("c-1"), "{backend:?}: {report:?}");
    // the targets' own streams have no reactions: they close at once
    let report = app.close(["ledger", "audit-c-1"]).await.unwrap();
    assert_eq!(report.closed.len(), 2, "{report:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn pending_reactions_skip_a_stream_until_drained_on_memory() {
    pending_reactions(Backend::Memory).await;
}

#[tokio::test]
async fn pending_reactions_skip_a_stream_until_drained_on_sqlite() {
    pending_reactions(Backend::Sqlite).await;
}

#[tokio::test]
async fn pending_reactions_skip_a_stream_until_drained_on_postgres() {
    pending_reactions(Backend::Postgres).await;
}

/// Correlation that cannot catch up with a stream's events (here: it sees none) leaves
/// their dynamic reactions unknown: the stream is skipped until it can.
#[tokio::test]
async fn a_stream_past_the_correlation_checkpoint_is_skipped() {
    let faulty = faulty(Arc::new(InMemoryStore::new()));
    let app = act()
        .with_state::<Counter>()
        .with_state::<Ledger>()
        .with_reaction(audit)
        .with_store_arc(faulty.clone())
        .build()
        .unwrap();
    inc(&app, "c-1", 1).await.unwrap();
    faulty.arm(Fault::BlindCorrelation);
    let report = app.close(["c-1"]).await.unwrap();
    assert_eq!(
        report.skip_reason("c-1"),
        Some(&SkipReason::CorrelationBehind { checkpoint: -1 })
    );
    *faulty.armed.lock().unwrap() = None;
    let report = app.close(["c-1"]).await.unwrap();
    assert_eq!(
        report.skip_reason("c-1"),
        Some(&SkipReason::PendingReactions {
            targets: vec!["audit-c-1".into()]
        })
    );
    app.settle_now(SettleOptions::default()).await.unwrap();
    assert!(app.close(["c-1"]).await.unwrap().is_closed("c-1"));
}

#[tokio::test]
async fn an_app_without_reactions_never_reads_the_subscriptions() {
    let faulty = faulty(Arc::new(InMemoryStore::new()));
    let app = counter_app(faulty.clone());
    inc(&app, "c", 1).await.unwrap();
    faulty.arm(Fault::Rows);
    let report = app.close(["c"]).await.unwrap();
    assert!(report.is_closed("c"));
    assert!(faulty.is_armed(), "the safety check read the subscriptions");
}

// ---- property --------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Add(u8, u32),
    Remove(u8),
    CheckOut,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 1u32..5).prop_map(|(s, q)| Op::Add(s, q)),
        2 => (0u8..3).prop_map(Op::Remove),
        1 => Just(Op::CheckOut),
    ]
}

const CARTS: [&str; 3] = ["cart-a", "cart-b", "cart-c"];

async fn apply(app: &Act, stream: &str, op: &Op) -> Result<(), ActError> {
    let t = Target::new(stream, actor());
    let r = match op {
        Op::Add(s, qty) => app
            .execute(
                AddItem {
                    sku: format!("sku-{s}"),
                    qty: *qty,
                },
                t,
            )
            .await
            .map(|_| ()),
        Op::Remove(s) => app
            .execute(
                RemoveItem {
                    sku: format!("sku-{s}"),
                },
                t,
            )
            .await
            .map(|_| ()),
        Op::CheckOut => app.execute(CheckOut, t).await.map(|_| ()),
    };
    match r {
        Err(ActError::Invariant(_) | ActError::Rejected { .. }) => Ok(()),
        other => other,
    }
}

fn cart_target(stream: &str, restart: bool) -> CloseTarget {
    if restart {
        CloseTarget::restart::<Cart>(stream)
    } else {
        CloseTarget::new(stream)
    }
}

async fn close_property(ops: Vec<(usize, Op)>, restart: [bool; 3]) -> Result<(), TestCaseError> {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let cart_app = || {
        act()
            .with_state::<Cart>()
            .with_store_arc(store.clone())
            .build()
            .unwrap()
    };
    let app = cart_app();
    for (s, op) in &ops {
        apply(&app, CARTS[*s], op).await.unwrap();
    }
    let mut before = Vec::new();
    for s in CARTS {
        before.push(app.load::<Cart>(s).await.unwrap());
    }
    let targets: Vec<CloseTarget> = CARTS
        .iter()
        .zip(restart)
        .map(|(s, r)| cart_target(s, r))
        .collect();
    let report = app.close(targets.clone()).await.unwrap();
    let closed_once = stored_all(store.as_ref()).await;

    for (i, s) in CARTS.into_iter().enumerate() {
        let existed = before[i].version >= 0;
        if !existed {
            prop_assert_eq!(report.skip_reason(s), Some(&SkipReason::NotFound));
            continue;
        }
        prop_assert!(report.is_closed(s), "{} {:?}", s, report);
        let left = stored(store.as_ref(), s).await;
        prop_assert_eq!(left.len(), 1);
        prop_assert_eq!(left[0].2, 0);
        if restart[i] {
            prop_assert_eq!(left[0].1.as_str(), SNAPSHOT_EVENT);
            prop_assert!(!app.is_closed(s).await.unwrap());
            let warm = app.load::<Cart>(s).await.unwrap();
            prop_assert_eq!(&warm.state, &before[i].state);
            let cold = cart_app().load::<Cart>(s).await.unwrap();
            prop_assert_eq!(&cold.state, &before[i].state);
        } else {
            prop_assert_eq!(left[0].1.as_str(), TOMBSTONE_EVENT);
            prop_assert!(app.is_closed(s).await.unwrap());
            let r = apply(&app, s, &Op::Add(0, 1)).await;
            prop_assert!(matches!(r, Err(ActError::StreamClosed(_))), "{:?}", r);
            let r = apply(&cart_app(), s, &Op::CheckOut).await;
            prop_assert!(
                matches!(r, Err(ActError::StreamClosed(_))),
                "a fresh app: {:?}",
                r
            );
        }
    }

    // closing twice changes nothing
    let again = app.close(targets).await.unwrap();
    prop_assert!(again.closed.is_empty(), "{:?}", again);
    for (i, s) in CARTS.into_iter().enumerate() {
        let expected = if before[i].version >= 0 {
            SkipReason::AlreadyClosed
        } else {
            SkipReason::NotFound
        };
        prop_assert_eq!(again.skip_reason(s), Some(&expected));
    }
    prop_assert_eq!(stored_all(store.as_ref()).await, closed_once);

    // a restarted cart goes on from the same state, at version 1
    for (i, s) in CARTS.into_iter().enumerate() {
        if !restart[i] || before[i].version < 0 {
            continue;
        }
        let more = app
            .execute(
                AddItem {
                    sku: "more".into(),
                    qty: 1,
                },
                Target::new(s, actor()),
            )
            .await;
        if before[i].state.checked_out {
            prop_assert!(matches!(more, Err(ActError::Invariant(_))), "{:?}", more);
        } else {
            let more = more.unwrap();
            prop_assert_eq!(more.snapshot.version, 1);
            let mut expected = before[i].state.clone();
            expected.items.push(("more".into(), 1));
            prop_assert_eq!(&more.snapshot.state, &expected);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn close_retires_or_restarts_random_carts_and_is_idempotent(
        ops in proptest::collection::vec((0usize..3, op()), 0..24),
        restart in proptest::array::uniform3(any::<bool>()),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(close_property(ops, restart))?;
    }
}
