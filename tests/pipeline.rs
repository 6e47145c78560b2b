//! The reaction pipeline under races and faults, on every store: reactions never commit from
//! stale state, a hanging or panicking handler stays with its stream, poison (a panicking
//! resolver, a refused target, an unreadable event) blocks only the stream it belongs to,
//! retries run with only the worker, and blocking keeps progress.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use act_runtime::adapters::SqliteStore;
use act_runtime::prelude::*;
use act_tests::actor;
use act_tests::counter::{Counter, CounterEvent, Increment};
use act_tests::ledger::{Ledger, LedgerEvent, Record};

// ---- stores ----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Kind {
    Memory,
    Sqlite,
}

/// A fresh store of `kind`; SQLite on a file (returned) so tests can reach under it.
async fn store(kind: Kind, name: &str) -> (Arc<dyn Store>, Option<std::path::PathBuf>) {
    match kind {
        Kind::Memory => (Arc::new(InMemoryStore::new()), None),
        Kind::Sqlite => {
            let path = std::env::temp_dir().join(format!(
                "act-pipeline-{}-{name}-{}.db",
                std::process::id(),
                uuid_like()
            ));
            let s = SqliteStore::open(&path).await.expect("open sqlite");
            (Arc::new(s), Some(path))
        }
    }
}

fn uuid_like() -> u128 {
    static N: AtomicUsize = AtomicUsize::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    t ^ (N.fetch_add(1, Ordering::SeqCst) as u128) << 100
}

/// Runs `body` once per store, each in its own multi-thread runtime test.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::$name(super::Kind::Memory).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name(super::Kind::Sqlite).await
            }
        }
    )*};
}

on_every_store!(
    reactions_never_overdraw_an_account_racing_with_users,
    a_handler_that_hangs_forever_blocks_only_its_stream_and_shutdown_returns,
    a_handler_slower_than_its_lease_never_runs_twice_at_once,
    a_panicking_resolver_blocks_its_poison_row_and_the_rest_flows,
    a_target_the_store_refuses_blocks_its_poison_row_and_the_rest_flows,
    a_source_pattern_the_store_refuses_blocks_that_target_only,
    a_handler_failing_twice_completes_with_only_the_worker_running,
    blocking_keeps_the_progress_made_before_the_failure,
    a_blocked_reason_names_the_cause_of_a_store_failure_once,
    a_panicking_handler_is_a_failure_with_its_message,
    an_incoming_correlation_id_is_kept_through_reaction_hops,
    settle_now_waits_for_the_drain_pass_already_running,
    settle_now_waits_for_the_worker_leases,
    settle_now_inside_a_worker_lease_does_not_wait_for_it,
);

/// Polls `check` until it holds (or fails after `within`).
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn worker_options(lease: Duration) -> WorkerOptions {
    WorkerOptions {
        poll: Duration::from_millis(20),
        drain: DrainOptions {
            stream_limit: 8,
            event_limit: 10,
            lease,
        },
        ..Default::default()
    }
}

fn log() -> &'static Mutex<HashMap<String, Vec<i64>>> {
    static LOG: OnceLock<Mutex<HashMap<String, Vec<i64>>>> = OnceLock::new();
    LOG.get_or_init(Default::default)
}

/// Records that `stream` handled event `id`.
fn handled(stream: &str, id: i64) {
    log()
        .lock()
        .unwrap()
        .entry(stream.to_owned())
        .or_default()
        .push(id);
}

fn handled_on(stream: &str) -> Vec<i64> {
    log()
        .lock()
        .unwrap()
        .get(stream)
        .cloned()
        .unwrap_or_default()
}

async fn inc(app: &Act, stream: &str) -> i64 {
    app.execute(Increment { by: 1 }, Target::new(stream, actor()))
        .await
        .unwrap()
        .events[0]
        .id
}

async fn blocked(app: &Act) -> Vec<StreamPositionView> {
    app.blocked_streams()
        .await
        .unwrap()
        .into_iter()
        .map(|p| StreamPositionView {
            stream: p.stream,
            at: p.at,
            error: p.error.unwrap_or_default(),
        })
        .collect()
}

#[derive(Debug, Clone)]
struct StreamPositionView {
    stream: String,
    at: i64,
    error: String,
}

fn tag(kind: Kind, name: &str) -> String {
    format!("{kind:?}-{name}").to_lowercase()
}

// ---- 1. no stale commits ---------------------------------------------------------------

mod bank {
    use act_runtime::prelude::*;

