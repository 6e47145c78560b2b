//! Commit and versions, optimistic concurrency, input validation, and the store's lifecycle
//! (`seed`, `drop_all`, `dispose`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::{commit, expect_invalid, ids, marked, meta, msg, msgs, must_row, read, row};
use crate::conformance::{Check, Fail, Outcome, checks, ensure, ensure_eq};
use crate::error::StoreError;
use crate::model::{ActionCause, Actor, Causation, EventCause, EventMeta, Message};
use crate::ports::{Query, Store, StreamFilter, Subscription};

pub(super) fn checks() -> Vec<Check<dyn Store>> {
    checks![dyn Store;
        "commit: ids are global and strictly increasing across streams" => ids_increase,
        "commit: versions run 0..n per stream" => versions_per_stream,
        "commit: a batch gets consecutive versions in message order" => batch_in_order,
        "commit: returns the events as stored (name, data, stream)" => returns_as_stored,
        "commit: the events of one batch share one created time" => one_created_per_batch,
        "commit: created does not decrease along ids" => created_monotone,
        "commit: meta is attached to every event and round-trips" => meta_round_trips,
        "commit: data round-trips as JSON (nested, unicode, numbers)" => data_round_trips,
        "commit: expected version -1 on a new stream succeeds" => expect_empty,
        "commit: expected version equal to the head succeeds" => expect_head,
        "commit: a wrong expected version reports stream, expected and actual" => conflict_reports,
        "commit: expected version on a new stream other than -1 conflicts with actual -1" => conflict_on_empty,
        "commit: a conflict writes nothing, earlier events are kept" => conflict_writes_nothing,
        "commit: an expected version behind the head conflicts" => conflict_behind,
        "commit: no expected version appends unconditionally" => no_expectation,
        "commit: versions continue after a conflict" => continue_after_conflict,
        "commit: an empty batch writes nothing and returns no events" => empty_batch,
        "commit: an empty batch still checks the expected version" => empty_batch_checks_version,
        "commit: an empty stream name is rejected as invalid" => empty_stream_rejected,
        "commit: a NUL in the stream name is rejected, nothing written" => nul_stream_rejected,
        "commit: a NUL in an event name is rejected, nothing written" => nul_name_rejected,
        "commit: a NUL in a payload string (`\\u0000`) is rejected, nothing written" => nul_data_rejected,
        "commit: a number PostgreSQL cannot store (`1e131072`, `1e-16384`) is rejected, nothing written" => huge_number_rejected,
        "commit: a NUL in the meta is rejected, nothing written" => nul_meta_rejected,
        "commit: stream names are case-sensitive" => streams_case_sensitive,
        "commit: a large batch commits whole with contiguous versions" => large_batch,
        "commit: concurrent commits with the same expected version: exactly one wins" => concurrent_one_wins,
        "commit_marked: commits and raises the target's mark to the i-th event id" => marked_commit,
        "commit_marked: a conflict writes neither events nor marks" => marked_conflict,
        "commit_marked: keeps the higher existing mark" => marked_keeps_max,
        "commit_owned: stores, marks and conflicts as commit and commit_marked do" => owned_commit,
        "seed: is idempotent and keeps the data" => seed_idempotent,
        "drop_all: deletes every event, subscription and the checkpoint" => drop_all_clears,
        "drop_all: the store stays usable" => drop_all_usable,
        "dispose: is idempotent" => dispose_idempotent,
    ]
}

