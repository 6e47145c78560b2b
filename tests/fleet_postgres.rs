//! A fleet of workers on PostgreSQL: four worker processes share one tenant, one of them is
//! killed with `SIGKILL` midway, and the other three finish the work.
//!
//! The test re-runs its own binary as each worker (selected by [`CHILD_ENV`]); the parent
//! commits [`EVENTS`] reactive events over [`STREAMS`] streams while the workers drain
//! them. The reaction (`to = _this_`) records every (target, event id) it handles in a
//! table of the tenant's schema whose primary key is (target, event id), through a pool of
//! its own, and marks the target as "being handled" while it runs. What is checked:
//!
//! * **Everything is handled**: every committed event has its row, and every subscription
//!   row ends acked at its stream's last event, unblocked and unleased.
//! * **Exactly once, except the killed worker's in-flight leases** (the documented
//!   guarantee: at least once across crashes). A second handling of an event is recorded
//!   in `fleet_redelivered` (the primary key refuses it in `fleet_handled`); each one must
//!   be an event the killed worker had handled under a lease it still held when it died,
//!   above that lease's watermark (its ack never landed). Anything else fails the test.
//! * **Per-target order**: in each target, events are handled in increasing id order.
//! * **No two workers handle one target at once**: a handler that finds another worker's
//!   "being handled" mark records an overlap; only marks left behind by the killed worker
//!   are tolerated.

#![cfg(unix)]

mod pg_support;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use act_runtime::adapters::postgres::PostgresConfig;
use act_runtime::app::Lifecycle;
use act_runtime::prelude::*;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool, Row};

/// Set in a worker process: its name (`w0` ..).
const CHILD_ENV: &str = "ACT_FLEET_CHILD";
/// Set in a worker process: the tenant's schema.
const SCHEMA_ENV: &str = "ACT_FLEET_SCHEMA";
const WORKERS: usize = 4;
/// The worker killed midway.
const VICTIM: usize = 1;
const STREAMS: usize = 200;
const EVENTS: usize = 20_000;
/// Events per commit.
const BATCH: usize = 10;
/// Starts the lines a worker prints for the parent.
const MARK: &str = "@fleet ";
/// The workers' lease: how long the killed worker's streams stay held before another worker
/// may take them.
const LEASE: Duration = Duration::from_secs(5);
/// The whole run, from the first commit to the last ack.
const DEADLINE: Duration = Duration::from_secs(50);

// ---- the domain: a ticker whose ticks react on their own stream ------------------------

#[state(name = "Ticker", actions(Tick))]
#[derive(Debug, Clone, Default)]
pub struct Ticker {
    pub ticks: i64,
}

#[emits(Ticker)]
#[derive(Debug, Clone)]
pub enum TickerEvent {
    Ticked { k: i64 },
}

impl Patch<TickerEvent> for Ticker {
    fn patch(&mut self, event: &TickerEvent) {
        match event {
            TickerEvent::Ticked { k } => self.ticks = k + 1,
        }
    }
}

/// Commits `n` ticks in one batch.
#[action(Ticker)]
pub struct Tick {
    pub n: i64,
}

impl Handle for Tick {
    fn handle(&self, t: &Ticker, _: &Target) -> Emit<TickerEvent> {
        Ok((0..self.n)
            .map(|i| TickerEvent::Ticked { k: t.ticks + i })
            .collect())
    }
}

/// What a worker's handler needs: its name and a pool of its own on the tenant's schema.
struct Recorder {
    worker: String,
    pool: PgPool,
    enter: String,
    record: String,
    redelivered: String,
    overlap: String,
}

static RECORDER: OnceLock<Recorder> = OnceLock::new();

