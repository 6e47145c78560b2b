//! Subscribe (idempotent upserts, priority, marks, the checkpoint) and claim (eligibility,
//! frontiers, fairness, leases and their expiry).

use std::collections::HashSet;
use std::sync::Arc;

use super::{
    EXPIRE, LONG, SHORT, claim_one, marked, must_row, row, rows_at, sorted, streams, subscribe,
};
use crate::conformance::{Check, Fail, Outcome, checks, ensure, ensure_eq};
use crate::error::StoreError;
use crate::ports::{Store, StreamFilter, Subscription};

pub(super) fn checks() -> Vec<Check<dyn Store>> {
    checks![dyn Store;
        "subscribe: counts the new rows" => counts_new,
        "subscribe: is idempotent" => idempotent,
        "subscribe: a stream named twice in one call is one row" => twice_in_one_call,
        "subscribe: a new row starts at -1, retry -1, unblocked, unleased" => new_row_defaults,
        "subscribe: source and source_is_pattern round-trip" => source_round_trips,
        "subscribe: keeps the maximum priority" => max_priority,
        "subscribe: keeps the maximum priority among negatives" => max_negative_priority,
        "subscribe: a zero priority does not lower a positive one" => zero_keeps_positive,
        "subscribe: keeps the maximum mark" => max_mark,
        "subscribe: no mark leaves the mark as it is" => no_mark_keeps,
        "subscribe: a mark can be set on an unmarked row" => mark_later,
        "subscribe: the watermark is max(at), -1 when there are no rows" => watermark,
        "subscribe: the checkpoint is None until written" => checkpoint_none,
        "subscribe: the checkpoint round-trips and is returned" => checkpoint_round_trip,
        "subscribe: the checkpoint only moves up" => checkpoint_monotone,
        "subscribe: the checkpoint is untouched when omitted" => checkpoint_omitted,
        "subscribe: the checkpoint is written in the same call as the rows" => checkpoint_with_rows,
        "subscribe: the checkpoint is not a subscription row" => checkpoint_invisible,
        "subscribe: empty input with no checkpoint only reads" => empty_reads,
        "subscribe: a NUL in a stream name is rejected, nothing written" => nul_rejected,
        "subscribe: a source pattern outside the portable grammar is rejected, nothing written" => bad_source_pattern_rejected,
        "claim: an unmarked row is never claimed" => unmarked_never,
        "claim: a marked row is claimed once marked" => marked_claimed,
        "claim: a row whose watermark reached its mark is not claimed" => caught_up,
        "claim: the lease carries stream, source, at, holder, retry 0 and lagging" => lease_fields,
        "claim: records the holder and a future expiry on the row" => lease_on_row,
        "claim: retry counts claims since the last ack" => retry_counts,
        "claim: an unexpired lease is never handed out" => unexpired_never,
        "claim: an expired lease is claimable again and its retry goes up" => expired_reclaimed,
        "claim: an expired lease goes to exactly one of two claimers" => expired_once,
        "claim: zero lagging and zero leading returns nothing" => zero_zero,
        "claim: an empty table returns nothing" => empty_table,
        "claim: claims at most lagging + leading rows" => at_most,
        "claim: the lagging frontier takes the lowest watermarks" => lagging_lowest,
        "claim: the leading frontier takes the highest watermarks" => leading_highest,
        "claim: the lagging flag tells the frontier" => lagging_flag,
        "claim: no row is on both frontiers" => no_duplicates,
        "claim: the lagging frontier orders by priority first" => priority_first,
        "claim: the fairness reserve takes the lowest watermark whatever its priority" => fairness,
        "claim: one lagging slot has no fairness reserve" => no_reserve_for_one,
        "claim: competing claimers never get the same row" => competing,
        "claim: a raised mark makes a caught-up row claimable again" => raised_mark,
    ]
}

async fn counts_new(s: Arc<dyn Store>) -> Outcome {
    let r = s
        .subscribe(&[Subscription::new("a"), Subscription::new("b")], None)
        .await?;
    ensure_eq!(r.subscribed, 2, "new rows");
    let r = s
        .subscribe(&[Subscription::new("b"), Subscription::new("c")], None)
        .await?;
    ensure_eq!(r.subscribed, 1, "new rows on the second call");
    Ok(())
}

async fn idempotent(s: Arc<dyn Store>) -> Outcome {
    let subs = [marked("a", 5), Subscription::new("b")];
    s.subscribe(&subs, None).await?;
    let before = s.query_streams(&StreamFilter::default()).await?;
    let r = s.subscribe(&subs, None).await?;
    ensure_eq!(r.subscribed, 0, "new rows");
    let after = s.query_streams(&StreamFilter::default()).await?;
    ensure_eq!(after, before, "rows after a repeated subscribe");
    Ok(())
}

