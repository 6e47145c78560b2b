//! The benchmark: the workloads of the original's `bench.mjs`, on our stores, one JSON line
//! per run with the same field names, so both can be compared in one sitting.
//!
//! `cargo run --release --example bench -- <store> <workload>`
//!
//! * store: `memory`, `pg` (env `ACT_PG_URL`, `PG_SCHEMA`, `PG_POOL`, `PG_COMMIT_SLOTS`), or `sqlite` (a file:
//!   env `SQLITE_FILE`, default `act-bench.db` in the
//!   temp directory; the file and its `-wal`/`-shm` are deleted first, like the original's
//!   `bench.mjs`)
//! * workload: `commit` (N sequential actions over S streams), `concurrent` (the same with
//!   C in flight), `load` (cold then warm load of one N-event stream), `reactions` (N
//!   events, each routed by a dynamic resolver to `audit-<stream>` where the reaction runs
//!   an action; correlate + drain until all are handled), `drain-targets` (one event on
//!   each of N fresh streams, each a `_this_` reaction target marked at commit; then one
//!   `settle_now` drains them all: the drain's cost per pending target), `fill` (N
//!   actions, then the process's resident memory), `long-stream` (warm load and execute,
//!   1,000 of each, on a 1,000-event stream and on a `LONG`-event one, default 200,000),
//!   `query` (N events over S streams, then: the whole log, one event name, one stream,
//!   one correlation id, and the latest 100 events backwards, each streamed to a counting
//!   sink), `projection` (N events over S streams drained into a batch-mode projection
//!   until it has caught up, then a rebuild of it from scratch)
//!
//! Env: `N` (default 20000), `S` (100), `C` (32), `RUNTIME` (`current`: one thread, like
//! the original's event loop — the default; `multi`: tokio's multi-threaded scheduler).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use act::model::EventId;
use act::prelude::*;
use act::projections::{Batch, Model, Projection, RebuildOptions};
use serde_json::{Value, json};

#[state(name = "Counter", actions(Increment))]
#[derive(Debug, Clone, Default)]
pub struct Counter {
    pub count: i64,
}

#[emits(Counter)]
#[derive(Debug, Clone)]
pub enum CounterEvent {
    Incremented { amount: i64 },
}

impl Patch<CounterEvent> for Counter {
    fn patch(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Incremented { amount } => self.count += amount,
        }
    }
}

#[state(name = "Audit", actions(Log))]
#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub entries: u64,
}

#[emits(Audit)]
#[derive(Debug, Clone)]
pub enum AuditEvent {
    Logged { message: String },
}

impl Patch<AuditEvent> for Audit {
    fn patch(&mut self, event: &AuditEvent) {
        match event {
            AuditEvent::Logged { .. } => self.entries += 1,
        }
    }
}

#[action(Audit, emit = AuditEvent::Logged)]
pub struct Log {
    pub message: String,
}

fn audit_target(e: &Committed<CounterEvent>) -> Resolved {
    Resolved::to(format!("audit-{}", e.stream)).from_stream(&e.stream)
}

/// The original's reaction: every increment is logged on `audit-<stream>`.
#[reaction(on = CounterEvent::Incremented, to = audit_target)]
async fn audit(e: &Committed<CounterEvent>, app: &Scope) -> Result<(), ReactionError> {
    let CounterEvent::Incremented { amount } = e.data;
    let target = Target::new(format!("audit-{}", e.stream), Actor::new("1", "bench"));
    app.execute(
        Log {
            message: format!("inc {amount}"),
        },
        target,
    )
    .await?;
    Ok(())
}

#[state(name = "Ticket", actions(Open))]
#[derive(Debug, Clone, Default)]
pub struct Ticket {
    pub open: bool,
}

#[emits(Ticket)]
#[derive(Debug, Clone)]
pub enum TicketEvent {
    Opened { by: String },
}

impl Patch<TicketEvent> for Ticket {
    fn patch(&mut self, event: &TicketEvent) {
        match event {
            TicketEvent::Opened { .. } => self.open = true,
        }
    }
}

