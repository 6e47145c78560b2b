//! Releasing and repairing rows: ack (with and without `due`), block, reset, unblock, and
//! listing rows with `query_streams`.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};

use super::{EXPIRE, LONG, SHORT, claim_one, marked, must_row, rows_at, streams, subscribe};
use crate::conformance::{Check, Fail, Outcome, checks, ensure, ensure_eq};
use crate::ports::{Lease, Store, StreamFilter, StreamMatch, Subscription};

pub(super) fn checks() -> Vec<Check<dyn Store>> {
    checks![dyn Store;
        "ack: moves the watermark to the lease's at and releases the row" => ack_moves,
        "ack: resets retry to -1" => ack_resets_retry,
        "ack: returns the acked leases" => ack_returns,
        "ack: a row whose watermark reaches its mark retires" => ack_retires,
        "ack: partial progress leaves the row claimable from the new watermark" => ack_partial,
        "ack: a lease now held by another holder is dropped" => ack_other_holder,
        "ack: a lease of a holder that never held the row is dropped" => ack_wrong_holder,
        "ack: a stale ack does not error and changes nothing" => ack_stale,
        "ack: an unknown stream does not error" => ack_unknown,
        "ack: empty input returns nothing" => ack_empty,
        "ack: an expired but untaken lease can still be acked by its holder" => ack_expired_untaken,
        "ack: with due, keeps the retry count and the holder" => due_keeps_retry,
        "ack: with due, the retry count becomes the lease's" => due_sets_retry,
        "ack: with due, hides the row until due, then it is claimable" => due_hides,
        "ack: with due, moves the watermark (partial progress)" => due_partial,
        "ack: with due, the next claim after due counts a retry" => due_retry_next,
        "ack: with due from another holder is dropped" => due_other_holder,
        "block: hides the row from claim" => block_hides,
        "block: returns the row after the update" => block_returns,
        "block: the watermark moves to the lease's at" => block_moves_at,
        "block: keeps the mark and the retry count" => block_keeps_mark,
        "block: another holder is rejected and the row is unchanged" => block_other_holder,
        "block: re-blocking is a no-op" => block_twice,
        "block: empty input returns nothing" => block_empty,
        "reset: rewinds to -1 and clears block, error, retry and lease" => reset_rewinds,
        "reset: counts the rows changed" => reset_counts,
        "reset: unknown streams and empty input count 0" => reset_unknown,
        "reset: a stream named twice counts once" => reset_duplicate,
        "reset: keeps the mark, so the row is claimable again" => reset_claimable,
        "reset: the old holder's ack is dropped" => reset_drops_holder,
        "unblock: keeps the watermark and clears the error" => unblock_keeps_at,
        "unblock: counts only rows that were blocked" => unblock_counts,
        "unblock: unknown streams and empty input count 0" => unblock_unknown,
        "unblock: the row is claimable again" => unblock_claimable,
        "unblock: keeps the watermark the block moved" => unblock_keeps_moved_at,
        "unblock: a row the block moved to its mark has no work" => unblock_at_mark,
        "query_streams: orders rows by stream name" => qs_order,
        "query_streams: an empty table returns nothing" => qs_empty,
        "query_streams: filters by exact stream" => qs_exact,
        "query_streams: filters by stream pattern" => qs_pattern,
        "query_streams: filters blocked and unblocked rows" => qs_blocked,
        "query_streams: pages with after (exclusive, by name)" => qs_after,
        "query_streams: limit cuts the page" => qs_limit,
        "query_streams: limit defaults to 100" => qs_default_limit,
        "query_streams: shows the mark and the lease" => qs_shows_lease,
    ]
}

async fn one(s: &dyn Store, stream: &str, mark: i64) -> Result<Lease, Fail> {
    subscribe(s, &[marked(stream, mark)]).await?;
    claim_one(s, "w", LONG).await
}