async fn twice_in_one_call(s: Arc<dyn Store>) -> Outcome {
    let r = s
        .subscribe(
            &[
                Subscription::new("a"),
                Subscription {
                    priority: 3,
                    ..marked("a", 4)
                },
            ],
            None,
        )
        .await?;
    ensure_eq!(r.subscribed, 1, "new rows");
    let rows = s.query_streams(&StreamFilter::default()).await?;
    ensure_eq!(rows.len(), 1, "rows");
    ensure_eq!(
        (rows[0].priority, rows[0].correlated_at),
        (3, Some(4)),
        "(priority, mark) merged"
    );
    Ok(())
}

async fn new_row_defaults(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[Subscription::new("a")]).await?;
    let r = must_row(&*s, "a").await?;
    ensure_eq!(
        (
            r.at,
            r.retry,
            r.blocked,
            r.error,
            r.leased_by,
            r.leased_until,
            r.correlated_at,
            r.priority
        ),
        (-1, -1, false, None, None, None, None, 0),
        "(at, retry, blocked, error, leased_by, leased_until, mark, priority)"
    );
    Ok(())
}

async fn source_round_trips(s: Arc<dyn Store>) -> Outcome {
    subscribe(
        &*s,
        &[
            Subscription {
                source: Some("cart-1".into()),
                ..Subscription::new("a")
            },
            Subscription {
                source: Some("^cart-".into()),
                source_is_pattern: true,
                ..Subscription::new("b")
            },
            Subscription::new("c"),
        ],
    )
    .await?;
    let got: Vec<(Option<String>, bool)> = s
        .query_streams(&StreamFilter::default())
        .await?
        .into_iter()
        .map(|r| (r.source, r.source_is_pattern))
        .collect();
    ensure_eq!(
        got,
        [
            (Some("cart-1".to_owned()), false),
            (Some("^cart-".to_owned()), true),
            (None, false)
        ],
        "(source, source_is_pattern)"
    );
    Ok(())
}

async fn priority_after(s: &dyn Store, priorities: &[i32]) -> Result<i32, Fail> {
    for &p in priorities {
        subscribe(
            s,
            &[Subscription {
                priority: p,
                ..Subscription::new("a")
            }],
        )
        .await?;
    }
    Ok(must_row(s, "a").await?.priority)
}

async fn max_priority(s: Arc<dyn Store>) -> Outcome {
    ensure_eq!(priority_after(&*s, &[1, 5, 3]).await?, 5, "priority");
    Ok(())
}

async fn max_negative_priority(s: Arc<dyn Store>) -> Outcome {
    ensure_eq!(priority_after(&*s, &[-5, -2, -7]).await?, -2, "priority");
    Ok(())
}

async fn zero_keeps_positive(s: Arc<dyn Store>) -> Outcome {
    ensure_eq!(priority_after(&*s, &[2, 0]).await?, 2, "priority");
    Ok(())
}

async fn max_mark(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("a", 5)]).await?;
    subscribe(&*s, &[marked("a", 9)]).await?;
    subscribe(&*s, &[marked("a", 3)]).await?;
    ensure_eq!(must_row(&*s, "a").await?.correlated_at, Some(9), "mark");
    Ok(())
}

async fn no_mark_keeps(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("a", 5)]).await?;
    subscribe(&*s, &[Subscription::new("a")]).await?;
    ensure_eq!(must_row(&*s, "a").await?.correlated_at, Some(5), "mark");
    Ok(())
}

async fn mark_later(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[Subscription::new("a")]).await?;
    subscribe(&*s, &[marked("a", 2)]).await?;
    ensure_eq!(must_row(&*s, "a").await?.correlated_at, Some(2), "mark");
    Ok(())
}

async fn watermark(s: Arc<dyn Store>) -> Outcome {
    ensure_eq!(s.subscribe(&[], None).await?.watermark, -1, "no rows");
    let r = s
        .subscribe(&[marked("a", 10), marked("b", 10)], None)
        .await?;
    ensure_eq!(r.watermark, -1, "fresh rows");
    let leases = s.claim(2, 0, "w", LONG).await?;
    let acks: Vec<_> = leases
        .into_iter()
        .map(|mut l| {
            l.at = if l.stream == "a" { 4 } else { 7 };
            l
        })
        .collect();
    s.ack(&acks).await?;
    ensure_eq!(s.subscribe(&[], None).await?.watermark, 7, "max(at)");
    Ok(())
}

