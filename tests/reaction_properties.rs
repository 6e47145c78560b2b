//! Properties of the reaction pipeline, over random commits and random drain limits:
//! every reactive event is handled exactly once per reaction, in order per target; once
//! quiet, more passes do no work; a handler failing k times (k within its budget) is retried
//! and acked after exactly k + 1 attempts.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use act_runtime::prelude::*;
use act_tests::actor;
use act_tests::counter::{Counter, CounterEvent, Increment};
use act_tests::ledger::{Ledger, LedgerEvent, Record};
use proptest::prelude::*;

/// (reaction, target, event id), in handling order.
static LOG: Mutex<Vec<(&'static str, String, i64)>> = Mutex::new(Vec::new());

fn log(reaction: &'static str, target: String, id: i64) {
    LOG.lock().unwrap().push((reaction, target, id));
}

#[reaction(on = CounterEvent::Incremented, to = "totals")]
async fn p_static(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    log("static", "totals".into(), e.id);
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = _this_)]
async fn p_this(e: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    log("this", e.stream.clone(), e.id);
    Ok(())
}

fn by_parity(e: &Committed<CounterEvent>) -> Option<Resolved> {
    let n: usize = e.stream.trim_start_matches('s').parse().ok()?;
    Some(Resolved::to(format!("parity-{}", n % 2)))
}

#[reaction(on = CounterEvent::Incremented, to = by_parity)]
async fn p_dynamic(e: &Committed<CounterEvent>, app: &Scope) -> Result<(), ReactionError> {
    let n: usize = e.stream.trim_start_matches('s').parse().unwrap_or(0);
    log("dynamic", format!("parity-{}", n % 2), e.id);
    // reactions may act: this writes to the target stream
    app.execute(
        Record {
            line: e.id.to_string(),
        },
        Target::new(format!("parity-{}", n % 2), actor()),
    )
    .await?;
    Ok(())
}

/// A second hop: reacts to what `p_dynamic`'s actions commit, while drains are running.
#[reaction(on = LedgerEvent::Recorded, to = "chain")]
async fn p_chain(e: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    log("chain", "chain".into(), e.id);
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_reactive_event_is_handled_once_per_reaction_in_order(
        commits in prop::collection::vec((0usize..6, 1usize..4), 1..25),
        stream_limit in 1usize..6,
        event_limit in 1usize..5,
        correlate_limit in 1usize..8,
    ) {
        runtime().block_on(async {
            LOG.lock().unwrap().clear();
            let app = act()
                .with_state::<Counter>()
                .with_state::<Ledger>()
                .with_reaction(p_static)
                .with_reaction(p_this)
                .with_reaction(p_dynamic)
                .with_reaction(p_chain)
                .build()
                .unwrap();
            let mut events = Vec::new();
            for (s, n) in &commits {
                for _ in 0..*n {
                    let out = app
                        .execute(Increment { by: 1 }, Target::new(format!("s{s}"), actor()))
                        .await
                        .unwrap();
                    events.push((out.events[0].id, format!("s{s}")));
                }
            }
            let opts = DrainOptions { stream_limit, event_limit, lease: Duration::from_secs(30) };
            // quiet = correlate found nothing new (checkpoint unmoved) and drain did nothing
            let mut quiet = 0;
            let mut passes = 0;
            let mut checkpoint = -1;
            while quiet < 3 {
                passes += 1;
                prop_assert!(passes < 2_000, "never settled");
                let c = app.correlate(correlate_limit).await.unwrap();
                let d = app.drain(opts).await.unwrap();
                let moved = c.last_id != checkpoint;
                checkpoint = c.last_id;
                quiet = if !moved && c.subscribed == 0 && d.handled == 0 && d.leased.is_empty() {
                    quiet + 1
                } else {
                    0
                };
            }
            let log = LOG.lock().unwrap().clone();
            // exactly once per reaction
            let mut seen = HashSet::new();
            for (r, _, id) in &log {
                prop_assert!(seen.insert((*r, *id)), "{r} handled event {id} twice");
            }
            for (id, stream) in &events {
                for r in ["static", "this", "dynamic"] {
                    prop_assert!(seen.contains(&(r, *id)), "{r} never handled event {id} of {stream}");
                }
            }
            // every event committed by a reaction was handled by the second hop
            let recorded = app.query(&Query::all().names(["Recorded"])).await.unwrap();
            prop_assert_eq!(recorded.len(), events.len());
            for r in &recorded {
                prop_assert!(seen.contains(&("chain", r.id)), "chain never handled event {}", r.id);
            }
            prop_assert_eq!(seen.len(), events.len() * 4);
            // in order per target
            let mut per_target: BTreeMap<(&str, String), Vec<i64>> = BTreeMap::new();
            for (r, t, id) in &log {
                per_target.entry((*r, t.clone())).or_default().push(*id);
            }
            for ((r, t), ids) in &per_target {
                prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "{r} on {t} out of order: {ids:?}");
            }
            // the dynamic reaction's actions landed once each
            let mut recorded = 0;
            for p in ["parity-0", "parity-1"] {
                recorded += app.load::<Ledger>(p).await.unwrap().state.lines.len();
            }
            prop_assert_eq!(recorded, events.len());
            // quiet means quiet
            let extra = app.drain(opts).await.unwrap();
            prop_assert_eq!(extra.handled, 0);
            prop_assert!(extra.leased.is_empty());
            Ok(())
        })?;
    }
}

static FAILS_LEFT: AtomicUsize = AtomicUsize::new(0);
static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

#[reaction(
    on = LedgerEvent::Recorded,
    to = "k-target",
    retries = 4,
    backoff(strategy = "exponential", base_ms = 1, max_ms = 4)
)]
async fn k_flaky(_: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    if FAILS_LEFT
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err("transient".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5, ..ProptestConfig::default() })]

    #[test]
    fn a_handler_failing_k_times_within_budget_is_acked_after_k_plus_one_attempts(k in 0usize..5) {
        runtime().block_on(async {
            FAILS_LEFT.store(k, Ordering::SeqCst);
            ATTEMPTS.store(0, Ordering::SeqCst);
            let app = act().with_state::<Ledger>().with_reaction(k_flaky).build().unwrap();
            app.execute(Record { line: "x".into() }, Target::new("k", actor())).await.unwrap();
            let mut handled = 0;
            for _ in 0..200 {
                let d = app.drain(DrainOptions::default()).await.unwrap();
                prop_assert!(d.blocked.is_empty(), "blocked within budget");
                handled += d.handled;
                if handled > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            prop_assert_eq!(handled, 1);
            prop_assert_eq!(ATTEMPTS.load(Ordering::SeqCst), k + 1);
            Ok(())
        })?;
    }
}
