//! The differential test: one seeded random workload, run on an adapter and on a fresh
//! [`InMemoryStore`] (the oracle) side by side; every result must be identical.
//!
//! The workload mixes commits (random streams and names, snapshots, some wrong expected
//! versions, some with reaction marks), truncates, subscribes, claims, acks (some deferred
//! with `due`, some stale or forged), blocks, resets, unblocks, and queries and listings
//! with random filters. Results are compared as data: events by id, name, stream, version,
//! meta and payload (parsed JSON); `created` only by its order (an adapter may keep less
//! precision, so two events the oracle orders may be equal in the adapter, never reversed);
//! errors by kind and, for conflicts, by stream, expected and actual version; lease expiry
//! times by presence.
//!
//! Generated input stays inside what every adapter must accept: no NUL characters, and
//! stream patterns only from the portable grammar (literals, `.`, `.*`, `^`, `$`). Leases
//! are long (a minute) so nothing expires mid-run; `due` is either in the past or an hour
//! away, so timing never decides a result. `created_after`/`created_before` filters are left
//! to the [store kit](super::store), since the two stores commit at different instants.

use std::cmp::Ordering;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::adapters::InMemoryStore;
use crate::error::StoreError;
use crate::model::{Actor, Committed, EventId, EventMeta, Message, SNAPSHOT_EVENT, Version};
use crate::ports::{
    Lease, Query, Store, StreamFilter, StreamMatch, StreamPosition, Subscription, TruncateTarget,
};

/// Streams the workload commits to (overlapping names, mixed case, `_`, `%`, `.`).
const STREAMS: &[&str] = &[
    "a", "b", "ab", "a-1", "a-12", "Cart-1", "cart-1", "x_y", "x%y", "xzy", "a.b",
];
/// Event names (mixed case, and the snapshot marker).
const NAMES: &[&str] = &["Added", "Removed", "added", "Done", SNAPSHOT_EVENT];
/// Reaction targets.
const TARGETS: &[&str] = &["t1", "t2", "t3", "T1", "t-4", "t_5"];
/// Lease holders.
const WORKERS: &[&str] = &["w1", "w2", "w3"];
/// Correlation ids.
const CORRELATIONS: &[&str] = &["c1", "c2", "c10"];
/// Characters patterns are made of.
const PATTERN_CHARS: &[&str] = &[
    "a", "b", "-", "1", "2", "C", "c", "x", "y", "_", "%", "t", "T",
];
/// A lease that outlives the run.
const LEASE: Duration = Duration::from_secs(60);

/// What a differential run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations run on both stores.
    pub ops: usize,
    /// Events in the log at the end.
    pub events: usize,
    /// Subscription rows at the end.
    pub rows: usize,
    /// Operations that failed identically on both (conflicts, for example).
    pub errors: usize,
}

/// The first operation whose results differ.
#[derive(Debug, Clone)]
pub struct Divergence {
    /// The workload's seed (rerun with it to reproduce).
    pub seed: u64,
    /// The operation's index in the workload.
    pub step: usize,
    /// The operation.
    pub op: String,
    /// What the oracle returned.
    pub oracle: Value,
    /// What the adapter returned.
    pub adapter: Value,
    /// What differs.
    pub note: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "differential (seed {}): step {} diverged ({})\n  op: {}\n  oracle:  {}\n  adapter: {}",
            self.seed, self.step, self.note, self.op, self.oracle, self.adapter
        )
    }
}

impl std::error::Error for Divergence {}

/// Runs `ops` random operations from `seed` on the store `factory` makes and on a fresh
/// [`InMemoryStore`], panicking at the first difference (with the seed, the step, the
/// operation and both results).
///
/// ```
/// use act_runtime::adapters::InMemoryStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let stats = act_runtime::conformance::differential::run(
///     || async { InMemoryStore::new() },
///     42,
///     300,
/// )
/// .await;
/// assert_eq!(stats.ops, 300);
/// # });
/// ```
pub async fn run<F, Fut, S>(factory: F, seed: u64, ops: usize) -> Stats
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = S>,
    S: Store,
{
    match compare(factory, seed, ops).await {
        Ok(stats) => stats,
        Err(d) => panic!("{d}"),
    }
}

