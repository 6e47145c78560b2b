//! PostgreSQL-only behaviours of `PostgresStore`: tenants, identifiers, NUL bytes,
//! concurrent boots, killed connections, commit concurrency, and the read horizon (no
//! reader skips an event that commits out of id order). Each test uses its own schema.

#[path = "pg_support.rs"]
mod pg_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use act_runtime::adapters::PostgresStore;
use act_runtime::adapters::postgres::PostgresConfig;
use act_runtime::error::StoreError;
use act_runtime::model::{Actor, EventId, EventMeta, Message};
use act_runtime::ports::{Query, Store, StreamFilter, Subscription};
use pg_support::Schemas;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};

fn meta() -> EventMeta {
    EventMeta {
        correlation: "c".into(),
        causation: Default::default(),
        actor: Actor::new("t", "Test"),
    }
}

fn msg(name: &str, json: &str) -> Message {
    Message::new(
        name,
        serde_json::value::RawValue::from_string(json.to_owned()).expect("JSON"),
    )
}

async fn commit(s: &PostgresStore, stream: &str, n: usize) -> Vec<EventId> {
    let msgs: Vec<Message> = (0..n)
        .map(|i| msg("E", &format!("{{\"i\":{i}}}")))
        .collect();
    s.commit(stream, &msgs, &meta(), None)
        .await
        .expect("commit")
        .iter()
        .map(|e| e.id)
        .collect()
}

async fn ids(s: &PostgresStore, q: &Query) -> Vec<EventId> {
    let mut out = Vec::new();
    s.query(q, &mut |e| out.push(e.id)).await.expect("query");
    out
}

