//! The store kit: every behaviour of the [`Store`] port, one named check each.
//!
//! Groups (and the file under `conformance/store/` that holds them): `commit`,
//! `commit_marked`, `seed`, `drop_all`, `dispose` (`commit.rs`); `query` (`query.rs`);
//! `subscribe` and `claim` (`subscriptions.rs`); `ack`, `block`, `reset`, `unblock` and
//! `query_streams` (`leases.rs`); `truncate` (`truncate.rs`).

mod commit;
mod leases;
mod query;
mod subscriptions;
mod truncate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{BoxFuture, Check, Fail, Outcome, Report, Subject};
use crate::error::StoreError;
use crate::model::{Actor, Committed, EventId, EventMeta, Message};
use crate::ports::{Lease, Query, Store, StreamFilter, StreamMatch, StreamPosition, Subscription};

impl Subject for dyn Store {
    fn prepare(self: Arc<Self>) -> BoxFuture<Outcome> {
        Box::pin(async move { Ok(self.seed().await?) })
    }

    fn finish(self: Arc<Self>) -> BoxFuture<Outcome> {
        Box::pin(async move { Ok(self.dispose().await?) })
    }
}

/// Every store check, in run order.
pub fn checks() -> Vec<Check<dyn Store>> {
    let mut all = commit::checks();
    all.extend(query::checks());
    all.extend(subscriptions::checks());
    all.extend(leases::checks());
    all.extend(truncate::checks());
    all
}

/// Runs every store check, each against a fresh store from `factory` (seeded first,
/// disposed after), and panics listing every failed check if any failed.
///
/// ```
/// use act_runtime::adapters::InMemoryStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = act_runtime::conformance::store::run(|| async { InMemoryStore::new() }).await;
/// println!("{report}");
/// # });
/// ```
pub async fn run<F, Fut, S>(factory: F) -> Report
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Store,
{
    let report = report(factory).await;
    report.assert_passed();
    report
}

/// Runs every store check like [`run`], returning the [`Report`] instead of panicking.
///
/// ```
/// use act_runtime::adapters::InMemoryStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = act_runtime::conformance::store::report(|| async { InMemoryStore::new() }).await;
/// assert!(report.is_ok(), "{report}");
/// # });
/// ```
#[must_use = "a report lists failed checks; call `assert_passed`"]
pub async fn report<F, Fut, S>(factory: F) -> Report
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Store,
{
    report_matching(factory, |_| true).await
}

/// Runs the store checks whose names `filter` accepts (for example one group:
/// `|name| name.starts_with("claim:")`), returning the [`Report`].
///
/// ```
/// use act_runtime::adapters::InMemoryStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = act_runtime::conformance::store::report_matching(
///     || async { InMemoryStore::new() },
///     |name| name.starts_with("query:"),
/// )
/// .await;
/// assert!(report.is_ok() && report.groups() == [("query", report.total())]);
/// # });
/// ```
#[must_use = "a report lists failed checks; call `assert_passed`"]
pub async fn report_matching<F, Fut, S>(factory: F, filter: impl Fn(&str) -> bool) -> Report
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Store,
{
    super::execute("store", &checks(), &filter, || {
        let made = factory();
        async move { Arc::new(made.await) as Arc<dyn Store> }
    })
    .await
}

// ------------------------------------------------------------------ fixtures

/// A short lease, for expiry checks.
pub(crate) const SHORT: Duration = Duration::from_millis(40);
/// Long enough to let a [`SHORT`] lease expire.
pub(crate) const EXPIRE: Duration = Duration::from_millis(70);
/// A lease that never expires during a check.
pub(crate) const LONG: Duration = Duration::from_secs(60);

/// The metadata of a test commit.
pub(crate) fn meta(correlation: &str) -> EventMeta {
    EventMeta {
        correlation: correlation.to_owned(),
        causation: Default::default(),
        actor: Actor::new("kit", "Conformance Kit"),
    }
}

/// A message with a JSON payload.
pub(crate) fn msg(name: &str, data: Value) -> Message {
    Message::new(
        name,
        serde_json::value::to_raw_value(&data).expect("JSON values serialize"),
    )
}

/// Messages named `names`, each with payload `{"n": <index>}`.
pub(crate) fn msgs(names: &[&str]) -> Vec<Message> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| msg(n, serde_json::json!({ "n": i })))
        .collect()
}

/// Passes when `r` is an invalid-input error, fails naming `what` otherwise.
pub(crate) fn expect_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) -> Outcome {
    match r {
        Err(StoreError::Invalid(_)) => Ok(()),
        other => Err(Fail(format!(
            "{what}: expected an invalid-input error, got {other:?}"
        ))),
    }
}