async fn ack_moves(s: Arc<dyn Store>) -> Outcome {
    let mut l = one(&*s, "t", 9).await?;
    l.at = 4;
    s.ack(&[l]).await?;
    let r = must_row(&*s, "t").await?;
    ensure_eq!(
        (r.at, r.leased_by, r.leased_until),
        (4, None, None),
        "(at, holder, expiry)"
    );
    Ok(())
}

async fn ack_resets_retry(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 9)]).await?;
    claim_one(&*s, "w", SHORT).await?;
    tokio::time::sleep(EXPIRE).await;
    let l = claim_one(&*s, "w", LONG).await?;
    ensure_eq!(l.retry, 1, "retry before the ack");
    s.ack(&[l]).await?;
    ensure_eq!(must_row(&*s, "t").await?.retry, -1, "retry after the ack");
    Ok(())
}

async fn ack_returns(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("a", 9), marked("b", 9)]).await?;
    let mut leases = s.claim(2, 0, "w", LONG).await?;
    for l in &mut leases {
        l.at = 2;
    }
    let acked = s.ack(&leases).await?;
    ensure_eq!(acked, leases, "acked leases");
    Ok(())
}

async fn ack_retires(s: Arc<dyn Store>) -> Outcome {
    let mut l = one(&*s, "t", 9).await?;
    l.at = 9;
    s.ack(&[l]).await?;
    ensure!(
        s.claim(5, 5, "w", LONG).await?.is_empty(),
        "a retired row was claimed"
    );
    Ok(())
}

async fn ack_partial(s: Arc<dyn Store>) -> Outcome {
    let mut l = one(&*s, "t", 9).await?;
    l.at = 5;
    s.ack(&[l]).await?;
    let l = claim_one(&*s, "w2", LONG).await?;
    ensure_eq!((l.at, l.retry), (5, 0), "(at, retry) of the next claim");
    Ok(())
}

async fn ack_other_holder(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 9)]).await?;
    let mut stale = claim_one(&*s, "w1", SHORT).await?;
    tokio::time::sleep(EXPIRE).await;
    claim_one(&*s, "w2", LONG).await?;
    stale.at = 7;
    ensure!(
        s.ack(&[stale]).await?.is_empty(),
        "the taken-over lease was acked"
    );
    let r = must_row(&*s, "t").await?;
    ensure_eq!(
        (r.at, r.leased_by.as_deref(), r.retry),
        (-1, Some("w2"), 1),
        "(at, holder, retry) unchanged"
    );
    Ok(())
}

async fn ack_wrong_holder(s: Arc<dyn Store>) -> Outcome {
    let l = one(&*s, "t", 9).await?;
    let forged = Lease {
        by: "intruder".into(),
        at: 8,
        ..l
    };
    ensure!(
        s.ack(&[forged]).await?.is_empty(),
        "a forged lease was acked"
    );
    let r = must_row(&*s, "t").await?;
    ensure_eq!(
        (r.at, r.leased_by.as_deref()),
        (-1, Some("w")),
        "(at, holder)"
    );
    Ok(())
}

async fn ack_stale(s: Arc<dyn Store>) -> Outcome {
    let mut l = one(&*s, "t", 9).await?;
    l.at = 3;
    s.ack(std::slice::from_ref(&l)).await?;
    l.at = 8;
    let again = s.ack(&[l]).await?;
    ensure!(again.is_empty(), "a stale ack was acked again");
    ensure_eq!(must_row(&*s, "t").await?.at, 3, "watermark");
    Ok(())
}

async fn ack_unknown(s: Arc<dyn Store>) -> Outcome {
    let ghost = Lease {
        stream: "ghost".into(),
        source: None,
        source_is_pattern: false,
        at: 3,
        by: "w".into(),
        retry: 0,
        lagging: true,
        due: None,
    };
    ensure!(s.ack(&[ghost]).await?.is_empty(), "acked an unknown stream");
    ensure!(
        s.query_streams(&StreamFilter::default()).await?.is_empty(),
        "a row was created"
    );
    Ok(())
}