    #[state(name = "Account", actions(Deposit, Withdraw, RequestPayout))]
    #[derive(Debug, Clone, Default)]
    pub struct Account {
        pub balance: i64,
    }

    #[emits(Account)]
    #[derive(Debug, Clone)]
    pub enum AccountEvent {
        Deposited { amount: i64 },
        Withdrawn { amount: i64 },
        PayoutRequested { from: String, amount: i64 },
    }

    impl Patch<AccountEvent> for Account {
        fn patch(&mut self, e: &AccountEvent) {
            match e {
                AccountEvent::Deposited { amount } => self.balance += amount,
                AccountEvent::Withdrawn { amount } => self.balance -= amount,
                AccountEvent::PayoutRequested { .. } => {}
            }
        }
    }

    #[action(Account, emit = AccountEvent::Deposited)]
    pub struct Deposit {
        pub amount: i64,
    }

    /// Withdraws when the balance covers the amount.
    #[action(Account)]
    pub struct Withdraw {
        pub amount: i64,
    }

    impl Handle for Withdraw {
        fn handle(&self, state: &Account, _: &Target) -> Emit<AccountEvent> {
            if state.balance < self.amount {
                return Err(
                    format!("balance {} does not cover {}", state.balance, self.amount).into(),
                );
            }
            Ok(vec![AccountEvent::Withdrawn {
                amount: self.amount,
            }])
        }
    }

    #[action(Account, emit = AccountEvent::PayoutRequested)]
    pub struct RequestPayout {
        pub from: String,
        pub amount: i64,
    }
}

use bank::{Account, AccountEvent, Deposit, RequestPayout, Withdraw};