async fn ids_increase(s: Arc<dyn Store>) -> Outcome {
    let mut all = Vec::new();
    for stream in ["a", "b", "a", "c", "b"] {
        all.extend(commit(&*s, stream, &["E", "F"]).await?);
    }
    ensure!(
        all.windows(2).all(|w| w[0].id < w[1].id),
        "returned ids are not strictly increasing: {:?}",
        all.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    let stored = ids(&*s, &Query::all()).await?;
    ensure_eq!(
        stored,
        all.iter().map(|e| e.id).collect::<Vec<_>>(),
        "query all returns the committed ids in order"
    );
    ensure!(all[0].id >= 1, "ids start above 0, got {}", all[0].id);
    Ok(())
}

async fn versions_per_stream(s: Arc<dyn Store>) -> Outcome {
    for (stream, n) in [("a", 1), ("b", 2), ("a", 3), ("b", 1), ("c", 1)] {
        commit(&*s, stream, &vec!["E"; n]).await?;
    }
    for (stream, count) in [("a", 4), ("b", 3), ("c", 1)] {
        let versions: Vec<i64> = read(&*s, &Query::stream(stream))
            .await?
            .iter()
            .map(|e| e.version)
            .collect();
        ensure_eq!(
            versions,
            (0..count).collect::<Vec<i64>>(),
            "versions of `{stream}`"
        );
    }
    Ok(())
}

async fn batch_in_order(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    let out = commit(&*s, "s", &["B", "C", "D"]).await?;
    let got: Vec<(&str, i64)> = out.iter().map(|e| (e.name.as_str(), e.version)).collect();
    ensure_eq!(got, [("B", 1), ("C", 2), ("D", 3)], "names and versions");
    ensure!(
        out.windows(2).all(|w| w[0].id < w[1].id),
        "ids of a batch increase"
    );
    Ok(())
}

async fn returns_as_stored(s: Arc<dyn Store>) -> Outcome {
    let out = s
        .commit(
            "cart-1",
            &[msg("ItemAdded", json!({ "sku": "A1", "qty": 2 }))],
            &meta("c"),
            Some(-1),
        )
        .await?;
    ensure_eq!(out.len(), 1, "one event committed");
    let stored = read(&*s, &Query::stream("cart-1")).await?;
    ensure_eq!(stored.len(), 1, "one event stored");
    let (a, b) = (&out[0], &stored[0]);
    ensure_eq!(
        (b.id, b.name.as_str(), b.stream.as_str(), b.version),
        (a.id, "ItemAdded", "cart-1", 0),
        "stored event"
    );
    ensure_eq!(
        b.data_as::<Value>()?,
        json!({ "sku": "A1", "qty": 2 }),
        "stored data"
    );
    ensure_eq!(b.created, a.created, "created as returned by commit");
    Ok(())
}

async fn one_created_per_batch(s: Arc<dyn Store>) -> Outcome {
    let out = commit(&*s, "s", &["A", "B", "C"]).await?;
    ensure!(
        out.iter().all(|e| e.created == out[0].created),
        "returned created times differ within a batch"
    );
    let stored = read(&*s, &Query::stream("s")).await?;
    ensure!(
        stored.iter().all(|e| e.created == out[0].created),
        "stored created times differ within a batch"
    );
    Ok(())
}

async fn created_monotone(s: Arc<dyn Store>) -> Outcome {
    for i in 0..5 {
        commit(&*s, &format!("s{}", i % 2), &["E", "E"]).await?;
    }
    let all = read(&*s, &Query::all()).await?;
    ensure!(
        all.windows(2).all(|w| w[0].created <= w[1].created),
        "created decreases along ids"
    );
    Ok(())
}

fn rich_meta() -> EventMeta {
    EventMeta {
        correlation: "corr-ü-1".into(),
        causation: Causation {
            action: Some(ActionCause {
                name: "AddItem".into(),
                stream: "cart-1".into(),
                expected_version: Some(3),
            }),
            event: Some(EventCause {
                id: 42,
                name: "Opened".into(),
                stream: "other".into(),
            }),
            trace: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        },
        actor: Actor::new("u-1", "Ada Lovelace"),
    }
}

async fn meta_round_trips(s: Arc<dyn Store>) -> Outcome {
    let m = rich_meta();
    let out = s.commit("cart-1", &msgs(&["A", "B"]), &m, None).await?;
    ensure!(out.iter().all(|e| *e.meta == m), "returned meta differs");
    let stored = read(&*s, &Query::stream("cart-1")).await?;
    ensure_eq!(stored.len(), 2, "events stored");
    for e in &stored {
        ensure_eq!(*e.meta, m, "stored meta of event {}", e.id);
    }
    Ok(())
}

async fn data_round_trips(s: Arc<dyn Store>) -> Outcome {
    let values = [
        json!({ "nested": { "list": [1, 2.5, -3, null, true], "s": "ünïcødé ✓ \"quoted\" \\ / \n" } }),
        json!([]),
        json!({}),
        json!("just a string"),
        json!(12345678901234_i64),
        json!(null),
    ];
    let batch: Vec<_> = values.iter().map(|v| msg("E", v.clone())).collect();
    s.commit("s", &batch, &meta("c"), None).await?;
    let stored = read(&*s, &Query::stream("s")).await?;
    ensure_eq!(stored.len(), values.len(), "events stored");
    for (e, v) in stored.iter().zip(&values) {
        ensure_eq!(e.data_as::<Value>()?, *v, "data of version {}", e.version);
    }
    Ok(())
}

async fn expect_empty(s: Arc<dyn Store>) -> Outcome {
    let out = s.commit("s", &msgs(&["E"]), &meta("c"), Some(-1)).await?;
    ensure_eq!(out[0].version, 0, "first version");
    Ok(())
}

async fn expect_head(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B"]).await?;
    let out = s.commit("s", &msgs(&["C"]), &meta("c"), Some(1)).await?;
    ensure_eq!(out[0].version, 2, "next version");
    Ok(())
}

fn conflict_of(
    r: Result<Vec<crate::model::Committed>, StoreError>,
) -> Result<crate::error::ConcurrencyError, Fail> {
    match r {
        Err(StoreError::Concurrency(c)) => Ok(c),
        Err(e) => Err(Fail(format!(
            "expected a concurrency error, got {}",
            crate::error::Report::new(&e)
        ))),
        Ok(out) => Err(Fail(format!(
            "expected a concurrency error, committed {} events",
            out.len()
        ))),
    }
}

async fn conflict_reports(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "cart-1", &["A", "B", "C"]).await?;
    let c = conflict_of(s.commit("cart-1", &msgs(&["D"]), &meta("c"), Some(5)).await)?;
    ensure_eq!(
        (c.stream.as_str(), c.expected, c.actual),
        ("cart-1", 5, 2),
        "conflict (stream, expected, actual)"
    );
    Ok(())
}