/// Like [`run`], returning the first [`Divergence`] instead of panicking.
///
/// ```
/// use act_runtime::adapters::InMemoryStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let result = act_runtime::conformance::differential::compare(
///     || async { InMemoryStore::new() },
///     1,
///     100,
/// )
/// .await;
/// assert!(result.is_ok());
/// # });
/// ```
pub async fn compare<F, Fut, S>(factory: F, seed: u64, ops: usize) -> Result<Stats, Divergence>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = S>,
    S: Store,
{
    let adapter = factory().await;
    let oracle = InMemoryStore::new();
    let diverged = |step: usize, op: &Op, a: Value, b: Value, note: &str| Divergence {
        seed,
        step,
        op: format!("{op:?}"),
        oracle: a,
        adapter: b,
        note: note.to_owned(),
    };
    if let Err(e) = adapter.seed().await {
        return Err(diverged(
            0,
            &Op::Final,
            Value::Null,
            json!(crate::error::chain(&e)),
            "seed failed",
        ));
    }
    let mut workload = Gen::new(seed);
    let mut stats = Stats::default();
    for step in 0..=ops {
        let op = if step == ops {
            Op::Final
        } else {
            workload.op()
        };
        let a = apply(&oracle, &op).await;
        let b = apply(&adapter, &op).await;
        if a.value != b.value {
            return Err(diverged(step, &op, a.value, b.value, "results differ"));
        }
        if let Some(note) = created_order(&a.created, &b.created) {
            return Err(diverged(step, &op, a.value, b.value, &note));
        }
        if a.value.get("error").is_some() {
            stats.errors += 1;
        }
        workload.learn(&op, &a.value);
        if let Op::Final = op {
            stats.events = a.value["events"].as_array().map_or(0, Vec::len);
            stats.rows = a.value["rows"].as_array().map_or(0, Vec::len);
        } else {
            stats.ops += 1;
        }
    }
    Ok(stats)
}

/// Checks the adapter never reverses the oracle's `created` order and keeps its ties.
fn created_order(oracle: &[DateTime<Utc>], adapter: &[DateTime<Utc>]) -> Option<String> {
    if oracle.len() != adapter.len() {
        return Some("different numbers of created times".into());
    }
    for i in 1..oracle.len() {
        let (o, a) = (
            oracle[i - 1].cmp(&oracle[i]),
            adapter[i - 1].cmp(&adapter[i]),
        );
        if o != a && !(a == Ordering::Equal && o != Ordering::Equal) {
            return Some(format!(
                "created order differs at result {i}: oracle {o:?}, adapter {a:?}"
            ));
        }
    }
    None
}

/// One workload operation.
#[derive(Debug, Clone)]
enum Op {
    Commit {
        stream: String,
        msgs: Vec<(String, Value)>,
        correlation: String,
        expected: Option<Version>,
        marks: Vec<(usize, Subscription)>,
    },
    Truncate(Vec<(String, Option<Value>)>),
    Subscribe(Vec<Subscription>, Option<EventId>),
    Claim(usize, usize, String),
    Ack(Vec<Lease>),
    Block(Vec<(Lease, String)>),
    Reset(Vec<String>),
    Unblock(Vec<String>),
    Query(Query),
    QueryStreams(StreamFilter),
    /// The whole log and the whole table, compared at the end.
    Final,
}

/// What one store returned for an operation.
struct Observed {
    value: Value,
    created: Vec<DateTime<Utc>>,
}

fn meta(correlation: &str) -> EventMeta {
    EventMeta {
        correlation: correlation.to_owned(),
        causation: Default::default(),
        actor: Actor::new("diff", "Differential"),
    }
}

fn event_json(e: &Committed) -> Value {
    json!({
        "id": e.id,
        "name": e.name,
        "stream": e.stream,
        "version": e.version,
        "data": serde_json::from_str::<Value>(e.data.get()).unwrap_or(Value::Null),
        "meta": serde_json::to_value(&*e.meta).unwrap_or(Value::Null),
    })
}

fn events(out: &[Committed]) -> Observed {
    Observed {
        value: json!({ "events": out.iter().map(event_json).collect::<Vec<_>>() }),
        created: out.iter().map(|e| e.created).collect(),
    }
}

fn position_json(p: &StreamPosition) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    v["leased_until"] = json!(p.leased_until.is_some());
    v
}

fn error_json(e: &StoreError) -> Value {
    match e {
        StoreError::Concurrency(c) => json!({ "error": {
            "concurrency": { "stream": c.stream, "expected": c.expected, "actual": c.actual }
        }}),
        StoreError::Invalid(_) => json!({ "error": "invalid" }),
        other => json!({ "error": crate::error::chain(other) }),
    }
}

fn value(v: Value) -> Observed {
    Observed {
        value: v,
        created: Vec::new(),
    }
}

fn or_error<T>(r: Result<T, StoreError>, ok: impl FnOnce(T) -> Observed) -> Observed {
    match r {
        Ok(t) => ok(t),
        Err(e) => value(error_json(&e)),
    }
}

