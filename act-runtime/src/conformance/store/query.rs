//! Queries: every filter of [`Query`] and its edges, the snapshot floor, ordering.

use std::sync::Arc;
use std::time::Duration;

use super::{commit, ids, meta, msgs, read, streams_of};
use crate::conformance::{Check, Fail, Outcome, checks, ensure, ensure_eq};
use crate::error::StoreError;
use crate::model::{Committed, EventId, SNAPSHOT_EVENT, TOMBSTONE_EVENT};
use crate::ports::{Query, Store, TruncateTarget};

pub(super) fn checks() -> Vec<Check<dyn Store>> {
    checks![dyn Store;
        "query: all returns every event in id order" => all_in_order,
        "query: the count returned equals the events fed to the sink" => count_matches,
        "query: an empty store returns nothing" => empty_store,
        "query: an exact stream matches only that stream" => exact_only,
        "query: an exact stream is not a pattern (`.` is literal)" => exact_not_pattern,
        "query: an exact stream is case-sensitive" => exact_case_sensitive,
        "query: an unknown exact stream returns nothing" => unknown_stream,
        "query: an unanchored pattern matches a substring" => pattern_substring,
        "query: pattern `^x$` is an exact match" => pattern_exact,
        "query: pattern `^x` is a prefix" => pattern_prefix,
        "query: pattern `x$` is a suffix" => pattern_suffix,
        "query: pattern `.` matches exactly one character" => pattern_dot,
        "query: pattern `.*` matches any run, including an empty one" => pattern_dot_star,
        "query: pattern `^.*$` matches every stream" => pattern_everything,
        "query: pattern `_` and `%` are literals" => pattern_literals,
        "query: patterns are case-sensitive" => pattern_case,
        "query: a pattern matching no stream returns nothing" => pattern_none,
        "query: a malformed pattern is rejected as invalid" => pattern_malformed,
        "query: a pattern outside the portable grammar is rejected as invalid, never run or widened" => pattern_richer,
        "query: names keeps only the listed names" => names_filter,
        "query: names [] matches nothing" => names_empty,
        "query: names with only unknown names matches nothing" => names_unknown,
        "query: names are case-sensitive" => names_case,
        "query: after is an exclusive lower bound" => after_exclusive,
        "query: after 0 is a real bound" => after_zero,
        "query: after the last id returns nothing" => after_last,
        "query: before is an exclusive upper bound" => before_exclusive,
        "query: before 0 is a real bound and returns nothing" => before_zero,
        "query: after and before select a window" => window,
        "query: after >= before selects nothing" => empty_window,
        "query: created_after is strict" => created_after_strict,
        "query: created_before is strict" => created_before_strict,
        "query: created_after and created_before select a window" => created_window,
        "query: limit cuts the result" => limit_cuts,
        "query: limit 0 returns nothing" => limit_zero,
        "query: a limit above the result size returns everything" => limit_large,
        "query: backward returns newest first" => backward_order,
        "query: backward with limit returns the newest n" => backward_limit,
        "query: backward stops at after" => backward_after,
        "query: backward stops at created_after" => backward_created_after,
        "query: correlation keeps only that correlation" => correlation_filter,
        "query: an unknown correlation returns nothing" => correlation_unknown,
        "query: snapshots are hidden without with_snaps" => snaps_hidden,
        "query: with_snaps includes snapshots in a pattern read" => snaps_pattern,
        "query: with_snaps on an exact stream starts at the latest snapshot" => snaps_floor,
        "query: the snapshot floor applies backward too" => snaps_floor_backward,
        "query: the snapshot floor is ignored when after is given" => snaps_floor_after,
        "query: limit cuts a read from the snapshot floor, both ways" => snaps_floor_limit,
        "query: with_snaps without snapshots returns the whole stream" => snaps_none,
        "query: the snapshot floor is per stream, not applied to patterns" => snaps_floor_pattern,
        "query: names filter after the snapshot floor" => snaps_floor_names,
        "query: tombstones are visible without with_snaps" => tombstones_visible,
        "query: filters combine (pattern, names, after, limit)" => combined,
        "query: skip_meta keeps everything but the meta" => skip_meta,
    ]
}