#[action(Ticket, emit = TicketEvent::Opened)]
pub struct Open {
    pub by: String,
}

static TOUCHED: AtomicUsize = AtomicUsize::new(0);

/// The `drain-targets` reaction: each ticket is its own target (`_this_`, marked at commit),
/// and the handler does next to nothing, so the drain's own cost is what is measured.
#[reaction(on = TicketEvent::Opened, to = _this_)]
async fn touch(_: &Committed<TicketEvent>, _: &Scope) -> Result<(), ReactionError> {
    TOUCHED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The `projection` workload's read model: the total per stream, with its checkpoint,
/// applied in batches.
#[derive(Clone, Default)]
struct Totals(Arc<std::sync::Mutex<TotalsModel>>);

#[derive(Default)]
struct TotalsModel {
    live: (Option<EventId>, std::collections::HashMap<String, i64>),
    next: (Option<EventId>, std::collections::HashMap<String, i64>),
}

impl Projection for Totals {
    type Event = CounterEvent;
    const NAME: &'static str = "totals";
    const BATCH: bool = true;

    async fn apply(&self, batch: Batch<'_, CounterEvent>) -> Result<(), ReactionError> {
        let mut model = self.0.lock().expect("totals");
        let copy = match batch.model {
            Model::Live => &mut model.live,
            Model::Next => &mut model.next,
        };
        for e in batch.since(copy.0)? {
            let CounterEvent::Incremented { amount } = e.data;
            *copy.1.entry(e.stream.clone()).or_default() += amount;
        }
        copy.0 = batch.last_id().max(copy.0);
        Ok(())
    }

    async fn clear_next(&self) -> Result<(), ReactionError> {
        self.0.lock().expect("totals").next = Default::default();
        Ok(())
    }

    async fn promote_next(&self) -> Result<(), ReactionError> {
        let mut model = self.0.lock().expect("totals");
        model.live = std::mem::take(&mut model.next);
        Ok(())
    }
}

impl Totals {
    fn sum(&self) -> i64 {
        self.0.lock().expect("totals").live.1.values().sum()
    }
}

#[action(Counter)]
pub struct Increment {
    pub by: i64,
}

impl Handle for Increment {
    fn handle(&self, _: &Counter, _: &Target) -> Emit<CounterEvent> {
        Ok(vec![CounterEvent::Incremented { amount: self.by }])
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}

static RUNTIME_FLAVOR: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

fn report(store: &str, workload: &str, extra: Value) {
    let runtime = RUNTIME_FLAVOR.get().copied().unwrap_or("current");
    let mut line = json!({
        "impl": "act-rs", "store": store, "workload": workload,
        "runtime": runtime, "allocator": "mimalloc",
    });
    if let (Some(obj), Value::Object(more)) = (line.as_object_mut(), extra) {
        obj.extend(more);
        obj.insert("rss_mb".into(), json!(rss_mb()));
    }
    println!("{line}");
}

async fn build(
    store: &str,
    workload: &str,
    totals: &Totals,
) -> Result<Act, Box<dyn std::error::Error>> {
    let mut builder = act().with_state::<Counter>().with_state::<Audit>();
    match workload {
        // Only `drain-targets` registers its reaction, and only `projection` its projection
        // (without the audit reaction, so the drain feeds the projection alone).
        "drain-targets" => {
            builder = builder
                .with_reaction(audit)
                .with_state::<Ticket>()
                .with_reaction(touch);
        }
        "projection" => builder = builder.with_projection(totals.clone()),
        _ => builder = builder.with_reaction(audit),
    }
    match store {
        "memory" => Ok(builder.build()?),
        "sqlite" => {
            let file = std::env::var_os("SQLITE_FILE")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("act-bench.db"));
            // A fresh file each run, like bench.mjs.
            for suffix in ["", "-wal", "-shm"] {
                let mut path = file.clone().into_os_string();
                path.push(suffix);
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            let sqlite = act::adapters::SqliteStore::open(&file).await?;
            Ok(builder.with_store(sqlite).build()?)
        }
        "pg" => {
            // A fresh tenant each run: env `ACT_PG_URL` (default the local `test` database),
            // `PG_SCHEMA` (default `act_bench`), `PG_POOL` (default 16), `PG_COMMIT_SLOTS` (default 4).
            let url = std::env::var("ACT_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            let schema = std::env::var("PG_SCHEMA").unwrap_or_else(|_| "act_bench".to_owned());
            let pool = std::env::var("PG_POOL")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(16);
            let slots = std::env::var("PG_COMMIT_SLOTS")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(4);
            let pg = act::adapters::postgres::PostgresConfig::from_url(&url)?
                .schema(&schema)
                .pool_size(pool)
                .commit_slots(slots)
                .connect()
                .await?;
            pg.seed().await?;
            pg.drop_all().await?;
            Ok(builder.with_store(pg).build()?)
        }
        other => Err(format!("unknown store `{other}` (expected: memory, sqlite, pg)").into()),
    }
}

/// `n` increments spread over `s` counters, one after the other.
async fn increments(app: &Act, n: usize, s: usize, actor: &Actor) -> Result<(), ActError> {
    for i in 0..n {
        let target = Target::new(format!("c-{}", i % s), actor.clone());
        app.execute(Increment { by: 1 }, target).await?;
    }
    Ok(())
}

/// A settle that runs until nothing is left, with no debounce and a long lease.
fn settle_all(stream_limit: usize, event_limit: usize) -> SettleOptions {
    SettleOptions {
        debounce: std::time::Duration::ZERO,
        correlate_limit: 1000,
        max_passes: usize::MAX,
        drain: DrainOptions {
            stream_limit,
            event_limit,
            lease: std::time::Duration::from_secs(60),
        },
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One thread by default, like the original's event loop; RUNTIME=multi for tokio's
    // multi-threaded scheduler.
    let multi = std::env::var("RUNTIME").is_ok_and(|r| r == "multi");
    let runtime = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(run(if multi { "multi" } else { "current" }))
}

async fn run(flavor: &'static str) -> Result<(), Box<dyn std::error::Error>> {
    RUNTIME_FLAVOR.set(flavor).ok();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let store = args.first().map(String::as_str).unwrap_or("memory");
    let workload = args.get(1).map(String::as_str).unwrap_or("commit");
    let n = env("N", 20_000);
    let s = env("S", 100);
    let c = env("C", 32);
    let actor = Actor::new("1", "bench");
    let totals = Totals::default();
    let app = build(store, workload, &totals).await?;

    match workload {
        "commit" | "fill" => {
            let t0 = Instant::now();
            increments(&app, n, s, &actor).await?;
            let secs = t0.elapsed().as_secs_f64();
            report(
                store,
                workload,
                json!({ "n": n, "streams": s, "seconds": round3(secs), "ops_per_s": (n as f64 / secs).round() }),
            );
        }
        "concurrent" => {
            let next = Arc::new(AtomicUsize::new(0));
            let t0 = Instant::now();
            let workers: Vec<_> = (0..c)
                .map(|_| {
                    let (app, next, actor) = (app.clone(), next.clone(), actor.clone());
                    tokio::spawn(async move {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= n {
                                return Ok::<_, ActError>(());
                            }
                            let target = Target::new(format!("c-{}", i % s), actor.clone());
                            app.execute(Increment { by: 1 }, target).await?;
                        }
                    })
                })
                .collect();
            for w in workers {
                w.await??;
            }
            let secs = t0.elapsed().as_secs_f64();
            report(
                store,
                workload,
                json!({ "n": n, "streams": s, "concurrency": c, "seconds": round3(secs), "ops_per_s": (n as f64 / secs).round() }),
            );
        }
        "load" => {
            for _ in 0..n {
                app.execute(Increment { by: 1 }, Target::new("big", actor.clone()))
                    .await?;
            }
            // `REPEAT` cold loads (default 1), each after clearing the cache: the median.
            let mut colds = Vec::new();
            let mut cold = None;
            for _ in 0..env("REPEAT", 1).max(1) {
                app.cache().clear().await?;
                let t0 = Instant::now();
                cold = Some(app.load::<Counter>("big").await?);
                colds.push(t0.elapsed().as_secs_f64());
            }
            colds.sort_by(f64::total_cmp);
            let cold_s = colds[colds.len() / 2];
            let cold = cold.ok_or("no cold load")?;
            let t1 = Instant::now();
            let warm = app.load::<Counter>("big").await?;
            let warm_s = t1.elapsed().as_secs_f64();
            if cold.state.count != n as i64 || warm.state.count != n as i64 {
                return Err(format!("wrong state {}", cold.state.count).into());
            }
            report(
                store,
                workload,
                json!({
                    "n": n,
                    "cold_ms": (cold_s * 1e5).round() / 100.0,
                    "warm_ms": (warm_s * 1e6).round() / 1000.0,
                    "cold_events_per_s": (n as f64 / cold_s).round(),
                }),
            );
        }
        "long-stream" => {
            // Warm load and execute on a short stream and on a long one: with the cache
            // (and the store's seek past the cached event) both cost what the events since
            // the cached state cost, whatever the stream's length.
            let long = env("LONG", 200_000);
            let meta = EventMeta {
                correlation: "bench".into(),
                causation: Default::default(),
                actor: actor.clone(),
            };
            let data = serde_json::value::to_raw_value(&json!({ "amount": 1 }))?;
            // Both streams are written first, so both are measured on the same log (the
            // log's size costs the same to each; only the stream's length differs).
            let streams = [("short", 1_000), ("long", long)];
            for (label, len) in streams {
                let stream = format!("{label}-stream");
                let mut left = len;
                while left > 0 {
                    let batch = left.min(1_000);
                    let msgs = vec![act::model::Message::new("Incremented", data.clone()); batch];
                    app.store().commit(&stream, &msgs, &meta, None).await?;
                    left -= batch;
                }
            }
            let mut figures = serde_json::Map::new();
            for (label, len) in streams {
                let stream = format!("{label}-stream");
                app.cache().clear().await?;
                let loaded = app.load::<Counter>(&stream).await?;
                if loaded.state.count != len as i64 {
                    return Err(format!("wrong state {}", loaded.state.count).into());
                }
                const REPEAT: u32 = 1_000;
                let t0 = Instant::now();
                for _ in 0..REPEAT {
                    let _ = app.load::<Counter>(&stream).await?;
                }
                let warm = t0.elapsed().as_secs_f64() / f64::from(REPEAT);
                let t1 = Instant::now();
                for _ in 0..REPEAT {
                    app.execute(Increment { by: 1 }, Target::new(&stream, actor.clone()))
                        .await?;
                }
                let execute = t1.elapsed().as_secs_f64() / f64::from(REPEAT);
                figures.insert(format!("{label}_events"), json!(len));
                figures.insert(
                    format!("{label}_warm_ms"),
                    json!((warm * 1e6).round() / 1e3),
                );
                figures.insert(
                    format!("{label}_execute_ms"),
                    json!((execute * 1e6).round() / 1e3),
                );
            }
            report(store, workload, serde_json::Value::Object(figures));
        }
        "reactions" => {
            increments(&app, n, s, &actor).await?;
            let stream_limit = env("STREAM_LIMIT", 100);
            let options = DrainOptions {
                stream_limit,
                event_limit: 1000,
                lease: std::time::Duration::from_secs(60),
            };
            let t0 = Instant::now();
            let mut stalls = 0;
            let mut last = -2;
            while stalls < 5 {
                let c = app.correlate(1000).await?;
                let d = app.drain(options).await?;
                let progress = c.subscribed > 0 || d.handled > 0 || c.last_id != last;
                last = c.last_id;
                stalls = if progress { 0 } else { stalls + 1 };
            }
            let secs = t0.elapsed().as_secs_f64();
            let logged = app.query(&Query::all().names(["Logged"])).await?.len();
            if logged != n {
                return Err(format!("reactions handled {logged} of {n}").into());
            }
            report(
                store,
                workload,
                json!({ "n": n, "streams": s, "seconds": round3(secs), "reactions_per_s": (n as f64 / secs).round() }),
            );
        }
        "drain-targets" => {
            for i in 0..n {
                let target = Target::new(format!("t-{i}"), actor.clone());
                app.execute(Open { by: "bench".into() }, target).await?;
            }
            let stream_limit = env("STREAM_LIMIT", 100);
            let options = settle_all(stream_limit, 1000);
            let t0 = Instant::now();
            let summary = app.settle_now(options).await?;
            let secs = t0.elapsed().as_secs_f64();
            let touched = TOUCHED.load(Ordering::Relaxed);
            if touched != n || summary.handled != n {
                return Err(format!(
                    "drain-targets handled {} (touched {touched}) of {n}",
                    summary.handled
                )
                .into());
            }
            report(
                store,
                workload,
                json!({
                    "n": n,
                    "stream_limit": stream_limit,
                    "leases": summary.leased.len(),
                    "seconds": round3(secs),
                    "us_per_target": (secs * 1e6 / n as f64 * 10.0).round() / 10.0,
                    "targets_per_s": (n as f64 / secs).round(),
                }),
            );
        }
        "query" => {
            increments(&app, n, s, &actor).await?;
            let correlation = app
                .query(&Query::stream("c-0").limit(1))
                .await?
                .first()
                .map(|e| e.meta.correlation.clone())
                .ok_or("no event on c-0")?;
            let queries = [
                ("all", Query::all(), n),
                ("name", Query::all().names(["Incremented"]), n),
                ("stream", Query::stream("c-1"), n / s),
                ("correlation", Query::all().correlation(&correlation), 1),
                ("latest_100", Query::all().backward().limit(100), 100.min(n)),
            ];
            let mut figures = serde_json::Map::new();
            for (label, query, want) in queries {
                let t0 = Instant::now();
                let mut seen = 0usize;
                let got = app.query_with(&query, |_| seen += 1).await?;
                let secs = t0.elapsed().as_secs_f64();
                if got != want || seen != want {
                    return Err(format!("query {label}: {got} events, expected {want}").into());
                }
                figures.insert(format!("{label}_us"), json!((secs * 1e7).round() / 10.0));
                figures.insert(format!("{label}_events"), json!(got));
            }
            figures.insert("n".into(), json!(n));
            figures.insert("streams".into(), json!(s));
            report(store, workload, Value::Object(figures));
        }
        "projection" => {
            increments(&app, n, s, &actor).await?;
            let options = settle_all(100, env("EVENT_LIMIT", 1000));
            let t0 = Instant::now();
            while totals.sum() < n as i64 {
                let summary = app.settle_now(options).await?;
                if summary.handled == 0 && totals.sum() < n as i64 {
                    return Err(format!("projection stalled at {} of {n}", totals.sum()).into());
                }
            }
            let drain_s = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let rebuilt = app.rebuild(Totals::NAME, RebuildOptions::default()).await?;
            let rebuild_s = t1.elapsed().as_secs_f64();
            if totals.sum() != n as i64 || rebuilt.filled + rebuilt.caught_up != n as u64 {
                return Err(format!(
                    "rebuild: total {} (filled {}, caught up {}) of {n}",
                    totals.sum(),
                    rebuilt.filled,
                    rebuilt.caught_up
                )
                .into());
            }
            report(
                store,
                workload,
                json!({
                    "n": n,
                    "streams": s,
                    "drain_seconds": round3(drain_s),
                    "drain_events_per_s": (n as f64 / drain_s).round(),
                    "rebuild_seconds": round3(rebuild_s),
                    "rebuild_events_per_s": (n as f64 / rebuild_s).round(),
                }),
            );
        }
        other => return Err(format!("unknown workload `{other}`").into()),
    }
    app.shutdown().await?;
    Ok(())
}
