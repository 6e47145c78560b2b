//! Fault-injection properties of the reaction pipeline under the background worker.
//!
//! Every case commits random events to a few streams and plans, per (reaction, event), how
//! many leading attempts fail and how: a retryable `Err`, a panic, or a hang stopped by the
//! reaction's timeout (`pending()` or a long sleep); sometimes the last planned failure is a
//! fatal (non-retryable) `Err`. Once the worker has settled, for every target (each stream
//! for the `_this_` reaction, one literal target for the static reaction) either every event
//! was handled successfully exactly once, in order, and the target is not blocked; or the
//! target is blocked just before its first event whose failures went past the budget, every
//! earlier event was handled exactly once, in order, and no later event was handled. Each
//! event's handler is attempted exactly as often as its plan says (no attempt is lost, none
//! is added). Run on the in-memory store and on SQLite (in memory).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use act_runtime::adapters::SqliteStore;
use act_runtime::ports::StreamPosition;
use act_runtime::prelude::*;
use act_tests::actor;
use act_tests::counter::{Counter, CounterEvent, Increment};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The `retries` of both reactions: an event may fail this many times and still succeed.
const RETRIES: u32 = 2;
/// The literal target of the static reaction.
const STATIC_TARGET: &str = "fault-static";
/// The payload prefix of the injected panics (kept out of the test output).
const INJECTED: &str = "injected fault";
/// How long a case may take to settle.
const SETTLE_BOUND: Duration = Duration::from_secs(12);
/// How long a case may take at all (a hang fails the case instead of stalling CI).
const CASE_BOUND: Duration = Duration::from_secs(20);
/// The state must stay unchanged (and settled) for this many polls.
const STABLE_POLLS: usize = 6;
const POLL: Duration = Duration::from_millis(25);

/// How an attempt fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Returns a retryable `Err`.
    Err,
    /// Panics.
    Panic,
    /// Never completes (`std::future::pending`): stopped by the reaction's timeout.
    Hang,
    /// Sleeps far past the reaction's timeout.
    Sleep,
}

/// What one reaction does on one event: `fails` leading attempts fail with `kind`; then,
/// if `fatal`, the next attempt returns a non-retryable error; else it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    fails: u32,
    kind: Kind,
    fatal: bool,
}

impl Fault {
    const OK: Fault = Fault {
        fails: 0,
        kind: Kind::Err,
        fatal: false,
    };

    /// Whether the event's failures go past the budget: the target must block on it.
    fn blocks(&self) -> bool {
        self.fatal || self.fails > RETRIES
    }

    /// How many attempts the pipeline must make on the event when it gets to it.
    fn attempts(&self) -> u32 {
        if self.fails > RETRIES {
            RETRIES + 1
        } else {
            self.fails + 1
        }
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Err),
        Just(Kind::Panic),
        Just(Kind::Hang),
        Just(Kind::Sleep)
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        10 => Just(Fault::OK),
        4 => (1..=RETRIES, kind()).prop_map(|(fails, kind)| Fault { fails, kind, fatal: false }),
        1 => kind().prop_map(|kind| Fault { fails: RETRIES + 1, kind, fatal: false }),
        1 => (0..=RETRIES, kind()).prop_map(|(fails, kind)| Fault { fails, kind, fatal: true }),
    ]
}

/// One commit: the stream index, the faults of the `_this_` and the static reaction on its
/// event, and whether to pause a little before committing it.
type Commit = (usize, Fault, Fault, bool);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Which {
    This,
    Static,
}

/// The shared record of one case.
#[derive(Default)]
struct Case {
    /// The plan: (reaction, event stream, event version) → fault.
    plan: HashMap<(Which, String, i64), Fault>,
    /// Attempts so far, same key.
    attempts: HashMap<(Which, String, i64), u32>,
    /// Successful handlings, in order: (reaction, target, event id).
    handled: Vec<(Which, String, i64)>,
    /// Handler attempts running now.
    in_flight: usize,
    /// Bumped by every attempt's start and end.
    changes: u64,
    /// `changes` when the worker last reported `Settled`.
    settled_at: Option<u64>,
}