async fn ack_empty(s: Arc<dyn Store>) -> Outcome {
    ensure!(s.ack(&[]).await?.is_empty(), "acked");
    Ok(())
}

async fn ack_expired_untaken(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 9)]).await?;
    let mut l = claim_one(&*s, "w", SHORT).await?;
    tokio::time::sleep(EXPIRE).await;
    l.at = 9;
    ensure_eq!(s.ack(&[l]).await?.len(), 1, "acked");
    ensure_eq!(must_row(&*s, "t").await?.at, 9, "watermark");
    Ok(())
}

fn due_in(ms: i64) -> Option<chrono::DateTime<Utc>> {
    Some(Utc::now() + TimeDelta::milliseconds(ms))
}

async fn due_keeps_retry(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 9)]).await?;
    claim_one(&*s, "w", SHORT).await?;
    tokio::time::sleep(EXPIRE).await;
    let mut l = claim_one(&*s, "w", LONG).await?;
    l.due = due_in(60_000);
    ensure_eq!(s.ack(&[l]).await?.len(), 1, "deferred leases acked");
    let r = must_row(&*s, "t").await?;
    ensure_eq!(
        (r.retry, r.leased_by.as_deref()),
        (1, Some("w")),
        "(retry, holder)"
    );
    Ok(())
}

async fn due_sets_retry(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 9)]).await?;
    claim_one(&*s, "w", SHORT).await?;
    tokio::time::sleep(EXPIRE).await;
    let mut l = claim_one(&*s, "w", SHORT).await?;
    ensure_eq!(l.retry, 1, "claimed retry");
    // the lease made progress before failing: the next event starts its own count
    l.at = 4;
    l.retry = 0;
    l.due = due_in(30);
    ensure_eq!(s.ack(&[l]).await?.len(), 1, "deferred leases acked");
    ensure_eq!(
        must_row(&*s, "t").await?.retry,
        0,
        "retry after the hand-back"
    );
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let again = claim_one(&*s, "w2", LONG).await?;
    ensure_eq!(
        (again.at, again.retry),
        (4, 1),
        "(at, retry) on the next claim"
    );
    Ok(())
}

async fn due_hides(s: Arc<dyn Store>) -> Outcome {
    let mut l = one(&*s, "t", 9).await?;
    l.due = due_in(60);
    s.ack(&[l]).await?;
    ensure!(
        s.claim(5, 5, "w2", LONG).await?.is_empty(),
        "claimable before due"
    );
    ensure!(
        s.claim(5, 5, "w", LONG).await?.is_empty(),
        "claimable by the holder before due"
    );
    tokio::time::sleep(std::time::Duration::from_millis(90)).await;
    ensure_eq!(
        streams(&s.claim(5, 5, "w2", LONG).await?),
        ["t"],
        "claimed after due"
    );
    Ok(())
}

async fn due_partial(s: Arc<dyn Store>) -> Outcome {
    let mut l = one(&*s, "t", 9).await?;
    l.at = 4;
    l.due = due_in(60_000);
    s.ack(&[l]).await?;
    ensure_eq!(must_row(&*s, "t").await?.at, 4, "watermark");
    Ok(())
}

async fn due_retry_next(s: Arc<dyn Store>) -> Outcome {
    let mut l = one(&*s, "t", 9).await?;
    l.due = due_in(30);
    s.ack(&[l]).await?;
    tokio::time::sleep(EXPIRE).await;
    let l = claim_one(&*s, "w", LONG).await?;
    ensure_eq!(l.retry, 1, "retry after a deferral");
    Ok(())
}