async fn read(s: &dyn Store, q: &Query) -> Result<Vec<Committed>, StoreError> {
    let mut out = Vec::new();
    let n = s.query(q, &mut |e| out.push(e.clone())).await?;
    if n != out.len() {
        return Err(StoreError::backend(
            "query",
            format!("count {n} but {} events", out.len()),
        ));
    }
    Ok(out)
}

async fn apply(s: &dyn Store, op: &Op) -> Observed {
    match op {
        Op::Commit {
            stream,
            msgs,
            correlation,
            expected,
            marks,
        } => {
            let msgs: Vec<Message> = msgs
                .iter()
                .map(|(n, d)| {
                    Message::new(
                        n.clone(),
                        serde_json::value::to_raw_value(d).expect("JSON values serialize"),
                    )
                })
                .collect();
            let r = if marks.is_empty() {
                s.commit(stream, &msgs, &meta(correlation), *expected).await
            } else {
                s.commit_marked(stream, &msgs, &meta(correlation), *expected, marks)
                    .await
            };
            or_error(r, |out| events(&out))
        }
        Op::Truncate(targets) => {
            let targets: Vec<TruncateTarget> = targets
                .iter()
                .map(|(stream, snap)| TruncateTarget {
                    stream: stream.clone(),
                    snapshot: snap
                        .as_ref()
                        .map(|v| serde_json::value::to_raw_value(v).expect("JSON")),
                    meta: meta("truncate"),
                    expected_head: None,
                })
                .collect();
            or_error(s.truncate(&targets).await, |out| {
                let mut keys: Vec<&String> = out.keys().collect();
                keys.sort();
                let seeds: Vec<Committed> =
                    keys.iter().map(|k| out[*k].committed.clone()).collect();
                let v: Vec<Value> = keys
                    .iter()
                    .map(|k| json!([k, out[*k].deleted, event_json(&out[*k].committed)]))
                    .collect();
                Observed {
                    value: json!({ "truncated": v }),
                    created: seeds.iter().map(|e| e.created).collect(),
                }
            })
        }
        Op::Subscribe(subs, checkpoint) => or_error(s.subscribe(subs, *checkpoint).await, |r| {
            value(json!({
                "subscribed": r.subscribed, "watermark": r.watermark, "checkpoint": r.checkpoint
            }))
        }),
        Op::Claim(lagging, leading, by) => {
            or_error(s.claim(*lagging, *leading, by, LEASE).await, |leases| {
                value(json!({ "leases": leases }))
            })
        }
        Op::Ack(leases) => or_error(s.ack(leases).await, |acked| {
            value(json!({ "acked": acked }))
        }),
        Op::Block(leases) => or_error(s.block(leases).await, |rows| {
            value(json!({ "blocked": rows.iter().map(position_json).collect::<Vec<_>>() }))
        }),
        Op::Reset(streams) => or_error(s.reset(streams).await, |n| value(json!({ "reset": n }))),
        Op::Unblock(streams) => or_error(s.unblock(streams).await, |n| {
            value(json!({ "unblocked": n }))
        }),
        Op::Query(q) => or_error(read(s, q).await, |out| events(&out)),
        Op::QueryStreams(f) => or_error(s.query_streams(f).await, |rows| {
            value(json!({ "rows": rows.iter().map(position_json).collect::<Vec<_>>() }))
        }),
        Op::Final => {
            let log = read(s, &Query::all().with_snaps()).await;
            let rows = s
                .query_streams(&StreamFilter {
                    limit: Some(usize::MAX / 2),
                    ..StreamFilter::default()
                })
                .await;
            let checkpoint = s.subscribe(&[], None).await;
            match (log, rows, checkpoint) {
                (Ok(log), Ok(rows), Ok(sub)) => {
                    let mut o = events(&log);
                    o.value["rows"] = json!(rows.iter().map(position_json).collect::<Vec<_>>());
                    o.value["checkpoint"] = json!(sub.checkpoint);
                    o.value["watermark"] = json!(sub.watermark);
                    o
                }
                (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => value(error_json(&e)),
            }
        }
    }
}

/// A small seeded PRNG (SplitMix64): reproducible workloads without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1).max(1) as u64) as i64
    }

    /// `true` with probability `pct` percent.
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// The workload generator, which learns ids, versions and leases from the oracle's results.
struct Gen {
    rng: Rng,
    /// The highest event id seen.
    max_id: EventId,
    /// Each stream's version, as the oracle reported it.
    versions: std::collections::HashMap<String, Version>,
    /// Leases handed out so far (acked or not).
    leases: Vec<Lease>,
    /// A `due` in the past and one an hour away (fixed, so both stores see the same).
    past: DateTime<Utc>,
    future: DateTime<Utc>,
}