async fn checkpoint_none(s: Arc<dyn Store>) -> Outcome {
    ensure_eq!(s.subscribe(&[], None).await?.checkpoint, None, "checkpoint");
    ensure_eq!(
        s.subscribe(&[Subscription::new("a")], None)
            .await?
            .checkpoint,
        None,
        "checkpoint after a subscribe without one"
    );
    Ok(())
}

async fn checkpoint_round_trip(s: Arc<dyn Store>) -> Outcome {
    ensure_eq!(
        s.subscribe(&[], Some(7)).await?.checkpoint,
        Some(7),
        "returned"
    );
    ensure_eq!(
        s.subscribe(&[], None).await?.checkpoint,
        Some(7),
        "read back"
    );
    Ok(())
}

async fn checkpoint_monotone(s: Arc<dyn Store>) -> Outcome {
    s.subscribe(&[], Some(10)).await?;
    ensure_eq!(
        s.subscribe(&[], Some(4)).await?.checkpoint,
        Some(10),
        "after a lower one"
    );
    ensure_eq!(
        s.subscribe(&[], Some(12)).await?.checkpoint,
        Some(12),
        "after a higher one"
    );
    ensure_eq!(
        s.subscribe(&[], Some(0)).await?.checkpoint,
        Some(12),
        "after 0"
    );
    Ok(())
}

async fn checkpoint_omitted(s: Arc<dyn Store>) -> Outcome {
    s.subscribe(&[], Some(10)).await?;
    let r = s.subscribe(&[marked("a", 3)], None).await?;
    ensure_eq!(r.checkpoint, Some(10), "checkpoint");
    Ok(())
}

async fn checkpoint_with_rows(s: Arc<dyn Store>) -> Outcome {
    let r = s.subscribe(&[marked("a", 3)], Some(3)).await?;
    ensure_eq!(
        (r.subscribed, r.checkpoint),
        (1, Some(3)),
        "(new rows, checkpoint)"
    );
    ensure!(row(&*s, "a").await?.is_some(), "row written");
    Ok(())
}

async fn checkpoint_invisible(s: Arc<dyn Store>) -> Outcome {
    s.subscribe(&[], Some(5)).await?;
    ensure!(
        s.query_streams(&StreamFilter::default()).await?.is_empty(),
        "the checkpoint shows as a row"
    );
    ensure!(
        s.claim(5, 5, "w", LONG).await?.is_empty(),
        "the checkpoint is claimable"
    );
    Ok(())
}

async fn empty_reads(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("a", 3)]).await?;
    let before = s.query_streams(&StreamFilter::default()).await?;
    let r = s.subscribe(&[], None).await?;
    ensure_eq!(
        (r.subscribed, r.checkpoint),
        (0, None),
        "(new rows, checkpoint)"
    );
    ensure_eq!(
        s.query_streams(&StreamFilter::default()).await?,
        before,
        "rows"
    );
    Ok(())
}

async fn nul_rejected(s: Arc<dyn Store>) -> Outcome {
    match s
        .subscribe(&[Subscription::new("ok"), Subscription::new("b\0ad")], None)
        .await
    {
        Err(StoreError::Invalid(_)) => {}
        other => return Err(Fail(format!("expected invalid, got {other:?}"))),
    }
    ensure!(
        s.query_streams(&StreamFilter::default()).await?.is_empty(),
        "rows written"
    );
    Ok(())
}

async fn bad_source_pattern_rejected(s: Arc<dyn Store>) -> Outcome {
    let bad = Subscription {
        source: Some("^(a|b)$".into()),
        source_is_pattern: true,
        ..Subscription::new("t")
    };
    match s.subscribe(&[Subscription::new("ok"), bad], None).await {
        Err(StoreError::Invalid(_)) => {}
        other => return Err(Fail(format!("expected invalid, got {other:?}"))),
    }
    ensure!(
        s.query_streams(&StreamFilter::default()).await?.is_empty(),
        "rows written"
    );
    Ok(())
}

async fn unmarked_never(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[Subscription::new("a"), Subscription::new("b")]).await?;
    ensure!(
        s.claim(5, 5, "w", LONG).await?.is_empty(),
        "claimed an unmarked row"
    );
    Ok(())
}

async fn marked_claimed(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[Subscription::new("a")]).await?;
    ensure!(
        s.claim(1, 1, "w", LONG).await?.is_empty(),
        "claimed before the mark"
    );
    subscribe(&*s, &[marked("a", 1)]).await?;
    ensure_eq!(streams(&s.claim(1, 1, "w", LONG).await?), ["a"], "claimed");
    Ok(())
}