/// Streams with overlapping names, one event each (ids 1..=n in this order).
const STREAMS: &[&str] = &[
    "cart-1",
    "cart-12",
    "my-cart-1",
    "Cart-1",
    "order-1",
    "c-rt",
    "cXrt",
    "a_b",
    "axb",
    "p%q",
    "pxq",
    "abc",
    "a.c",
];

async fn fixture(s: &dyn Store) -> Result<(), Fail> {
    for stream in STREAMS {
        commit(s, stream, &["E"]).await?;
    }
    Ok(())
}

async fn matching(s: &dyn Store, q: Query) -> Result<Vec<String>, Fail> {
    let mut v = streams_of(s, &q).await?;
    v.sort();
    Ok(v)
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

async fn all_in_order(s: Arc<dyn Store>) -> Outcome {
    let mut committed = Vec::new();
    for stream in ["b", "a", "c", "a"] {
        committed.extend(commit(&*s, stream, &["E", "F"]).await?);
    }
    let got: Vec<(EventId, String)> = read(&*s, &Query::all())
        .await?
        .into_iter()
        .map(|e| (e.id, e.stream))
        .collect();
    let want: Vec<(EventId, String)> = committed.into_iter().map(|e| (e.id, e.stream)).collect();
    ensure_eq!(got, want, "all events");
    Ok(())
}

async fn count_matches(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B", "C"]).await?;
    let mut seen = 0;
    let n = s.query(&Query::all(), &mut |_| seen += 1).await?;
    ensure_eq!((n, seen), (3, 3), "(count, sink calls)");
    Ok(())
}

async fn empty_store(s: Arc<dyn Store>) -> Outcome {
    ensure!(
        read(&*s, &Query::all().with_snaps()).await?.is_empty(),
        "events"
    );
    ensure!(
        read(&*s, &Query::stream("x").with_snaps())
            .await?
            .is_empty(),
        "events"
    );
    ensure!(
        read(&*s, &Query::pattern("x").backward()).await?.is_empty(),
        "events"
    );
    Ok(())
}

async fn exact_only(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::stream("cart-1")).await?,
        ["cart-1"],
        "streams"
    );
    Ok(())
}

async fn exact_not_pattern(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::stream("a.c")).await?,
        ["a.c"],
        "streams"
    );
    ensure!(
        matching(&*s, Query::stream("^abc$")).await?.is_empty(),
        "`^abc$` exact"
    );
    Ok(())
}

async fn exact_case_sensitive(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::stream("Cart-1")).await?,
        ["Cart-1"],
        "streams"
    );
    ensure!(
        matching(&*s, Query::stream("CART-1")).await?.is_empty(),
        "CART-1"
    );
    Ok(())
}

async fn unknown_stream(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure!(
        read(&*s, &Query::stream("nope")).await?.is_empty(),
        "events"
    );
    ensure!(
        read(&*s, &Query::stream("cart")).await?.is_empty(),
        "a prefix is not a match"
    );
    Ok(())
}

async fn pattern_substring(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::pattern("cart-1")).await?,
        sorted(&["cart-1", "cart-12", "my-cart-1"]),
        "streams"
    );
    Ok(())
}

async fn pattern_exact(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::pattern("^cart-1$")).await?,
        ["cart-1"],
        "streams"
    );
    Ok(())
}

async fn pattern_prefix(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::pattern("^cart")).await?,
        sorted(&["cart-1", "cart-12"]),
        "streams"
    );
    Ok(())
}

async fn pattern_suffix(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::pattern("-1$")).await?,
        sorted(&["cart-1", "my-cart-1", "Cart-1", "order-1"]),
        "streams"
    );
    Ok(())
}

async fn pattern_dot(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::pattern("^c.rt$")).await?,
        sorted(&["c-rt", "cXrt"]),
        "streams"
    );
    ensure_eq!(
        matching(&*s, Query::pattern("^a.c$")).await?,
        sorted(&["abc", "a.c"]),
        "streams"
    );
    ensure!(
        matching(&*s, Query::pattern("^c.art-1$")).await?.is_empty(),
        "`.` is exactly one character"
    );
    Ok(())
}