/// A payout request withdraws from the account it names: the reaction races the users.
#[reaction(on = AccountEvent::PayoutRequested, to = _this_, retries = 10)]
async fn pay_out(e: &Committed<AccountEvent>, app: &Scope) -> Result<(), ReactionError> {
    let AccountEvent::PayoutRequested { from, amount } = &e.data else {
        return Ok(());
    };
    match app
        .execute(
            Withdraw { amount: *amount },
            Target::new(from, act_tests::actor()),
        )
        .await
    {
        Ok(_) | Err(ActError::Rejected { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn reactions_never_overdraw_an_account_racing_with_users(kind: Kind) {
    let rounds = 30;
    for round in 0..rounds {
        let (store, _) = store(kind, "overdraw").await;
        let app = act()
            .with_store_arc(store)
            .with_state::<Account>()
            .with_reaction(pay_out)
            .build()
            .unwrap();
        let acct = format!("acct-{round}");
        app.execute(Deposit { amount: 100 }, Target::new(&acct, actor()))
            .await
            .unwrap();
        for i in 0..6 {
            app.execute(
                RequestPayout {
                    from: acct.clone(),
                    amount: 10,
                },
                Target::new(format!("req-{round}-{i}"), actor()),
            )
            .await
            .unwrap();
        }
        let drainer = {
            let app = app.clone();
            tokio::spawn(async move { app.settle_now(SettleOptions::default()).await })
        };
        let users: Vec<_> = (0..6)
            .map(|_| {
                let (app, acct) = (app.clone(), acct.clone());
                tokio::spawn(async move {
                    let _ = app
                        .execute(Withdraw { amount: 10 }, Target::new(acct, actor()))
                        .await;
                })
            })
            .collect();
        for u in users {
            u.await.unwrap();
        }
        drainer.await.unwrap().unwrap();
        app.settle_now(SettleOptions::default()).await.unwrap();
        let balance = app.load::<Account>(&acct).await.unwrap().state.balance;
        let withdrawn = app
            .query(&Query::stream(&acct).names(["Withdrawn"]))
            .await
            .unwrap()
            .len() as i64;
        assert!(balance >= 0, "round {round}: overdrawn to {balance}");
        assert_eq!(balance, 100 - 10 * withdrawn, "round {round}");
        app.shutdown().await.unwrap();
    }
}

// ---- 2. a hanging handler ----------------------------------------------------------------

#[reaction(on = CounterEvent::Incremented, to = _this_, timeout_ms = 200, retries = 1)]
async fn maybe_hang(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    if e.stream.ends_with("hang") {
        std::future::pending::<()>().await;
    }
    handled(&e.stream, e.id);
    Ok(())
}

#[reaction(on = LedgerEvent::Recorded, to = _this_, timeout_ms = 600000)]
async fn hang_long(_: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    std::future::pending::<()>().await;
    Ok(())
}

async fn a_handler_that_hangs_forever_blocks_only_its_stream_and_shutdown_returns(kind: Kind) {
    let t = tag(kind, "hang");
    let (store, _) = store(kind, "hang").await;
    let app = act()
        .with_store_arc(store)
        .with_state::<Counter>()
        .with_state::<Ledger>()
        .with_reaction(maybe_hang)
        .with_reaction(hang_long)
        .with_shutdown_grace(Duration::from_millis(500))
        .build()
        .unwrap();
    let _worker = app
        .start_with(worker_options(Duration::from_secs(5)))
        .unwrap();
    inc(&app, &format!("{t}-hang")).await;
    let healthy: Vec<String> = (0..5).map(|i| format!("{t}-ok-{i}")).collect();
    for s in &healthy {
        inc(&app, s).await;
    }
    // new work on healthy streams after the hang started is done too
    tokio::time::sleep(Duration::from_millis(50)).await;
    for s in &healthy {
        inc(&app, s).await;
    }
    eventually(
        Duration::from_secs(10),
        "healthy streams handled",
        || async { healthy.iter().all(|s| handled_on(s).len() == 2) },
    )
    .await;
    // the hanging stream times out, is retried once, then blocked with the timeout
    eventually(
        Duration::from_secs(10),
        "hanging stream blocked",
        || async {
            blocked(&app)
                .await
                .iter()
                .any(|b| b.stream.ends_with("-hang"))
        },
    )
    .await;
    let b = blocked(&app).await;
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(b[0].error.contains("timed out"), "{}", b[0].error);
    // a hang with a ten-minute timeout in flight: shutdown returns within its grace
    app.execute(
        Record { line: "x".into() },
        Target::new(format!("{t}-long"), actor()),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(5), app.shutdown())
        .await
        .expect("shutdown returns within its grace")
        .unwrap();
    assert!(matches!(
        app.execute(Increment { by: 1 }, Target::new("x", actor()))
            .await,
        Err(ActError::ShutDown)
    ));
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MAX_RUNNING: AtomicUsize = AtomicUsize::new(0);
static STARTS: AtomicUsize = AtomicUsize::new(0);

struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

#[reaction(on = LedgerEvent::Recorded, to = _this_, timeout_ms = 60000, retries = 2)]
async fn slow(e: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    STARTS.fetch_add(1, Ordering::SeqCst);
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MAX_RUNNING.fetch_max(now, Ordering::SeqCst);
    let _guard = Running;
    // four times the lease
    tokio::time::sleep(Duration::from_millis(1600)).await;
    handled(&e.stream, e.id);
    Ok(())
}

async fn a_handler_slower_than_its_lease_never_runs_twice_at_once(kind: Kind) {
    // the statics are shared by both store variants: run them one after the other
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = SERIAL.lock().await;
    MAX_RUNNING.store(0, Ordering::SeqCst);
    STARTS.store(0, Ordering::SeqCst);
    let t = tag(kind, "slow");
    let (store, _) = store(kind, "slow").await;
    let build = || {
        act()
            .with_store_arc(store.clone())
            .with_state::<Ledger>()
            .with_reaction(slow)
            .with_shutdown_grace(Duration::from_millis(100))
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    let stream = format!("{t}-1");
    a.execute(Record { line: "x".into() }, Target::new(&stream, actor()))
        .await
        .unwrap();
    let lease = Duration::from_millis(400);
    let _wa = a.start_with(worker_options(lease)).unwrap();
    let _wb = b.start_with(worker_options(lease)).unwrap();
    eventually(
        Duration::from_secs(15),
        "the slow stream is blocked",
        || async { !blocked(&a).await.is_empty() },
    )
    .await;
    assert_eq!(
        MAX_RUNNING.load(Ordering::SeqCst),
        1,
        "two drainers ran it at once"
    );
    assert!(handled_on(&stream).is_empty(), "stopped at every lease end");
    let err = &blocked(&a).await[0].error;
    assert!(err.contains("end of its lease"), "{err}");
    assert_eq!(STARTS.load(Ordering::SeqCst), 3, "1 attempt + 2 retries");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

// ---- 3. poison -------------------------------------------------------------------------

fn panicky(e: &Committed<CounterEvent>) -> Option<Resolved> {
    assert!(!e.stream.ends_with("-bad"), "cannot route {}", e.stream);
    Some(Resolved::to(format!("{}-audit", e.stream)).from_stream(&e.stream))
}

#[reaction(on = CounterEvent::Incremented, to = panicky)]
async fn audit_panicky(e: &Committed<CounterEvent>, app: &Scope) -> Result<(), ReactionError> {
    handled(app.stream(), e.id);
    Ok(())
}

async fn a_panicking_resolver_blocks_its_poison_row_and_the_rest_flows(kind: Kind) {
    let t = tag(kind, "panicky");
    let (store, _) = store(kind, "panicky").await;
    let app = act()
        .with_store_arc(store)
        .with_state::<Counter>()
        .with_reaction(audit_panicky)
        .build()
        .unwrap();
    inc(&app, &format!("{t}-a")).await;
    inc(&app, &format!("{t}-bad")).await;
    inc(&app, &format!("{t}-b")).await;
    // settle in the background survives; settle_now does not panic
    app.settle();
    app.settle_now(SettleOptions::default()).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "healthy targets handled",
        || async {
            handled_on(&format!("{t}-a-audit")).len() == 1
                && handled_on(&format!("{t}-b-audit")).len() == 1
        },
    )
    .await;
    let b = blocked(&app).await;
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(
        b[0].stream,
        format!(
            "{POISON}audit_panicky/{t}-bad",
            POISON = act_runtime::app::POISON_PREFIX
        )
    );
    assert!(b[0].error.contains("panicked"), "{}", b[0].error);
    assert!(
        b[0].error.contains(&format!("cannot route {t}-bad")),
        "{}",
        b[0].error
    );
    // later work still flows (the background settle may be the one that takes it: it
    // can hold the lease while settle_now passes over it)
    inc(&app, &format!("{t}-a")).await;
    app.settle_now(SettleOptions::default()).await.unwrap();
    eventually(Duration::from_secs(5), "later work handled", || async {
        app.settle_now(SettleOptions::default()).await.unwrap();
        handled_on(&format!("{t}-a-audit")).len() == 2
    })
    .await;
    app.shutdown().await.unwrap();
}

fn nul_target(e: &Committed<CounterEvent>) -> Option<Resolved> {
    if e.stream.ends_with("-bad") {
        Some(Resolved::to("audit\0oops"))
    } else {
        Some(Resolved::to(format!("{}-audit", e.stream)).from_stream(&e.stream))
    }
}

#[reaction(on = CounterEvent::Incremented, to = nul_target)]
async fn audit_nul(e: &Committed<CounterEvent>, app: &Scope) -> Result<(), ReactionError> {
    handled(app.stream(), e.id);
    Ok(())
}

async fn a_target_the_store_refuses_blocks_its_poison_row_and_the_rest_flows(kind: Kind) {
    let t = tag(kind, "nul");
    let (store, _) = store(kind, "nul").await;
    let app = act()
        .with_store_arc(store)
        .with_state::<Counter>()
        .with_reaction(audit_nul)
        .build()
        .unwrap();
    inc(&app, &format!("{t}-a")).await;
    inc(&app, &format!("{t}-bad")).await;
    inc(&app, &format!("{t}-b")).await;
    app.settle_now(SettleOptions::default()).await.unwrap();
    assert_eq!(handled_on(&format!("{t}-a-audit")).len(), 1);
    assert_eq!(handled_on(&format!("{t}-b-audit")).len(), 1);
    let b = blocked(&app).await;
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(
        b[0].stream.ends_with(&format!("audit_nul/{t}-bad")),
        "{b:?}"
    );
    assert!(b[0].error.contains("refused"), "{}", b[0].error);
    app.shutdown().await.unwrap();
}

/// `-bad`: a pattern that does not compile; `-rich`: one only a regex engine can express
/// (SQLite refuses it; in memory it is a regex that this stream is outside of).
fn bad_pattern(e: &Committed<CounterEvent>) -> Option<Resolved> {
    if e.stream.ends_with("-bad") {
        Some(Resolved::to(format!("{}-audit", e.stream)).from_pattern("acct-(["))
    } else if e.stream.ends_with("-rich") {
        Some(Resolved::to(format!("{}-audit", e.stream)).from_pattern("[a-z]+-rich$"))
    } else {
        Some(Resolved::to(format!("{}-audit", e.stream)).from_stream(&e.stream))
    }
}

#[reaction(on = CounterEvent::Incremented, to = bad_pattern)]
async fn audit_pattern(e: &Committed<CounterEvent>, app: &Scope) -> Result<(), ReactionError> {
    handled(app.stream(), e.id);
    Ok(())
}

async fn a_source_pattern_the_store_refuses_blocks_that_target_only(kind: Kind) {
    let t = tag(kind, "pattern");
    let (store, _) = store(kind, "pattern").await;
    let app = act()
        .with_store_arc(store)
        .with_state::<Counter>()
        .with_reaction(audit_pattern)
        .build()
        .unwrap();
    inc(&app, &format!("{t}-a")).await;
    inc(&app, &format!("{t}-bad")).await;
    inc(&app, &format!("{t}-rich")).await;
    inc(&app, &format!("{t}-b")).await;
    app.settle_now(SettleOptions::default()).await.unwrap();
    assert_eq!(handled_on(&format!("{t}-a-audit")).len(), 1);
    assert_eq!(handled_on(&format!("{t}-b-audit")).len(), 1);
    let b = blocked(&app).await;
    // Every store refuses a pattern outside the portable grammar the same way.
    let _ = kind;
    let expect = vec![
        format!("audit_pattern/{t}-bad"),
        format!("audit_pattern/{t}-rich"),
    ];
    let got: Vec<String> = b
        .iter()
        .map(|b| b.stream.replace(act_runtime::app::POISON_PREFIX, ""))
        .collect();
    assert_eq!(got, expect, "{b:?}");
    assert!(b.iter().all(|b| b.error.contains("refused")), "{b:?}");
    app.shutdown().await.unwrap();
}

// ---- 4. retries with only the worker -------------------------------------------------------

static FLAKY: OnceLock<Mutex<HashMap<(String, i64), usize>>> = OnceLock::new();

#[reaction(
    on = CounterEvent::Incremented,
    to = _this_,
    retries = 3,
    backoff(exponential, base_ms = 30, max_ms = 200)
)]
async fn twice_then_ok(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    let tries = {
        let mut m = FLAKY.get_or_init(Default::default).lock().unwrap();
        let n = m.entry((e.stream.clone(), e.id)).or_default();
        *n += 1;
        *n
    };
    if tries <= 2 {
        return Err(ReactionError::retry(format!("attempt {tries} fails")));
    }
    handled(&e.stream, e.id);
    Ok(())
}

async fn a_handler_failing_twice_completes_with_only_the_worker_running(kind: Kind) {
    let t = tag(kind, "flaky");
    let (store, _) = store(kind, "flaky").await;
    let app = act()
        .with_store_arc(store)
        .with_state::<Counter>()
        .with_reaction(twice_then_ok)
        .build()
        .unwrap();
    let retries = Arc::new(AtomicUsize::new(0));
    let r = retries.clone();
    app.on(move |l| {
        if let Lifecycle::Retrying(rs) = l {
            r.fetch_add(rs.len(), Ordering::SeqCst);
        }
    });
    let streams: Vec<String> = (0..3).map(|i| format!("{t}-{i}")).collect();
    let _worker = app.start().unwrap();
    for s in &streams {
        inc(&app, s).await;
    }
    eventually(
        Duration::from_secs(10),
        "3 of 3 done by the worker",
        || async { streams.iter().all(|s| handled_on(s).len() == 1) },
    )
    .await;
    assert_eq!(retries.load(Ordering::SeqCst), 6, "two retries per event");
    assert!(blocked(&app).await.is_empty());
    app.shutdown().await.unwrap();
}

// ---- 5. block keeps progress -----------------------------------------------------------

static FAIL_B: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();

#[reaction(on = LedgerEvent::Recorded, to = _this_)]
async fn abc(e: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    let LedgerEvent::Recorded { line } = &e.data;
    let fail = FAIL_B
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .get(&e.stream)
        .copied()
        .unwrap_or(true);
    if line == "b" && fail {
        return Err(ReactionError::fatal("b cannot be handled"));
    }
    handled(&e.stream, e.id);
    Ok(())
}

async fn blocking_keeps_the_progress_made_before_the_failure(kind: Kind) {
    let t = tag(kind, "abc");
    let (store, _) = store(kind, "abc").await;
    let app = act()
        .with_store_arc(store)
        .with_state::<Ledger>()
        .with_reaction(abc)
        .build()
        .unwrap();
    let mut ids = vec![];
    for line in ["a", "b", "c"] {
        let out = app
            .execute(Record { line: line.into() }, Target::new(&t, actor()))
            .await
            .unwrap();
        ids.push(out.events[0].id);
    }
    app.settle_now(SettleOptions::default()).await.unwrap();
    let b = blocked(&app).await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].at, ids[0], "blocked at the last event that succeeded");
    assert!(b[0].error.contains("b cannot be handled"), "{}", b[0].error);
    FAIL_B
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .insert(t.clone(), false);
    assert_eq!(app.unblock(&[t.as_str()]).await.unwrap(), 1);
    app.settle_now(SettleOptions::default()).await.unwrap();
    assert_eq!(handled_on(&t), ids, "a handled once, then b and c");
    app.shutdown().await.unwrap();
}

// ---- 5b. a blocked reason keeps the cause ------------------------------------------------

/// Fails every event with a store error: fatal on a stream ending in `-fatal`, retryable
/// (no retries, so it blocks at once) elsewhere.
#[reaction(on = LedgerEvent::Recorded, to = _this_, retries = 0)]
async fn store_down(e: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    let err = StoreError::backend("commit", "disk on fire");
    Err(if e.stream.ends_with("-fatal") {
        ReactionError::fatal(err)
    } else {
        ReactionError::retry(err)
    })
}

async fn a_blocked_reason_names_the_cause_of_a_store_failure_once(kind: Kind) {
    let retry = tag(kind, "store-down");
    let fatal = format!("{retry}-fatal");
    let (store, _) = store(kind, "store-down").await;
    let app = act()
        .with_store_arc(store)
        .with_state::<Ledger>()
        .with_reaction(store_down)
        .build()
        .unwrap();
    for t in [&retry, &fatal] {
        app.execute(Record { line: "a".into() }, Target::new(t, actor()))
            .await
            .unwrap();
    }
    app.settle_now(SettleOptions::default()).await.unwrap();
    let b = blocked(&app).await;
    assert_eq!(b.len(), 2, "{b:?}");
    for row in &b {
        let expected = if row.stream == fatal {
            "non-retryable: store operation `commit` failed: disk on fire"
        } else {
            "store operation `commit` failed: disk on fire"
        };
        assert!(row.error.contains(expected), "{row:?}");
        assert_eq!(row.error.matches("disk on fire").count(), 1, "{row:?}");
    }
    app.shutdown().await.unwrap();
}

// ---- 6. a panicking handler -------------------------------------------------------------

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[reaction(on = CounterEvent::Incremented, to = _this_, retries = 2)]
async fn panics(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    if e.stream.ends_with("-boom") {
        PANICS.fetch_add(1, Ordering::SeqCst);
        panic!("handler exploded on {}", e.stream);
    }
    handled(&e.stream, e.id);
    Ok(())
}

async fn a_panicking_handler_is_a_failure_with_its_message(kind: Kind) {
    let t = tag(kind, "panics");
    let (store, _) = store(kind, "panics").await;
    let app = act()
        .with_store_arc(store)
        .with_state::<Counter>()
        .with_reaction(panics)
        .build()
        .unwrap();
    let boom = format!("{t}-boom");
    inc(&app, &boom).await;
    inc(&app, &format!("{t}-fine")).await;
    let mut passes = 0;
    while blocked(&app).await.is_empty() {
        passes += 1;
        assert!(passes < 10, "not blocked after {passes} settles");
        app.settle_now(SettleOptions::default()).await.unwrap();
    }
    let b = blocked(&app).await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].stream, boom);
    assert!(
        b[0].error
            .contains(&format!("panicked: handler exploded on {boom}")),
        "{}",
        b[0].error
    );
    assert_eq!(handled_on(&format!("{t}-fine")).len(), 1);
    app.shutdown().await.unwrap();
}