impl Gen {
    fn new(seed: u64) -> Self {
        let now = Utc::now();
        Self {
            rng: Rng(seed),
            max_id: 0,
            versions: Default::default(),
            leases: Vec::new(),
            past: now - TimeDelta::seconds(10),
            future: now + TimeDelta::hours(1),
        }
    }

    fn id(&mut self) -> EventId {
        self.rng.range(0, self.max_id + 2)
    }

    fn op(&mut self) -> Op {
        match self.rng.below(100) {
            0..=29 => self.commit(),
            30..=32 => self.truncate(),
            33..=41 => self.subscribe(),
            42..=51 => Op::Claim(
                self.rng.below(5),
                self.rng.below(4),
                self.rng.pick(WORKERS).to_owned(),
            ),
            52..=59 => self.ack(),
            60..=63 => self.block(),
            64..=66 => Op::Reset(self.targets()),
            67..=69 => Op::Unblock(self.targets()),
            70..=89 => Op::Query(self.query()),
            _ => Op::QueryStreams(self.stream_filter()),
        }
    }

    fn data(&mut self) -> Value {
        let strings = [
            "",
            "plain",
            "ünïcødé ✓",
            "quote \" and \\ slash",
            "line\nbreak",
        ];
        match self.rng.below(4) {
            0 => json!({ "n": self.rng.range(-5, 1000) }),
            1 => json!({ "s": strings[self.rng.below(strings.len())], "f": 1.5 }),
            2 => json!([self.rng.range(0, 9), null, true, { "k": "v" }]),
            _ => json!({}),
        }
    }

    fn commit(&mut self) -> Op {
        let stream = self.rng.pick(STREAMS).to_owned();
        let n = self.rng.range(0, 4) as usize;
        let msgs = (0..n)
            .map(|_| (self.rng.pick(NAMES).to_owned(), self.data()))
            .collect();
        let current = self.versions.get(&stream).copied().unwrap_or(-1);
        let expected = match self.rng.below(10) {
            0..=3 => None,
            4..=7 => Some(current),
            _ => Some(current + [-2, -1, 1, 2][self.rng.below(4)]),
        };
        let marks = if n > 0 && self.rng.chance(20) {
            vec![(self.rng.below(n + 1), self.subscription())]
        } else {
            Vec::new()
        };
        Op::Commit {
            stream,
            msgs,
            correlation: self.rng.pick(CORRELATIONS).to_owned(),
            expected,
            marks,
        }
    }

    fn truncate(&mut self) -> Op {
        let n = self.rng.range(0, 2) as usize;
        Op::Truncate(
            (0..n)
                .map(|_| {
                    let stream = if self.rng.chance(85) {
                        self.rng.pick(STREAMS).to_owned()
                    } else {
                        "unknown".to_owned()
                    };
                    let snap = self
                        .rng
                        .chance(50)
                        .then(|| json!({ "snap": self.rng.range(0, 99) }));
                    (stream, snap)
                })
                .collect(),
        )
    }

    fn pattern(&mut self) -> String {
        let mut p = String::new();
        if self.rng.chance(40) {
            p.push('^');
        }
        for _ in 0..self.rng.range(0, 3) {
            match self.rng.below(10) {
                0..=5 => p.push_str(self.rng.pick(PATTERN_CHARS)),
                6 | 7 => p.push('.'),
                _ => p.push_str(".*"),
            }
        }
        if self.rng.chance(30) {
            p.push('$');
        }
        p
    }

    fn subscription(&mut self) -> Subscription {
        let (source, source_is_pattern) = match self.rng.below(4) {
            0 | 1 => (None, false),
            2 => (Some(self.rng.pick(STREAMS).to_owned()), false),
            _ => (Some(self.pattern()), true),
        };
        Subscription {
            stream: self.rng.pick(TARGETS).to_owned(),
            source,
            source_is_pattern,
            priority: self.rng.range(-3, 3) as i32,
            correlated_at: (!self.rng.chance(30)).then(|| self.id()),
        }
    }

    fn subscribe(&mut self) -> Op {
        let n = self.rng.range(0, 3) as usize;
        let subs = (0..n).map(|_| self.subscription()).collect();
        let checkpoint = self.rng.chance(30).then(|| self.id());
        Op::Subscribe(subs, checkpoint)
    }