async fn pattern_dot_star(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::pattern("^c.*1$")).await?,
        sorted(&["cart-1"]),
        "streams"
    );
    ensure_eq!(
        matching(&*s, Query::pattern("^cart-1.*$")).await?,
        sorted(&["cart-1", "cart-12"]),
        "`.*` matches an empty run"
    );
    Ok(())
}

async fn pattern_everything(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::pattern("^.*$")).await?,
        sorted(STREAMS),
        "`^.*$`"
    );
    ensure_eq!(
        matching(&*s, Query::pattern(".*")).await?,
        sorted(STREAMS),
        "`.*`"
    );
    Ok(())
}

async fn pattern_literals(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::pattern("^a_b$")).await?,
        ["a_b"],
        "`_` is literal"
    );
    ensure_eq!(
        matching(&*s, Query::pattern("p%q")).await?,
        ["p%q"],
        "`%` is literal"
    );
    Ok(())
}

async fn pattern_case(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure_eq!(
        matching(&*s, Query::pattern("^Cart")).await?,
        ["Cart-1"],
        "`^Cart`"
    );
    ensure!(
        matching(&*s, Query::pattern("ORDER")).await?.is_empty(),
        "`ORDER`"
    );
    Ok(())
}

async fn pattern_none(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    ensure!(
        matching(&*s, Query::pattern("^zzz")).await?.is_empty(),
        "streams"
    );
    Ok(())
}

async fn pattern_malformed(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    for p in ["cart(", "[a-"] {
        match s.query(&Query::pattern(p), &mut |_| {}).await {
            Err(StoreError::Invalid(_)) => {}
            other => {
                return Err(Fail(format!(
                    "pattern `{p}`: expected invalid, got {other:?}"
                )));
            }
        }
    }
    Ok(())
}

async fn pattern_richer(s: Arc<dyn Store>) -> Outcome {
    fixture(&*s).await?;
    for p in [
        "^(cart|order)-1$",
        "^cart-[0-9]+$",
        "^a[._]c$",
        "cart|order",
        "a+",
    ] {
        match s.query(&Query::pattern(p), &mut |_| {}).await {
            Err(StoreError::Invalid(_)) => {}
            other => {
                return Err(Fail(format!(
                    "pattern `{p}`: expected invalid, got {other:?}"
                )));
            }
        }
    }
    Ok(())
}

async fn names_fixture(s: &dyn Store) -> Result<Vec<Committed>, Fail> {
    let mut out = commit(s, "s", &["A", "B", "C", "A"]).await?;
    out.extend(commit(s, "t", &["B", "D"]).await?);
    Ok(out)
}

fn names(events: &[Committed]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

async fn names_filter(s: Arc<dyn Store>) -> Outcome {
    names_fixture(&*s).await?;
    let got = read(&*s, &Query::all().names(["A", "D"])).await?;
    ensure_eq!(names(&got), ["A", "A", "D"], "names");
    let got = read(&*s, &Query::stream("s").names(["B"])).await?;
    ensure_eq!(names(&got), ["B"], "names in stream s");
    Ok(())
}

async fn names_empty(s: Arc<dyn Store>) -> Outcome {
    names_fixture(&*s).await?;
    let none: [&str; 0] = [];
    ensure!(
        read(&*s, &Query::all().names(none)).await?.is_empty(),
        "all"
    );
    ensure!(
        read(&*s, &Query::stream("s").names(none).with_snaps())
            .await?
            .is_empty(),
        "stream"
    );
    ensure!(
        read(&*s, &Query::pattern("s").names(none))
            .await?
            .is_empty(),
        "pattern"
    );
    Ok(())
}

async fn names_unknown(s: Arc<dyn Store>) -> Outcome {
    names_fixture(&*s).await?;
    ensure!(
        read(&*s, &Query::all().names(["Z", "Y"])).await?.is_empty(),
        "events"
    );
    Ok(())
}

async fn names_case(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["Added", "added"]).await?;
    let got = read(&*s, &Query::all().names(["added"])).await?;
    ensure_eq!(names(&got), ["added"], "names");
    Ok(())
}