async fn caught_up(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("a", 3)]).await?;
    let mut l = claim_one(&*s, "w", LONG).await?;
    l.at = 3;
    s.ack(&[l]).await?;
    ensure!(
        s.claim(5, 5, "w", LONG).await?.is_empty(),
        "claimed a caught-up row"
    );
    Ok(())
}

async fn lease_fields(s: Arc<dyn Store>) -> Outcome {
    subscribe(
        &*s,
        &[Subscription {
            source: Some("^cart-".into()),
            source_is_pattern: true,
            ..marked("t", 3)
        }],
    )
    .await?;
    let l = claim_one(&*s, "worker-1", LONG).await?;
    ensure_eq!(
        (
            l.stream.as_str(),
            l.source.as_deref(),
            l.source_is_pattern,
            l.at,
            l.by.as_str(),
            l.retry,
            l.lagging,
            l.due
        ),
        ("t", Some("^cart-"), true, -1, "worker-1", 0, true, None),
        "lease"
    );
    Ok(())
}

async fn lease_on_row(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 3)]).await?;
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    claim_one(&*s, "w", LONG).await?;
    let r = must_row(&*s, "t").await?;
    ensure_eq!(
        (r.leased_by.as_deref(), r.retry),
        (Some("w"), 0),
        "(holder, retry)"
    );
    ensure!(
        r.leased_until
            .is_some_and(|u| u > before + chrono::TimeDelta::seconds(30)),
        "the expiry is about a lease from now, got {:?}",
        r.leased_until
    );
    Ok(())
}

async fn retry_counts(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 3)]).await?;
    let mut retries = Vec::new();
    for _ in 0..3 {
        retries.push(claim_one(&*s, "w", SHORT).await?.retry);
        tokio::time::sleep(EXPIRE).await;
    }
    ensure_eq!(retries, [0, 1, 2], "retries of successive claims");
    let l = claim_one(&*s, "w", LONG).await?;
    s.ack(&[l]).await?;
    ensure_eq!(
        claim_one(&*s, "w", LONG).await?.retry,
        0,
        "retry after an ack"
    );
    Ok(())
}

async fn unexpired_never(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 3)]).await?;
    claim_one(&*s, "w1", LONG).await?;
    ensure!(
        s.claim(5, 5, "w2", LONG).await?.is_empty(),
        "handed out to another holder"
    );
    ensure!(
        s.claim(5, 5, "w1", LONG).await?.is_empty(),
        "handed out again to its holder"
    );
    Ok(())
}

async fn expired_reclaimed(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 3)]).await?;
    claim_one(&*s, "w1", SHORT).await?;
    tokio::time::sleep(EXPIRE).await;
    let l = claim_one(&*s, "w2", LONG).await?;
    ensure_eq!((l.by.as_str(), l.retry), ("w2", 1), "(holder, retry)");
    ensure_eq!(
        must_row(&*s, "t").await?.leased_by.as_deref(),
        Some("w2"),
        "row holder"
    );
    Ok(())
}

async fn expired_once(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 3)]).await?;
    claim_one(&*s, "w0", SHORT).await?;
    tokio::time::sleep(EXPIRE).await;
    let (a, b) = tokio::join!(s.claim(1, 1, "w1", LONG), s.claim(1, 1, "w2", LONG));
    ensure_eq!(a?.len() + b?.len(), 1, "claims of the expired row");
    Ok(())
}

async fn zero_zero(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 3)]).await?;
    ensure!(s.claim(0, 0, "w", LONG).await?.is_empty(), "claimed");
    ensure_eq!(must_row(&*s, "t").await?.leased_by, None, "row leased");
    Ok(())
}

async fn empty_table(s: Arc<dyn Store>) -> Outcome {
    ensure!(s.claim(5, 5, "w", LONG).await?.is_empty(), "claimed");
    Ok(())
}

async fn at_most(s: Arc<dyn Store>) -> Outcome {
    let subs: Vec<_> = (0..10).map(|i| marked(&format!("t{i}"), 5)).collect();
    subscribe(&*s, &subs).await?;
    ensure_eq!(s.claim(2, 1, "w", LONG).await?.len(), 3, "claimed (2, 1)");
    ensure_eq!(s.claim(0, 2, "w", LONG).await?.len(), 2, "claimed (0, 2)");
    ensure_eq!(
        s.claim(100, 100, "w", LONG).await?.len(),
        5,
        "claimed the rest"
    );
    Ok(())
}