async fn conflict_on_empty(s: Arc<dyn Store>) -> Outcome {
    let c = conflict_of(s.commit("new", &msgs(&["A"]), &meta("c"), Some(0)).await)?;
    ensure_eq!(
        (c.expected, c.actual),
        (0, -1),
        "conflict (expected, actual)"
    );
    ensure!(
        read(&*s, &Query::all()).await?.is_empty(),
        "nothing written"
    );
    Ok(())
}

async fn conflict_writes_nothing(s: Arc<dyn Store>) -> Outcome {
    let first = commit(&*s, "s", &["A", "B"]).await?;
    commit(&*s, "other", &["X"]).await?;
    conflict_of(
        s.commit("s", &msgs(&["C", "D", "E"]), &meta("c"), Some(0))
            .await,
    )?;
    let names: Vec<String> = read(&*s, &Query::stream("s"))
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    ensure_eq!(names, ["A", "B"], "stream after the conflict");
    ensure_eq!(
        read(&*s, &Query::all()).await?.len(),
        3,
        "events in the log"
    );
    ensure_eq!(
        read(&*s, &Query::stream("s")).await?[0].id,
        first[0].id,
        "earlier events kept"
    );
    Ok(())
}

async fn conflict_behind(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B", "C"]).await?;
    let c = conflict_of(s.commit("s", &msgs(&["D"]), &meta("c"), Some(0)).await)?;
    ensure_eq!(
        (c.expected, c.actual),
        (0, 2),
        "conflict (expected, actual)"
    );
    let c = conflict_of(s.commit("s", &msgs(&["D"]), &meta("c"), Some(-1)).await)?;
    ensure_eq!(
        (c.expected, c.actual),
        (-1, 2),
        "conflict (expected, actual)"
    );
    Ok(())
}