/// Ten events over two streams: ids `base+1 ..= base+10`; returns the ids.
async fn ten(s: &dyn Store) -> Result<Vec<EventId>, Fail> {
    let mut out = Vec::new();
    for i in 0..5 {
        let stream = if i % 2 == 0 { "a" } else { "b" };
        out.extend(
            commit(s, stream, &["E", "F"])
                .await?
                .into_iter()
                .map(|e| e.id),
        );
    }
    Ok(out)
}

async fn after_exclusive(s: Arc<dyn Store>) -> Outcome {
    let all = ten(&*s).await?;
    ensure_eq!(
        ids(&*s, &Query::all().after(all[3])).await?,
        all[4..].to_vec(),
        "ids"
    );
    let a: Vec<EventId> = ids(&*s, &Query::stream("a")).await?;
    ensure_eq!(
        ids(&*s, &Query::stream("a").after(a[1])).await?,
        a[2..].to_vec(),
        "ids in stream a"
    );
    Ok(())
}

async fn after_zero(s: Arc<dyn Store>) -> Outcome {
    let all = ten(&*s).await?;
    ensure_eq!(
        ids(&*s, &Query::all().after(0)).await?,
        all,
        "after 0 keeps ids > 0"
    );
    ensure_eq!(
        ids(&*s, &Query::stream("a").after(0)).await?,
        ids(&*s, &Query::stream("a")).await?,
        "after 0 on a stream"
    );
    Ok(())
}

async fn after_last(s: Arc<dyn Store>) -> Outcome {
    let all = ten(&*s).await?;
    let last = *all.last().unwrap_or(&0);
    ensure!(
        ids(&*s, &Query::all().after(last)).await?.is_empty(),
        "all after last"
    );
    ensure!(
        ids(&*s, &Query::stream("a").after(last)).await?.is_empty(),
        "stream after last"
    );
    Ok(())
}

async fn before_exclusive(s: Arc<dyn Store>) -> Outcome {
    let all = ten(&*s).await?;
    ensure_eq!(
        ids(&*s, &Query::all().before(all[3])).await?,
        all[..3].to_vec(),
        "ids"
    );
    Ok(())
}

async fn before_zero(s: Arc<dyn Store>) -> Outcome {
    ten(&*s).await?;
    ensure!(
        ids(&*s, &Query::all().before(0)).await?.is_empty(),
        "all before 0"
    );
    ensure!(
        ids(&*s, &Query::stream("a").before(0).with_snaps())
            .await?
            .is_empty(),
        "stream before 0"
    );
    Ok(())
}

async fn window(s: Arc<dyn Store>) -> Outcome {
    let all = ten(&*s).await?;
    ensure_eq!(
        ids(&*s, &Query::all().after(all[2]).before(all[6])).await?,
        all[3..6].to_vec(),
        "ids"
    );
    ensure_eq!(
        ids(&*s, &Query::all().after(all[2]).before(all[6]).backward()).await?,
        all[3..6].iter().rev().copied().collect::<Vec<_>>(),
        "ids backward"
    );
    Ok(())
}

async fn empty_window(s: Arc<dyn Store>) -> Outcome {
    let all = ten(&*s).await?;
    ensure!(
        ids(&*s, &Query::all().after(all[4]).before(all[4]))
            .await?
            .is_empty(),
        "after = before"
    );
    ensure!(
        ids(&*s, &Query::all().after(all[6]).before(all[2]))
            .await?
            .is_empty(),
        "after > before"
    );
    ensure!(
        ids(&*s, &Query::all().after(all[4]).before(all[5]))
            .await?
            .is_empty(),
        "adjacent bounds"
    );
    Ok(())
}

/// Three commits a few milliseconds apart; returns each commit's events.
async fn spaced(s: &dyn Store) -> Result<Vec<Vec<Committed>>, Fail> {
    let mut out = Vec::new();
    for (i, stream) in ["a", "b", "a"].iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        out.push(commit(s, stream, &["E", "F"]).await?);
    }
    Ok(out)
}

fn idv(batches: &[Vec<Committed>]) -> Vec<EventId> {
    batches.iter().flatten().map(|e| e.id).collect()
}

