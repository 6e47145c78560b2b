//! Metrics through the `metrics` facade, and events committed outside any trace carry no
//! trace context.

extern crate act_runtime as act;

#[path = "../examples/bank_domain.rs"]
mod bank_domain;

use act_runtime::prelude::*;
use bank_domain::*;

fn ada() -> Target {
    Target::new("acct-ada", Actor::new("ada", "Ada"))
}

#[tokio::test]
async fn untraced_actions_store_no_trace_context() {
    let app = bank_app().build().unwrap();
    let out = app
        .execute(
            Open {
                owner: "Ada".into(),
            },
            ada(),
        )
        .await
        .unwrap();
    assert_eq!(out.events[0].meta.causation.trace, None);
}

#[test]
fn commits_retries_blocks_and_lag_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let app = bank_app().build().unwrap();
                let frozen = Target::new(FROZEN, Actor::new("ice", "Ice"));
                app.execute(
                    Open {
                        owner: "Ada".into(),
                    },
                    ada(),
                )
                .await
                .unwrap();
                app.execute(Deposit { amount: 10 }, ada()).await.unwrap();
                app.execute(Withdraw { amount: 4 }, ada()).await.unwrap();
                app.execute(
                    Open {
                        owner: "Ice".into(),
                    },
                    frozen.clone(),
                )
                .await
                .unwrap();
                app.execute(Deposit { amount: 1 }, frozen).await.unwrap();
                let _ = app.execute(Withdraw { amount: 99 }, ada()).await;
                app.settle_now(SettleOptions::default()).await.unwrap();
            });
    });
    type Labels = Vec<(String, String)>;
    let values: Vec<(String, Labels, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let k = key.key();
            let labels = k
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (k.name().to_owned(), labels, value)
        })
        .collect();
    let value = |name: &str, label: (&str, &str)| {
        values
            .iter()
            .find(|(n, ls, _)| n == name && ls.iter().any(|(k, v)| k == label.0 && v == label.1))
            .map(|(_, _, v)| v)
    };
    assert!(matches!(
        value("act_commits_total", ("state", "Account")),
        Some(DebugValue::Counter(5))
    ));
    // the ledger note and the two audit notes that succeeded
    assert!(matches!(
        value("act_events_committed_total", ("state", "Journal")),
        Some(DebugValue::Counter(2))
    ));
    assert!(matches!(
        value(
            "act_streams_blocked_total",
            ("target", &format!("audit-{FROZEN}"))
        ),
        Some(DebugValue::Counter(1))
    ));
    assert!(matches!(
        value("act_drain_lag_seconds", ("target", "ledger")),
        Some(DebugValue::Gauge(_))
    ));
}