/// Records the handling of each tick for the target it was routed to (its own stream).
#[reaction(on = TickerEvent::Ticked, to = _this_)]
async fn record(e: &Committed<TickerEvent>, scope: &Scope) -> Result<(), ReactionError> {
    let Some(r) = RECORDER.get() else {
        return Err(ReactionError::fatal("not a fleet worker"));
    };
    let target = scope.stream();
    let db = |e: sqlx::Error| ReactionError::retry(e.to_string());
    // Mark the target as being handled by this worker; someone else's mark is an overlap.
    let entered = sqlx::query(AssertSqlSafe(r.enter.as_str()))
        .bind(target)
        .bind(&r.worker)
        .bind(e.id)
        .fetch_optional(&r.pool)
        .await
        .map_err(db)?;
    if entered.is_none() {
        sqlx::query(AssertSqlSafe(r.overlap.as_str()))
            .bind(target)
            .bind(&r.worker)
            .bind(e.id)
            .execute(&r.pool)
            .await
            .map_err(db)?;
    }
    // Record the handling and clear the mark, in one statement.
    let inserted = sqlx::query(AssertSqlSafe(r.record.as_str()))
        .bind(target)
        .bind(e.id)
        .bind(&r.worker)
        .execute(&r.pool)
        .await
        .map_err(db)?
        .rows_affected();
    if inserted == 0 {
        sqlx::query(AssertSqlSafe(r.redelivered.as_str()))
            .bind(target)
            .bind(e.id)
            .bind(&r.worker)
            .execute(&r.pool)
            .await
            .map_err(db)?;
    }
    Ok(())
}

fn recorder(schema: &str, worker: String, pool: PgPool) -> Recorder {
    let t = |name: &str| format!("\"{schema}\".{name}");
    Recorder {
        worker,
        pool,
        // Takes the mark when it is free or already ours; returns nothing when another
        // worker holds it (then the overlap is recorded and the mark taken over).
        enter: format!(
            "INSERT INTO {a} AS a (target, worker, event_id) VALUES ($1, $2, $3) \
             ON CONFLICT (target) DO UPDATE SET event_id = EXCLUDED.event_id \
             WHERE a.worker = EXCLUDED.worker RETURNING 1",
            a = t("fleet_active")
        ),
        overlap: format!(
            "WITH old AS (SELECT worker FROM {a} WHERE target = $1), \
             upd AS (UPDATE {a} SET worker = $2, event_id = $3 WHERE target = $1) \
             INSERT INTO {o} (target, worker, other, event_id) \
             SELECT $1, $2, coalesce((SELECT worker FROM old), '?'), $3",
            a = t("fleet_active"),
            o = t("fleet_overlap")
        ),
        record: format!(
            "WITH gone AS (DELETE FROM {a} WHERE target = $1 AND worker = $3) \
             INSERT INTO {h} (target, event_id, worker) VALUES ($1, $2, $3) \
             ON CONFLICT (target, event_id) DO NOTHING",
            a = t("fleet_active"),
            h = t("fleet_handled")
        ),
        redelivered: format!(
            "INSERT INTO {r} (target, event_id, worker) VALUES ($1, $2, $3)",
            r = t("fleet_redelivered")
        ),
    }
}

/// The tables the handlers write, in the tenant's schema.
fn ddl(schema: &str) -> String {
    let t = |name: &str| format!("\"{schema}\".{name}");
    format!(
        "CREATE SEQUENCE {seq};
         CREATE TABLE {h} (target text NOT NULL, event_id bigint NOT NULL, worker text NOT NULL,
           seq bigint NOT NULL DEFAULT nextval('{seq}'), PRIMARY KEY (target, event_id));
         CREATE TABLE {r} (target text NOT NULL, event_id bigint NOT NULL, worker text NOT NULL,
           seq bigint NOT NULL DEFAULT nextval('{seq}'));
         CREATE TABLE {a} (target text PRIMARY KEY, worker text NOT NULL, event_id bigint NOT NULL);
         CREATE TABLE {o} (target text NOT NULL, worker text NOT NULL, other text NOT NULL,
           event_id bigint NOT NULL);",
        seq = t("fleet_seq"),
        h = t("fleet_handled"),
        r = t("fleet_redelivered"),
        a = t("fleet_active"),
        o = t("fleet_overlap"),
    )
}

// ---- a worker process ------------------------------------------------------------------