async fn created_after_strict(s: Arc<dyn Store>) -> Outcome {
    let b = spaced(&*s).await?;
    ensure_eq!(
        ids(&*s, &Query::all().created_after(b[1][0].created)).await?,
        idv(&b[2..]),
        "created_after the second commit's time"
    );
    ensure_eq!(
        ids(
            &*s,
            &Query::all().created_after(b[0][0].created - chrono::TimeDelta::milliseconds(1))
        )
        .await?,
        idv(&b),
        "created_after a time before everything"
    );
    Ok(())
}

async fn created_before_strict(s: Arc<dyn Store>) -> Outcome {
    let b = spaced(&*s).await?;
    ensure_eq!(
        ids(&*s, &Query::all().created_before(b[1][0].created)).await?,
        idv(&b[..1]),
        "created_before the second commit's time"
    );
    ensure!(
        ids(&*s, &Query::all().created_before(b[0][0].created))
            .await?
            .is_empty(),
        "created_before the first commit's time"
    );
    Ok(())
}

async fn created_window(s: Arc<dyn Store>) -> Outcome {
    let b = spaced(&*s).await?;
    ensure_eq!(
        ids(
            &*s,
            &Query::all()
                .created_after(b[0][0].created)
                .created_before(b[2][0].created)
        )
        .await?,
        idv(&b[1..2]),
        "ids"
    );
    ensure_eq!(
        ids(&*s, &Query::stream("a").created_after(b[0][0].created)).await?,
        idv(&b[2..]),
        "created_after on a stream"
    );
    Ok(())
}

async fn limit_cuts(s: Arc<dyn Store>) -> Outcome {
    let all = ten(&*s).await?;
    ensure_eq!(
        ids(&*s, &Query::all().limit(3)).await?,
        all[..3].to_vec(),
        "ids"
    );
    let a = ids(&*s, &Query::stream("a")).await?;
    ensure_eq!(
        ids(&*s, &Query::stream("a").limit(2)).await?,
        a[..2].to_vec(),
        "stream ids"
    );
    Ok(())
}

async fn limit_zero(s: Arc<dyn Store>) -> Outcome {
    ten(&*s).await?;
    ensure!(ids(&*s, &Query::all().limit(0)).await?.is_empty(), "all");
    ensure!(
        ids(&*s, &Query::stream("a").limit(0)).await?.is_empty(),
        "stream"
    );
    Ok(())
}

async fn limit_large(s: Arc<dyn Store>) -> Outcome {
    let all = ten(&*s).await?;
    ensure_eq!(ids(&*s, &Query::all().limit(1000)).await?, all, "ids");
    ensure_eq!(
        ids(&*s, &Query::all().limit(usize::MAX)).await?,
        all,
        "ids, usize::MAX"
    );
    Ok(())
}

async fn backward_order(s: Arc<dyn Store>) -> Outcome {
    let all = ten(&*s).await?;
    let rev: Vec<EventId> = all.iter().rev().copied().collect();
    ensure_eq!(
        ids(&*s, &Query::all().backward()).await?,
        rev,
        "all backward"
    );
    let mut a = ids(&*s, &Query::stream("a")).await?;
    a.reverse();
    ensure_eq!(
        ids(&*s, &Query::stream("a").backward()).await?,
        a,
        "stream backward"
    );
    Ok(())
}

async fn backward_limit(s: Arc<dyn Store>) -> Outcome {
    let all = ten(&*s).await?;
    ensure_eq!(
        ids(&*s, &Query::all().backward().limit(2)).await?,
        vec![all[9], all[8]],
        "ids"
    );
    Ok(())
}

async fn backward_after(s: Arc<dyn Store>) -> Outcome {
    let all = ten(&*s).await?;
    ensure_eq!(
        ids(&*s, &Query::all().backward().after(all[6])).await?,
        vec![all[9], all[8], all[7]],
        "ids"
    );
    Ok(())
}

async fn backward_created_after(s: Arc<dyn Store>) -> Outcome {
    let b = spaced(&*s).await?;
    let mut want = idv(&b[1..]);
    want.reverse();
    ensure_eq!(
        ids(&*s, &Query::all().backward().created_after(b[0][0].created)).await?,
        want,
        "ids"
    );
    Ok(())
}