async fn no_expectation(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    let out = s.commit("s", &msgs(&["B"]), &meta("c"), None).await?;
    ensure_eq!(out[0].version, 1, "version");
    Ok(())
}

async fn continue_after_conflict(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    conflict_of(s.commit("s", &msgs(&["B"]), &meta("c"), Some(3)).await)?;
    let out = s.commit("s", &msgs(&["B"]), &meta("c"), Some(0)).await?;
    ensure_eq!(out[0].version, 1, "version after a conflict");
    Ok(())
}

async fn empty_batch(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    let out = s.commit("s", &[], &meta("c"), None).await?;
    ensure!(out.is_empty(), "returned {} events", out.len());
    let out = s.commit("new", &[], &meta("c"), Some(-1)).await?;
    ensure!(out.is_empty(), "returned {} events", out.len());
    ensure_eq!(
        read(&*s, &Query::all()).await?.len(),
        1,
        "events in the log"
    );
    let next = commit(&*s, "s", &["B"]).await?;
    ensure_eq!(next[0].version, 1, "version after an empty batch");
    Ok(())
}

async fn empty_batch_checks_version(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    let c = conflict_of(s.commit("s", &[], &meta("c"), Some(4)).await)?;
    ensure_eq!(
        (c.expected, c.actual),
        (4, 0),
        "conflict (expected, actual)"
    );
    let ok = s.commit("s", &[], &meta("c"), Some(0)).await?;
    ensure!(ok.is_empty(), "an empty batch at the head returns nothing");
    Ok(())
}

async fn empty_stream_rejected(s: Arc<dyn Store>) -> Outcome {
    expect_invalid(
        s.commit("", &msgs(&["A"]), &meta("c"), None).await,
        "empty stream",
    )?;
    ensure!(
        read(&*s, &Query::all()).await?.is_empty(),
        "nothing written"
    );
    Ok(())
}

async fn nul_stream_rejected(s: Arc<dyn Store>) -> Outcome {
    expect_invalid(
        s.commit("a\0b", &msgs(&["A"]), &meta("c"), None).await,
        "stream with NUL",
    )?;
    ensure!(
        read(&*s, &Query::all()).await?.is_empty(),
        "nothing written"
    );
    Ok(())
}

async fn nul_name_rejected(s: Arc<dyn Store>) -> Outcome {
    expect_invalid(
        s.commit("s", &msgs(&["ok", "E\0vil"]), &meta("c"), None)
            .await,
        "event name with NUL",
    )?;
    ensure!(
        read(&*s, &Query::all()).await?.is_empty(),
        "nothing written"
    );
    Ok(())
}

async fn nul_data_rejected(s: Arc<dyn Store>) -> Outcome {
    // (A raw NUL inside a string is not JSON: `RawValue` refuses it before any store.)
    for data in ["{\"a\":\"x\\u0000y\"}", "[\"\\u0000\"]"] {
        let mut batch = msgs(&["ok"]);
        batch.push(Message::new(
            "Evil",
            serde_json::value::RawValue::from_string(data.to_owned())
                .map_err(|e| Fail(e.to_string()))?,
        ));
        expect_invalid(
            s.commit("s", &batch, &meta("c"), None).await,
            "payload with NUL",
        )?;
    }
    // An escaped backslash before `u0000` is no NUL.
    let fine = serde_json::value::RawValue::from_string("{\"a\":\"\\\\u0000\"}".to_owned())
        .map_err(|e| Fail(e.to_string()))?;
    let ok = s
        .commit("t", &[Message::new("Fine", fine)], &meta("c"), None)
        .await?;
    ensure_eq!(
        read(&*s, &Query::all()).await?.len(),
        1,
        "only the batch without a NUL is written"
    );
    ensure_eq!(ok[0].stream, "t", "the escaped backslash commits");
    Ok(())
}