/// Cases by prefix: the tests run in parallel, each case on its own streams.
static CASES: Mutex<BTreeMap<String, Case>> = Mutex::new(BTreeMap::new());
static NEXT_CASE: AtomicUsize = AtomicUsize::new(0);

fn with_case<T>(prefix: &str, f: impl FnOnce(&mut Case) -> T) -> T {
    let mut cases = CASES.lock().unwrap_or_else(|p| p.into_inner());
    f(cases.entry(prefix.to_owned()).or_default())
}

/// Removes the case's record when the case ends, passed or not.
struct CaseGuard(String);

impl Drop for CaseGuard {
    fn drop(&mut self) {
        CASES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

/// Counts an attempt as running until dropped (returned, panicked, or stopped).
struct InFlight(String);

impl Drop for InFlight {
    fn drop(&mut self) {
        with_case(&self.0, |c| {
            c.in_flight -= 1;
            c.changes += 1;
        });
    }
}

fn prefix_of(stream: &str) -> &str {
    stream.split('-').next().unwrap_or(stream)
}

/// Runs one attempt of `which` on `e` as the case's plan says.
async fn inject(
    which: Which,
    e: &Committed<CounterEvent>,
    target: &str,
) -> Result<(), ReactionError> {
    let prefix = prefix_of(&e.stream).to_owned();
    let key = (which, e.stream.clone(), e.version);
    let (n, fault) = with_case(&prefix, |c| {
        let n = c.attempts.entry(key.clone()).or_default();
        let attempt = *n;
        *n += 1;
        c.in_flight += 1;
        c.changes += 1;
        (attempt, c.plan.get(&key).copied().unwrap_or(Fault::OK))
    });
    let _running = InFlight(prefix.clone());
    if n < fault.fails {
        match fault.kind {
            Kind::Err => return Err(format!("{INJECTED}: err #{n}").into()),
            Kind::Panic => panic!("injected fault: panic"),
            Kind::Hang => std::future::pending::<()>().await,
            Kind::Sleep => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Err(
                    format!("{INJECTED}: woke from a sleep that should have been stopped").into(),
                );
            }
        }
    }
    if n == fault.fails && fault.fatal {
        return Err(ReactionError::fatal(format!("{INJECTED}: fatal")));
    }
    with_case(&prefix, |c| {
        c.handled.push((which, target.to_owned(), e.id))
    });
    Ok(())
}

#[reaction(
    on = CounterEvent::Incremented,
    to = _this_,
    retries = 2,
    block_on_error = true,
    backoff(fixed, base_ms = 5),
    timeout_ms = 100
)]
async fn f_this(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    inject(Which::This, e, &e.stream).await
}

#[reaction(
    on = CounterEvent::Incremented,
    to = "fault-static",
    retries = 2,
    block_on_error = true,
    backoff(fixed, base_ms = 5),
    timeout_ms = 100
)]
async fn f_static(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    inject(Which::Static, e, STATIC_TARGET).await
}

/// Keeps the injected panics out of the output; any other panic is reported as usual.
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let msg = p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !msg.starts_with(INJECTED) {
                default(info);
            }
        }));
    });
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Sqlite,
}