    fn some_leases(&mut self, max: usize) -> Vec<Lease> {
        if self.leases.is_empty() {
            return Vec::new();
        }
        let n = self.rng.range(1, max as i64) as usize;
        (0..n)
            .map(|_| {
                // Mostly recent leases, sometimes stale ones.
                let len = self.leases.len();
                let i = if self.rng.chance(75) {
                    len - 1 - self.rng.below(len.min(4))
                } else {
                    self.rng.below(len)
                };
                let mut l = self.leases[i].clone();
                if self.rng.chance(10) {
                    l.by = "intruder".into();
                }
                l
            })
            .collect()
    }

    fn ack(&mut self) -> Op {
        let mut leases = self.some_leases(3);
        for l in &mut leases {
            l.at += self.rng.range(0, 4);
            l.due = match self.rng.below(10) {
                0 => Some(self.past),
                1 => Some(self.future),
                _ => None,
            };
        }
        Op::Ack(leases)
    }

    fn block(&mut self) -> Op {
        let leases = self.some_leases(2);
        Op::Block(
            leases
                .into_iter()
                .map(|mut l| {
                    // The drain blocks at the last event handled: sometimes past the claim's.
                    l.at += self.rng.range(0, 3);
                    let e = format!("error {}", self.rng.below(100));
                    (l, e)
                })
                .collect(),
        )
    }

    fn targets(&mut self) -> Vec<String> {
        let n = self.rng.range(0, 3) as usize;
        (0..n)
            .map(|_| {
                if self.rng.chance(90) {
                    self.rng.pick(TARGETS).to_owned()
                } else {
                    "nobody".to_owned()
                }
            })
            .collect()
    }

    fn query(&mut self) -> Query {
        let mut q = Query::all();
        q.stream = match self.rng.below(10) {
            0..=2 => None,
            3..=6 => Some(StreamMatch::Exact(if self.rng.chance(90) {
                self.rng.pick(STREAMS).to_owned()
            } else {
                "A".to_owned()
            })),
            _ => Some(StreamMatch::Pattern(self.pattern())),
        };
        q.names = match self.rng.below(10) {
            0..=5 => None,
            6 => Some(Vec::new()),
            _ => Some(
                (0..self.rng.range(1, 3))
                    .map(|_| self.rng.pick(NAMES).to_owned())
                    .collect(),
            ),
        };
        q.after = self.rng.chance(25).then(|| self.id());
        q.before = self.rng.chance(20).then(|| self.id());
        q.limit = self.rng.chance(30).then(|| self.rng.below(7));
        q.backward = self.rng.chance(30);
        q.correlation = self
            .rng
            .chance(15)
            .then(|| self.rng.pick(CORRELATIONS).to_owned());
        q.with_snaps = self.rng.chance(40);
        q
    }

    fn stream_filter(&mut self) -> StreamFilter {
        StreamFilter {
            stream: match self.rng.below(4) {
                0 | 1 => None,
                2 => Some(StreamMatch::Exact(self.rng.pick(TARGETS).to_owned())),
                _ => Some(StreamMatch::Pattern(self.pattern())),
            },
            blocked: match self.rng.below(4) {
                0 => Some(true),
                1 => Some(false),
                _ => None,
            },
            after: self
                .rng
                .chance(30)
                .then(|| ["t", "t2", "T", "t-4", "u"][self.rng.below(5)].to_owned()),
            limit: self.rng.chance(40).then(|| self.rng.below(5)),
        }
    }

    /// Updates what the generator knows from the oracle's result of `op`.
    fn learn(&mut self, op: &Op, result: &Value) {
        fn seen(e: &Value) -> (Option<i64>, Option<&str>, Option<i64>) {
            (
                e["id"].as_i64(),
                e["stream"].as_str(),
                e["version"].as_i64(),
            )
        }
        if let Some(events) = result["events"].as_array() {
            for e in events {
                if let (Some(id), Some(stream), Some(version)) = seen(e) {
                    self.max_id = self.max_id.max(id);
                    if matches!(op, Op::Commit { .. }) {
                        self.versions.insert(stream.to_owned(), version);
                    }
                }
            }
        }
        if let Some(truncated) = result["truncated"].as_array() {
            for t in truncated {
                if let (Some(id), Some(stream), Some(version)) = seen(&t[2]) {
                    self.max_id = self.max_id.max(id);
                    self.versions.insert(stream.to_owned(), version);
                }
            }
        }
        if let Some(leases) = result["leases"].as_array() {
            for l in leases {
                if let Ok(l) = serde_json::from_value::<Lease>(l.clone()) {
                    self.leases.push(l);
                }
            }
        }
    }
}
