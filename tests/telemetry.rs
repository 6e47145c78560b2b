//! Traces across reactions: an HTTP request's trace context travels in the events its
//! action commits, so the reaction that follows in the worker — and the action it runs —
//! join the request's trace.
//!
//! One test in this binary: a subscriber set for one thread while other threads trace
//! nothing would let tracing cache the other threads' interest in the spans.

extern crate act_runtime as act;

#[path = "../examples/bank_domain.rs"]
mod bank_domain;

use std::collections::HashSet;

use act_runtime::prelude::*;
use bank_domain::*;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
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

/// Serves `app` over HTTP on a free port: its base URL.
async fn serve(app: Act) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = act_runtime::http::router(app);
    tokio::spawn(async move { act_runtime::http::axum::serve(listener, router).await });
    format!("http://{addr}")
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
    app.execute(
        Open {
            owner: "Ada".into(),
        },
        ada(),
    )
    .await
    .unwrap();
    app.execute(Deposit { amount: 10 }, ada()).await.unwrap();
    // the request: POST /actions/Withdraw
    let base = serve(app.clone()).await;
    let res = reqwest::Client::new()
        .post(format!("{base}/actions/Withdraw"))
        .json(&serde_json::json!({
            "stream": "acct-ada",
            "actor": {"id": "ada", "name": "Ada"},
            "payload": {"amount": 4}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // the drain runs in the worker, outside the request: only the events carry its trace
    let worker = app.start().unwrap();
    let mut settled = false;
    for _ in 0..200 {
        let ledger = app.load::<Journal>("ledger").await.unwrap().state.entries;
        if ledger == ["acct-ada withdrew 4"] {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(settled, "the worker recorded the withdrawal in the ledger");
    worker.stop().await;
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let request = spans
        .iter()
        .find(|s| {
            s.name == "http.request" && attribute(s, "path").as_deref() == Some("/actions/Withdraw")
        })
        .expect("the request's span");
    let trace_id = request.span_context.trace_id();
    let in_trace: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace_id)
        .collect();
    let named = |name: &str, key: &str, value: &str| {
        in_trace
            .iter()
            .any(|s| s.name == name && attribute(s, key).as_deref() == Some(value))
    };
    assert!(
        named("act.execute", "action", "Withdraw"),
        "the request's action"
    );
    assert!(
        named("act.reaction", "reaction", "ledger_withdrawal"),
        "the reaction, in the worker: {:#?}",
        spans
            .iter()
            .map(|s| (&s.name, s.span_context.trace_id()))
            .collect::<Vec<_>>()
    );
    assert!(
        named("act.execute", "action", "Note"),
        "the reaction's action"
    );
    // the deposit's audit reaction belongs to no request: not in this trace
    assert!(!named("act.reaction", "reaction", "audit_deposit"));
    // the drain passes are not part of the request's trace
    let leases: HashSet<_> = spans
        .iter()
        .filter(|s| s.name == "act.lease")
        .map(|s| s.span_context.trace_id())
        .collect();
    assert!(!leases.is_empty() && !leases.contains(&trace_id));
    // the trace context is in the events' meta, readable back
    let events = app
        .query(&act_runtime::ports::Query::stream("acct-ada"))
        .await
        .unwrap();
    let trace = events[2].meta.causation.trace.as_deref().unwrap();
    assert!(trace.starts_with(&format!("00-{trace_id}-")), "{trace}");
    app.shutdown().await.unwrap();
}
