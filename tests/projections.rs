//! Projections: fed by the drain at least once and applied exactly once (checkpointed),
//! in batches or one by one, with a catch-up status, gap rewinds, rebuilds beside the live
//! model, and a rebuild killed halfway that leaves the live model served and correct. On
//! the in-memory store, SQLite and PostgreSQL.

extern crate act_runtime as act;

#[path = "pg_support.rs"]
mod pg_support;
#[path = "../examples/sales_model.rs"]
mod sales_model;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use act_runtime::adapters::SqliteStore;
use act_runtime::error::BuildError;
use act_runtime::prelude::*;
use act_runtime::projections::{
    Batch, Model, Projection, RebuildError, RebuildOptions, RebuildPhase,
};
use act_runtime::reactions::ReactionError;
use act_tests::TempDb;
use sales_model::{Cart, CartEvent, CheckOut, DayRow, LIVE, NEXT, SalesByDay};

// ---- an in-memory read model ------------------------------------------------------------

/// One copy of the model: the checkpoint, the totals by day, and every id applied.
#[derive(Debug, Clone, Default, PartialEq)]
struct Tally {
    checkpoint: Option<i64>,
    by_day: BTreeMap<String, (f64, i64)>,
    ids: Vec<i64>,
}

#[derive(Debug, Default)]
struct Books {
    live: Tally,
    next: Tally,
    /// The size of every batch applied.
    batches: Vec<usize>,
    /// Fail every apply with this message.
    fail: Option<String>,
    /// Pause this long before each batch applied to the next copy.
    pace: Duration,
}

#[derive(Clone, Default)]
struct Mem<const BATCH: bool>(Arc<Mutex<Books>>);

impl<const B: bool> Mem<B> {
    fn live(&self) -> Tally {
        self.0.lock().unwrap().live.clone()
    }
}

impl<const B: bool> Projection for Mem<B> {
    type Event = CartEvent;
    const NAME: &'static str = "tally";
    const BATCH: bool = B;
    const OPTIONS: act::reactions::ReactionOptions = act::reactions::ReactionOptions {
        max_retries: 1,
        ..act::reactions::ReactionOptions::DEFAULT
    };

    async fn apply(&self, batch: Batch<'_, CartEvent>) -> Result<(), ReactionError> {
        let pace = self.0.lock().unwrap().pace;
        if batch.model == Model::Next && !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        let mut books = self.0.lock().unwrap();
        if let Some(why) = &books.fail {
            return Err(ReactionError::retry(why.clone()));
        }
        books.batches.push(batch.events.len());
        let tally = match batch.model {
            Model::Live => &mut books.live,
            Model::Next => &mut books.next,
        };
        for e in batch.since(tally.checkpoint)? {
            let CartEvent::CheckedOut { total, timestamp } = &e.data;
            let day = tally.by_day.entry(timestamp[..10].to_owned()).or_default();
            day.0 += total;
            day.1 += 1;
            tally.ids.push(e.id);
        }
        tally.checkpoint = batch.last_id().max(tally.checkpoint);
        Ok(())
    }

    async fn clear_next(&self) -> Result<(), ReactionError> {
        self.0.lock().unwrap().next = Tally::default();
        Ok(())
    }

    async fn promote_next(&self) -> Result<(), ReactionError> {
        let mut books = self.0.lock().unwrap();
        books.live = std::mem::take(&mut books.next);
        Ok(())
    }
}

// ---- helpers --------------------------------------------------------------------------

fn cashier() -> Actor {
    Actor::new("c-1", "cashier")
}

/// Checkout `i`: a cart of its own, on one of three days.
fn checkout(i: usize) -> (String, CheckOut) {
    let day = 1 + i % 3;
    (
        format!("Cart-{i}"),
        CheckOut {
            total: (i % 7) as f64 + 0.5,
            timestamp: format!("2024-06-0{day}T10:00:00Z"),
        },
    )
}

