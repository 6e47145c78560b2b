//! The typed test harness (`act_runtime::testing`), on the bank example's domain: actions
//! given → when → then, reactions given → drained → then, failure reports, and backoff and
//! timeouts in virtual time.

extern crate act_runtime as act;

#[path = "../examples/bank_domain.rs"]
mod bank_domain;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use act_runtime::prelude::*;
use act_runtime::reactions::ReactionError;
use act_runtime::testing::TestApp;
use bank_domain::*;

fn opened(owner: &str) -> AccountEvent {
    AccountEvent::Opened {
        owner: owner.into(),
    }
}

#[tokio::test]
async fn an_action_is_checked_against_its_history() {
    let t = TestApp::new(bank_app());
    t.given(
        "acct-ada",
        [opened("Ada"), AccountEvent::Deposited { amount: 10 }],
    )
    .await;
    let w = t
        .when(Withdraw { amount: 4 }, "acct-ada")
        .await
        .then([AccountEvent::Withdrawn { amount: 4 }]);
    assert_eq!(w.state().state.balance, 6);
    let e = t
        .when(Withdraw { amount: 7 }, "acct-ada")
        .await
        .then_error(|e| matches!(e, ActError::Rejected { .. }));
    assert!(
        std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("overdraft")),
        "{e:?}"
    );
    t.when(Deposit { amount: 1 }, "acct-bob").await.then_error(
        |e| matches!(e, ActError::Invariant(i) if i.description == "account is not open"),
    );
}

#[tokio::test]
async fn reactions_are_checked_by_their_commits() {
    let t = TestApp::new(bank_app());
    t.given(
        "acct-ada",
        [
            opened("Ada"),
            AccountEvent::Deposited { amount: 10 },
            AccountEvent::Withdrawn { amount: 4 },
        ],
    )
    .await;
    let drained = t.drained().await;
    drained
        .then(
            "ledger",
            [JournalEvent::Noted {
                entry: "acct-ada withdrew 4".into(),
            }],
        )
        .then(
            "audit-acct-ada",
            [JournalEvent::Noted {
                entry: "deposit of 10 on acct-ada v1".into(),
            }],
        );
    assert!(drained.blocked().is_empty());
    // nothing left: a second drain commits nothing
    assert!(t.drained().await.committed().is_empty());
}

#[tokio::test]
async fn a_fatal_reaction_blocks_its_target() {
    let t = TestApp::new(bank_app());
    t.given(
        FROZEN,
        [opened("Ice"), AccountEvent::Deposited { amount: 1 }],
    )
    .await;
    let drained = t.drained().await;
    drained.then::<JournalEvent>(&format!("audit-{FROZEN}"), []);
    assert_eq!(drained.blocked().len(), 1);
    assert!(drained.blocked()[0].error.contains("is frozen"));
}

#[test]
fn a_mismatch_reports_both_sides() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = TestApp::new(bank_app());
    let when = rt.block_on(async {
        t.given("acct-ada", [opened("Ada")]).await;
        t.when(Deposit { amount: 5 }, "acct-ada").await
    });
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        when.then([AccountEvent::Deposited { amount: 6 }]);
    }))
    .unwrap_err();
    let report = panic.downcast_ref::<String>().unwrap();
    assert!(
        report.contains(r#"expected: Deposited {"amount":6}"#),
        "{report}"
    );
    assert!(
        report.contains(r#"actual:   Deposited {"amount":5}"#),
        "{report}"
    );
}

// ---- virtual time ----------------------------------------------------------------------

static FLAKY: AtomicU32 = AtomicU32::new(0);

/// Fails its first attempt; retried a minute later.
#[act::reaction(on = AccountEvent::Opened, to = "welcome", retries = 3,
                backoff(strategy = "fixed", base_ms = 60000))]
async fn welcome(e: &Committed<AccountEvent>, app: &Scope) -> Result<(), ReactionError> {
    if FLAKY.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(ReactionError::retry("the mail server is down"));
    }
    app.execute(
        Note {
            entry: format!("welcome {}", e.stream),
        },
        Target::new("welcome", teller()),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_backoff_passes_in_virtual_time() {
    let t = TestApp::new(bank_app().with_reaction(welcome));
    t.given("acct-ada", [opened("Ada")]).await;
    let first = t.drained().await;
    assert_eq!(first.retrying().len(), 1, "{:?}", first.summary());
    // not due yet: the retry waits its minute
    t.drained().await.then::<JournalEvent>("welcome", []);
    t.advance(Duration::from_secs(61));
    t.drained().await.then(
        "welcome",
        [JournalEvent::Noted {
            entry: "welcome acct-ada".into(),
        }],
    );
}

/// Hangs for a day; stopped at its one-second timeout.
#[act::reaction(on = AccountEvent::Opened, to = "slow", timeout_ms = 1000, retries = 0)]
async fn slow(_: &Committed<AccountEvent>, _: &Scope) -> Result<(), ReactionError> {
    tokio::time::sleep(Duration::from_secs(86_400)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_timeout_passes_in_virtual_time() {
    let t = TestApp::new(bank_app().with_reaction(slow));
    t.given("acct-ada", [opened("Ada")]).await;
    let drained = t.drained().await;
    assert_eq!(drained.blocked().len(), 1, "{:?}", drained.summary());
    assert!(
        drained.blocked()[0].error.contains("timed out"),
        "{:?}",
        drained.blocked()
    );
}