async fn correlation_fixture(s: &dyn Store) -> Result<(), Fail> {
    s.commit("a", &msgs(&["A", "B"]), &meta("req-1"), None)
        .await?;
    s.commit("b", &msgs(&["C"]), &meta("req-2"), None).await?;
    s.commit("a", &msgs(&["D"]), &meta("req-1"), None).await?;
    s.commit("c", &msgs(&["E"]), &meta("req-10"), None).await?;
    Ok(())
}

async fn correlation_filter(s: Arc<dyn Store>) -> Outcome {
    correlation_fixture(&*s).await?;
    let got = read(&*s, &Query::all().correlation("req-1")).await?;
    ensure_eq!(names(&got), ["A", "B", "D"], "names");
    let got = read(&*s, &Query::stream("b").correlation("req-2")).await?;
    ensure_eq!(names(&got), ["C"], "names in stream b");
    Ok(())
}

async fn correlation_unknown(s: Arc<dyn Store>) -> Outcome {
    correlation_fixture(&*s).await?;
    ensure!(
        read(&*s, &Query::all().correlation("req"))
            .await?
            .is_empty(),
        "a prefix is not a match"
    );
    ensure!(
        read(&*s, &Query::all().correlation("nope"))
            .await?
            .is_empty(),
        "events"
    );
    Ok(())
}

/// `s`: A, B, snap, C, snap, D (ids returned); `t`: X, snap.
async fn snap_fixture(s: &dyn Store) -> Result<Vec<Committed>, Fail> {
    let mut out = commit(s, "s", &["A", "B", SNAPSHOT_EVENT]).await?;
    commit(s, "t", &["X", SNAPSHOT_EVENT]).await?;
    out.extend(commit(s, "s", &["C", SNAPSHOT_EVENT, "D"]).await?);
    Ok(out)
}

async fn snaps_hidden(s: Arc<dyn Store>) -> Outcome {
    snap_fixture(&*s).await?;
    ensure_eq!(
        names(&read(&*s, &Query::stream("s")).await?),
        ["A", "B", "C", "D"],
        "stream read"
    );
    ensure!(
        read(&*s, &Query::all())
            .await?
            .iter()
            .all(|e| e.name != SNAPSHOT_EVENT),
        "snapshot in an unfiltered read"
    );
    ensure!(
        read(&*s, &Query::all().names([SNAPSHOT_EVENT]))
            .await?
            .is_empty(),
        "snapshot selected by name without with_snaps"
    );
    Ok(())
}

async fn snaps_pattern(s: Arc<dyn Store>) -> Outcome {
    snap_fixture(&*s).await?;
    let got = read(&*s, &Query::pattern("^s$").with_snaps()).await?;
    ensure_eq!(
        names(&got),
        ["A", "B", SNAPSHOT_EVENT, "C", SNAPSHOT_EVENT, "D"],
        "pattern read with snapshots"
    );
    ensure_eq!(
        read(&*s, &Query::all().with_snaps()).await?.len(),
        8,
        "all events with snapshots"
    );
    Ok(())
}

async fn snaps_floor(s: Arc<dyn Store>) -> Outcome {
    let ev = snap_fixture(&*s).await?;
    let got = read(&*s, &Query::stream("s").with_snaps()).await?;
    ensure_eq!(
        names(&got),
        [SNAPSHOT_EVENT, "D"],
        "names from the latest snapshot"
    );
    ensure_eq!(got[0].id, ev[4].id, "the floor is the latest snapshot's id");
    Ok(())
}

async fn snaps_floor_backward(s: Arc<dyn Store>) -> Outcome {
    snap_fixture(&*s).await?;
    let got = read(&*s, &Query::stream("s").with_snaps().backward()).await?;
    ensure_eq!(names(&got), ["D", SNAPSHOT_EVENT], "names backward");
    Ok(())
}

async fn snaps_floor_after(s: Arc<dyn Store>) -> Outcome {
    let ev = snap_fixture(&*s).await?;
    let got = read(&*s, &Query::stream("s").with_snaps().after(ev[0].id)).await?;
    ensure_eq!(
        names(&got),
        ["B", SNAPSHOT_EVENT, "C", SNAPSHOT_EVENT, "D"],
        "names after the first event"
    );
    let got = read(&*s, &Query::stream("s").with_snaps().after(0)).await?;
    ensure_eq!(got.len(), 6, "after 0 reads the whole stream");
    Ok(())
}

