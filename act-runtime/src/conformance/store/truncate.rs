//! Truncate: each target stream's events replaced by one seed event at version 0.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{LONG, commit, expect_invalid, ids, marked, meta, msgs, must_row, read, subscribe};
use crate::conformance::{Check, Outcome, checks, ensure, ensure_eq};
use crate::error::StoreError;
use crate::model::{EventMeta, SNAPSHOT_EVENT, TOMBSTONE_EVENT};
use crate::ports::{Query, Store, TruncateTarget};

pub(super) fn checks() -> Vec<Check<dyn Store>> {
    checks![dyn Store;
        "truncate: replaces the events with a tombstone at version 0" => tombstone_seed,
        "truncate: with a snapshot, seeds a __snapshot__ at version 0 with its data" => snapshot_seed,
        "truncate: reports how many events were deleted" => deleted_count,
        "truncate: the seed carries the target's meta" => seed_meta,
        "truncate: the seed gets a new id above every earlier one" => seed_new_id,
        "truncate: an unknown stream is absent from the result" => unknown_absent,
        "truncate: empty input gives an empty result" => empty_input,
        "truncate: several targets in one call" => several,
        "truncate: other streams are untouched" => others_untouched,
        "truncate: subscriptions are untouched" => subscriptions_untouched,
        "truncate: the stream stays writable from version 1" => writable_after,
        "truncate: the returned seed is the stored event" => seed_is_stored,
        "truncate: an expected head that is the stream's last event truncates it" => expected_head_current,
        "truncate: an expected head that moved leaves the stream as it is" => expected_head_moved,
        "truncate: a stream named twice with its head expected is cut once" => expected_head_twice,
        "truncate: a retired stream (a tombstone at its head) refuses commits with Closed" => retired_refuses,
        "truncate: a seed the store cannot keep (a NUL, a number out of range) is rejected, no stream cut" => unstorable_seed_rejected,
    ]
}

fn target(stream: &str, snapshot: Option<Value>) -> TruncateTarget {
    TruncateTarget {
        stream: stream.into(),
        snapshot: snapshot.map(|v| serde_json::value::to_raw_value(&v).expect("JSON")),
        meta: meta("close"),
        expected_head: None,
    }
}

async fn tombstone_seed(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B", SNAPSHOT_EVENT, "C"]).await?;
    let out = s.truncate(&[target("s", None)]).await?;
    let seed = &out
        .get("s")
        .ok_or_else(|| crate::conformance::Fail("no result for `s`".into()))?
        .committed;
    ensure_eq!(
        (seed.name.as_str(), seed.version, seed.stream.as_str()),
        (TOMBSTONE_EVENT, 0, "s"),
        "seed (name, version, stream)"
    );
    let stored = read(&*s, &Query::stream("s").with_snaps()).await?;
    ensure_eq!(
        stored
            .iter()
            .map(|e| (e.name.as_str(), e.version))
            .collect::<Vec<_>>(),
        [(TOMBSTONE_EVENT, 0)],
        "stream after truncate"
    );
    Ok(())
}

async fn snapshot_seed(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B"]).await?;
    let out = s
        .truncate(&[target("s", Some(json!({ "count": 2, "items": ["x"] })))])
        .await?;
    ensure_eq!(out.len(), 1, "results");
    let stored = read(&*s, &Query::stream("s").with_snaps()).await?;
    ensure_eq!(stored.len(), 1, "events");
    ensure_eq!(
        (stored[0].name.as_str(), stored[0].version),
        (SNAPSHOT_EVENT, 0),
        "seed (name, version)"
    );
    ensure_eq!(
        stored[0].data_as::<Value>()?,
        json!({ "count": 2, "items": ["x"] }),
        "seed data"
    );
    ensure!(
        read(&*s, &Query::stream("s")).await?.is_empty(),
        "a snapshot seed is hidden without with_snaps"
    );
    Ok(())
}

async fn deleted_count(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B", "C"]).await?;
    commit(&*s, "s", &[SNAPSHOT_EVENT, "D"]).await?;
    let out = s.truncate(&[target("s", None)]).await?;
    ensure_eq!(out.get("s").map(|t| t.deleted), Some(5), "deleted");
    Ok(())
}

async fn seed_meta(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    let m = EventMeta {
        correlation: "closing-books".into(),
        causation: Default::default(),
        actor: crate::model::Actor::new("sys", "System"),
    };
    let out = s
        .truncate(&[TruncateTarget {
            stream: "s".into(),
            snapshot: None,
            meta: m.clone(),
            expected_head: None,
        }])
        .await?;
    ensure_eq!(
        out.get("s").map(|t| (*t.committed.meta).clone()),
        Some(m.clone()),
        "returned meta"
    );
    let stored = read(&*s, &Query::stream("s")).await?;
    ensure_eq!(
        stored.first().map(|e| (*e.meta).clone()),
        Some(m),
        "stored meta"
    );
    Ok(())
}

