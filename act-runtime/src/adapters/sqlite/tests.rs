//! SQLite-specific behaviour. The port's semantics are checked by the conformance kit; these
//! tests cover what only this adapter can get wrong: pattern translation against the real
//! engine, schema upgrades, lock-free concurrency, persistence and time precision.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use chrono::{DateTime, TimeZone, Utc};
use regex::RegexBuilder;
use serde_json::value::to_raw_value;

use super::*;
use crate::model::Actor;
use crate::ports::StreamMatch;

/// A fresh database path under the system temp dir, removed (with its WAL files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        Self(std::env::temp_dir().join(format!(
            "act-sqlite-{tag}-{}-{n}-{nanos}.db",
            std::process::id()
        )))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

fn meta(correlation: &str) -> EventMeta {
    EventMeta {
        correlation: correlation.into(),
        causation: Default::default(),
        actor: Actor::new("u1", "Ada"),
    }
}

fn msg(name: &str, value: serde_json::Value) -> Message {
    Message::new(name, to_raw_value(&value).unwrap())
}

async fn read(store: &SqliteStore, q: &Query) -> Vec<Committed> {
    let mut out = Vec::new();
    store.query(q, &mut |e| out.push(e.clone())).await.unwrap();
    out
}

fn invalid(r: Result<impl std::fmt::Debug, StoreError>) -> crate::error::ValidationError {
    match r {
        Err(StoreError::Invalid(v)) => v,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn commit_and_query_round_trip() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let c = store
        .commit(
            "s1",
            &[
                msg("A", serde_json::json!({"x": 1})),
                msg("B", serde_json::json!([1, "two"])),
            ],
            &meta("c1"),
            Some(-1),
        )
        .await
        .unwrap();
    assert_eq!(
        c.iter().map(|e| (e.id, e.version)).collect::<Vec<_>>(),
        [(1, 0), (2, 1)]
    );
    assert_eq!(c[0].created, c[1].created);
    let c2 = store
        .commit(
            "s2",
            &[msg("A", serde_json::json!(null))],
            &meta("c2"),
            None,
        )
        .await
        .unwrap();
    assert_eq!((c2[0].id, c2[0].version), (3, 0));

    let all = read(&store, &Query::all()).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].data.get(), r#"{"x":1}"#);
    assert_eq!(all[1].data.get(), r#"[1,"two"]"#);
    assert_eq!(*all[0].meta, meta("c1"));
    assert_eq!(all[0].created, c[0].created);
    assert_eq!(read(&store, &Query::all().correlation("c2")).await[0].id, 3);
    assert_eq!(
        read(&store, &Query::all().backward().limit(1)).await[0].id,
        3
    );
    assert!(
        read(&store, &Query::all().names(Vec::<String>::new()))
            .await
            .is_empty()
    );
    assert_eq!(
        read(&store, &Query::all().after(0).before(3)).await.len(),
        2
    );

    match store
        .commit(
            "s1",
            &[msg("C", serde_json::json!({}))],
            &meta("c"),
            Some(0),
        )
        .await
    {
        Err(StoreError::Concurrency(e)) => {
            assert_eq!((e.stream.as_str(), e.expected, e.actual), ("s1", 0, 1));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(read(&store, &Query::stream("s1")).await.len(), 2);
}

#[tokio::test]
async fn nul_characters_are_invalid_and_nothing_is_written() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let ok = || msg("A", serde_json::json!({}));
    invalid(store.commit("s\0", &[ok()], &meta("c"), None).await);
    invalid(
        store
            .commit("s", &[msg("A\0", serde_json::json!({}))], &meta("c"), None)
            .await,
    );
    invalid(
        store
            .commit(
                "s",
                &[msg("A", serde_json::json!({"k": "a\u{0}b"}))],
                &meta("c"),
                None,
            )
            .await,
    );
    invalid(store.commit("s", &[ok()], &meta("c\0"), None).await);
    invalid(store.commit("", &[ok()], &meta("c"), None).await);
    // Filters with a NUL match nothing (no stored name holds one), like the oracle.
    store.commit("s", &[ok()], &meta("c"), None).await.unwrap();
    for q in [
        Query::stream("s\0"),
        Query::pattern("s\0"),
        Query::pattern("^s.*\0"),
    ] {
        assert_eq!(store.query(&q, &mut |_| {}).await.unwrap(), 0, "{q:?}");
    }
    assert_eq!(
        store
            .query(&Query::all().names(["A\0"]), &mut |_| {})
            .await
            .unwrap(),
        0
    );
    invalid(store.subscribe(&[Subscription::new("x\0")], None).await);
    assert_eq!(read(&store, &Query::all()).await.len(), 1);
}

/// The portable grammar on the real engine, against the oracle's regex semantics.
#[tokio::test]
async fn patterns_match_like_the_oracle_regex() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let names = [
        "cart-1",
        "cart-12",
        "my-cart-1",
        "Cart-1",
        "CART",
        "a_b%c",
        "axbyc",
        "a.b",
        "axb",
        "a*b",
        "a?b",
        "a[x]b",
        "a]b",
        "a\\b",
        "line\nbreak",
        "ünïcödé",
        "x$y",
        "^x",
        "order-7",
        "c-long-t",
    ];
    for n in names {
        store
            .commit(n, &[msg("E", serde_json::json!({}))], &meta("c"), None)
            .await
            .unwrap();
    }
    let patterns = [
        "",
        "cart",
        "^cart",
        "cart-1$",
        "^cart-1$",
        "^c.rt",
        "c.*t",
        "^c.*t$",
        "Cart",
        "a_b%",
        "a_b",
        r"a\.b",
        "a.b",
        r"a\*b",
        r"a\?b",
        r"a\[x\]b",
        r"a\]b",
        r"a\\b",
        "e\nb",
        "line.break",
        "^.*$",
        "^$",
        "ünï",
        "^ü.ï",
        r"x\$y",
        r"\^x",
        "^..$",
        "-1$",
        ".",
    ];
    for p in patterns {
        let re = RegexBuilder::new(p)
            .dot_matches_new_line(true)
            .build()
            .unwrap();
        let mut expected: Vec<&str> = names.iter().copied().filter(|n| re.is_match(n)).collect();
        expected.sort_unstable();
        let mut got: Vec<String> = read(&store, &Query::pattern(p))
            .await
            .into_iter()
            .map(|e| e.stream)
            .collect();
        got.sort_unstable();
        assert_eq!(got, expected, "pattern {p:?}");
    }
}

#[tokio::test]
async fn patterns_outside_the_grammar_are_rejected_naming_the_pattern() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    for p in ["[a-z]", "a+", r"\d", "a|b", "(a)", "ab*", "a?"] {
        let v = invalid(store.query(&Query::pattern(p), &mut |_| {}).await);
        assert!(v.to_string().contains(&format!("`{p}`")), "{v}");
        assert_eq!(v.paths().collect::<Vec<_>>(), ["/stream"]);
        let filter = StreamFilter {
            stream: Some(StreamMatch::Pattern(p.into())),
            ..StreamFilter::default()
        };
        invalid(store.query_streams(&filter).await);
        let sub = Subscription {
            source: Some(p.into()),
            source_is_pattern: true,
            ..Subscription::new("target")
        };
        invalid(store.subscribe(&[sub], None).await);
    }
    assert!(
        store
            .query_streams(&StreamFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn seed_is_idempotent_and_upgrades_an_old_schema() {
    let db = TempDb::new("upgrade");
    {
        // An older schema: no meta column, a subscription table without marks.
        let conn = Connection::open(&db.0).unwrap();
        for sql in [
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, \
             data TEXT NOT NULL, stream TEXT NOT NULL, version INTEGER NOT NULL, \
             created INTEGER NOT NULL)",
            "INSERT INTO events (name, data, stream, version, created) \
             VALUES ('Old', '{\"v\":1}', 'legacy', 0, 0)",
            "CREATE TABLE streams (stream TEXT PRIMARY KEY, source TEXT, at INTEGER DEFAULT -1)",
            "INSERT INTO streams (stream) VALUES ('old-target')",
            // version 2's index on the time of commit, dropped by version 3, and the index
            // on the event name, dropped by version 4
            "CREATE INDEX events_created_id ON events (created, id)",
            "CREATE INDEX events_name ON events (name)",
            "PRAGMA user_version = 2",
        ] {
            conn.execute(sql, []).unwrap();
        }
        conn.close().unwrap();
    }
    let store = SqliteStore::open(&db.0).await.unwrap();
    store.seed().await.unwrap();
    store.seed().await.unwrap();
    {
        let conn = Connection::open(&db.0).unwrap();
        assert_eq!(
            indexes_of(&conn, "events"),
            [
                "events_correlation",
                "events_snapshots",
                "events_stream_version"
            ]
        );
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, schema::VERSION);
        // A file keeps the page size it was made with.
        let page_size: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        assert_eq!(page_size, 4096);
    }
    let old = read(&store, &Query::stream("legacy")).await;
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].data.get(), r#"{"v":1}"#);
    assert_eq!(old[0].meta.actor.id, "");
    let c = store
        .commit(
            "legacy",
            &[msg("New", serde_json::json!({}))],
            &meta("c"),
            Some(0),
        )
        .await
        .unwrap();
    assert_eq!((c[0].id, c[0].version), (2, 1));
    let rows = store.query_streams(&StreamFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].at, rows[0].retry, rows[0].correlated_at),
        (-1, -1, None)
    );
    let sub = Subscription {
        correlated_at: Some(2),
        ..Subscription::new("old-target")
    };
    assert_eq!(store.subscribe(&[sub], None).await.unwrap().subscribed, 0);
    assert_eq!(
        store
            .claim(1, 0, "w", Duration::from_secs(5))
            .await
            .unwrap()
            .len(),
        1
    );
    store.dispose().await.unwrap();
}