async fn huge_number_rejected(s: Arc<dyn Store>) -> Outcome {
    let raw = |data: &str| {
        serde_json::value::RawValue::from_string(data.to_owned()).map_err(|e| Fail(e.to_string()))
    };
    for data in ["{\"a\":1e131072}", "[1e-16384]", "{\"a\":[0,-1e1000000]}"] {
        let mut batch = msgs(&["ok"]);
        batch.push(Message::new("Huge", raw(data)?));
        expect_invalid(
            s.commit("s", &batch, &meta("c"), None).await,
            "number out of range",
        )?;
    }
    // The largest and the finest numbers `numeric` keeps, and digits inside a string.
    let fine = raw("{\"a\":1e131071,\"b\":1e-16383,\"c\":\"1e999999\"}")?;
    s.commit("t", &[Message::new("Fine", fine)], &meta("c"), None)
        .await?;
    ensure_eq!(
        read(&*s, &Query::all()).await?.len(),
        1,
        "only the batch whose numbers fit is written"
    );
    Ok(())
}

async fn nul_meta_rejected(s: Arc<dyn Store>) -> Outcome {
    let mut bad = meta("c");
    bad.actor.name = "Ev\0il".into();
    expect_invalid(
        s.commit("s", &msgs(&["A"]), &bad, None).await,
        "actor name with NUL",
    )?;
    expect_invalid(
        s.commit("s", &msgs(&["A"]), &meta("c\0"), None).await,
        "correlation with NUL",
    )?;
    ensure!(
        read(&*s, &Query::all()).await?.is_empty(),
        "nothing written"
    );
    Ok(())
}

async fn streams_case_sensitive(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "Cart", &["A"]).await?;
    let out = s
        .commit("cart", &msgs(&["B"]), &meta("c"), Some(-1))
        .await?;
    ensure_eq!(out[0].version, 0, "`cart` is a new stream");
    ensure_eq!(
        ids(&*s, &Query::stream("Cart")).await?.len(),
        1,
        "`Cart` events"
    );
    ensure_eq!(
        ids(&*s, &Query::stream("CART")).await?.len(),
        0,
        "`CART` events"
    );
    Ok(())
}

async fn large_batch(s: Arc<dyn Store>) -> Outcome {
    let names = vec!["E"; 1500];
    let out = commit(&*s, "big", &names).await?;
    ensure_eq!(out.len(), 1500, "returned events");
    let stored = read(&*s, &Query::stream("big")).await?;
    ensure_eq!(stored.len(), 1500, "stored events");
    ensure!(
        stored
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as i64),
        "versions are contiguous from 0"
    );
    ensure!(
        stored.iter().zip(&out).all(|(a, b)| a.id == b.id),
        "stored ids equal the returned ids"
    );
    Ok(())
}