/// A worker: runs the app's worker until its stdin closes (or 120 s), printing `READY`, its
/// lease holder id (`HOLDER <id>`, at its first ack), and any retry or block.
async fn worker(name: String, schema: String) {
    let store = PostgresConfig::from_url(&pg_support::url())
        .expect("ACT_PG_URL")
        .schema(&schema)
        .pool_size(4)
        .connect()
        .await
        .expect("connect");
    store.seed().await.expect("seed");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&pg_support::url())
        .await
        .expect("the handler's pool");
    assert!(
        RECORDER.set(recorder(&schema, name.clone(), pool)).is_ok(),
        "one recorder"
    );
    let app = act()
        .with_store(store)
        .with_state::<Ticker>()
        .with_reaction(record)
        .build()
        .expect("build");
    let told = AtomicBool::new(false);
    app.on(move |l| match l {
        Lifecycle::Acked(leases) => {
            if let Some(l) = leases.first()
                && !told.swap(true, Ordering::Relaxed)
            {
                println!("{MARK}HOLDER {}", l.by);
            }
        }
        Lifecycle::Retrying(r) => {
            for r in r.iter() {
                println!("{MARK}RETRY {} {}", r.lease.stream, r.error);
            }
        }
        Lifecycle::Blocked(b) => {
            for b in b.iter() {
                println!("{MARK}BLOCKED {} {}", b.lease.stream, b.error);
            }
        }
        _ => {}
    });
    let _worker = app
        .start_with(WorkerOptions {
            drain: DrainOptions {
                lease: LEASE,
                ..Default::default()
            },
            poll: Duration::from_millis(200),
            ..Default::default()
        })
        .expect("start");
    println!("{MARK}READY {name}");
    // until the parent closes our stdin (or dies)
    let eof = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    });
    let _ = tokio::time::timeout(Duration::from_secs(120), eof).await;
    app.shutdown().await.expect("shutdown");
    println!("{MARK}DONE {name}");
}

// ---- the parent --------------------------------------------------------------------------

/// What a worker printed.
#[derive(Default)]
struct Log {
    ready: bool,
    holder: Option<String>,
    faults: Vec<String>,
}

/// The worker processes; dropping it kills and reaps those still running.
struct Fleet {
    children: Vec<Option<Child>>,
    stdins: Vec<Option<ChildStdin>>,
    logs: Vec<Arc<Mutex<Log>>>,
    schema: String,
}