/// The names of `table`'s own indexes, sorted.
fn indexes_of(conn: &Connection, table: &str) -> Vec<String> {
    conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? \
         AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .unwrap()
    .query_map([table], |r| r.get(0))
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// The query plan of `sql` (`EXPLAIN QUERY PLAN`), one detail per line.
fn plan(conn: &Connection, sql: &str) -> String {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let mut stmt = conn.prepare(&explain).unwrap();
    let details = if sql.contains("?1") {
        stmt.query_map(rusqlite::params![0_i64, "[\"x\"]", 10_i64], |r| {
            r.get::<_, String>("detail")
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
    } else {
        stmt.query_map([], |r| r.get::<_, String>("detail"))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
    };
    details.unwrap().join("\n")
}

#[tokio::test]
async fn claims_walk_their_partial_indexes_in_order() {
    let db = TempDb::new("plan");
    {
        // An older schema's claim index, which made claims walk every unblocked row.
        let conn = Connection::open(&db.0).unwrap();
        for sql in [
            "CREATE TABLE streams (stream TEXT PRIMARY KEY NOT NULL, source TEXT, \
             source_is_pattern INTEGER NOT NULL DEFAULT 0, at INTEGER NOT NULL DEFAULT -1, \
             retry INTEGER NOT NULL DEFAULT -1, blocked INTEGER NOT NULL DEFAULT 0, error TEXT, \
             leased_by TEXT, leased_until INTEGER, priority INTEGER NOT NULL DEFAULT 0, \
             correlated_at INTEGER)",
            "CREATE INDEX streams_claim ON streams (blocked, priority DESC, at)",
            "CREATE INDEX streams_work ON streams (at) WHERE blocked = 0 AND at < correlated_at",
        ] {
            conn.execute(sql, []).unwrap();
        }
        conn.close().unwrap();
    }
    let store = SqliteStore::open(&db.0).await.unwrap();
    store.seed().await.unwrap();
    let subs: Vec<Subscription> = (0..50)
        .map(|i| Subscription {
            correlated_at: Some(10),
            priority: i % 3,
            ..Subscription::new(format!("t{i:02}"))
        })
        .collect();
    store.subscribe(&subs, None).await.unwrap();
    store.dispose().await.unwrap();

    let conn = Connection::open(&db.0).unwrap();
    assert_eq!(
        indexes_of(&conn, "streams"),
        [
            "streams_at",
            "streams_lagging",
            "streams_leading",
            "streams_lowest"
        ],
        "the old indexes are dropped"
    );
    for (sql, index) in [
        (subscriptions::LAGGING_SQL, "streams_lagging"),
        (subscriptions::LOWEST_SQL, "streams_lowest"),
        (subscriptions::LEADING_SQL, "streams_leading"),
    ] {
        let plan = plan(&conn, sql);
        assert!(
            plan.contains(&format!("USING INDEX {index}")),
            "{index} unused:\n{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "the claim sorts:\n{plan}");
    }
    let plan = plan(&conn, subscriptions::WATERMARK_SQL);
    assert!(
        plan.contains("SEARCH streams USING COVERING INDEX streams_at"),
        "{plan}"
    );
    conn.close().unwrap();
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let db = TempDb::new("reopen");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let first = store
        .commit(
            "s",
            &[msg("A", serde_json::json!({"n": 1}))],
            &meta("c"),
            None,
        )
        .await
        .unwrap();
    store
        .subscribe(
            &[Subscription {
                correlated_at: Some(1),
                ..Subscription::new("t")
            }],
            Some(1),
        )
        .await
        .unwrap();
    store.dispose().await.unwrap();
    store.dispose().await.unwrap();
    assert!(matches!(
        store.query(&Query::all(), &mut |_| {}).await,
        Err(StoreError::Disposed)
    ));
    assert!(matches!(
        store
            .commit("s", &[msg("A", serde_json::json!({}))], &meta("c"), None)
            .await,
        Err(StoreError::Disposed)
    ));

    let store = SqliteStore::connect(&format!("sqlite://{}", db.0.display()))
        .await
        .unwrap();
    let events = read(&store, &Query::all()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].created, first[0].created);
    let next = store
        .commit("s", &[msg("B", serde_json::json!({}))], &meta("c"), Some(0))
        .await
        .unwrap();
    assert_eq!((next[0].id, next[0].version), (2, 1));
    let subscribed = store.subscribe(&[], None).await.unwrap();
    assert_eq!(subscribed.checkpoint, Some(1));
    store.dispose().await.unwrap();
}

#[tokio::test]
async fn created_round_trips_at_microsecond_precision_and_bounds_are_exact() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let c = store
        .commit("s", &[msg("A", serde_json::json!({}))], &meta("c"), None)
        .await
        .unwrap();
    let t = c[0].created;
    assert_eq!(
        t.timestamp_subsec_nanos() % 1_000,
        0,
        "truncated to the microsecond"
    );
    assert_eq!(read(&store, &Query::all()).await[0].created, t);

    let us = chrono::Duration::microseconds(1);
    let ns = chrono::Duration::nanoseconds(1);
    let count = |q: Query| {
        let store = &store;
        async move { read(store, &q).await.len() }
    };
    assert_eq!(count(Query::all().created_after(t)).await, 0);
    assert_eq!(count(Query::all().created_after(t - ns)).await, 1);
    assert_eq!(count(Query::all().created_after(t - us)).await, 1);
    assert_eq!(count(Query::all().created_before(t)).await, 0);
    assert_eq!(count(Query::all().created_before(t + ns)).await, 1);
    assert_eq!(count(Query::all().created_before(t + us)).await, 1);
    let far: DateTime<Utc> = Utc.with_ymd_and_hms(-100, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(count(Query::all().created_after(far)).await, 1);
    assert_eq!(
        count(Query::all().created_before(DateTime::<Utc>::MAX_UTC)).await,
        1
    );
}

/// 32 concurrent commits, from two store instances on one file (as two processes would),
/// then parallel claims and acks: every one succeeds, none sees `SQLITE_BUSY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_see_busy() {
    let db = TempDb::new("busy");
    let a = Arc::new(SqliteStore::open(&db.0).await.unwrap());
    let b = Arc::new(SqliteStore::open(&db.0).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for j in 0..10 {
                let stream = format!("s{}", (i + j) % 8);
                store
                    .commit(
                        &stream,
                        &[msg("E", serde_json::json!({"i": i, "j": j}))],
                        &meta("c"),
                        None,
                    )
                    .await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let all = read(&a, &Query::all()).await;
    assert_eq!(all.len(), 320);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    for s in 0..8 {
        let versions: Vec<Version> = read(&b, &Query::stream(format!("s{s}")))
            .await
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(versions, (0..40).collect::<Vec<_>>());
    }

    let subs: Vec<Subscription> = (0..64)
        .map(|i| Subscription {
            correlated_at: Some(320),
            ..Subscription::new(format!("t{i}"))
        })
        .collect();
    assert_eq!(a.subscribe(&subs, Some(320)).await.unwrap().subscribed, 64);
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let leases = store
                    .claim(2, 2, &format!("w{w}"), Duration::from_secs(60))
                    .await?;
                if leases.is_empty() {
                    return Ok::<_, StoreError>(mine);
                }
                let acked = store
                    .ack(
                        &leases
                            .iter()
                            .map(|l| Lease {
                                at: 320,
                                ..l.clone()
                            })
                            .collect::<Vec<_>>(),
                    )
                    .await?;
                assert_eq!(acked.len(), leases.len());
                mine.extend(leases.into_iter().map(|l| l.stream));
            }
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap().unwrap());
    }
    claimed.sort_unstable();
    let before = claimed.len();
    claimed.dedup();
    assert_eq!(
        (before, claimed.len()),
        (64, 64),
        "each row claimed exactly once"
    );
    let rows = a.query_streams(&StreamFilter::default()).await.unwrap();
    assert!(
        rows.iter()
            .all(|r| r.at == 320 && r.retry == -1 && r.leased_by.is_none())
    );
    a.dispose().await.unwrap();
    b.dispose().await.unwrap();
}

#[tokio::test]
async fn claim_frontiers_fairness_and_leases() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let subs: Vec<Subscription> = (0..6)
        .map(|i| Subscription {
            priority: if i == 5 { 10 } else { 0 },
            correlated_at: Some(100),
            ..Subscription::new(format!("t{i}"))
        })
        .collect();
    store.subscribe(&subs, None).await.unwrap();
    // Watermarks 0..5 by name: claim and ack each to its index.
    let all = store
        .claim(6, 0, "w", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|l| l.retry == 0 && l.lagging && l.by == "w"));
    let acked: Vec<Lease> = all
        .iter()
        .map(|l| Lease {
            at: l.stream[1..].parse().unwrap(),
            ..l.clone()
        })
        .collect();
    assert_eq!(store.ack(&acked).await.unwrap().len(), 6);

    // lagging 4 → 3 by priority (t5, then t0, t1) + 1 fair (t2); leading 1 → t4.
    let leases = store
        .claim(4, 1, "w", Duration::from_secs(60))
        .await
        .unwrap();
    let got: Vec<(&str, bool)> = leases
        .iter()
        .map(|l| (l.stream.as_str(), l.lagging))
        .collect();
    assert_eq!(
        got,
        [
            ("t5", true),
            ("t0", true),
            ("t1", true),
            ("t2", true),
            ("t4", false)
        ]
    );
    // Leased rows are not claimable; the rest is.
    let rest = store
        .claim(10, 10, "x", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|l| l.stream.as_str()).collect::<Vec<_>>(),
        ["t3"]
    );
    // An ack from another holder is dropped; block needs the holder.
    assert!(
        store
            .ack(&[Lease {
                by: "x".into(),
                ..leases[0].clone()
            }])
            .await
            .unwrap()
            .is_empty()
    );
    let blocked = store
        .block(&[
            (leases[0].clone(), "boom".into()),
            (rest[0].clone(), "bad".into()),
        ])
        .await
        .unwrap();
    assert_eq!(blocked.len(), 2);
    assert!(blocked.iter().all(|r| r.blocked));
    assert_eq!(blocked[0].error.as_deref(), Some("boom"));
    assert!(
        store
            .block(&[(leases[0].clone(), "again".into())])
            .await
            .unwrap()
            .is_empty()
    );
    // Expired leases are claimable again, and retry counts the claims.
    let short = store.claim(0, 10, "y", Duration::ZERO).await.unwrap();
    assert!(short.is_empty(), "leases still live");
    let filter = StreamFilter {
        blocked: Some(true),
        ..StreamFilter::default()
    };
    assert_eq!(store.query_streams(&filter).await.unwrap().len(), 2);
    assert_eq!(
        store
            .unblock(&["t5".into(), "t5".into(), "t0".into()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.reset(&["t3".into(), "nope".into()]).await.unwrap(), 1);
    let t3 = &store
        .query_streams(&StreamFilter {
            stream: Some(StreamMatch::Exact("t3".into())),
            ..StreamFilter::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(
        (t3.at, t3.retry, t3.blocked, t3.leased_by.as_deref()),
        (-1, -1, false, None)
    );
}

#[tokio::test]
async fn truncate_reseeds_and_drop_all_restarts_ids() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    store
        .commit(
            "s",
            &[
                msg("A", serde_json::json!({})),
                msg("B", serde_json::json!({})),
            ],
            &meta("c"),
            None,
        )
        .await
        .unwrap();
    let out = store
        .truncate(&[
            TruncateTarget {
                stream: "s".into(),
                snapshot: Some(to_raw_value(&serde_json::json!({"n": 2})).unwrap()),
                meta: meta("close"),
                expected_head: None,
            },
            TruncateTarget {
                stream: "unknown".into(),
                snapshot: None,
                meta: meta("close"),
                expected_head: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    let t = &out["s"];
    assert_eq!(t.deleted, 2);
    assert_eq!((t.committed.id, t.committed.version), (3, 0));
    assert_eq!(t.committed.name, crate::model::SNAPSHOT_EVENT);
    assert_eq!(
        read(&store, &Query::stream("s").with_snaps()).await.len(),
        1
    );
    assert!(read(&store, &Query::stream("s")).await.is_empty());

    store.drop_all().await.unwrap();
    assert!(read(&store, &Query::all().with_snaps()).await.is_empty());
    let c = store
        .commit(
            "s",
            &[msg("A", serde_json::json!({}))],
            &meta("c"),
            Some(-1),
        )
        .await
        .unwrap();
    assert_eq!((c[0].id, c[0].version), (1, 0));
}

#[tokio::test]
async fn large_batches_span_several_statements() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let msgs: Vec<Message> = (0..2_500)
        .map(|i| msg("E", serde_json::json!({"i": i})))
        .collect();
    let c = store.commit("big", &msgs, &meta("c"), None).await.unwrap();
    assert_eq!(c.len(), 2_500);
    assert!(
        c.iter()
            .enumerate()
            .all(|(i, e)| e.version == i as Version && e.id == i as i64 + 1)
    );
    let back = read(&store, &Query::stream("big")).await;
    assert_eq!(back.len(), 2_500);
    assert_eq!(back[2_499].data.get(), r#"{"i":2499}"#);
}

#[tokio::test]
async fn commit_marked_writes_events_and_marks_together() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let c = store
        .commit_marked(
            "s",
            &[
                msg("A", serde_json::json!({})),
                msg("B", serde_json::json!({})),
            ],
            &meta("c"),
            Some(-1),
            &[
                (1, Subscription::new("target")),
                (9, Subscription::new("ignored")),
            ],
        )
        .await
        .unwrap();
    let rows = store.query_streams(&StreamFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].stream.as_str(), rows[0].correlated_at),
        ("target", Some(c[1].id))
    );
    // A conflict writes neither; a bad mark is rejected before anything is written.
    assert!(matches!(
        store
            .commit_marked(
                "s",
                &[msg("C", serde_json::json!({}))],
                &meta("c"),
                Some(0),
                &[(0, Subscription::new("other"))]
            )
            .await,
        Err(StoreError::Concurrency(_))
    ));
    let bad = Subscription {
        source: Some("[x]".into()),
        source_is_pattern: true,
        ..Subscription::new("other")
    };
    invalid(
        store
            .commit_marked(
                "s",
                &[msg("C", serde_json::json!({}))],
                &meta("c"),
                None,
                &[(0, bad)],
            )
            .await,
    );
    assert_eq!(
        store
            .query_streams(&StreamFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(read(&store, &Query::all()).await.len(), 2);
}

#[tokio::test]
async fn ack_with_due_defers_keeping_retry_and_holder() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let sub = Subscription {
        correlated_at: Some(10),
        ..Subscription::new("t")
    };
    store.subscribe(&[sub], None).await.unwrap();
    let lease = store
        .claim(1, 0, "w", Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    let due = Utc::now() - chrono::Duration::seconds(1);
    let deferred = Lease {
        at: 4,
        due: Some(due),
        ..lease.clone()
    };
    assert_eq!(store.ack(&[deferred]).await.unwrap().len(), 1);
    let row = &store.query_streams(&StreamFilter::default()).await.unwrap()[0];
    assert_eq!(
        (row.at, row.retry, row.leased_by.as_deref()),
        (4, 0, Some("w"))
    );
    assert_eq!(
        row.leased_until,
        Some(codec::from_micros(codec::micros(due)))
    );
    // Due already passed: claimable again, retry keeps counting.
    let again = store
        .claim(1, 0, "x", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        (again[0].at, again[0].retry, again[0].by.as_str()),
        (4, 1, "x")
    );
}

#[tokio::test]
async fn reads_of_one_stream_seek_past_the_cached_event_or_the_snapshot() {
    let db = TempDb::new("seek");
    let store = SqliteStore::open(&db.0).await.unwrap();
    store.dispose().await.unwrap();
    let conn = Connection::open(&db.0).unwrap();
    for (query, seek) in [
        (Query::stream("s").after(7), "(stream=? AND version>?)"),
        (Query::stream("s").with_snaps(), "(stream=? AND version>?)"),
    ] {
        let events::Select { sql, params, .. } = events::select(&query).unwrap().unwrap();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>("detail")
            })
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("\n");
        assert!(
            plan.contains(&format!(
                "SEARCH events USING INDEX events_stream_version {seek}"
            )),
            "{query:?} does not seek past the bound:\n{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{query:?} sorts:\n{plan}");
    }
}

/// The write-ahead log's size in pages, from its file (its header, then a header and a
/// page per frame); the file keeps its size when the log restarts, so this is the most the
/// log ever held.
fn wal_pages(db: &TempDb) -> u64 {
    let mut p = db.0.clone().into_os_string();
    p.push("-wal");
    let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    len.saturating_sub(32) / (PAGE_SIZE as u64 + 24)
}

#[tokio::test]
async fn checkpoints_run_beside_the_writer_and_the_log_stays_bounded() {
    let db = TempDb::new("checkpoint");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let page_size = |conn: &Connection| -> i64 {
        conn.pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap()
    };
    assert_eq!(page_size(&Connection::open(&db.0).unwrap()), PAGE_SIZE);
    let file_len = || std::fs::metadata(&db.0).unwrap().len();
    let before = file_len();
    // Each commit: a 3 KiB payload (overflow pages) and the log's and indexes' pages.
    let payload = serde_json::json!({ "blob": "x".repeat(3000) });
    let commit = |i: usize| {
        let (store, event) = (&store, msg("A", payload.clone()));
        async move {
            store
                .commit(&format!("s-{}", i % 10), &[event], &meta("c"), None)
                .await
                .unwrap();
        }
    };
    let mut commits = 0;
    while wal_pages(&db) < checkpoint::BACKGROUND_AT as u64 + 50 {
        commit(commits).await;
        commits += 1;
    }
    // Below the writer's own threshold, only the checkpoint thread copies pages back.
    let copied = async {
        while file_len() <= before {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), copied)
        .await
        .expect("the checkpoint thread copied the log into the file");
    // Many times the writer's threshold of pages later, the log has restarted each time.
    for i in 0..commits * 8 {
        commit(i).await;
    }
    let most = wal_pages(&db);
    assert!(
        most < checkpoint::INLINE_AT as u64 + 100,
        "the log grew to {most} pages"
    );
    let all = read(&store, &Query::all()).await;
    assert_eq!(all.len(), commits * 9);
    store.dispose().await.unwrap();
    // Reopened: every commit is there.
    let store = SqliteStore::open(&db.0).await.unwrap();
    assert_eq!(read(&store, &Query::all()).await.len(), commits * 9);
    store.dispose().await.unwrap();
}