/// The totals the first `n` checkouts add up to.
fn expected(range: std::ops::Range<usize>) -> BTreeMap<String, (f64, i64)> {
    let mut by_day: BTreeMap<String, (f64, i64)> = BTreeMap::new();
    for i in range {
        let (_, c) = checkout(i);
        let d = by_day.entry(c.timestamp[..10].to_owned()).or_default();
        d.0 += c.total;
        d.1 += 1;
    }
    by_day
}

async fn check_out(app: &Act, range: std::ops::Range<usize>) {
    for i in range {
        let (cart, action) = checkout(i);
        app.execute(action, Target::new(cart, cashier()))
            .await
            .unwrap();
    }
}

async fn settle(app: &Act) -> DrainSummary {
    app.settle_now(SettleOptions {
        debounce: Duration::ZERO,
        ..SettleOptions::default()
    })
    .await
    .unwrap()
}

/// Each id once, in increasing order.
fn once_in_order(ids: &[i64]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

fn app_on<const B: bool>(store: Arc<dyn Store>, model: &Mem<B>) -> Act {
    act()
        .with_state::<Cart>()
        .with_projection(model.clone())
        .with_store_arc(store)
        .build()
        .unwrap()
}

use act_runtime::ports::Store;

async fn sqlite_store(db: &TempDb) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&db.0).await.unwrap())
}

// ---- the drain feeds a projection ------------------------------------------------------