async fn concurrent_one_wins(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.commit("s", &msgs(&["B", "C"]), &meta(&format!("w{i}")), Some(0))
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.map_err(|e| Fail(format!("task: {e}")))? {
            Ok(_) => wins += 1,
            Err(StoreError::Concurrency(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    ensure_eq!(wins, 1, "winners");
    let versions: Vec<i64> = read(&*s, &Query::stream("s"))
        .await?
        .iter()
        .map(|e| e.version)
        .collect();
    ensure_eq!(versions, [0, 1, 2], "versions");
    Ok(())
}

async fn owned_commit(s: Arc<dyn Store>) -> Outcome {
    let plain = s
        .commit_owned("o", msgs(&["A", "B"]), meta("c"), Some(-1), &[])
        .await?;
    ensure_eq!(
        plain
            .iter()
            .map(|e| (e.stream.as_str(), e.name.as_str(), e.version))
            .collect::<Vec<_>>(),
        vec![("o", "A", 0), ("o", "B", 1)],
        "events returned"
    );
    ensure_eq!(plain[0].meta.correlation, "c", "meta attached");
    let marked = s
        .commit_owned(
            "o",
            msgs(&["C"]),
            meta("d"),
            Some(1),
            &[(0, Subscription::new("owned-target"))],
        )
        .await?;
    ensure_eq!(marked.len(), 1, "marked events committed");
    let r = must_row(&*s, "owned-target").await?;
    ensure_eq!(r.correlated_at, Some(marked[0].id), "the target's mark");
    let stale = s
        .commit_owned("o", msgs(&["D"]), meta("e"), Some(0), &[])
        .await;
    ensure!(
        matches!(&stale, Err(StoreError::Concurrency(c)) if c.expected == 0 && c.actual == 2),
        "a stale owned commit conflicts: {stale:?}"
    );
    let stored: Vec<(String, i64)> = read(&*s, &Query::stream("o"))
        .await?
        .into_iter()
        .map(|e| (e.name, e.version))
        .collect();
    ensure_eq!(
        stored,
        vec![("A".into(), 0), ("B".into(), 1), ("C".into(), 2)],
        "stored as returned"
    );
    Ok(())
}

async fn marked_commit(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "x", &["A"]).await?;
    let target = Subscription {
        priority: 2,
        ..Subscription::new("target")
    };
    let out = s
        .commit_marked(
            "s",
            &msgs(&["A", "B", "C"]),
            &meta("c"),
            Some(-1),
            &[(1, target), (7, Subscription::new("ignored"))],
        )
        .await?;
    ensure_eq!(out.len(), 3, "events committed");
    let r = must_row(&*s, "target").await?;
    ensure_eq!(
        (r.correlated_at, r.priority, r.at),
        (Some(out[1].id), 2, -1),
        "target row (mark, priority, at)"
    );
    ensure!(
        row(&*s, "ignored")
            .await?
            .is_none_or(|r| r.correlated_at.is_none()),
        "an out-of-range index marks nothing"
    );
    Ok(())
}

async fn marked_conflict(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    let r = s
        .commit_marked(
            "s",
            &msgs(&["B"]),
            &meta("c"),
            Some(5),
            &[(0, Subscription::new("target"))],
        )
        .await;
    conflict_of(r)?;
    ensure!(row(&*s, "target").await?.is_none(), "no row written");
    ensure_eq!(
        read(&*s, &Query::all()).await?.len(),
        1,
        "events in the log"
    );
    Ok(())
}

async fn marked_keeps_max(s: Arc<dyn Store>) -> Outcome {
    s.subscribe(&[marked("target", 1000)], None).await?;
    s.commit_marked(
        "s",
        &msgs(&["A"]),
        &meta("c"),
        None,
        &[(0, Subscription::new("target"))],
    )
    .await?;
    ensure_eq!(
        must_row(&*s, "target").await?.correlated_at,
        Some(1000),
        "mark"
    );
    Ok(())
}

async fn seed_idempotent(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    s.subscribe(&[marked("t", 1)], Some(1)).await?;
    s.seed().await?;
    s.seed().await?;
    ensure_eq!(
        read(&*s, &Query::all()).await?.len(),
        1,
        "events after seed"
    );
    ensure!(row(&*s, "t").await?.is_some(), "subscription kept");
    Ok(())
}

async fn drop_all_clears(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B"]).await?;
    s.subscribe(&[marked("t", 1)], Some(2)).await?;
    s.drop_all().await?;
    ensure!(
        read(&*s, &Query::all().with_snaps()).await?.is_empty(),
        "events left"
    );
    ensure!(
        s.query_streams(&StreamFilter::default()).await?.is_empty(),
        "subscriptions left"
    );
    let sub = s.subscribe(&[], None).await?;
    ensure_eq!(sub.checkpoint, None, "checkpoint");
    ensure_eq!(sub.watermark, -1, "watermark");
    Ok(())
}

async fn drop_all_usable(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B"]).await?;
    s.drop_all().await?;
    let out = s.commit("s", &msgs(&["C"]), &meta("c"), Some(-1)).await?;
    ensure_eq!(out[0].version, 0, "version after drop_all");
    ensure_eq!(
        ids(&*s, &Query::all()).await?,
        [out[0].id],
        "log after drop_all"
    );
    Ok(())
}

async fn dispose_idempotent(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    s.dispose().await?;
    s.dispose().await?;
    Ok(())
}