// ---- correlation from the edge ----------------------------------------------------------

#[reaction(on = CounterEvent::Incremented, to = "corr-ledger")]
async fn hop(e: &Committed<CounterEvent>, app: &Scope) -> Result<(), ReactionError> {
    assert_eq!(app.stream(), "corr-ledger");
    app.execute(
        Record {
            line: e.stream.clone(),
        },
        Target::new(format!("{}-ledger", e.stream), act_tests::actor()),
    )
    .await?;
    Ok(())
}

async fn an_incoming_correlation_id_is_kept_through_reaction_hops(kind: Kind) {
    let t = tag(kind, "corr");
    let (store, _) = store(kind, "corr").await;
    let app = act()
        .with_store_arc(store)
        .with_state::<Counter>()
        .with_state::<Ledger>()
        .with_reaction(hop)
        .build()
        .unwrap();
    app.execute(
        Increment { by: 1 },
        Target::new(&t, actor()).correlated("trace-4bf92f3577b34da6"),
    )
    .await
    .unwrap();
    let plain = inc(&app, &format!("{t}-plain")).await;
    app.settle_now(SettleOptions::default()).await.unwrap();
    let hopped = app
        .query(&Query::stream(format!("{t}-ledger")))
        .await
        .unwrap();
    assert_eq!(hopped.len(), 1);
    assert_eq!(hopped[0].meta.correlation, "trace-4bf92f3577b34da6");
    let made = app
        .query(&Query::all().after(plain - 1).limit(1))
        .await
        .unwrap();
    assert!(
        made[0].meta.correlation.starts_with("coun-incr-"),
        "{}",
        made[0].meta.correlation
    );
    app.shutdown().await.unwrap();
}