async fn fed_once_per_event<const B: bool>(store: Arc<dyn Store>) {
    let model = Mem::<B>::default();
    let app = app_on(store, &model);
    check_out(&app, 0..25).await;
    let before = &app.projections().await.unwrap()[0];
    assert_eq!((before.position, before.behind), (-1, 25));
    settle(&app).await;
    let live = model.live();
    assert_eq!(live.by_day, expected(0..25));
    assert_eq!(live.ids.len(), 25);
    assert!(once_in_order(&live.ids), "{:?}", live.ids);
    let status = &app.projections().await.unwrap()[0];
    assert!(status.caught_up(), "{status:?}");
    assert_eq!(status.head, live.checkpoint);
    assert_eq!(status.position, live.checkpoint.unwrap());
    let batches = model.0.lock().unwrap().batches.clone();
    if B {
        // all the claimed events of a pass at once (the drain's event limit is 10)
        assert!(batches.iter().any(|&n| n > 1), "{batches:?}");
    } else {
        assert!(batches.iter().all(|&n| n == 1), "{batches:?}");
    }

    // delivered again from the start (at least once): applied once still
    app.reset(&["tally".to_owned()]).await.unwrap();
    settle(&app).await;
    assert_eq!(model.live(), live);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_projection_applies_each_event_once_one_at_a_time() {
    fed_once_per_event::<false>(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
async fn a_batch_projection_receives_the_claimed_events_at_once() {
    fed_once_per_event::<true>(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
async fn projections_run_on_sqlite() {
    let db = TempDb::new("proj-fed");
    fed_once_per_event::<true>(sqlite_store(&db).await).await;
    let db = TempDb::new("proj-fed-one");
    fed_once_per_event::<false>(sqlite_store(&db).await).await;
}

#[tokio::test]
async fn projections_run_on_postgres() {
    let schemas = pg_support::Schemas::default();
    for batch in [true, false] {
        let store = schemas.store().await;
        store.seed().await.unwrap();
        if batch {
            fed_once_per_event::<true>(Arc::new(store)).await;
        } else {
            fed_once_per_event::<false>(Arc::new(store)).await;
        }
    }
    schemas.drop_all().await;
}

#[tokio::test]
async fn a_failing_projection_is_retried_then_blocked_with_its_error() {
    let model = Mem::<true>::default();
    model.0.lock().unwrap().fail = Some("the warehouse is down".into());
    let app = app_on(Arc::new(InMemoryStore::new()), &model);
    check_out(&app, 0..3).await;
    for _ in 0..4 {
        settle(&app).await;
    }
    let status = &app.projections().await.unwrap()[0];
    let why = status.blocked.as_deref().unwrap_or_default();
    assert!(why.contains("the warehouse is down"), "{status:?}");
    assert_eq!((status.position, status.behind), (-1, 3));

    // fixed and unblocked: it catches up
    model.0.lock().unwrap().fail = None;
    app.unblock(&["tally".to_owned()]).await.unwrap();
    settle(&app).await;
    assert_eq!(model.live().by_day, expected(0..3));
    assert!(app.projections().await.unwrap()[0].caught_up());
}

#[tokio::test]
async fn a_model_that_lost_its_rows_is_fed_again_from_the_start() {
    let model = Mem::<true>::default();
    let app = app_on(Arc::new(InMemoryStore::new()), &model);
    check_out(&app, 0..12).await;
    settle(&app).await;
    // the model is wiped behind the projection's back (a restored backup, a dropped table)
    model.0.lock().unwrap().live = Tally::default();
    check_out(&app, 12..15).await;
    settle(&app).await;
    settle(&app).await;
    let live = model.live();
    assert_eq!(live.by_day, expected(0..15));
    assert!(once_in_order(&live.ids) && live.ids.len() == 15);
}

#[act::reaction(on = CartEvent::CheckedOut, to = "tally")]
async fn steal(_: &Committed<CartEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[test]
fn a_projection_target_is_its_own() {
    let shared = act()
        .with_state::<Cart>()
        .with_projection(Mem::<true>::default())
        .with_reaction(steal)
        .build();
    assert!(matches!(
        shared,
        Err(BuildError::ProjectionTargetShared { ref projection, ref reaction })
            if projection == "tally" && reaction == "steal"
    ));
    let twice = act()
        .with_state::<Cart>()
        .with_projection(Mem::<true>::default())
        .with_projection(Mem::<false>::default())
        .build();
    assert!(matches!(twice, Err(BuildError::DuplicateProjection { ref name }) if name == "tally"));
    let unknown = act().with_projection(Mem::<true>::default()).build();
    assert!(matches!(unknown, Err(BuildError::UnknownEvent { .. })));
}

fn to_tally(_: &Committed<CartEvent>) -> Option<Resolved> {
    Some(Resolved::to("tally"))
}

#[act::reaction(on = CartEvent::CheckedOut, to = to_tally)]
async fn steal_dynamically(_: &Committed<CartEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[tokio::test]
async fn a_dynamic_resolver_that_names_a_projection_is_poison_and_the_projection_flows() {
    let model = Mem::<true>::default();
    let app = act()
        .with_state::<Cart>()
        .with_projection(model.clone())
        .with_reaction(steal_dynamically)
        .build()
        .unwrap();
    check_out(&app, 0..3).await;
    settle(&app).await;
    settle(&app).await;
    let live = model.live();
    assert_eq!(live.by_day, expected(0..3));
    assert!(once_in_order(&live.ids) && live.ids.len() == 3, "{live:?}");
    let blocked = app
        .store()
        .query_streams(&StreamFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.blocked)
        .collect::<Vec<_>>();
    assert!(!blocked.is_empty(), "the refused routes are held");
    assert!(
        blocked
            .iter()
            .all(|r| r.stream.contains("steal_dynamically")
                && r.error
                    .as_deref()
                    .is_some_and(|e| e.contains("a projection's"))),
        "{blocked:?}"
    );
    let status = app.projections().await.unwrap();
    assert!(status.iter().all(|s| s.blocked.is_none()), "{status:?}");
}

act::event_set! {
    /// A read model over two states' events.
    #[derive(Debug, Clone)]
    enum Activity {
        Cart(CartEvent),
        Counter(act_tests::counter::CounterEvent),
    }
}

/// The model of [`Both`]: checkpoint, checkouts, the sum of increments, ids applied.
type Activities = (Option<i64>, usize, i64, Vec<i64>);

/// Counts checkouts and sums increments, in one model fed from both states.
#[derive(Clone, Default)]
struct Both(Arc<Mutex<Activities>>);

impl Projection for Both {
    type Event = Activity;
    const NAME: &'static str = "activity";
    const BATCH: bool = true;

    async fn apply(&self, batch: Batch<'_, Activity>) -> Result<(), ReactionError> {
        let mut m = self.0.lock().unwrap();
        for e in batch.since(m.0)? {
            match &e.data {
                Activity::Cart(CartEvent::CheckedOut { .. }) => m.1 += 1,
                Activity::Counter(act_tests::counter::CounterEvent::Incremented { amount }) => {
                    m.2 += amount
                }
            }
            m.3.push(e.id);
        }
        m.0 = batch.last_id().max(m.0);
        Ok(())
    }
}

#[tokio::test]
async fn a_projection_reads_the_events_of_several_states() {
    let both = Both::default();
    let app = act()
        .with_state::<Cart>()
        .with_state::<act_tests::counter::Counter>()
        .with_projection(both.clone())
        .build()
        .unwrap();
    check_out(&app, 0..3).await;
    for by in [2, 5] {
        app.execute(
            act_tests::counter::Increment { by },
            Target::new("n-1", cashier()),
        )
        .await
        .unwrap();
    }
    check_out(&app, 3..4).await;
    settle(&app).await;
    let m = both.0.lock().unwrap().clone();
    assert_eq!((m.1, m.2), (4, 7));
    assert!(once_in_order(&m.3) && m.3.len() == 6, "{:?}", m.3);
    // the diagram and the status know it reads both states' events
    let status = app.projections().await.unwrap();
    assert!(
        status
            .iter()
            .any(|s| s.name == "activity" && s.blocked.is_none())
    );
    let diagram = app.diagram();
    assert!(diagram.contains("activity"), "{diagram}");
    // a projection whose set holds an event no registered state emits is refused
    let unknown = act()
        .with_state::<Cart>()
        .with_projection(Both::default())
        .build();
    assert!(
        matches!(unknown, Err(BuildError::UnknownEvent { .. })),
        "{unknown:?}"
    );
}

// ---- rebuilds --------------------------------------------------------------------------

#[tokio::test]
async fn a_rebuild_fills_the_next_copy_while_the_live_one_is_fed_then_swaps() {
    let model = Mem::<true>::default();
    let app = app_on(Arc::new(InMemoryStore::new()), &model);
    check_out(&app, 0..40).await;
    settle(&app).await;
    model.0.lock().unwrap().pace = Duration::from_millis(5);

    let seen: Arc<Mutex<Vec<RebuildPhase>>> = Arc::default();
    let phases = seen.clone();
    let options = RebuildOptions::default()
        .page(4)
        .on_progress(move |p| phases.lock().unwrap().push(p.phase));
    let rebuilding = {
        let app = app.clone();
        tokio::spawn(async move { app.rebuild("tally", options).await })
    };
    // commits and drains while the rebuild runs: the live copy keeps up
    for i in 40..50 {
        check_out(&app, i..i + 1).await;
        settle(&app).await;
        let live = model.live();
        assert!(live.ids.len() >= 40, "the live copy is served throughout");
    }
    let rebuilt = rebuilding.await.unwrap().unwrap();
    settle(&app).await;
    assert!(rebuilt.filled >= 40, "{rebuilt:?}");
    let live = model.live();
    assert_eq!(live.by_day, expected(0..50));
    assert!(
        once_in_order(&live.ids) && live.ids.len() == 50,
        "{:?}",
        live.ids
    );
    let phases = seen.lock().unwrap().clone();
    assert!(phases.contains(&RebuildPhase::Filling));
    assert_eq!(phases.last(), Some(&RebuildPhase::Done));
    assert!(app.projections().await.unwrap()[0].caught_up());
}

#[tokio::test]
async fn a_rebuild_that_fails_leaves_the_live_copy_alone() {
    #[derive(Clone, Default)]
    struct NoRebuild(Mem<true>);
    impl Projection for NoRebuild {
        type Event = CartEvent;
        const NAME: &'static str = "plain";
        async fn apply(&self, batch: Batch<'_, CartEvent>) -> Result<(), ReactionError> {
            self.0.apply(batch).await
        }
    }
    let model = NoRebuild::default();
    let app = act()
        .with_state::<Cart>()
        .with_projection(model.clone())
        .build()
        .unwrap();
    check_out(&app, 0..5).await;
    settle(&app).await;
    let before = model.0.live();
    let err = app.rebuild("plain", RebuildOptions::default()).await;
    assert!(
        matches!(&err, Err(RebuildError::Projection { phase: "clear_next", error, .. }) if error.contains("cannot be rebuilt")),
        "{err:?}"
    );
    assert_eq!(model.0.live(), before);
    assert!(matches!(
        app.rebuild("nope", RebuildOptions::default()).await,
        Err(RebuildError::Unknown(_))
    ));
}

// ---- the SQL model: a rebuild killed halfway -------------------------------------------

/// The child: rebuilds the SQLite-held projection slowly, saying `filling` on stdout once
/// the next table has rows, until it is killed.
#[tokio::test]
async fn rebuild_child() {
    let (Ok(store), Ok(model)) = (
        std::env::var("ACT_REBUILD_STORE"),
        std::env::var("ACT_REBUILD_MODEL"),
    ) else {
        return; // run by the parent only
    };
    let mut sales = SalesByDay::connect(&model).await.unwrap();
    sales.pace = Duration::from_millis(200);
    let app = act()
        .with_state::<Cart>()
        .with_projection(sales)
        .with_store(SqliteStore::open(&store).await.unwrap())
        .build()
        .unwrap();
    let options = RebuildOptions::default().page(5).on_progress(|p| {
        if p.phase == RebuildPhase::Filling {
            println!("filling {}", p.position);
        }
    });
    // The parent kills this process halfway; an error before that is printed for its
    // assertion message.
    match app.rebuild(SalesByDay::NAME, options).await {
        Ok(_) => println!("finished"),
        Err(e) => println!("finished with error: {}", act_runtime::error::chain(&e)),
    }
}

fn rows_of(by_day: &BTreeMap<String, (f64, i64)>) -> Vec<DayRow> {
    by_day
        .iter()
        .map(|(day, (total, n))| DayRow {
            day: day.clone(),
            total: *total,
            checkouts: *n,
        })
        .collect()
}

#[tokio::test]
async fn a_rebuild_killed_halfway_leaves_the_live_model_served_and_correct() {
    let store = TempDb::new("proj-kill-store");
    let model_db = TempDb::new("proj-kill-model");
    let model_url = format!("sqlite:{}?mode=rwc", model_db.0.display());
    let sales = SalesByDay::connect(&model_url).await.unwrap();
    let app = act()
        .with_state::<Cart>()
        .with_projection(sales.clone())
        .with_store(SqliteStore::open(&store.0).await.unwrap())
        .build()
        .unwrap();
    check_out(&app, 0..60).await;
    settle(&app).await;
    let live = sales.rows(LIVE).await.unwrap();
    assert_eq!(live, rows_of(&expected(0..60)));

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "rebuild_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ACT_REBUILD_STORE", &store.0)
        .env("ACT_REBUILD_MODEL", &model_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let halfway = tokio::task::spawn_blocking(move || {
        let mut fills = 0;
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.starts_with("filling") {
                fills += 1;
                if fills == 2 {
                    return Ok(());
                }
            }
            if line.starts_with("finished") {
                seen.push(line);
                return Err(seen);
            }
            seen.push(line);
        }
        Err(seen)
    });
    // the live model is served and fed while the child rebuilds
    check_out(&app, 60..64).await;
    settle(&app).await;
    if let Err(seen) = halfway.await.unwrap() {
        panic!("the child did not reach the middle of its rebuild; it printed {seen:#?}");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let next = sales.rows(NEXT).await.unwrap();
    let live = sales.rows(LIVE).await.unwrap();
    assert_eq!(
        live,
        rows_of(&expected(0..64)),
        "the live model is untouched"
    );
    let half: i64 = next.iter().map(|r| r.checkouts).sum();
    assert!(
        half > 0 && half < 64,
        "the next copy was half filled: {next:?}"
    );

    // served and fed after the kill; a rebuild in this process finishes the job
    check_out(&app, 64..66).await;
    settle(&app).await;
    let rebuilt = app
        .rebuild(SalesByDay::NAME, RebuildOptions::default().page(7))
        .await
        .unwrap();
    assert!(rebuilt.filled >= 66);
    settle(&app).await;
    let after = sales.rows(LIVE).await.unwrap();
    assert_eq!(after, rows_of(&expected(0..66)), "rebuilt row for row");
    assert_eq!(
        sales.checkpoint(LIVE).await.unwrap(),
        app.projections().await.unwrap()[0].head
    );
    app.shutdown().await.unwrap();
}

// ---- faults stay with the projection ---------------------------------------------------

/// Panics on every batch.
#[derive(Clone, Default)]
struct Panicky;

impl Projection for Panicky {
    type Event = CartEvent;
    const NAME: &'static str = "panicky";
    const OPTIONS: act::reactions::ReactionOptions = act::reactions::ReactionOptions {
        max_retries: 0,
        ..act::reactions::ReactionOptions::DEFAULT
    };

    async fn apply(&self, _: Batch<'_, CartEvent>) -> Result<(), ReactionError> {
        panic!("the model exploded")
    }
}

#[tokio::test]
async fn a_panicking_projection_is_blocked_and_the_others_flow() {
    let model = Mem::<true>::default();
    let app = act()
        .with_state::<Cart>()
        .with_projection(model.clone())
        .with_projection(Panicky)
        .build()
        .unwrap();
    check_out(&app, 0..4).await;
    settle(&app).await;
    let status = app.projections().await.unwrap();
    let panicky = status.iter().find(|s| s.name == "panicky").unwrap();
    assert!(
        panicky
            .blocked
            .as_deref()
            .is_some_and(|e| e.contains("the model exploded")),
        "{panicky:?}"
    );
    assert_eq!(
        model.live().by_day,
        expected(0..4),
        "the other projection flows"
    );
    // and the app still takes actions
    check_out(&app, 4..5).await;
    settle(&app).await;
    assert_eq!(model.live().by_day, expected(0..5));
}

#[tokio::test]
async fn an_event_the_projection_cannot_read_blocks_it_after_the_ones_before() {
    let model = Mem::<false>::default();
    let store = Arc::new(InMemoryStore::new());
    let app = app_on(store.clone(), &model);
    check_out(&app, 0..2).await;
    // a CheckedOut whose payload lost its total (written by another, buggy process)
    let bad = act_runtime::model::Message::new(
        "CheckedOut",
        serde_json::value::RawValue::from_string(r#"{"timestamp":"2024-06-01T00:00:00Z"}"#.into())
            .unwrap(),
    );
    let marks = [(0, act_runtime::ports::Subscription::new("tally"))];
    store
        .commit_marked("Cart-bad", &[bad], &EventMeta::empty(), None, &marks)
        .await
        .unwrap();
    check_out(&app, 2..3).await;
    settle(&app).await;
    let status = &app.projections().await.unwrap()[0];
    let why = status.blocked.as_deref().unwrap_or_default();
    assert!(why.contains("does not decode"), "{status:?}");
    assert_eq!(
        model.live().by_day,
        expected(0..2),
        "the events before it are applied"
    );
    assert_eq!(status.behind, 2, "the bad event and the one after it wait");
}