/// Commits `names` to `stream` (correlation `"c"`, no expected version).
pub(crate) async fn commit(
    s: &dyn Store,
    stream: &str,
    names: &[&str],
) -> Result<Vec<Committed>, Fail> {
    Ok(s.commit(stream, &msgs(names), &meta("c"), None).await?)
}

/// The events `q` selects.
pub(crate) async fn read(s: &dyn Store, q: &Query) -> Result<Vec<Committed>, Fail> {
    let mut out = Vec::new();
    let n = s.query(q, &mut |e| out.push(e.clone())).await?;
    if n != out.len() {
        return Err(Fail(format!(
            "query returned count {n} but fed {} events to the sink",
            out.len()
        )));
    }
    Ok(out)
}

/// The ids of the events `q` selects.
pub(crate) async fn ids(s: &dyn Store, q: &Query) -> Result<Vec<EventId>, Fail> {
    Ok(read(s, q).await?.into_iter().map(|e| e.id).collect())
}

/// The streams of the events `q` selects, deduplicated in order of first appearance.
pub(crate) async fn streams_of(s: &dyn Store, q: &Query) -> Result<Vec<String>, Fail> {
    let mut out: Vec<String> = Vec::new();
    for e in read(s, q).await? {
        if !out.contains(&e.stream) {
            out.push(e.stream);
        }
    }
    Ok(out)
}

/// The subscription row of `stream`, if any.
pub(crate) async fn row(s: &dyn Store, stream: &str) -> Result<Option<StreamPosition>, Fail> {
    let rows = s
        .query_streams(&StreamFilter {
            stream: Some(StreamMatch::Exact(stream.to_owned())),
            ..StreamFilter::default()
        })
        .await?;
    Ok(rows.into_iter().find(|r| r.stream == stream))
}

/// The subscription row of `stream`, which must exist.
pub(crate) async fn must_row(s: &dyn Store, stream: &str) -> Result<StreamPosition, Fail> {
    row(s, stream)
        .await?
        .ok_or_else(|| Fail(format!("no subscription row for `{stream}`")))
}

/// A subscription of `stream` with work mark `mark`.
pub(crate) fn marked(stream: &str, mark: EventId) -> Subscription {
    Subscription {
        correlated_at: Some(mark),
        ..Subscription::new(stream)
    }
}

/// Subscribes `subs` (no checkpoint).
pub(crate) async fn subscribe(s: &dyn Store, subs: &[Subscription]) -> Result<(), Fail> {
    s.subscribe(subs, None).await?;
    Ok(())
}

/// The streams of `leases`, in order.
pub(crate) fn streams(leases: &[Lease]) -> Vec<&str> {
    leases.iter().map(|l| l.stream.as_str()).collect()
}

/// The streams of `leases`, sorted.
pub(crate) fn sorted(leases: &[Lease]) -> Vec<String> {
    let mut v: Vec<String> = leases.iter().map(|l| l.stream.clone()).collect();
    v.sort();
    v
}

/// Claims exactly one lease on `stream` for `by` (the only claimable row).
pub(crate) async fn claim_one(s: &dyn Store, by: &str, lease: Duration) -> Result<Lease, Fail> {
    let mut leases = s.claim(1, 0, by, lease).await?;
    if leases.len() != 1 {
        return Err(Fail(format!(
            "expected one claimable row, claimed {:?}",
            streams(&leases)
        )));
    }
    Ok(leases.remove(0))
}

/// Sets up rows `streams` marked at `mark`, with watermarks `ats` (by claiming and acking),
/// leaving them unleased.
pub(crate) async fn rows_at(
    s: &dyn Store,
    rows: &[(&str, EventId, i32)],
    mark: EventId,
) -> Result<(), Fail> {
    let subs: Vec<Subscription> = rows
        .iter()
        .map(|(stream, _, priority)| Subscription {
            priority: *priority,
            ..marked(stream, mark)
        })
        .collect();
    subscribe(s, &subs).await?;
    let leases = s.claim(rows.len(), 0, "setup", LONG).await?;
    let acks: Vec<Lease> = leases
        .into_iter()
        .map(|mut l| {
            l.at = rows
                .iter()
                .find(|(stream, ..)| *stream == l.stream)
                .map_or(l.at, |(_, at, _)| *at);
            l
        })
        .collect();
    let acked = s.ack(&acks).await?;
    if acked.len() != rows.len() {
        return Err(Fail(format!(
            "setup: expected to ack {} rows, acked {:?}",
            rows.len(),
            streams(&acked)
        )));
    }
    Ok(())
}