async fn raw() -> PgConnection {
    PgConnection::connect(&pg_support::url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is required: {e}", pg_support::url()))
}

/// Calls the tenant's commit function inside the caller's open transaction: the events are
/// registered and have their ids, but are not committed.
async fn commit_raw(
    conn: &mut PgConnection,
    s: &PostgresStore,
    stream: &str,
    n: usize,
) -> Vec<i64> {
    let sql = format!(
        "SELECT o_id FROM \"{}\".\"{}_commit\"($1, $2, $3, $4, NULL, '{{}}', '{{}}', '{{}}', \
         '{{}}', '{{}}')",
        s.schema(),
        s.table()
    );
    let names: Vec<&str> = vec!["E"; n];
    let datas: Vec<String> = (0..n).map(|i| format!("{{\"raw\":{i}}}")).collect();
    sqlx::query(AssertSqlSafe(sql))
        .bind(stream)
        .bind(&names)
        .bind(&datas)
        .bind(serde_json::to_string(&meta()).unwrap())
        .fetch_all(&mut *conn)
        .await
        .expect("raw commit")
        .iter()
        .map(|r| r.get::<i64, _>(0))
        .collect()
}

/// Every id in the log, read naively (no horizon).
async fn naive_ids(conn: &mut PgConnection, s: &PostgresStore, after: i64) -> Vec<i64> {
    let sql = format!(
        "SELECT id FROM \"{}\".\"{}\" WHERE id > $1 ORDER BY id",
        s.schema(),
        s.table()
    );
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(after)
        .fetch_all(&mut *conn)
        .await
        .expect("naive read")
}

#[tokio::test]
async fn tenants_are_isolated() {
    let schemas = Schemas::default();
    let a = schemas.store().await;
    let b = schemas.store().await;
    // A second tenant in A's schema, under another table name.
    let a2 = PostgresConfig::from_url(&pg_support::url())
        .unwrap()
        .schema(a.schema())
        .table("other")
        .pool_size(2)
        .connect()
        .await
        .expect("connect");
    for s in [&a, &b, &a2] {
        s.seed().await.expect("seed");
    }
    commit(&a, "s", 2).await;
    a.subscribe(&[Subscription::new("p")], Some(5))
        .await
        .unwrap();
    assert_eq!(ids(&a, &Query::all()).await, [1, 2]);
    for other in [&b, &a2] {
        assert!(
            ids(other, &Query::all()).await.is_empty(),
            "{other:?} sees A's events"
        );
        assert!(
            other
                .query_streams(&StreamFilter::default())
                .await
                .unwrap()
                .is_empty(),
            "{other:?} sees A's subscriptions"
        );
        let sub = other.subscribe(&[], None).await.unwrap();
        assert_eq!(sub.checkpoint, None, "{other:?} sees A's checkpoint");
        // Ids are per tenant.
        assert_eq!(commit(other, "s", 1).await, [1]);
    }
    b.drop_all().await.unwrap();
    assert_eq!(
        ids(&a, &Query::all()).await,
        [1, 2],
        "drop_all of B touched A"
    );
    for s in [&a, &b, &a2] {
        s.dispose().await.unwrap();
    }
    schemas.drop_all().await;
}

#[tokio::test]
async fn unsafe_identifiers_are_rejected_before_any_sql() {
    // Port 1 on a reserved address: a validation error proves nothing was sent.
    let unreachable = || PostgresConfig::new().host("127.0.0.1").port(1);
    for (schema, table) in [
        ("a\"; DROP SCHEMA public CASCADE; --", "events"),
        ("public", "events\"; --"),
        ("Public", "events"),
        ("pg_catalog", "events"),
        ("information_schema", "events"),
        ("1abc", "events"),
        ("", "events"),
        ("public", ""),
        ("public", "a-b"),
        ("public", "événements"),
        ("abcdefghijklmnopqrstuvwxyz0123", "events"),
        ("public", "abcdefghijklmnopqrstuvwxyz"),
    ] {
        let err = unreachable()
            .schema(schema)
            .table(table)
            .connect()
            .await
            .expect_err("unsafe identifier accepted");
        assert!(
            matches!(err, StoreError::Invalid(_)),
            "({schema:?}, {table:?}): {err}"
        );
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy(&pg_support::url())
            .unwrap();
        assert!(matches!(
            PostgresStore::with_pool(pool, schema, table),
            Err(StoreError::Invalid(_))
        ));
    }
}

#[tokio::test]
async fn nul_bytes_are_validation_errors_naming_the_stream() {
    let schemas = Schemas::default();
    let s = schemas.store().await;
    s.seed().await.unwrap();
    commit(&s, "cart-1", 1).await;
    let cases = [
        ("cart-1", msg("E", r#"{"a":"x\u0000y"}"#), meta()),
        ("cart-1", msg("E\0", "{}"), meta()),
        (
            "cart-1",
            msg("E", "{}"),
            EventMeta {
                correlation: "c\0".into(),
                ..meta()
            },
        ),
        ("cart\0-1", msg("E", "{}"), meta()),
        // Not a NUL, but a value PostgreSQL refuses all the same: a number beyond `numeric`.
        ("cart-1", msg("E", r#"{"n":1e1000000}"#), meta()),
    ];
    for (stream, m, meta) in cases {
        let err = s
            .commit(stream, std::slice::from_ref(&m), &meta, None)
            .await
            .expect_err("a NUL was accepted");
        match &err {
            StoreError::Invalid(v) => assert!(
                v.target.contains(&stream.escape_debug().to_string()),
                "the error does not name the stream: {err}"
            ),
            other => panic!("expected a validation error, got {other}"),
        }
    }
    // A NUL in a subscription or a claim holder is refused too; in a filter it matches nothing.
    assert!(matches!(
        s.subscribe(&[Subscription::new("p\0")], None).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.claim(1, 1, "w\0", Duration::from_secs(1)).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(ids(&s, &Query::stream("cart\0-1")).await.is_empty());
    assert!(ids(&s, &Query::all().names(["E\0"])).await.is_empty());
    assert_eq!(ids(&s, &Query::all()).await, [1], "something was written");
    s.dispose().await.unwrap();
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_seeds_all_succeed_and_a_current_schema_runs_no_ddl() {
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(Arc::new(pg_support::store_on(&schema).await));
    }
    let tasks: Vec<_> = stores
        .iter()
        .map(|s| {
            let s = Arc::clone(s);
            tokio::spawn(async move { s.seed().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("a concurrent seed failed");
    }
    assert_eq!(commit(&stores[0], "s", 1).await, [1]);
    // With the log locked exclusively, a boot still seeds at once: it runs no DDL.
    let mut holder = raw().await;
    let mut tx = holder.begin().await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "LOCK TABLE \"{schema}\".\"events\" IN ACCESS EXCLUSIVE MODE"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    let fresh = pg_support::store_on(&schema).await;
    tokio::time::timeout(Duration::from_secs(5), fresh.seed())
        .await
        .expect("seed waited for the table lock: it ran DDL on a current schema")
        .expect("seed");
    tx.rollback().await.unwrap();
    fresh.dispose().await.unwrap();
    for s in &stores {
        s.dispose().await.unwrap();
    }
    schemas.drop_all().await;
}

#[tokio::test]
async fn a_multi_stream_read_does_not_pass_an_open_commit() {
    let schemas = Schemas::default();
    let s = schemas.store().await;
    s.seed().await.unwrap();
    assert_eq!(commit(&s, "x", 1).await, [1]);

    // A: a writer that registered and took id 2, then stays open.
    let mut a = raw().await;
    let mut tx = a.begin().await.unwrap();
    assert_eq!(commit_raw(&mut tx, &s, "a", 1).await, [2]);
    // B: a later id commits.
    assert_eq!(commit(&s, "b", 1).await, [3]);

    // The gap is real: a naive read sees 3 without 2.
    let mut naive = raw().await;
    assert_eq!(naive_ids(&mut naive, &s, 1).await, [3]);
    // The store's multi-stream reads stop below the open writer.
    assert_eq!(ids(&s, &Query::all()).await, [1]);
    assert_eq!(ids(&s, &Query::all().after(1)).await, Vec::<i64>::new());
    assert_eq!(ids(&s, &Query::pattern("^.$")).await, [1]);
    assert_eq!(ids(&s, &Query::all().backward()).await, [1]);
    // One exact stream is safe by construction.
    assert_eq!(ids(&s, &Query::stream("b")).await, [3]);
    assert!(s.horizon_lag().await.unwrap() > 0);

    // A whole-log projection caught up to the open writer's key is not claimed (it could
    // read nothing yet), an exact-source one is.
    s.subscribe(
        &[
            Subscription {
                correlated_at: Some(3),
                ..Subscription::new("projection")
            },
            Subscription {
                source: Some("b".into()),
                correlated_at: Some(3),
                ..Subscription::new("exact")
            },
        ],
        None,
    )
    .await
    .unwrap();
    let leases = s.claim(4, 4, "w", Duration::from_secs(60)).await.unwrap();
    let claimed: Vec<&str> = leases.iter().map(|l| l.stream.as_str()).collect();
    // `projection` is at -1, below the writer's key 1: still claimable; move it to 1.
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    let mut acks = leases.clone();
    for l in &mut acks {
        l.at = 1;
    }
    s.ack(&acks).await.unwrap();
    let leases = s.claim(4, 4, "w", Duration::from_secs(60)).await.unwrap();
    let claimed: Vec<&str> = leases.iter().map(|l| l.stream.as_str()).collect();
    assert_eq!(
        claimed,
        ["exact"],
        "a whole-log row was claimed with nothing readable"
    );
    s.ack(&leases).await.unwrap();

    // A commits: both appear, in id order, and the projection is claimable again.
    tx.commit().await.unwrap();
    assert_eq!(ids(&s, &Query::all().after(1)).await, [2, 3]);
    assert_eq!(s.horizon_lag().await.unwrap(), 0);
    let leases = s.claim(4, 4, "w", Duration::from_secs(60)).await.unwrap();
    let claimed: Vec<&str> = leases.iter().map(|l| l.stream.as_str()).collect();
    assert!(claimed.contains(&"projection"), "{claimed:?}");

    // Variant: a writer that rolls back does not stall readers.
    let mut tx = a.begin().await.unwrap();
    assert_eq!(commit_raw(&mut tx, &s, "a", 2).await, [4, 5]);
    assert_eq!(commit(&s, "b", 1).await, [6]);
    assert_eq!(ids(&s, &Query::all().after(3)).await, Vec::<i64>::new());
    tx.rollback().await.unwrap();
    assert_eq!(ids(&s, &Query::all().after(3)).await, [6]);
    s.dispose().await.unwrap();
    schemas.drop_all().await;
}

#[tokio::test]
async fn a_connection_killed_mid_commit_writes_nothing() {
    let schemas = Schemas::default();
    let s = schemas.store().await;
    s.seed().await.unwrap();
    let mut victim = raw().await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut victim)
        .await
        .unwrap();
    let mut tx = victim.begin().await.unwrap();
    assert_eq!(commit_raw(&mut tx, &s, "doomed", 3).await.len(), 3);
    let mut admin = raw().await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(killed);
    // The connection is gone; so is the transaction and its registration.
    assert!(
        tx.commit().await.is_err(),
        "the killed transaction committed"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.horizon_lag().await.unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead writer still holds the horizon"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        ids(&s, &Query::all()).await.is_empty(),
        "half a batch was written"
    );
    // The stream is usable, from version 0.
    let out = s
        .commit("doomed", &[msg("E", "{}")], &meta(), Some(-1))
        .await
        .expect("commit after the kill");
    assert_eq!(out[0].version, 0);
    s.dispose().await.unwrap();
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_serialize_per_stream_only() {
    let schemas = Schemas::default();
    let s = Arc::new(
        PostgresConfig::from_url(&pg_support::url())
            .unwrap()
            .schema(&schemas.fresh())
            .pool_size(8)
            .connect()
            .await
            .unwrap(),
    );
    s.seed().await.unwrap();
    // Unconditional appends to one hot stream: no errors, contiguous versions.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                for _ in 0..25 {
                    s.commit("hot", &[msg("E", "{}"), msg("E", "{}")], &meta(), None)
                        .await
                        .expect("unconditional append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut versions = Vec::new();
    s.query(&Query::stream("hot"), &mut |e| versions.push(e.version))
        .await
        .unwrap();
    assert_eq!(versions, (0..400).collect::<Vec<i64>>());
    // Racing on one expected version: exactly one wins each round, and losers take no ids.
    let before = s.horizon_lag().await.unwrap();
    assert_eq!(before, 0);
    for round in 0..10_i64 {
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    s.commit("race", &[msg("E", "{}")], &meta(), Some(round - 1))
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(StoreError::Concurrency(c)) => {
                    assert_eq!((c.expected, c.actual), (round - 1, round));
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
    let all = ids(&s, &Query::all()).await;
    assert_eq!(
        all,
        (1..=410).collect::<Vec<i64>>(),
        "a rejected commit took ids"
    );
    s.dispose().await.unwrap();
    schemas.drop_all().await;
}

/// Writers hold their commits open for a few milliseconds (some roll back) while a store
/// reader and a naive `id > checkpoint` reader page through the log: the store reader sees
/// every committed id exactly once, the naive one misses some (so the test can fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn randomized_writers_never_make_the_reader_skip() {
    let schemas = Schemas::default();
    let s = Arc::new(schemas.store().await);
    s.seed().await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..6_u64)
        .map(|w| {
            let s = Arc::clone(&s);
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut conn = raw().await;
                let mut committed = Vec::new();
                let mut x = w.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    n += 1;
                    let stream = format!("w{w}-{}", x % 5);
                    let mut tx = conn.begin().await.unwrap();
                    let got = commit_raw(&mut tx, &s, &stream, 1 + (x % 2) as usize).await;
                    tokio::time::sleep(Duration::from_micros(x % 6000)).await;
                    if n % 10 == 0 {
                        tx.rollback().await.unwrap();
                    } else {
                        tx.commit().await.unwrap();
                        committed.extend(got);
                    }
                }
                committed
            })
        })
        .collect();
    let writers_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let s = Arc::clone(&s);
        let stop = Arc::clone(&writers_done);
        tokio::spawn(async move {
            let mut naive_conn = raw().await;
            let (mut cp, mut naive_cp) = (0, 0);
            let (mut seen, mut naive_seen) = (Vec::new(), Vec::new());
            let mut last_round = false;
            loop {
                let done = stop.load(std::sync::atomic::Ordering::Relaxed);
                let page = ids(&s, &Query::all().after(cp).limit(50)).await;
                if let Some(&last) = page.last() {
                    cp = last;
                }
                let empty = page.is_empty();
                seen.extend(page);
                let naive = naive_ids(&mut naive_conn, &s, naive_cp).await;
                if let Some(&last) = naive.last() {
                    naive_cp = last;
                }
                naive_seen.extend(naive);
                if last_round && empty {
                    break;
                }
                last_round = done;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (seen, naive_seen)
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut committed = BTreeSet::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    writers_done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, naive_seen) = reader.await.unwrap();
    let seen_set: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(
        seen_set.len(),
        seen.len(),
        "the store reader saw an id twice"
    );
    let missed: Vec<&i64> = committed.difference(&seen_set).collect();
    assert!(
        missed.is_empty(),
        "the store reader skipped {} ids: {missed:?}",
        missed.len()
    );
    assert_eq!(seen_set, committed);
    let naive_set: BTreeSet<i64> = naive_seen.into_iter().collect();
    let naive_missed = committed.difference(&naive_set).count();
    println!(
        "{} ids committed; the store reader missed 0, the naive reader missed {naive_missed}",
        committed.len()
    );
    assert!(
        naive_missed > 0,
        "the naive control missed nothing: the test cannot bite"
    );
    s.dispose().await.unwrap();
    schemas.drop_all().await;
}

/// A rough throughput probe (not a benchmark: run the bench on an idle machine for that):
/// `cargo test -p act-tests --test postgres -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a probe, not a check: prints commit rates"]
async fn throughput() {
    let schemas = Schemas::default();
    let s = Arc::new(
        PostgresConfig::from_url(&pg_support::url())
            .unwrap()
            .schema(&schemas.fresh())
            .pool_size(32)
            .connect()
            .await
            .unwrap(),
    );
    s.seed().await.unwrap();
    let n = 2_000;
    let t = std::time::Instant::now();
    for i in 0..n {
        s.commit(
            &format!("s-{}", i % 100),
            &[msg("E", "{\"a\":1}")],
            &meta(),
            None,
        )
        .await
        .unwrap();
    }
    let seq = f64::from(n) / t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|w| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                for i in 0..250 {
                    s.commit(
                        &format!("c-{w}-{}", i % 10),
                        &[msg("E", "{\"a\":1}")],
                        &meta(),
                        None,
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let conc = 8_000.0 / t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let mut count = 0;
    s.query(&Query::all(), &mut |_| count += 1).await.unwrap();
    let load = t.elapsed();
    println!(
        "sequential {seq:.0} commits/s; 32 concurrent {conc:.0} commits/s; read {count} events in {load:?}"
    );
    s.dispose().await.unwrap();
    schemas.drop_all().await;
}

/// A seeded store on `schema` with one commit slot: a second commit in flight queues.
async fn one_slot_store(schema: &str) -> Arc<PostgresStore> {
    let s = PostgresConfig::from_url(&pg_support::url())
        .expect("URL")
        .schema(schema)
        .pool_size(4)
        .commit_slots(1)
        .connect()
        .await
        .expect("connect");
    s.seed().await.expect("seed");
    Arc::new(s)
}

/// A session holding back every insert into `schema`'s log until it rolls back.
async fn hold_inserts(schema: &str) -> PgConnection {
    let mut holder = raw().await;
    sqlx::query("BEGIN")
        .execute(&mut holder)
        .await
        .expect("begin");
    sqlx::query(AssertSqlSafe(format!(
        "LOCK TABLE \"{schema}\".\"events\" IN EXCLUSIVE MODE"
    )))
    .execute(&mut holder)
    .await
    .expect("lock");
    holder
}

/// Waits until a session waits on a lock of `schema`'s log table.
async fn until_a_commit_waits(schema: &str) {
    let mut conn = raw().await;
    let sql = format!(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = '\"{schema}\".\"events\"'::regclass"
    );
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
            .fetch_one(&mut conn)
            .await
            .expect("pg_locks");
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no commit waited on the table lock");
}

/// How many transactions wrote the events of the streams matching `like`.
async fn writers(schema: &str, like: &str) -> i64 {
    let mut conn = raw().await;
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(DISTINCT xmin::text) FROM \"{schema}\".\"events\" WHERE stream LIKE '{like}'"
    )))
    .fetch_one(&mut conn)
    .await
    .expect("xmin")
}

/// Commits that arrive while every commit slot is busy go to the server as one group, in
/// one transaction, and each keeps its own answer: stored, a conflict, closed. A value the
/// server refuses fails its own commit only; the rest of its group is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_commits_go_as_one_group_and_keep_their_own_answers() {
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let s = one_slot_store(&schema).await;
    commit(&s, "behind", 2).await;
    s.commit(
        "closed",
        &[msg(act_runtime::model::TOMBSTONE_EVENT, "{}")],
        &meta(),
        None,
    )
    .await
    .expect("tombstone");

    for round in ["a", "b"] {
        // Another session holds every insert back; the first commit takes the only slot
        // and waits on it, the others queue behind it.
        let mut holder = hold_inserts(&schema).await;
        let lead = tokio::spawn({
            let s = s.clone();
            async move {
                s.commit(&format!("lead-{round}"), &[msg("E", "{}")], &meta(), None)
                    .await
            }
        });
        until_a_commit_waits(&schema).await;
        let mut queued = Vec::new();
        for i in 0..8 {
            let s = s.clone();
            let stream = format!("g{round}-{i}");
            queued.push(tokio::spawn(async move {
                s.commit(
                    &stream,
                    &[msg("E", "{\"n\":1}"), msg("F", "{}")],
                    &meta(),
                    None,
                )
                .await
            }));
        }
        // A commit with a reaction mark on its second event.
        let marked = tokio::spawn({
            let s = s.clone();
            let mark = Subscription::new(format!("mark-{round}"));
            async move {
                s.commit_marked(
                    &format!("m{round}"),
                    &[msg("E", "{}"), msg("F", "{}")],
                    &meta(),
                    None,
                    &[(1, mark)],
                )
                .await
            }
        });
        let conflict = tokio::spawn({
            let s = s.clone();
            async move {
                s.commit("behind", &[msg("E", "{}")], &meta(), Some(0))
                    .await
            }
        });
        let closed = tokio::spawn({
            let s = s.clone();
            async move { s.commit("closed", &[msg("E", "{}")], &meta(), None).await }
        });
        // In round b, one payload the server refuses (a number beyond `numeric`).
        let refused = (round == "b").then(|| {
            let s = s.clone();
            tokio::spawn(async move {
                s.commit("refused", &[msg("E", "{\"n\":1e1000000}")], &meta(), None)
                    .await
            })
        });
        // Queued commits wait for the slot without touching the server.
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query("ROLLBACK")
            .execute(&mut holder)
            .await
            .expect("release");

        lead.await.expect("task").expect("the lead commit");
        for q in queued {
            let stored = q.await.expect("task").expect("a queued commit");
            assert_eq!(
                stored.iter().map(|e| e.version).collect::<Vec<_>>(),
                vec![0, 1]
            );
        }
        let marked = marked.await.expect("task").expect("the marked commit");
        let rows = s
            .query_streams(&StreamFilter::default())
            .await
            .expect("rows");
        let row = rows
            .iter()
            .find(|r| r.stream == format!("mark-{round}"))
            .expect("the mark's target row");
        assert_eq!(
            row.correlated_at,
            Some(marked[1].id),
            "the mark rode in the group"
        );
        match conflict.await.expect("task") {
            Err(StoreError::Concurrency(c)) => {
                assert_eq!((c.stream.as_str(), c.expected, c.actual), ("behind", 0, 1));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(
            matches!(closed.await.expect("task"), Err(StoreError::Closed(_))),
            "a commit onto a tombstone is refused in a group too"
        );
        match refused {
            // The refused group ran again commit by commit: one transaction each.
            Some(r) => {
                assert!(r.await.expect("task").is_err(), "the refused value fails");
                assert_eq!(writers(&schema, &format!("g{round}-%")).await, 8);
                let n = ids(&s, &Query::stream("refused")).await.len();
                assert_eq!(n, 0, "nothing of the refused commit is stored");
            }
            // One group: the eight commits share one transaction.
            None => assert_eq!(writers(&schema, &format!("g{round}-%")).await, 1),
        }
    }
    assert_eq!(ids(&s, &Query::stream("behind")).await.len(), 2);
    s.dispose().await.expect("dispose");
    schemas.drop_all().await;
}

/// A caller that stops waiting (a timeout drops its future) strands nothing: neither the
/// one holding the commit slot nor one queued behind it. The commits queued behind them
/// are sent and answered; the queued one whose caller left is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_commit_strands_none_of_the_queue() {
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let s = one_slot_store(&schema).await;
    let mut holder = hold_inserts(&schema).await;
    let spawn = |stream: &'static str| {
        let s = s.clone();
        tokio::spawn(async move { s.commit(stream, &[msg("E", "{}")], &meta(), None).await })
    };
    let lead = spawn("lead");
    until_a_commit_waits(&schema).await;
    let dropped = spawn("dropped");
    let kept: Vec<_> = ["kept-1", "kept-2", "kept-3"]
        .into_iter()
        .map(spawn)
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One queued commit stops waiting, then the slot's holder does (which hands the queue
    // to a drain at once).
    dropped.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    lead.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    for k in kept {
        let done = tokio::time::timeout(Duration::from_secs(20), k)
            .await
            .expect("a queued commit is answered")
            .expect("task");
        assert_eq!(done.expect("stored").len(), 1);
    }
    // The queued commit whose caller stopped waiting was never sent.
    assert!(ids(&s, &Query::stream("dropped")).await.is_empty());
    // The slot is free again: a new commit goes through.
    tokio::time::timeout(
        Duration::from_secs(20),
        s.commit("after", &[msg("E", "{}")], &meta(), None),
    )
    .await
    .expect("the slot is free")
    .expect("stored");
    s.dispose().await.expect("dispose");
    schemas.drop_all().await;
}

/// A session holding the commit lock of each of `streams` in `schema` until it rolls back.
async fn hold_streams(schema: &str, streams: &[&str]) -> PgConnection {
    let mut holder = raw().await;
    let ns: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT value FROM \"{schema}\".\"events_meta\" WHERE key = 'registry_ns'"
    )))
    .fetch_one(&mut holder)
    .await
    .expect("the tenant's lock namespace");
    let ns: i64 = ns.parse().expect("a number");
    sqlx::query("BEGIN")
        .execute(&mut holder)
        .await
        .expect("begin");
    for stream in streams {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, $2))")
            .bind(stream)
            .bind(ns)
            .execute(&mut holder)
            .await
            .expect("the stream's lock");
    }
    holder
}

/// The backend of a session.
async fn pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("pid")
}

/// Waits until at least `n` sessions wait on the session `holder`, or on a session that
/// waits on it (other tests' sessions are not counted).
async fn until_blocked_by(holder: i32, n: i64) {
    let mut conn = raw().await;
    let sql = "WITH first AS (SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))) \
               SELECT count(*) FROM pg_stat_activity \
               WHERE pg_blocking_pids(pid) && (ARRAY[$1] || ARRAY(SELECT pid FROM first))";
    for _ in 0..1000 {
        let waiting: i64 = sqlx::query_scalar(sql)
            .bind(holder)
            .fetch_one(&mut conn)
            .await
            .expect("pg_stat_activity");
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} sessions waited behind session {holder}");
}

/// Two stores on one tenant (two processes, as far as the server can tell) send groups over
/// the same streams, queued in opposite orders, and both groups are held at a stream in the
/// middle. Groups lock their streams in one order, so neither waits for the other in a
/// cycle: when the middle stream is released, both groups finish, each in its own single
/// transaction. (Locking in arrival order deadlocks here: the server aborts one group, which
/// then runs commit by commit, so more transactions write the streams.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_of_two_processes_never_deadlock() {
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let a = one_slot_store(&schema).await;
    let b = one_slot_store(&schema).await;
    let streams: Vec<String> = (0..10).map(|i| format!("x-{i}")).collect();

    // The leads hold each store's only commit slot, waiting on "lead"; the middle stream
    // is held too, so the groups stop there.
    let mut leads_held = hold_streams(&schema, &["lead"]).await;
    let mut middle_held = hold_streams(&schema, &["x-5"]).await;
    let (leads_pid, middle_pid) = (pid(&mut leads_held).await, pid(&mut middle_held).await);
    let lead = |s: &Arc<PostgresStore>| {
        let s = Arc::clone(s);
        tokio::spawn(async move { s.commit("lead", &[msg("E", "{}")], &meta(), None).await })
    };
    let leads = [lead(&a), lead(&b)];
    until_blocked_by(leads_pid, 2).await;
    let mut queued = Vec::new();
    for (s, order) in [(&a, false), (&b, true)] {
        let mut mine = streams.clone();
        if order {
            mine.reverse();
        }
        for stream in mine {
            let s = Arc::clone(s);
            queued.push(tokio::spawn(async move {
                s.commit(&stream, &[msg("E", "{}")], &meta(), None).await
            }));
        }
    }
    // Queued commits wait for their store's slot without touching the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("ROLLBACK")
        .execute(&mut leads_held)
        .await
        .expect("release the leads");
    for l in leads {
        l.await.expect("task").expect("a lead commit");
    }
    // Both groups are in flight and stopped: one at the middle stream, the other at the
    // first stream the one ahead of it holds.
    until_blocked_by(middle_pid, 2).await;
    sqlx::query("ROLLBACK")
        .execute(&mut middle_held)
        .await
        .expect("release the middle stream");
    for q in queued {
        q.await.expect("task").expect("a grouped commit");
    }
    for stream in &streams {
        let versions: Vec<i64> = {
            let mut v = Vec::new();
            a.query(&Query::stream(stream), &mut |e| v.push(e.version))
                .await
                .expect("query");
            v
        };
        assert_eq!(versions, vec![0, 1], "{stream}: one event from each store");
    }
    assert_eq!(
        writers(&schema, "x-%").await,
        2,
        "each store's group is one transaction: no group was aborted and rerun"
    );
    a.dispose().await.expect("dispose");
    b.dispose().await.expect("dispose");
    schemas.drop_all().await;
}