async fn seed_new_id(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B"]).await?;
    let last = commit(&*s, "t", &["X"]).await?[0].id;
    let out = s.truncate(&[target("s", None)]).await?;
    let id = out.get("s").map_or(0, |t| t.committed.id);
    ensure!(id > last, "seed id {id} is not above the last id {last}");
    let next = commit(&*s, "u", &["Y"]).await?[0].id;
    ensure!(
        next > id,
        "the next commit's id {next} is not above the seed's {id}"
    );
    Ok(())
}

async fn unknown_absent(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    let out = s
        .truncate(&[target("nope", None), target("s", None)])
        .await?;
    ensure!(!out.contains_key("nope"), "unknown stream in the result");
    ensure!(
        out.contains_key("s"),
        "known stream missing from the result"
    );
    ensure!(
        read(&*s, &Query::stream("nope").with_snaps())
            .await?
            .is_empty(),
        "an unknown stream was seeded"
    );
    Ok(())
}

async fn empty_input(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    ensure!(s.truncate(&[]).await?.is_empty(), "result");
    ensure_eq!(read(&*s, &Query::all()).await?.len(), 1, "events");
    Ok(())
}

async fn several(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "a", &["A", "B"]).await?;
    commit(&*s, "b", &["C"]).await?;
    let out = s
        .truncate(&[target("a", Some(json!({ "n": 1 }))), target("b", None)])
        .await?;
    let mut got: Vec<(String, u64, String)> = out
        .iter()
        .map(|(k, t)| (k.clone(), t.deleted, t.committed.name.clone()))
        .collect();
    got.sort();
    ensure_eq!(
        got,
        [
            ("a".to_owned(), 2, SNAPSHOT_EVENT.to_owned()),
            ("b".to_owned(), 1, TOMBSTONE_EVENT.to_owned())
        ],
        "(stream, deleted, seed)"
    );
    Ok(())
}

async fn others_untouched(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "a", &["A"]).await?;
    commit(&*s, "b", &["B", SNAPSHOT_EVENT, "C"]).await?;
    commit(&*s, "a", &["D"]).await?;
    let before = ids(&*s, &Query::stream("b").with_snaps().after(0)).await?;
    s.truncate(&[target("a", None)]).await?;
    ensure_eq!(
        ids(&*s, &Query::stream("b").with_snaps().after(0)).await?,
        before,
        "stream b"
    );
    let floor = read(&*s, &Query::stream("b").with_snaps()).await?;
    ensure_eq!(
        floor.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        [SNAPSHOT_EVENT, "C"],
        "stream b's snapshot floor"
    );
    Ok(())
}

async fn subscriptions_untouched(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B"]).await?;
    subscribe(&*s, &[marked("s", 2), marked("t", 2)]).await?;
    let l = s.claim(1, 0, "w", LONG).await?;
    let before = s.query_streams(&Default::default()).await?;
    s.truncate(&[target("s", None)]).await?;
    ensure_eq!(s.query_streams(&Default::default()).await?, before, "rows");
    ensure_eq!(l.len(), 1, "claimed");
    ensure_eq!(must_row(&*s, "s").await?.correlated_at, Some(2), "mark");
    Ok(())
}

async fn writable_after(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A", "B", "C"]).await?;
    s.truncate(&[target("s", Some(json!({})))]).await?;
    let out = s.commit("s", &msgs(&["D"]), &meta("c"), Some(0)).await?;
    ensure_eq!(out[0].version, 1, "version after truncate");
    let names: Vec<String> = read(&*s, &Query::stream("s").with_snaps())
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    ensure_eq!(names, [SNAPSHOT_EVENT, "D"], "stream");
    Ok(())
}

async fn seed_is_stored(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "s", &["A"]).await?;
    let out = s
        .truncate(&[target("s", Some(json!({ "k": "v" })))])
        .await?;
    let seed = out.get("s").map(|t| t.committed.clone());
    let stored = read(&*s, &Query::stream("s").with_snaps()).await?;
    let seed = seed.ok_or_else(|| crate::conformance::Fail("no result".into()))?;
    ensure_eq!(stored.len(), 1, "events");
    ensure_eq!(
        (stored[0].id, stored[0].version, stored[0].created),
        (seed.id, seed.version, seed.created),
        "(id, version, created)"
    );
    ensure_eq!(
        stored[0].data_as::<Value>()?,
        seed.data_as::<Value>()?,
        "data"
    );
    Ok(())
}

fn guarded(stream: &str, head: i64) -> TruncateTarget {
    TruncateTarget {
        expected_head: Some(head),
        ..target(stream, None)
    }
}