async fn due_other_holder(s: Arc<dyn Store>) -> Outcome {
    let l = one(&*s, "t", 9).await?;
    let forged = Lease {
        by: "intruder".into(),
        at: 5,
        due: due_in(60_000),
        ..l
    };
    ensure!(
        s.ack(&[forged]).await?.is_empty(),
        "deferred by a non-holder"
    );
    let r = must_row(&*s, "t").await?;
    ensure_eq!(
        (r.at, r.leased_by.as_deref()),
        (-1, Some("w")),
        "(at, holder)"
    );
    Ok(())
}

async fn block_hides(s: Arc<dyn Store>) -> Outcome {
    let l = one(&*s, "t", 9).await?;
    s.block(&[(l, "boom".into())]).await?;
    ensure!(
        s.claim(5, 5, "w", LONG).await?.is_empty(),
        "claimed a blocked row"
    );
    subscribe(&*s, &[marked("t", 20)]).await?;
    ensure!(
        s.claim(5, 5, "w", LONG).await?.is_empty(),
        "claimed a blocked row after a new mark"
    );
    Ok(())
}

async fn block_returns(s: Arc<dyn Store>) -> Outcome {
    let l = one(&*s, "t", 9).await?;
    let rows = s.block(&[(l, "boom".into())]).await?;
    ensure_eq!(rows.len(), 1, "rows returned");
    let r = &rows[0];
    ensure_eq!(
        (
            r.stream.as_str(),
            r.blocked,
            r.error.as_deref(),
            r.leased_by.as_deref()
        ),
        ("t", true, Some("boom"), None),
        "(stream, blocked, error, holder)"
    );
    ensure_eq!(
        *r,
        must_row(&*s, "t").await?,
        "the returned row is the stored row"
    );
    Ok(())
}

/// Blocks `stream` (marked at 9) from a lease claimed at `from` whose `at` the drain moved
/// to `to` (events up to `to` handled, the next one failed).
async fn blocked_after(s: &dyn Store, stream: &str, from: i64, to: i64) -> Result<(), Fail> {
    let mut l = one(s, stream, 9).await?;
    l.at = from;
    s.ack(&[l]).await?;
    let mut l = claim_one(s, "w", LONG).await?;
    ensure_eq!(l.at, from, "the claimed watermark");
    l.at = to;
    let rows = s.block(&[(l, "boom".into())]).await?;
    ensure_eq!(
        rows.iter().map(|r| r.at).collect::<Vec<_>>(),
        vec![to],
        "the returned rows' watermarks"
    );
    Ok(())
}

async fn block_moves_at(s: Arc<dyn Store>) -> Outcome {
    blocked_after(&*s, "t", 2, 6).await?;
    let r = must_row(&*s, "t").await?;
    ensure_eq!(
        (r.at, r.blocked, r.leased_by),
        (6, true, None),
        "(at, blocked, holder)"
    );
    // A lease that handled nothing keeps the watermark where it was.
    blocked_after(&*s, "u", 4, 4).await?;
    ensure_eq!(must_row(&*s, "u").await?.at, 4, "unmoved watermark");
    Ok(())
}

async fn block_keeps_mark(s: Arc<dyn Store>) -> Outcome {
    blocked_after(&*s, "t", 2, 6).await?;
    let r = must_row(&*s, "t").await?;
    ensure_eq!((r.correlated_at, r.retry), (Some(9), 0), "(mark, retry)");
    Ok(())
}

async fn block_other_holder(s: Arc<dyn Store>) -> Outcome {
    let l = one(&*s, "t", 9).await?;
    let before = must_row(&*s, "t").await?;
    let forged = Lease {
        by: "intruder".into(),
        at: 7,
        ..l
    };
    ensure!(
        s.block(&[(forged, "boom".into())]).await?.is_empty(),
        "blocked by a non-holder"
    );
    ensure_eq!(must_row(&*s, "t").await?, before, "row");
    Ok(())
}

