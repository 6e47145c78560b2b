//! Traces and metrics.
//!
//! * Spans (`tracing`): `act.execute` (action, stream, correlation), `act.load`,
//!   `act.commit`, `act.correlate`, `act.drain`, `act.lease` (target) and `act.reaction`
//!   (reaction, target, event id and name, correlation).
//! * Trace context (feature `otel`): an action run inside an OpenTelemetry-backed span
//!   stores the span's W3C `traceparent` in its events' `causation.trace`; the span of a
//!   reaction to such an event takes it as its parent, so the request, its action, the
//!   reactions that follow in any process and their actions are one trace. The user owns
//!   the exporter and the `tracing-opentelemetry` layer.
//! * Metrics (the `metrics` facade; nothing is recorded until the user installs a
//!   recorder): `act_commits_total{state}` and `act_events_committed_total{state}`,
//!   `act_conflicts_total{state}`, `act_reaction_retries_total{target}`,
//!   `act_streams_blocked_total{target}`, and the gauge `act_drain_lag_seconds{target}`
//!   (at each ack: how long ago the last event handled was committed).

use chrono::{DateTime, Utc};

/// The current span's trace context as a W3C `traceparent`, when it is traced by
/// OpenTelemetry (feature `otel`); `None` otherwise.
pub(crate) fn current_trace() -> Option<String> {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = tracing::Span::current().context();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            return Some(format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            ));
        }
    }
    None
}

/// Makes `span` a child of the trace `traceparent` names (feature `otel`; a malformed or
/// absent one leaves the span where it is).
pub(crate) fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    #[cfg(feature = "otel")]
    if let Some(sc) = traceparent.and_then(parse_traceparent) {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = opentelemetry::Context::new().with_remote_span_context(sc);
        let _ = span.set_parent(cx);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, traceparent);
}

/// `00-<trace id>-<span id>-<flags>` as a remote span context.
#[cfg(feature = "otel")]
fn parse_traceparent(text: &str) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let mut parts = text.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || trace.len() != 32 || span.len() != 16 {
        return None;
    }
    let sc = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

/// The metadata the `metrics` macros give this module's counters.
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The keys of a state's commit counters, built once per state name and process (the
/// macros build, and allocate, them at every call).
struct CommitKeys {
    state: &'static str,
    commits: metrics::Key,
    events: metrics::Key,
}

fn commit_keys(state: &'static str) -> &'static CommitKeys {
    static KEYS: parking_lot::RwLock<Vec<&'static CommitKeys>> =
        parking_lot::RwLock::new(Vec::new());
    let find = |keys: &[&'static CommitKeys]| keys.iter().copied().find(|k| k.state == state);
    if let Some(k) = find(&KEYS.read()) {
        return k;
    }
    let mut keys = KEYS.write();
    if let Some(k) = find(&keys) {
        return k;
    }
    // One per state name: a fixed set, so the leak is bounded.
    let labels = || vec![metrics::Label::new("state", state)];
    let k: &'static CommitKeys = Box::leak(Box::new(CommitKeys {
        state,
        commits: metrics::Key::from_parts("act_commits_total", labels()),
        events: metrics::Key::from_parts("act_events_committed_total", labels()),
    }));
    keys.push(k);
    k
}

/// Counts a commit of `events` events on a stream of `state`.
pub(crate) fn committed(state: &'static str, events: usize) {
    let keys = commit_keys(state);
    metrics::with_recorder(|r| {
        r.register_counter(&keys.commits, &METADATA).increment(1);
        r.register_counter(&keys.events, &METADATA)
            .increment(events as u64);
    });
}

/// Counts a commit that lost a race.
pub(crate) fn conflict(state: &'static str) {
    metrics::counter!("act_conflicts_total", "state" => state).increment(1);
}

/// Counts a failed reaction attempt on `target` that will be retried.
pub(crate) fn retrying(target: &str) {
    metrics::counter!("act_reaction_retries_total", "target" => target.to_owned()).increment(1);
}

/// Counts a blocked target.
pub(crate) fn blocked(target: &str) {
    metrics::counter!("act_streams_blocked_total", "target" => target.to_owned()).increment(1);
}

/// Records how far behind `target` was: the age of the last event it handled.
pub(crate) fn lag(target: &str, created: DateTime<Utc>) {
    let secs = (Utc::now() - created).num_milliseconds().max(0) as f64 / 1000.0;
    metrics::gauge!("act_drain_lag_seconds", "target" => target.to_owned()).set(secs);
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_or_are_ignored() {
        let sc =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_remote() && sc.is_sampled());
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx",
            "00-zz-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }
}
