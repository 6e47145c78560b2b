//! Traces across reactions and metrics: an action's trace context travels in its events,
//! so the reaction that follows in the drain — and the action it runs — join the request's
//! trace; the counters and gauges go through the `metrics` facade.

extern crate act_runtime as act;

#[path = "../examples/bank_domain.rs"]
mod bank_domain;

use std::collections::HashSet;

use act_runtime::prelude::*;
use bank_domain::*;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn ada() -> Target {
    Target::new("acct-ada", Actor::new("ada", "Ada"))
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn a_request_its_action_the_reaction_and_its_action_are_one_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _traced = tracing::subscriber::set_default(subscriber);

    let app = bank_app().build().unwrap();
    let request = tracing::info_span!("request", route = "POST /withdraw");
    let trace_id = request.context().span().span_context().trace_id();
    async {
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
    }
    .instrument(request)
    .await;
    // the drain runs outside the request: only the events carry its trace
    app.settle_now(SettleOptions::default()).await.unwrap();
    assert_eq!(
        app.load::<Journal>("ledger").await.unwrap().state.entries,
        ["acct-ada withdrew 4"]
    );
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let in_trace: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace_id)
        .collect();
    let named = |name: &str, key: &str, value: &str| {
        in_trace
            .iter()
            .any(|s| s.name == name && attribute(s, key).as_deref() == Some(value))
    };
    assert!(in_trace.iter().any(|s| s.name == "request"));
    assert!(
        named("act.execute", "action", "Withdraw"),
        "the request's action"
    );
    assert!(
        named("act.reaction", "reaction", "ledger_withdrawal"),
        "the reaction, in the drain: {:#?}",
        spans
            .iter()
            .map(|s| (&s.name, s.span_context.trace_id()))
            .collect::<Vec<_>>()
    );
    assert!(
        named("act.execute", "action", "Note"),
        "the reaction's action"
    );
    assert!(named("act.reaction", "reaction", "audit_deposit"));
    // the drain pass itself is not part of the request's trace
    let drains: HashSet<_> = spans
        .iter()
        .filter(|s| s.name == "act.drain")
        .map(|s| s.span_context.trace_id())
        .collect();
    assert!(!drains.is_empty() && !drains.contains(&trace_id));
    // the trace context is in the events' meta, readable back
    let withdrawn = app
        .query(&act_runtime::ports::Query::stream("acct-ada"))
        .await
        .unwrap();
    let trace = withdrawn[2].meta.causation.trace.as_deref().unwrap();
    assert!(trace.starts_with(&format!("00-{trace_id}-")), "{trace}");
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