async fn expected_head_current(s: Arc<dyn Store>) -> Outcome {
    let head = commit(&*s, "s", &["A", "B"]).await?[1].id;
    let out = s.truncate(&[guarded("s", head)]).await?;
    ensure_eq!(out.get("s").map(|t| t.deleted), Some(2), "deleted");
    let stored = read(&*s, &Query::stream("s")).await?;
    ensure_eq!(
        stored.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        [TOMBSTONE_EVENT],
        "stream after truncate"
    );
    Ok(())
}

async fn expected_head_moved(s: Arc<dyn Store>) -> Outcome {
    let first = commit(&*s, "s", &["A"]).await?[0].id;
    commit(&*s, "s", &["B"]).await?;
    let out = s
        .truncate(&[guarded("s", first), target("t-absent", None)])
        .await?;
    ensure!(
        out.is_empty(),
        "a moved head is left out of the result: {out:?}"
    );
    ensure_eq!(ids(&*s, &Query::stream("s")).await?.len(), 2, "events left");
    // another process's close truncated it, then a writer landed on the seed
    let seed = s.truncate(&[target("s", None)]).await?["s"].committed.id;
    let out = s.truncate(&[guarded("s", first)]).await?;
    ensure!(out.is_empty(), "the old head is gone: {out:?}");
    let stored = read(&*s, &Query::stream("s")).await?;
    ensure_eq!(
        stored.iter().map(|e| e.id).collect::<Vec<_>>(),
        [seed],
        "the other close's seed stays"
    );
    Ok(())
}

async fn expected_head_twice(s: Arc<dyn Store>) -> Outcome {
    let head = commit(&*s, "s", &["A"]).await?[0].id;
    let out = s
        .truncate(&[guarded("s", head), guarded("s", head)])
        .await?;
    ensure_eq!(out.get("s").map(|t| t.deleted), Some(1), "deleted");
    let stored = read(&*s, &Query::stream("s").with_snaps()).await?;
    ensure_eq!(stored.len(), 1, "one seed");
    ensure_eq!(
        out.get("s").map(|t| t.committed.id),
        Some(stored[0].id),
        "the seed returned is the stored one"
    );
    Ok(())
}

async fn retired_refuses(s: Arc<dyn Store>) -> Outcome {
    // a tombstone at the head: committed as the close's guard, or seeded by a truncate
    commit(&*s, "guarded", &["A", TOMBSTONE_EVENT]).await?;
    commit(&*s, "retired", &["A"]).await?;
    s.truncate(&[target("retired", None)]).await?;
    for (stream, head) in [("guarded", 1), ("retired", 0)] {
        for expected in [Some(head), None] {
            let refused = s.commit(stream, &msgs(&["B"]), &meta("c"), expected).await;
            ensure!(
                matches!(&refused, Err(StoreError::Closed(c)) if c.stream == stream),
                "commit onto `{stream}` at {expected:?}: {refused:?}"
            );
        }
        // a stale version is still a conflict (the writer reloads and finds it closed)
        let stale = s
            .commit(stream, &msgs(&["B"]), &meta("c"), Some(head + 5))
            .await;
        ensure!(
            matches!(stale, Err(StoreError::Concurrency(_))),
            "stale commit onto `{stream}`: {stale:?}"
        );
        let names: Vec<String> = read(&*s, &Query::stream(stream).with_snaps())
            .await?
            .into_iter()
            .map(|e| e.name)
            .collect();
        ensure_eq!(
            names.last().map(String::as_str),
            Some(TOMBSTONE_EVENT),
            "{stream}'s head"
        );
    }
    Ok(())
}

async fn unstorable_seed_rejected(s: Arc<dyn Store>) -> Outcome {
    commit(&*s, "a", &["A"]).await?;
    commit(&*s, "b", &["B"]).await?;
    let with_snapshot = |json: &str| -> Result<TruncateTarget, crate::conformance::Fail> {
        let raw = serde_json::value::RawValue::from_string(json.to_owned())
            .map_err(|e| crate::conformance::Fail(e.to_string()))?;
        Ok(TruncateTarget {
            snapshot: Some(raw),
            ..target("b", None)
        })
    };
    let mut nul_meta = target("b", None);
    nul_meta.meta.actor.name = "Ev\0il".into();
    let bad = [
        (
            "a snapshot with `\\u0000`",
            with_snapshot("{\"s\":\"x\\u0000\"}")?,
        ),
        (
            "a snapshot with a number out of range",
            with_snapshot("{\"n\":1e131072}")?,
        ),
        ("a seed meta with a NUL", nul_meta),
    ];
    for (what, bad) in bad {
        // A valid target first: the call is refused whole.
        expect_invalid(s.truncate(&[target("a", None), bad]).await, what)?;
    }
    let stored = read(&*s, &Query::all()).await?;
    ensure_eq!(
        stored
            .iter()
            .map(|e| (e.stream.as_str(), e.name.as_str()))
            .collect::<Vec<_>>(),
        [("a", "A"), ("b", "B")],
        "both streams as they were"
    );
    Ok(())
}