async fn block_twice(s: Arc<dyn Store>) -> Outcome {
    let l = one(&*s, "t", 9).await?;
    s.block(&[(l.clone(), "first".into())]).await?;
    let again = s.block(&[(Lease { at: 5, ..l }, "second".into())]).await?;
    ensure!(again.is_empty(), "re-block returned rows");
    let r = must_row(&*s, "t").await?;
    ensure_eq!(
        (r.error.as_deref(), r.at),
        (Some("first"), -1),
        "(error, at)"
    );
    Ok(())
}

async fn block_empty(s: Arc<dyn Store>) -> Outcome {
    ensure!(s.block(&[]).await?.is_empty(), "blocked");
    Ok(())
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

async fn blocked_at(s: &dyn Store, stream: &str, at: i64) -> Result<(), Fail> {
    let mut l = one(s, stream, 9).await?;
    l.at = at;
    s.ack(&[l]).await?;
    let l = claim_one(s, "w", LONG).await?;
    s.block(&[(l, "boom".into())]).await?;
    Ok(())
}

async fn reset_rewinds(s: Arc<dyn Store>) -> Outcome {
    blocked_at(&*s, "t", 4).await?;
    ensure_eq!(s.reset(&names(&["t"])).await?, 1, "count");
    let r = must_row(&*s, "t").await?;
    ensure_eq!(
        (
            r.at,
            r.retry,
            r.blocked,
            r.error,
            r.leased_by,
            r.leased_until
        ),
        (-1, -1, false, None, None, None),
        "(at, retry, blocked, error, holder, expiry)"
    );
    Ok(())
}

async fn reset_counts(s: Arc<dyn Store>) -> Outcome {
    subscribe(
        &*s,
        &[
            Subscription::new("a"),
            Subscription::new("b"),
            Subscription::new("c"),
        ],
    )
    .await?;
    ensure_eq!(s.reset(&names(&["a", "c"])).await?, 2, "count");
    Ok(())
}

async fn reset_unknown(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[Subscription::new("a")]).await?;
    ensure_eq!(s.reset(&names(&["zz"])).await?, 0, "unknown");
    ensure_eq!(s.reset(&[]).await?, 0, "empty");
    Ok(())
}

async fn reset_duplicate(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[Subscription::new("a")]).await?;
    ensure_eq!(s.reset(&names(&["a", "a", "zz"])).await?, 1, "count");
    Ok(())
}

async fn reset_claimable(s: Arc<dyn Store>) -> Outcome {
    blocked_at(&*s, "t", 4).await?;
    s.reset(&names(&["t"])).await?;
    let l = claim_one(&*s, "w", LONG).await?;
    ensure_eq!((l.at, l.retry), (-1, 0), "(at, retry)");
    ensure_eq!(must_row(&*s, "t").await?.correlated_at, Some(9), "mark");
    Ok(())
}

async fn reset_drops_holder(s: Arc<dyn Store>) -> Outcome {
    let mut l = one(&*s, "t", 9).await?;
    s.reset(&names(&["t"])).await?;
    l.at = 9;
    ensure!(
        s.ack(&[l]).await?.is_empty(),
        "the old holder's ack was taken"
    );
    ensure_eq!(must_row(&*s, "t").await?.at, -1, "watermark");
    Ok(())
}

async fn unblock_keeps_at(s: Arc<dyn Store>) -> Outcome {
    blocked_at(&*s, "t", 4).await?;
    ensure_eq!(s.unblock(&names(&["t"])).await?, 1, "count");
    let r = must_row(&*s, "t").await?;
    ensure_eq!(
        (r.at, r.blocked, r.error, r.leased_by),
        (4, false, None, None),
        "(at, blocked, error, holder)"
    );
    Ok(())
}

async fn unblock_counts(s: Arc<dyn Store>) -> Outcome {
    blocked_at(&*s, "a", 1).await?;
    blocked_at(&*s, "b", 1).await?;
    subscribe(&*s, &[Subscription::new("c")]).await?;
    ensure_eq!(s.unblock(&names(&["a", "b", "c", "b"])).await?, 2, "count");
    ensure_eq!(
        s.unblock(&names(&["a", "b"])).await?,
        0,
        "count when none is blocked"
    );
    Ok(())
}