async fn snaps_floor_limit(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B", "C"]).await?;
    let got = read(&*s, &Query::stream("s").with_snaps().limit(2)).await?;
    ensure_eq!(names(&got), ["A", "B"], "the first two");
    let got = read(&*s, &Query::stream("s").with_snaps().backward().limit(2)).await?;
    ensure_eq!(names(&got), ["C", "B"], "the last two, newest first");
    let got = read(&*s, &Query::stream("s").with_snaps().limit(0)).await?;
    ensure_eq!(got.len(), 0, "limit 0");
    Ok(())
}

async fn snaps_none(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B"]).await?;
    ensure_eq!(
        names(&read(&*s, &Query::stream("s").with_snaps()).await?),
        ["A", "B"],
        "names"
    );
    Ok(())
}

async fn snaps_floor_pattern(s: Arc<dyn Store>) -> Outcome {
    snap_fixture(&*s).await?;
    let got = read(&*s, &Query::stream("t").with_snaps()).await?;
    ensure_eq!(
        names(&got),
        [SNAPSHOT_EVENT],
        "stream t from its own snapshot"
    );
    let got = read(&*s, &Query::pattern("^(s|t)$").with_snaps()).await;
    if let Ok(got) = got {
        ensure_eq!(got.len(), 8, "a pattern read has no floor");
    }
    let got = read(&*s, &Query::pattern("^.$").with_snaps()).await?;
    ensure_eq!(got.len(), 8, "a pattern read has no floor");
    Ok(())
}

async fn snaps_floor_names(s: Arc<dyn Store>) -> Outcome {
    snap_fixture(&*s).await?;
    let got = read(&*s, &Query::stream("s").with_snaps().names(["A", "D"])).await?;
    ensure_eq!(names(&got), ["D"], "names after the floor");
    Ok(())
}

async fn tombstones_visible(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B"]).await?;
    s.truncate(&[TruncateTarget {
        stream: "s".into(),
        snapshot: None,
        meta: meta("close"),
        expected_head: None,
    }])
    .await?;
    ensure_eq!(
        names(&read(&*s, &Query::stream("s")).await?),
        [TOMBSTONE_EVENT],
        "plain read"
    );
    ensure_eq!(
        names(&read(&*s, &Query::all().backward().limit(1)).await?),
        [TOMBSTONE_EVENT],
        "head of the log"
    );
    Ok(())
}

async fn combined(s: Arc<dyn Store>) -> Outcome {
    let mut ev = Vec::new();
    for stream in ["cart-1", "order-1", "cart-2", "cart-1"] {
        ev.extend(commit(&*s, stream, &["A", "B", "A"]).await?);
    }
    let got = read(
        &*s,
        &Query::pattern("^cart-")
            .names(["A"])
            .after(ev[0].id)
            .limit(3),
    )
    .await?;
    let want: Vec<EventId> = ev
        .iter()
        .filter(|e| e.stream.starts_with("cart-") && e.name == "A" && e.id > ev[0].id)
        .take(3)
        .map(|e| e.id)
        .collect();
    ensure_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), want, "ids");
    Ok(())
}

async fn skip_meta(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B"]).await?;
    commit(&*s, "t", &["C"]).await?;
    for q in [
        Query::all(),
        Query::stream("s"),
        Query::stream("s").after(1),
    ] {
        let full = read(&*s, &q).await?;
        let lean = read(
            &*s,
            &Query {
                skip_meta: true,
                ..q.clone()
            },
        )
        .await?;
        let key = |e: &Committed| {
            (
                e.id,
                e.name.clone(),
                e.data.get().to_owned(),
                e.stream.clone(),
                e.version,
                e.created,
            )
        };
        ensure_eq!(
            lean.iter().map(key).collect::<Vec<_>>(),
            full.iter().map(key).collect::<Vec<_>>(),
            "{q:?}: events"
        );
    }
    Ok(())
}