/// Runs a case on its own multi-thread runtime, bounded by [`CASE_BOUND`].
fn on_runtime(case: impl Future<Output = Result<(), TestCaseError>>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(async {
        match tokio::time::timeout(CASE_BOUND, case).await {
            Ok(r) => r,
            Err(_) => Err(TestCaseError::fail(format!(
                "the case did not end within {CASE_BOUND:?} (a hang)"
            ))),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    r
}

/// An event as committed: its id, stream, version and the two faults planned on it.
#[derive(Debug, Clone)]
struct Planned {
    id: i64,
    stream: String,
    version: i64,
    this: Fault,
    stat: Fault,
}

async fn run_case(
    backend: Backend,
    commits: Vec<Commit>,
    start_after: usize,
    stream_limit: usize,
    event_limit: usize,
) -> Result<(), TestCaseError> {
    quiet_injected_panics();
    let tag = match backend {
        Backend::Memory => "fm",
        Backend::Sqlite => "fs",
    };
    let prefix = format!("{tag}{}", NEXT_CASE.fetch_add(1, Ordering::SeqCst));
    let _guard = CaseGuard(prefix.clone());
    with_case(&prefix, |_| ());

    let builder = act()
        .with_state::<Counter>()
        .with_reaction(f_this)
        .with_reaction(f_static);
    let app = match backend {
        Backend::Memory => builder.build().unwrap(),
        Backend::Sqlite => builder
            .with_store(SqliteStore::open_in_memory().await.unwrap())
            .build()
            .unwrap(),
    };
    let p = prefix.clone();
    app.on(move |l| {
        if let Lifecycle::Settled(_) = l {
            with_case(&p, |c| c.settled_at = Some(c.changes));
        }
    });
    let options = WorkerOptions {
        poll: Duration::from_millis(20),
        drain: DrainOptions {
            stream_limit,
            event_limit,
            lease: Duration::from_secs(2),
        },
        ..Default::default()
    };

    // commit, starting the worker part-way through
    let start_after = start_after.min(commits.len());
    let mut events: Vec<Planned> = Vec::new();
    let mut worker = None;
    for (i, (s, this, stat, pause)) in commits.iter().enumerate() {
        if i == start_after {
            worker = Some(app.start_with(options).unwrap());
        }
        if *pause && worker.is_some() {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let stream = format!("{prefix}-s{s}");
        // plan before committing: the worker may handle the event at once
        let version = events.iter().filter(|e| e.stream == stream).count() as i64;
        with_case(&prefix, |c| {
            c.plan.insert((Which::This, stream.clone(), version), *this);
            c.plan
                .insert((Which::Static, stream.clone(), version), *stat);
        });
        let out = app
            .execute(Increment { by: 1 }, Target::new(stream.clone(), actor()))
            .await
            .unwrap();
        let e = &out.events[0];
        prop_assert_eq!(e.version, version, "unexpected version on {}", stream);
        events.push(Planned {
            id: e.id,
            stream,
            version,
            this: *this,
            stat: *stat,
        });
    }
    if worker.is_none() {
        worker = Some(app.start_with(options).unwrap());
    }
    let worker = worker.unwrap();

    // wait until settled: no attempt running, the worker reported `Settled` after the last
    // attempt, and nothing changed (attempts, handlings, blocked rows) for a few polls
    let began = Instant::now();
    let mut last: Option<(u64, usize)> = None;
    let mut stable = 0;
    while stable < STABLE_POLLS {
        tokio::time::sleep(POLL).await;
        prop_assert!(
            began.elapsed() < SETTLE_BOUND,
            "{prefix}: the worker never settled within {SETTLE_BOUND:?}"
        );
        let (changes, in_flight, settled_at) =
            with_case(&prefix, |c| (c.changes, c.in_flight, c.settled_at));
        let blocked = app.blocked_streams().await.unwrap().len();
        let now = (changes, blocked);
        if in_flight == 0 && settled_at == Some(changes) && last == Some(now) {
            stable += 1;
        } else {
            stable = 0;
        }
        last = Some(now);
    }
    prop_assert!(worker.is_running());
    let blocked: HashMap<String, StreamPosition> = app
        .blocked_streams()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.stream.clone(), r))
        .collect();
    tokio::time::timeout(Duration::from_secs(5), app.shutdown())
        .await
        .map_err(|_| TestCaseError::fail("shutdown hung"))?
        .unwrap();
    let (handled, attempts) = with_case(&prefix, |c| (c.handled.clone(), c.attempts.clone()));

    // the targets, each with its events in order
    let mut targets: BTreeMap<(Which, String), Vec<(&Planned, Fault)>> = BTreeMap::new();
    for e in &events {
        targets
            .entry((Which::This, e.stream.clone()))
            .or_default()
            .push((e, e.this));
        targets
            .entry((Which::Static, STATIC_TARGET.to_owned()))
            .or_default()
            .push((e, e.stat));
    }
    let context = || {
        format!(
            "\n  case {prefix} ({backend:?}, stream_limit {stream_limit}, event_limit {event_limit}, worker started after {start_after} commits)\n  events: {events:#?}\n  handled: {handled:?}\n  attempts: {attempts:?}\n  blocked: {blocked:#?}"
        )
    };
    for ((which, target), list) in &targets {
        let first_bad = list.iter().position(|(_, f)| f.blocks());
        let upto = first_bad.unwrap_or(list.len());
        let expected: Vec<i64> = list[..upto].iter().map(|(e, _)| e.id).collect();
        let actual: Vec<i64> = handled
            .iter()
            .filter(|(w, t, _)| w == which && t == target)
            .map(|(_, _, id)| *id)
            .collect();
        prop_assert_eq!(
            &actual,
            &expected,
            "{:?} on `{}`: successful handlings differ from the plan (first over budget: {:?}){}",
            which,
            target,
            first_bad.map(|i| list[i].0.id),
            context()
        );
        for (i, (e, f)) in list.iter().enumerate() {
            // every event up to the first one past budget is tried as planned; none after
            let want = if i <= upto { f.attempts() } else { 0 };
            let got = attempts
                .get(&(*which, e.stream.clone(), e.version))
                .copied()
                .unwrap_or(0);
            prop_assert_eq!(
                got,
                want,
                "{:?} on `{}`: event {} ({}#{}, {:?}) attempted {} times, planned {}{}",
                which,
                target,
                e.id,
                e.stream,
                e.version,
                f,
                got,
                want,
                context()
            );
        }
        match first_bad {
            None => prop_assert!(
                !blocked.contains_key(target),
                "{:?} on `{}`: blocked though every event is within budget{}",
                which,
                target,
                context()
            ),
            Some(i) => {
                let row = blocked.get(target);
                prop_assert!(
                    row.is_some(),
                    "{:?} on `{}`: not blocked though event {} went past its budget{}",
                    which,
                    target,
                    list[i].0.id,
                    context()
                );
                let row = row.unwrap();
                let at = if i == 0 { -1 } else { list[i - 1].0.id };
                prop_assert_eq!(
                    row.at,
                    at,
                    "{:?} on `{}`: blocked at the wrong event{}",
                    which,
                    target,
                    context()
                );
                let error = row.error.clone().unwrap_or_default();
                let on = format!("on event {} ", list[i].0.id);
                prop_assert!(
                    error.contains(&on),
                    "{:?} on `{}`: the block's error `{}` does not name event {}{}",
                    which,
                    target,
                    error,
                    list[i].0.id,
                    context()
                );
            }
        }
    }
    prop_assert_eq!(
        blocked.len(),
        targets
            .values()
            .filter(|l| l.iter().any(|(_, f)| f.blocks()))
            .count(),
        "unexpected blocked rows{}",
        context()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn injected_faults_block_each_target_at_its_first_event_past_budget_on_memory(
        commits in prop::collection::vec((0usize..4, fault(), fault(), any::<bool>()), 1..12),
        start_after in 0usize..12,
        stream_limit in 1usize..5,
        event_limit in 1usize..5,
    ) {
        on_runtime(run_case(Backend::Memory, commits, start_after, stream_limit, event_limit))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 8,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn injected_faults_block_each_target_at_its_first_event_past_budget_on_sqlite(
        commits in prop::collection::vec((0usize..4, fault(), fault(), any::<bool>()), 1..12),
        start_after in 0usize..12,
        stream_limit in 1usize..5,
        event_limit in 1usize..5,
    ) {
        on_runtime(run_case(Backend::Sqlite, commits, start_after, stream_limit, event_limit))?;
    }
}