async fn unblock_unknown(s: Arc<dyn Store>) -> Outcome {
    blocked_at(&*s, "a", 1).await?;
    ensure_eq!(s.unblock(&names(&["zz"])).await?, 0, "unknown");
    ensure_eq!(s.unblock(&[]).await?, 0, "empty");
    ensure!(must_row(&*s, "a").await?.blocked, "untouched row unblocked");
    Ok(())
}

async fn unblock_claimable(s: Arc<dyn Store>) -> Outcome {
    blocked_at(&*s, "t", 4).await?;
    s.unblock(&names(&["t"])).await?;
    let l = claim_one(&*s, "w", LONG).await?;
    ensure_eq!((l.at, l.retry), (4, 0), "(at, retry)");
    Ok(())
}

async fn unblock_keeps_moved_at(s: Arc<dyn Store>) -> Outcome {
    blocked_after(&*s, "t", 2, 6).await?;
    ensure_eq!(s.unblock(&names(&["t"])).await?, 1, "count");
    ensure_eq!(must_row(&*s, "t").await?.at, 6, "watermark after unblock");
    // Handling resumes after the events handled before the block.
    let l = claim_one(&*s, "w", LONG).await?;
    ensure_eq!((l.at, l.retry), (6, 0), "(at, retry)");
    Ok(())
}

async fn unblock_at_mark(s: Arc<dyn Store>) -> Outcome {
    // The block came after the last marked event was handled.
    blocked_after(&*s, "t", 2, 9).await?;
    ensure_eq!(s.unblock(&names(&["t"])).await?, 1, "count");
    ensure!(
        s.claim(5, 5, "w", LONG).await?.is_empty(),
        "claimed a row with no work"
    );
    subscribe(&*s, &[marked("t", 12)]).await?;
    let l = claim_one(&*s, "w", LONG).await?;
    ensure_eq!(l.at, 9, "watermark after a new mark");
    Ok(())
}

async fn list(s: &dyn Store, f: StreamFilter) -> Result<Vec<String>, Fail> {
    Ok(s.query_streams(&f)
        .await?
        .into_iter()
        .map(|r| r.stream)
        .collect())
}

async fn qs_fixture(s: &dyn Store) -> Result<(), Fail> {
    let subs: Vec<_> = ["b", "a", "c-2", "c-1", "d", "e"]
        .iter()
        .map(|n| marked(n, 5))
        .collect();
    subscribe(s, &subs).await?;
    let leases = s.claim(6, 0, "w", LONG).await?;
    let blocked: Vec<(Lease, String)> = leases
        .into_iter()
        .filter(|l| l.stream == "d" || l.stream == "a")
        .map(|l| (l, "boom".to_owned()))
        .collect();
    s.block(&blocked).await?;
    Ok(())
}

async fn qs_order(s: Arc<dyn Store>) -> Outcome {
    qs_fixture(&*s).await?;
    ensure_eq!(
        list(&*s, StreamFilter::default()).await?,
        ["a", "b", "c-1", "c-2", "d", "e"],
        "rows"
    );
    Ok(())
}

async fn qs_empty(s: Arc<dyn Store>) -> Outcome {
    ensure!(list(&*s, StreamFilter::default()).await?.is_empty(), "rows");
    Ok(())
}

async fn qs_exact(s: Arc<dyn Store>) -> Outcome {
    qs_fixture(&*s).await?;
    let f = |x: &str| StreamFilter {
        stream: Some(StreamMatch::Exact(x.into())),
        ..StreamFilter::default()
    };
    ensure_eq!(list(&*s, f("c-1")).await?, ["c-1"], "exact c-1");
    ensure!(list(&*s, f("c")).await?.is_empty(), "exact c");
    ensure!(list(&*s, f("C-1")).await?.is_empty(), "exact C-1");
    Ok(())
}