/// Rows `r0..r5` at watermarks 0..5 (mark 10), priority 0.
async fn ladder(s: &dyn Store) -> Result<(), Fail> {
    rows_at(
        s,
        &[
            ("r3", 3, 0),
            ("r0", 0, 0),
            ("r5", 5, 0),
            ("r1", 1, 0),
            ("r4", 4, 0),
            ("r2", 2, 0),
        ],
        10,
    )
    .await
}

async fn lagging_lowest(s: Arc<dyn Store>) -> Outcome {
    ladder(&*s).await?;
    let l = s.claim(1, 0, "w", LONG).await?;
    ensure_eq!(streams(&l), ["r0"], "one lagging");
    let l = s.claim(1, 0, "w", LONG).await?;
    ensure_eq!(streams(&l), ["r1"], "the next lagging");
    Ok(())
}

async fn leading_highest(s: Arc<dyn Store>) -> Outcome {
    ladder(&*s).await?;
    let l = s.claim(0, 2, "w", LONG).await?;
    ensure_eq!(streams(&l), ["r5", "r4"], "two leading, highest first");
    Ok(())
}

async fn lagging_flag(s: Arc<dyn Store>) -> Outcome {
    ladder(&*s).await?;
    let l = s.claim(1, 1, "w", LONG).await?;
    let flags: Vec<(&str, bool)> = l.iter().map(|l| (l.stream.as_str(), l.lagging)).collect();
    let mut flags = flags;
    flags.sort();
    ensure_eq!(flags, [("r0", true), ("r5", false)], "(stream, lagging)");
    Ok(())
}

async fn no_duplicates(s: Arc<dyn Store>) -> Outcome {
    rows_at(&*s, &[("a", 1, 0), ("b", 2, 0)], 10).await?;
    let l = s.claim(3, 3, "w", LONG).await?;
    ensure_eq!(sorted(&l), ["a", "b"], "each row once");
    let unique: HashSet<&str> = streams(&l).into_iter().collect();
    ensure_eq!(unique.len(), l.len(), "distinct leases");
    Ok(())
}

async fn priority_first(s: Arc<dyn Store>) -> Outcome {
    rows_at(&*s, &[("low", 0, 0), ("high", 5, 3), ("mid", 2, 1)], 10).await?;
    let l = s.claim(1, 0, "w", LONG).await?;
    ensure_eq!(streams(&l), ["high"], "one lagging by priority");
    Ok(())
}

async fn fairness(s: Arc<dyn Store>) -> Outcome {
    // Four lagging slots: one is the fairness reserve (⌊4/4⌋), so the lowest watermark is
    // claimed even though four rows of higher priority are waiting.
    rows_at(
        &*s,
        &[
            ("old", 0, 0),
            ("p1", 5, 9),
            ("p2", 6, 9),
            ("p3", 7, 9),
            ("p4", 8, 9),
        ],
        10,
    )
    .await?;
    let l = s.claim(4, 0, "w", LONG).await?;
    ensure_eq!(sorted(&l), ["old", "p1", "p2", "p3"], "claimed");
    Ok(())
}

async fn no_reserve_for_one(s: Arc<dyn Store>) -> Outcome {
    rows_at(&*s, &[("old", 0, 0), ("p1", 5, 9)], 10).await?;
    ensure_eq!(streams(&s.claim(1, 0, "w", LONG).await?), ["p1"], "claimed");
    Ok(())
}

async fn competing(s: Arc<dyn Store>) -> Outcome {
    let subs: Vec<_> = (0..40).map(|i| marked(&format!("t{i:02}"), 5)).collect();
    subscribe(&*s, &subs).await?;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..3 {
                got.extend(s.claim(2, 2, &format!("w{w}"), LONG).await?);
            }
            Ok::<_, StoreError>(got)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| Fail(format!("task: {e}")))??);
    }
    let n = all.len();
    let unique: HashSet<String> = all.into_iter().map(|l| l.stream).collect();
    ensure_eq!(unique.len(), n, "distinct rows among {n} leases");
    ensure_eq!(n, 40, "every row claimed once");
    Ok(())
}

async fn raised_mark(s: Arc<dyn Store>) -> Outcome {
    subscribe(&*s, &[marked("t", 3)]).await?;
    let mut l = claim_one(&*s, "w", LONG).await?;
    l.at = 3;
    s.ack(&[l]).await?;
    ensure!(
        s.claim(1, 0, "w", LONG).await?.is_empty(),
        "claimable while caught up"
    );
    subscribe(&*s, &[marked("t", 6)]).await?;
    let l = claim_one(&*s, "w", LONG).await?;
    ensure_eq!((l.stream.as_str(), l.at), ("t", 3), "(stream, at)");
    Ok(())
}