// ---- an unreadable stored event (SQLite) ------------------------------------------------

#[reaction(on = CounterEvent::Incremented, to = "reader-ledger")]
async fn reader(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    handled(&format!("reader-{}", e.stream), e.id);
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = _this_)]
async fn own(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    handled(&format!("own-{}", e.stream), e.id);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_event_blocks_the_targets_that_read_it_and_the_rest_flows() {
    let (store, path) = store(Kind::Sqlite, "corrupt").await;
    let app = act()
        .with_store_arc(store)
        .with_state::<Counter>()
        .with_reaction(reader)
        .with_reaction(own)
        .build()
        .unwrap();
    let a = inc(&app, "cor-a").await;
    let bad = inc(&app, "cor-bad").await;
    inc(&app, "cor-c").await;
    // break the stored payload of one event, under the store
    let url = format!("sqlite://{}", path.unwrap().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE events SET data = '{not json' WHERE id = ?")
        .bind(bad)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    app.settle_now(SettleOptions::default()).await.unwrap();
    // the whole-log reader handled what precedes the bad row, then blocked on it
    assert_eq!(handled_on("reader-cor-a"), [a]);
    assert_eq!(handled_on("own-cor-a"), [a]);
    assert_eq!(handled_on("own-cor-c").len(), 1, "other streams flow");
    let b = blocked(&app).await;
    let names: Vec<&str> = b.iter().map(|b| b.stream.as_str()).collect();
    assert_eq!(names, ["cor-bad", "reader-ledger"], "{b:?}");
    let ledger = &b[1];
    assert_eq!(ledger.at, a);
    assert!(
        ledger.error.contains(&format!("event {bad}")),
        "{}",
        ledger.error
    );
    app.shutdown().await.unwrap();
}

// ---- the worker survives store errors -----------------------------------------------------

/// The first `failures` claims fail like a lost connection.
struct FlakyClaims {
    failures: usize,
    claims: AtomicUsize,
}

impl act_tests::intercept::Intercept for FlakyClaims {
    fn claim(&self) -> Result<(), StoreError> {
        if self.claims.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(StoreError::backend("claim", "connection reset by peer"));
        }
        Ok(())
    }
}

#[reaction(on = CounterEvent::Incremented, to = _this_)]
async fn survive(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    handled(&e.stream, e.id);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_survives_failed_claims_and_reports_settled() {
    let store = act_tests::intercept::Intercepted::new(
        Arc::new(InMemoryStore::new()),
        FlakyClaims {
            failures: 3,
            claims: AtomicUsize::new(0),
        },
    );
    let app = act()
        .with_store_arc(store)
        .with_state::<Counter>()
        .with_reaction(survive)
        .build()
        .unwrap();
    let settled = Arc::new(AtomicUsize::new(0));
    let s = settled.clone();
    app.on(move |l| {
        if let Lifecycle::Settled(summary) = l
            && summary.handled > 0
        {
            s.fetch_add(summary.handled, Ordering::SeqCst);
        }
    });
    let _worker = app
        .start_with(WorkerOptions {
            error_backoff: Duration::from_millis(10),
            ..worker_options(Duration::from_secs(5))
        })
        .unwrap();
    inc(&app, "survive-1").await;
    inc(&app, "survive-2").await;
    eventually(
        Duration::from_secs(10),
        "handled after the claims failed",
        || async { handled_on("survive-1").len() == 1 && handled_on("survive-2").len() == 1 },
    )
    .await;
    eventually(Duration::from_secs(5), "a settled report", || async {
        settled.load(Ordering::SeqCst) == 2
    })
    .await;
    app.shutdown().await.unwrap();
}

// ---- settle_now and a pass already running ----------------------------------------------

static GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);
static ENTERED: AtomicUsize = AtomicUsize::new(0);

#[reaction(on = LedgerEvent::Recorded, to = _this_, timeout_ms = 60000)]
async fn gated(e: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    ENTERED.fetch_add(1, Ordering::SeqCst);
    // Each opening lets one handler through (a permit is not given back).
    GATE.acquire().await.map_err(|e| e.to_string())?.forget();
    handled(&e.stream, e.id);
    Ok(())
}

/// An app on a fresh `kind` store whose one reaction is `reaction`, and the stream `label-1`
/// with one `Recorded` event committed: the stream and the event's id.
async fn one_recorded<R: act_runtime::reactions::Reaction>(
    kind: Kind,
    label: &str,
    reaction: R,
) -> (Act, String, i64) {
    let (store, _) = store(kind, label).await;
    let app = act()
        .with_store_arc(store)
        .with_state::<Ledger>()
        .with_reaction(reaction)
        .build()
        .unwrap();
    let stream = tag(kind, &format!("{label}-1"));
    let id = app
        .execute(Record { line: "x".into() }, Target::new(&stream, actor()))
        .await
        .unwrap()
        .events[0]
        .id;
    (app, stream, id)
}

/// With `holder` (another pass, the worker) holding the gated handler of `stream`'s event
/// `id`: `settle_now` is still running 200 ms later, returns once the gate opens, and the
/// event is handled by then.
async fn settle_now_waits_at_the_gate(app: &Act, stream: &str, id: i64, holder: &str) {
    eventually(
        Duration::from_secs(10),
        &format!("{holder} runs the handler"),
        || async { ENTERED.load(Ordering::SeqCst) == 1 },
    )
    .await;
    let settle = tokio::spawn({
        let app = app.clone();
        async move { app.settle_now(SettleOptions::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    if settle.is_finished() {
        panic!(
            "settle_now returned while {holder} was still handling the event: {:?}",
            settle.await.unwrap()
        );
    }
    GATE.add_permits(1);
    tokio::time::timeout(Duration::from_secs(10), settle)
        .await
        .expect("settle_now returns once the gate opens")
        .unwrap()
        .unwrap();
    assert_eq!(handled_on(stream), [id], "handled when settle_now returned");
}

/// The gate's statics are shared by the tests (and store variants) using them: they run
/// one after the other.
static GATED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn settle_now_waits_for_the_drain_pass_already_running(kind: Kind) {
    let _one = GATED.lock().await;
    ENTERED.store(0, Ordering::SeqCst);
    let (app, stream, id) = one_recorded(kind, "gated", gated).await;
    // Another pass of this app (another drain call, the background settle) holds the handler.
    let first = tokio::spawn({
        let app = app.clone();
        async move { app.drain(DrainOptions::default()).await }
    });
    settle_now_waits_at_the_gate(&app, &stream, id, "the first pass").await;
    assert_eq!(first.await.unwrap().unwrap().acked.len(), 1);
    app.shutdown().await.unwrap();
}

async fn settle_now_waits_for_the_worker_leases(kind: Kind) {
    let _one = GATED.lock().await;
    ENTERED.store(0, Ordering::SeqCst);
    let (app, stream, id) = one_recorded(kind, "gated-worker", gated).await;
    // The worker claims the event and holds its handler at the gate.
    let _worker = app
        .start_with(worker_options(Duration::from_secs(30)))
        .unwrap();
    settle_now_waits_at_the_gate(&app, &stream, id, "the worker").await;
    app.shutdown().await.unwrap();
}

/// A handler that settles the app from inside its own worker lease.
#[reaction(on = LedgerEvent::Recorded, to = _this_, timeout_ms = 60000)]
async fn settles_inside(e: &Committed<LedgerEvent>, scope: &Scope) -> Result<(), ReactionError> {
    scope
        .app()
        .settle_now(SettleOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    handled(&e.stream, e.id);
    Ok(())
}

async fn settle_now_inside_a_worker_lease_does_not_wait_for_it(kind: Kind) {
    let (app, stream, id) = one_recorded(kind, "settles-inside", settles_inside).await;
    let _worker = app
        .start_with(worker_options(Duration::from_secs(30)))
        .unwrap();
    // Waiting for its own lease would hold the handler until its 60 s timeout.
    eventually(
        Duration::from_secs(10),
        "the handler's settle_now returned and it was handled",
        || async { handled_on(&stream) == [id] },
    )
    .await;
    app.shutdown().await.unwrap();
}