async fn qs_pattern(s: Arc<dyn Store>) -> Outcome {
    qs_fixture(&*s).await?;
    let f = |x: &str| StreamFilter {
        stream: Some(StreamMatch::Pattern(x.into())),
        ..StreamFilter::default()
    };
    ensure_eq!(list(&*s, f("^c-")).await?, ["c-1", "c-2"], "^c-");
    ensure_eq!(list(&*s, f("-1$")).await?, ["c-1"], "-1$");
    ensure_eq!(list(&*s, f("^.$")).await?, ["a", "b", "d", "e"], "^.$");
    ensure!(list(&*s, f("^C")).await?.is_empty(), "^C");
    Ok(())
}

async fn qs_blocked(s: Arc<dyn Store>) -> Outcome {
    qs_fixture(&*s).await?;
    let f = |b: bool| StreamFilter {
        blocked: Some(b),
        ..StreamFilter::default()
    };
    ensure_eq!(list(&*s, f(true)).await?, ["a", "d"], "blocked");
    ensure_eq!(
        list(&*s, f(false)).await?,
        ["b", "c-1", "c-2", "e"],
        "unblocked"
    );
    Ok(())
}

async fn qs_after(s: Arc<dyn Store>) -> Outcome {
    qs_fixture(&*s).await?;
    let f = |a: &str| StreamFilter {
        after: Some(a.into()),
        ..StreamFilter::default()
    };
    ensure_eq!(list(&*s, f("c-1")).await?, ["c-2", "d", "e"], "after c-1");
    ensure_eq!(
        list(&*s, f("c")).await?,
        ["c-1", "c-2", "d", "e"],
        "after c"
    );
    ensure!(list(&*s, f("e")).await?.is_empty(), "after the last");
    Ok(())
}

async fn qs_limit(s: Arc<dyn Store>) -> Outcome {
    qs_fixture(&*s).await?;
    let page = |after: Option<&str>| StreamFilter {
        after: after.map(Into::into),
        limit: Some(2),
        ..StreamFilter::default()
    };
    ensure_eq!(list(&*s, page(None)).await?, ["a", "b"], "page 1");
    ensure_eq!(list(&*s, page(Some("b"))).await?, ["c-1", "c-2"], "page 2");
    ensure_eq!(list(&*s, page(Some("c-2"))).await?, ["d", "e"], "page 3");
    let zero = StreamFilter {
        limit: Some(0),
        ..StreamFilter::default()
    };
    ensure!(list(&*s, zero).await?.is_empty(), "limit 0");
    Ok(())
}

async fn qs_default_limit(s: Arc<dyn Store>) -> Outcome {
    let subs: Vec<_> = (0..130)
        .map(|i| Subscription::new(format!("s{i:03}")))
        .collect();
    subscribe(&*s, &subs).await?;
    let first = list(&*s, StreamFilter::default()).await?;
    ensure_eq!(first.len(), 100, "default page");
    let rest = list(
        &*s,
        StreamFilter {
            after: first.last().cloned(),
            ..StreamFilter::default()
        },
    )
    .await?;
    ensure_eq!(rest.len(), 30, "second page");
    ensure_eq!(rest[0].as_str(), "s100", "second page starts");
    Ok(())
}

async fn qs_shows_lease(s: Arc<dyn Store>) -> Outcome {
    rows_at(&*s, &[("t", 2, 4)], 7).await?;
    claim_one(&*s, "w", LONG).await?;
    let r = must_row(&*s, "t").await?;
    ensure_eq!(
        (
            r.correlated_at,
            r.priority,
            r.at,
            r.leased_by.as_deref(),
            r.retry
        ),
        (Some(7), 4, 2, Some("w"), 0),
        "(mark, priority, at, holder, retry)"
    );
    ensure!(
        r.leased_until.is_some_and(|u| u > Utc::now()),
        "expiry in the future"
    );
    Ok(())
}