impl Fleet {
    fn spawn(schema: &str) -> Self {
        let mut fleet = Fleet {
            children: Vec::new(),
            stdins: Vec::new(),
            logs: Vec::new(),
            schema: schema.to_owned(),
        };
        for i in 0..WORKERS {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "a_fleet_of_four_survives_a_killed_worker",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, format!("w{i}"))
                .env(SCHEMA_ENV, schema)
                .env("ACT_PG_URL", pg_support::url())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a worker");
            let log = Arc::new(Mutex::new(Log::default()));
            let out = child.stdout.take().unwrap();
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    // libtest may print before a marked line, on the same line
                    let Some((_, line)) = line.split_once(MARK) else {
                        continue;
                    };
                    let mut log = sink.lock().unwrap();
                    if line.starts_with("READY ") {
                        log.ready = true;
                    } else if let Some(h) = line.strip_prefix("HOLDER ") {
                        log.holder = Some(h.to_owned());
                    } else if line.starts_with("RETRY ") || line.starts_with("BLOCKED ") {
                        log.faults.push(format!("w{i}: {line}"));
                    }
                }
            });
            fleet.stdins.push(child.stdin.take());
            fleet.children.push(Some(child));
            fleet.logs.push(log);
        }
        fleet
    }

    fn log(&self, i: usize) -> std::sync::MutexGuard<'_, Log> {
        self.logs[i].lock().unwrap()
    }

    /// `SIGKILL`s worker `i` and reaps it.
    fn kill(&mut self, i: usize) {
        let mut child = self.children[i].take().expect("running");
        child.kill().expect("SIGKILL"); // `Child::kill` sends SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(!status.success(), "the victim was killed, not finished");
    }

    /// Closes the workers' stdin (they shut down), and waits for them to exit.
    fn stop(&mut self, within: Duration) {
        self.stdins.clear();
        let start = Instant::now();
        for (i, slot) in self.children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "worker w{i} exited with {status}");
                    break;
                }
                assert!(
                    start.elapsed() < within,
                    "worker w{i} did not shut down within {within:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            *slot = None;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "fleet test failed: schema {} kept for inspection",
                self.schema
            );
        }
        for mut child in self.children.iter_mut().filter_map(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Commits `EVENTS` ticks over `STREAMS` streams, `BATCH` per commit, streams interleaved,
/// from 8 concurrent tasks.
async fn commit_all(app: Act) {
    let per_stream = EVENTS / STREAMS / BATCH;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..8 {
        let app = app.clone();
        tasks.spawn(async move {
            for _ in 0..per_stream {
                for s in (task..STREAMS).step_by(8) {
                    app.execute(
                        Tick { n: BATCH as i64 },
                        Target::new(format!("tick-{s:03}"), act_tests::actor()),
                    )
                    .await
                    .expect("commit");
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a commit task panicked");
    }
}

async fn parent() {
    let started = Instant::now();
    let schema = pg_support::fresh_schema();
    let store = pg_support::store_on(&schema).await;
    store.seed().await.expect("seed");
    let db = pg_support::admin().await;
    sqlx::raw_sql(AssertSqlSafe(ddl(&schema)))
        .execute(&db)
        .await
        .expect("the fleet's tables");
    let t = |name: &str| format!("\"{schema}\".{name}");
    let (handled, streams, events) = (t("fleet_handled"), t("events_streams"), t("events"));

    let mut fleet = Fleet::spawn(&schema);
    let ready_by = Instant::now() + Duration::from_secs(30);
    while !(0..WORKERS).all(|i| fleet.log(i).ready) {
        assert!(
            Instant::now() < ready_by,
            "the workers did not start within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let booted = started.elapsed();

    // Commit while the workers drain.
    let app = act()
        .with_store(store)
        .with_state::<Ticker>()
        .with_reaction(record)
        .build()
        .expect("build");
    let committing = tokio::spawn(commit_all(app.clone()));
    let deadline = Instant::now() + DEADLINE;

    // Midway (a quarter handled), kill a worker that holds leases.
    let victim = loop {
        let done = count(&db, &format!("SELECT count(*) FROM {handled}")).await;
        let holder = fleet.log(VICTIM).holder.clone();
        if let Some(h) = holder
            && done >= (EVENTS / 4) as i64
        {
            let held = sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
                "SELECT count(*) FROM {streams} WHERE leased_by = $1 AND leased_until > now()"
            )))
            .bind(&h)
            .fetch_one(&db)
            .await
            .unwrap();
            if held > 0 {
                fleet.kill(VICTIM);
                break h;
            }
        }
        assert!(
            Instant::now() < deadline,
            "never saw w{VICTIM} hold a lease with a quarter of the work done ({done} handled)"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let killed_at = started.elapsed();
    // A statement the victim had in flight may still land: let the server finish it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held: HashMap<String, i64> = sqlx::query(AssertSqlSafe(format!(
        "SELECT stream, at FROM {streams} WHERE leased_by = $1"
    )))
    .bind(&victim)
    .fetch_all(&db)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert!(!held.is_empty(), "the victim held no lease when it died");

    tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), committing)
        .await
        .expect("the commits did not finish in time")
        .expect("a commit failed");
    let committed = count(&db, &format!("SELECT count(*) FROM {events}")).await;
    assert_eq!(committed, EVENTS as i64, "every tick committed");

    // The three survivors finish: every tick handled, every row acked at its last event.
    let pending_sql = format!(
        "SELECT count(*) FROM {streams} WHERE blocked OR leased_by IS NOT NULL \
         OR at < correlated_at OR retry <> -1"
    );
    loop {
        let done = count(&db, &format!("SELECT count(*) FROM {handled}")).await;
        let pending = count(&db, &pending_sql).await;
        if done == EVENTS as i64 && pending == 0 {
            break;
        }
        if Instant::now() >= deadline {
            let faults: Vec<String> = (0..WORKERS)
                .flat_map(|i| fleet.log(i).faults.clone())
                .collect();
            panic!(
                "the fleet did not finish within {DEADLINE:?}: {done} of {EVENTS} handled, \
                 {pending} subscription rows not acked; faults: {faults:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let finished = started.elapsed();
    fleet.stop(Duration::from_secs(15));

    // Every committed tick has exactly one first handling, for its own stream.
    let missing = count(
        &db,
        &format!(
            "SELECT count(*) FROM {events} e WHERE NOT EXISTS \
             (SELECT 1 FROM {handled} h WHERE h.target = e.stream AND h.event_id = e.id)"
        ),
    )
    .await;
    assert_eq!(missing, 0, "ticks never handled");
    let stray = count(
        &db,
        &format!(
            "SELECT count(*) FROM {handled} h WHERE NOT EXISTS \
             (SELECT 1 FROM {events} e WHERE h.target = e.stream AND h.event_id = e.id)"
        ),
    )
    .await;
    assert_eq!(stray, 0, "handlings of events that are not the target's");

    // Second handlings: only the victim's in-flight leases, above their watermarks.
    let again = sqlx::query(AssertSqlSafe(format!(
        "SELECT r.target, r.event_id, r.worker, h.worker FROM {} r \
         JOIN {handled} h USING (target, event_id) ORDER BY r.seq",
        t("fleet_redelivered")
    )))
    .fetch_all(&db)
    .await
    .unwrap();
    let victim_name = format!("w{VICTIM}");
    for row in &again {
        let (target, id, by, first): (String, i64, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let in_flight = first == victim_name && held.get(&target).is_some_and(|at| id > *at);
        assert!(
            in_flight,
            "event {id} of {target} handled twice (first by {first}, again by {by}), and not \
             under a lease the killed worker held when it died (held: {held:?})"
        );
    }
    // Per-target order, for first handlings and for second ones.
    for table in [handled.clone(), t("fleet_redelivered")] {
        let out_of_order = count(
            &db,
            &format!(
                "SELECT count(*) FROM (SELECT event_id, lag(event_id) OVER \
                 (PARTITION BY target ORDER BY seq) AS prev FROM {table}) x \
                 WHERE x.prev >= x.event_id"
            ),
        )
        .await;
        assert_eq!(out_of_order, 0, "{table}: a target's events out of order");
    }
    // No two workers in one target's handler at once, but for marks the victim left.
    let overlaps = sqlx::query(AssertSqlSafe(format!(
        "SELECT target, worker, other, event_id FROM {} WHERE other <> $1",
        t("fleet_overlap")
    )))
    .bind(&victim_name)
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(
        overlaps.is_empty(),
        "two live workers handled one target at once: {:?}",
        overlaps
            .iter()
            .map(|r| (
                r.get::<String, _>(0),
                r.get::<String, _>(1),
                r.get::<String, _>(2),
                r.get::<i64, _>(3)
            ))
            .collect::<Vec<_>>()
    );
    let stale = count(&db, &format!("SELECT count(*) FROM {}", t("fleet_overlap"))).await;
    let faults: Vec<String> = (0..WORKERS)
        .flat_map(|i| fleet.log(i).faults.clone())
        .collect();
    assert!(faults.is_empty(), "no handler failed: {faults:#?}");

    let per_worker: BTreeMap<String, i64> = sqlx::query(AssertSqlSafe(format!(
        "SELECT worker, count(*) FROM {handled} GROUP BY worker"
    )))
    .fetch_all(&db)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    println!(
        "fleet: booted in {booted:?}, killed w{VICTIM} at {killed_at:?} holding {} leases, \
         all {EVENTS} handled at {finished:?}; first handlings per worker {per_worker:?}; \
         {} handled again after the kill, {stale} handler mark(s) the victim left taken over",
        held.len(),
        again.len()
    );
    assert!(
        per_worker.len() == WORKERS,
        "every worker handled some work"
    );
    drop(fleet);
    app.shutdown().await.expect("shutdown");
    pg_support::drop_schema(&db, &schema).await;
    db.close().await;
}

#[test]
fn a_fleet_of_four_survives_a_killed_worker() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(name) = std::env::var_os(CHILD_ENV) {
        let schema = std::env::var(SCHEMA_ENV).expect("the schema");
        runtime.block_on(worker(name.to_string_lossy().into_owned(), schema));
        return;
    }
    runtime.block_on(parent());
}
