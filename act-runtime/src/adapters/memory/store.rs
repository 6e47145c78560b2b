//! The in-memory event store: the default [`Store`] and the oracle every other adapter is
//! compared to.
//!
//! Layout:
//! * the **log** is one `Vec<Committed>` in id order behind a [`RwLock`], plus a per-stream
//!   index (the positions of its events in the log and which of them is its latest
//!   snapshot), so an exact-stream read touches only that stream's events and a
//!   `with_snaps` read starts at its latest snapshot without scanning, and a per-name index
//!   (the positions of each event name), so a read of a few rare names (the correlation
//!   scan: the dynamic reactions' events after the checkpoint) touches only those events;
//! * the **subscription table** is a map ordered by stream name behind its own lock, plus
//!   ordered indexes of the rows that have work (`!blocked && at < correlated_at`): the
//!   unleased ones in each claim order (lagging: priority then lowest watermark; the
//!   fairness reserve: lowest watermark; leading: highest watermark), the leased ones by
//!   expiry (a claim first moves the expired ones back to the claim orders), and a count of
//!   the rows at each watermark (for `max(at)`). A claim walks only the rows it takes (plus
//!   those the earlier frontier took), and every write re-indexes only the rows it touches:
//!   claim, ack, block, subscribe, reset and unblock cost `O(k log n)` for `k` rows touched,
//!   whatever the size of the table, and never probe the log.
//!
//! The query sink runs while the read lock is held: keep it short (it is a sync callback).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::{Bound, Range};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::{Mutex, RwLock};
use regex::Regex;
use serde_json::value::RawValue;

use super::pattern::{Matcher, MemoMatcher, Patterns, portable};
use crate::adapters::text::{has_nul, has_nul_json, no_nul_json, no_nul_meta, numbers_fit};
use crate::error::{ConcurrencyError, StoreError, StreamClosedError, ValidationError};
use crate::model::{
    Committed, EventId, EventMeta, Message, SNAPSHOT_EVENT, TOMBSTONE_EVENT, Version,
};
use crate::ports::{
    Clock, Lease, Query, Store, StreamFilter, StreamPosition, Subscribed, Subscription,
    TruncateTarget, Truncated,
};

/// The log's maps by stream and event name: read at every commit and exact-stream query.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What a query feeds its events to.
type Sink<'s> = dyn for<'e> FnMut(&'e Committed) + Send + 's;

/// The default page size of [`Store::query_streams`].
const DEFAULT_STREAMS_LIMIT: usize = 100;
/// Above this many names, a query looks names up in a hash set instead of a slice.
const NAME_SET_THRESHOLD: usize = 8;

/// The default store: events and subscriptions in process memory, lost on exit.
///
/// Fast (no I/O, no serialization: a query hands out references to the stored events) and
/// exact: it implements the [`Store`] contract with the PostgreSQL adapter's semantics, so
/// it serves as the oracle in differential tests. It refuses what PostgreSQL cannot store
/// (NUL characters) and patterns outside the portable grammar, as every store does; valid
/// patterns run as `regex` regexes.
///
/// A [`Store::query`] sink runs under the log's read lock: it must not call back into the
/// store (a commit from inside the sink would deadlock).
///
/// ```
/// use act_runtime::adapters::InMemoryStore;
/// use act_runtime::model::{Actor, EventMeta, Message};
/// use act_runtime::ports::{Query, Store};
/// use serde_json::value::RawValue;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryStore::new();
/// let meta = EventMeta {
///     correlation: "req-1".into(),
///     causation: Default::default(),
///     actor: Actor::new("u1", "Ada"),
/// };
/// let data = RawValue::from_string(r#"{"by":2}"#.into())?;
/// let committed = store
///     .commit("counter-1", &[Message::new("Incremented", data)], &meta, Some(-1))
///     .await?;
/// assert_eq!((committed[0].id, committed[0].version), (1, 0));
///
/// let mut names = Vec::new();
/// let n = store
///     .query(&Query::stream("counter-1"), &mut |e| names.push(e.name.clone()))
///     .await?;
/// assert_eq!((n, names), (1, vec!["Incremented".to_string()]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct InMemoryStore {
    log: RwLock<Log>,
    subs: Mutex<Subs>,
    patterns: Patterns,
    /// Leases, dues and `created` read it: tests move it to expire leases without sleeping.
    clock: Clock,
}

/// The event log and its per-stream index.
struct Log {
    /// Every event, in id order.
    events: Vec<Committed>,
    /// The stream of each event (its slot in `index`), so a pattern scan tests each stream
    /// name once instead of once per event.
    owners: Vec<u32>,
    /// Each stream's slot in `index`.
    streams: FastMap<String, u32>,
    /// Each stream's index.
    index: Vec<StreamIndex>,
    /// The positions in `events` of each event name, ascending.
    by_name: FastMap<String, Vec<usize>>,
    /// The id of the next event.
    next_id: EventId,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            owners: Vec::new(),
            streams: FastMap::default(),
            index: Vec::new(),
            by_name: FastMap::default(),
            next_id: 1,
        }
    }
}

impl Log {
    /// Files the event at position `pos` under its name.
    fn file_name(by_name: &mut FastMap<String, Vec<usize>>, pos: usize, name: &str) {
        match by_name.get_mut(name) {
            Some(positions) => positions.push(pos),
            None => {
                by_name.insert(name.to_owned(), vec![pos]);
            }
        }
    }

    /// The index of stream `name`.
    fn stream(&self, name: &str) -> Option<&StreamIndex> {
        self.streams
            .get(name)
            .map(|&slot| &self.index[slot as usize])
    }
}

/// Where a stream's events are in the log.
struct StreamIndex {
    /// Positions in [`Log::events`], ascending.
    positions: Vec<usize>,
    /// The index in `positions` of the stream's latest `__snapshot__`.
    last_snap: Option<usize>,
    /// The version of its last event (`-1`: none), kept here so a commit does not touch the
    /// log to check it.
    version: Version,
}

impl Default for StreamIndex {
    fn default() -> Self {
        Self {
            positions: Vec::new(),
            last_snap: None,
            version: -1,
        }
    }
}

impl StreamIndex {
    /// Appends `e`, stored at log position `pos`.
    fn push(&mut self, pos: usize, e: &Committed) {
        if e.name == SNAPSHOT_EVENT {
            self.last_snap = Some(self.positions.len());
        }
        self.positions.push(pos);
        self.version = e.version;
    }

    /// Forgets every event.
    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// The subscription table.
#[derive(Default)]
struct Subs {
    /// The rows, by target stream.
    rows: BTreeMap<String, Row>,
    /// The claim indexes over `rows`.
    index: Claimable,
    /// The durable correlation checkpoint.
    checkpoint: Option<EventId>,
}

/// A subscription row and where [`Claimable`] has it.
struct Row {
    /// The stream name, shared with the index entries.
    name: Arc<str>,
    /// The row.
    pos: StreamPosition,
    /// Where the row is indexed.
    slot: Slot,
}

/// Which claim index holds a row (with the key it was filed under).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// No work: in no claim index.
    Idle,
    /// Work and no live lease: in the three claim orders.
    Ready { priority: i32, at: EventId },
    /// Work under a lease expiring at `until`: in the expiry index.
    Held { until: DateTime<Utc> },
}

/// The ordered indexes a claim reads instead of scanning the table.
///
/// Invariant: a row with work ([`has_work`]) is in the claim orders (`Ready`) or in the
/// expiry index (`Held`), never both; a row without work is in neither. A leased row goes to
/// `Held` even if its lease has already run out: the next claim moves every expired lease
/// back to `Ready` before it picks (in expiry order, so it touches only those).
#[derive(Default)]
struct Claimable {
    /// The lagging order: priority (highest first), then lowest watermark, then name.
    lagging: BTreeSet<(Reverse<i32>, EventId, Arc<str>)>,
    /// The fairness reserve's order: lowest watermark, then name.
    lowest: BTreeSet<(EventId, Arc<str>)>,
    /// The leading order: highest watermark, then name.
    highest: BTreeSet<(Reverse<EventId>, Arc<str>)>,
    /// Leased rows with work, by lease expiry.
    leased: BTreeSet<(DateTime<Utc>, Arc<str>)>,
    /// How many rows (all of them, with work or not) are at each watermark.
    ats: BTreeMap<EventId, usize>,
}

impl Claimable {
    /// Files `row` under its current fields (it must be in no index).
    fn insert(&mut self, row: &mut Row) {
        *self.ats.entry(row.pos.at).or_default() += 1;
        row.slot = if !has_work(&row.pos) {
            Slot::Idle
        } else if let Some(until) = row.pos.leased_until {
            self.leased.insert((until, row.name.clone()));
            Slot::Held { until }
        } else {
            self.ready(&row.name, row.pos.priority, row.pos.at);
            Slot::Ready {
                priority: row.pos.priority,
                at: row.pos.at,
            }
        };
    }

    /// Takes `row` out of every index (its fields must be those it was filed under).
    fn remove(&mut self, row: &mut Row) {
        if let Some(n) = self.ats.get_mut(&row.pos.at) {
            *n -= 1;
            if *n == 0 {
                self.ats.remove(&row.pos.at);
            }
        }
        match std::mem::replace(&mut row.slot, Slot::Idle) {
            Slot::Idle => {}
            Slot::Ready { priority, at } => self.unready(&row.name, priority, at),
            Slot::Held { until } => {
                self.leased.remove(&(until, row.name.clone()));
            }
        }
    }

    /// Adds a row to the three claim orders.
    fn ready(&mut self, name: &Arc<str>, priority: i32, at: EventId) {
        self.lagging.insert((Reverse(priority), at, name.clone()));
        self.lowest.insert((at, name.clone()));
        self.highest.insert((Reverse(at), name.clone()));
    }

    /// Takes a row out of the three claim orders.
    fn unready(&mut self, name: &Arc<str>, priority: i32, at: EventId) {
        self.lagging.remove(&(Reverse(priority), at, name.clone()));
        self.lowest.remove(&(at, name.clone()));
        self.highest.remove(&(Reverse(at), name.clone()));
    }

    /// The highest watermark of any row (`-1` when none).
    fn watermark(&self) -> EventId {
        self.ats.last_key_value().map_or(-1, |(&at, _)| at)
    }
}

impl Subs {
    /// Applies `change` to the row of `stream` and re-files it; `None` if there is no row.
    fn update<T>(
        &mut self,
        stream: &str,
        change: impl FnOnce(&mut StreamPosition) -> T,
    ) -> Option<T> {
        let Self { rows, index, .. } = self;
        let row = rows.get_mut(stream)?;
        index.remove(row);
        let out = change(&mut row.pos);
        index.insert(row);
        Some(out)
    }

    /// The row of `stream`.
    fn get(&self, stream: &str) -> Option<&StreamPosition> {
        self.rows.get(stream).map(|r| &r.pos)
    }

    /// Moves the rows whose lease expired by `now` back to the claim orders.
    fn expire(&mut self, now: DateTime<Utc>) {
        let Self { rows, index, .. } = self;
        while let Some((until, _)) = index.leased.first()
            && *until <= now
        {
            let Some((_, name)) = index.leased.pop_first() else {
                break;
            };
            if let Some(row) = rows.get_mut(&*name) {
                let (priority, at) = (row.pos.priority, row.pos.at);
                index.ready(&name, priority, at);
                row.slot = Slot::Ready { priority, at };
            }
        }
    }

    /// Picks up to `lagging` rows on the lagging frontier and up to `leading` on the leading
    /// one (no row twice) among the claimable ones, in claim order, walking the indexes.
    fn pick(
        &mut self,
        lagging: usize,
        leading: usize,
        now: DateTime<Utc>,
    ) -> Vec<(Arc<str>, bool)> {
        // Lagging frontier: by priority, then lowest watermark, keeping the fairness reserve
        // for the lowest watermarks whatever their priority. Ties break by name.
        let fair = if lagging >= 2 {
            (lagging / 4).max(1)
        } else {
            0
        };
        let rows = &self.rows;
        let index = &self.index;
        // A row in the claim orders whose lease has not run out: only when the clock went
        // back after the lease was moved there. Skipped, and filed back by expiry below.
        let live = |name: &str| {
            rows.get(name)
                .and_then(|r| r.pos.leased_until)
                .is_some_and(|u| u > now)
        };
        let mut seen: HashSet<Arc<str>> = HashSet::new();
        let mut stale: Vec<Arc<str>> = Vec::new();
        let mut picks: Vec<(Arc<str>, bool)> = Vec::new();
        let mut take = |names: &mut dyn Iterator<Item = &Arc<str>>, k: usize, lag: bool| {
            let mut n = 0;
            for name in names {
                if n >= k {
                    break;
                }
                if seen.contains(name) {
                    continue;
                }
                seen.insert(name.clone());
                if live(name) {
                    stale.push(name.clone());
                    continue;
                }
                picks.push((name.clone(), lag));
                n += 1;
            }
        };
        take(
            &mut index.lagging.iter().map(|(_, _, n)| n),
            lagging - fair,
            true,
        );
        take(&mut index.lowest.iter().map(|(_, n)| n), fair, true);
        // Leading frontier: highest watermark first, among the rows not picked yet.
        take(&mut index.highest.iter().map(|(_, n)| n), leading, false);
        for name in stale {
            self.update(&name, |_| ());
        }
        picks
    }
}

/// Whether a row has work (leases aside).
fn has_work(row: &StreamPosition) -> bool {
    !row.blocked && row.correlated_at.is_some_and(|mark| row.at < mark)
}

/// Clears a row's lease.
fn release(row: &mut StreamPosition) {
    row.leased_by = None;
    row.leased_until = None;
}

/// A validation error for `target` at `path`.
fn invalid(target: &str, path: impl Into<String>, message: &str) -> StoreError {
    StoreError::Invalid(ValidationError::new(target, path, message))
}

/// Rejects stream names the other adapters cannot store: empty, or with a NUL byte.
fn validate_stream(target: &str, path: &str, stream: &str) -> Result<(), StoreError> {
    if stream.is_empty() {
        return Err(invalid(target, path, "stream name is empty"));
    }
    if has_nul(stream) {
        return Err(invalid(target, path, "stream name contains a NUL byte"));
    }
    Ok(())
}

/// Rejects subscriptions the other adapters cannot store (NUL bytes).
fn validate_subs(subs: &[Subscription]) -> Result<(), StoreError> {
    for (i, s) in subs.iter().enumerate() {
        if s.stream.contains('\0') {
            return Err(invalid(
                "subscription",
                format!("/{i}/stream"),
                "stream name contains a NUL byte",
            ));
        }
        if s.source.as_deref().is_some_and(|src| src.contains('\0')) {
            return Err(invalid(
                "subscription",
                format!("/{i}/source"),
                "source contains a NUL byte",
            ));
        }
        if let (Some(source), true) = (&s.source, s.source_is_pattern) {
            portable(source, "subscription", &format!("/{i}/source"))?;
        }
    }
    Ok(())
}

/// The event names a query keeps.
enum NameSet<'q> {
    All,
    Few(&'q [String]),
    Many(HashSet<&'q str>),
}

impl<'q> NameSet<'q> {
    fn new(names: Option<&'q [String]>) -> Self {
        match names {
            None => Self::All,
            Some(names) if names.len() <= NAME_SET_THRESHOLD => Self::Few(names),
            Some(names) => Self::Many(names.iter().map(String::as_str).collect()),
        }
    }

    fn contains(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Few(names) => names.iter().any(|n| n == name),
            Self::Many(names) => names.contains(name),
        }
    }
}

/// The per-event conditions of a query (the stream and id bounds are applied by slicing).
struct EventFilter<'q> {
    names: NameSet<'q>,
    with_snaps: bool,
    created_after: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
    correlation: Option<&'q str>,
}

impl<'q> EventFilter<'q> {
    fn new(q: &'q Query) -> Self {
        Self {
            names: NameSet::new(q.names.as_deref()),
            with_snaps: q.with_snaps,
            created_after: q.created_after,
            created_before: q.created_before,
            correlation: q.correlation.as_deref(),
        }
    }

    /// Whether the filter keeps every event (a load's read: snapshots wanted, no other
    /// condition), so the events are fed without a test each.
    fn keeps_all(&self) -> bool {
        self.with_snaps
            && matches!(self.names, NameSet::All)
            && self.created_after.is_none()
            && self.created_before.is_none()
            && self.correlation.is_none()
    }

    #[inline]
    fn keeps(&self, e: &Committed) -> bool {
        (self.with_snaps || e.name != SNAPSHOT_EVENT)
            && self.names.contains(&e.name)
            && self.created_after.is_none_or(|t| e.created > t)
            && self.created_before.is_none_or(|t| e.created < t)
            && self.correlation.is_none_or(|c| e.meta.correlation == c)
    }
}

/// Feeds the events `keep` accepts to `sink`, up to `limit`; returns how many.
#[inline]
fn emit<'e>(
    events: impl Iterator<Item = &'e Committed>,
    mut keep: impl FnMut(&'e Committed) -> bool,
    limit: usize,
    sink: &mut Sink<'_>,
) -> usize {
    let mut n = 0;
    for e in events {
        if keep(e) {
            sink(e);
            n += 1;
            if n >= limit {
                break;
            }
        }
    }
    n
}

/// Feeds the events of `range` that match `matcher` and `filter` to `sink`.
fn scan<'e>(
    range: &'e [Committed],
    backward: bool,
    matcher: Option<&Regex>,
    filter: &EventFilter<'_>,
    limit: usize,
    sink: &mut Sink<'_>,
) -> usize {
    let mut memo = matcher.map(MemoMatcher::new);
    let keep =
        |e: &'e Committed| memo.as_mut().is_none_or(|m| m.is_match(&e.stream)) && filter.keeps(e);
    if backward {
        emit(range.iter().rev(), keep, limit, sink)
    } else {
        emit(range.iter(), keep, limit, sink)
    }
}

/// Feeds the events at `positions` (ascending) that `filter` keeps to `sink`.
fn emit_at(
    events: &[Committed],
    positions: &[usize],
    backward: bool,
    filter: &EventFilter<'_>,
    limit: usize,
    sink: &mut Sink<'_>,
) -> usize {
    let it = positions.iter().map(|&p| &events[p]);
    if filter.keeps_all() {
        let n = positions.len().min(limit);
        let fed = |e: &Committed| sink(e);
        if backward {
            it.rev().take(n).for_each(fed);
        } else {
            it.take(n).for_each(fed);
        }
        return n;
    }
    let keep = |e: &Committed| filter.keeps(e);
    if backward {
        emit(it.rev(), keep, limit, sink)
    } else {
        emit(it, keep, limit, sink)
    }
}

/// Feeds the events at log positions `range` named one of `names` (whose stream matches
/// `re`, if any) that `filter` keeps to `sink`, reading the names' indexes instead of the
/// log; `None` (nothing fed) when those events are not much fewer than the range, where a
/// scan is as cheap.
#[allow(clippy::too_many_arguments)]
fn scan_names<'e>(
    log: &'e Log,
    names: &[String],
    re: Option<&Regex>,
    range: Range<usize>,
    backward: bool,
    filter: &EventFilter<'_>,
    limit: usize,
    sink: &mut Sink<'_>,
) -> Option<usize> {
    let mut lists: Vec<&[usize]> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            continue;
        }
        if let Some(p) = log.by_name.get(name.as_str()) {
            let p = p.as_slice();
            let within =
                &p[p.partition_point(|&x| x < range.start)..p.partition_point(|&x| x < range.end)];
            if !within.is_empty() {
                lists.push(within);
            }
        }
    }
    let total: usize = lists.iter().map(|l| l.len()).sum();
    if total.saturating_mul(8) >= range.len() {
        return None;
    }
    let merged;
    let positions: &[usize] = match lists.as_slice() {
        [] => &[],
        [one] => one,
        many => {
            let mut all = Vec::with_capacity(total);
            for l in many {
                all.extend_from_slice(l);
            }
            all.sort_unstable();
            merged = all;
            &merged
        }
    };
    let events = log.events.as_slice();
    let mut memo = re.map(MemoMatcher::new);
    let keep =
        |e: &'e Committed| memo.as_mut().is_none_or(|m| m.is_match(&e.stream)) && filter.keeps(e);
    let it = positions.iter().map(|&p| &events[p]);
    Some(if backward {
        emit(it.rev(), keep, limit, sink)
    } else {
        emit(it, keep, limit, sink)
    })
}

/// Feeds the events at log positions `range` whose stream matches `re` and that `filter`
/// keeps to `sink`, choosing the cheapest of: testing each event's stream name (short
/// ranges), reading the one matching stream's index, merging the matching streams' indexes
/// (few matching events), or scanning with a per-stream verdict table.
fn scan_pattern(
    log: &Log,
    re: &Regex,
    range: Range<usize>,
    backward: bool,
    filter: &EventFilter<'_>,
    limit: usize,
    sink: &mut Sink<'_>,
) -> usize {
    let events = log.events.as_slice();
    if range.len() <= log.index.len() {
        return scan(&events[range], backward, Some(re), filter, limit, sink);
    }
    let mut hit = vec![false; log.index.len()];
    let mut matched = Vec::new();
    for (name, &slot) in &log.streams {
        if re.is_match(name) {
            hit[slot as usize] = true;
            matched.push(slot as usize);
        }
    }
    let within = |slot: usize| {
        let p = log.index[slot].positions.as_slice();
        &p[p.partition_point(|&x| x < range.start)..p.partition_point(|&x| x < range.end)]
    };
    match matched.as_slice() {
        [] => 0,
        [one] => emit_at(events, within(*one), backward, filter, limit, sink),
        many => {
            let total: usize = many.iter().map(|&slot| within(slot).len()).sum();
            if total.saturating_mul(8) < range.len() {
                let mut pos = Vec::with_capacity(total);
                for &slot in many {
                    pos.extend_from_slice(within(slot));
                }
                pos.sort_unstable();
                emit_at(events, &pos, backward, filter, limit, sink)
            } else {
                let owners = &log.owners;
                let keep = |e: &Committed| filter.keeps(e);
                let it = range
                    .filter(|&p| hit[owners[p] as usize])
                    .map(|p| &events[p]);
                if backward {
                    emit(it.rev(), keep, limit, sink)
                } else {
                    emit(it, keep, limit, sink)
                }
            }
        }
    }
}

/// What a commit refuses before it takes the log lock: a bad stream name, bad marks, and
/// what PostgreSQL cannot store (NUL characters in names, payloads and meta), so the same
/// input gets the same answer on every store.
fn check_commit(
    stream: &str,
    msgs: &[Message],
    meta: &EventMeta,
    marks: &[(usize, Subscription)],
) -> Result<(), StoreError> {
    validate_stream("commit", "/stream", stream)?;
    if !marks.is_empty() {
        let subs: Vec<Subscription> = marks.iter().map(|(_, s)| s.clone()).collect();
        validate_subs(&subs)?;
    }
    if let Some(i) = msgs.iter().position(|m| has_nul(&m.name)) {
        return Err(invalid(
            "commit",
            format!("/msgs/{i}/name"),
            "event name contains a NUL byte",
        ));
    }
    for (i, m) in msgs.iter().enumerate() {
        // The path is only spelled out for a payload that is refused.
        if has_nul_json(m.data.get()) {
            no_nul_json("commit", &format!("/msgs/{i}/data"), m.data.get())?;
        }
        numbers_fit("commit", &format!("/msgs/{i}/data"), m.data.get())?;
    }
    no_nul_meta("commit", meta)
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            log: RwLock::new(Log::default()),
            subs: Mutex::new(Subs::default()),
            patterns: Patterns::default(),
            clock: Clock::default(),
        }
    }

    /// A store reading `clock`; shared with an app's
    /// [`ActBuilder::with_clock`](crate::app::ActBuilder::with_clock), it gives both one
    /// virtual time.
    ///
    /// ```
    /// use act_runtime::adapters::InMemoryStore;
    /// use act_runtime::ports::Clock;
    ///
    /// let clock = Clock::default();
    /// let store = InMemoryStore::with_clock(clock.clone());
    /// # let _ = store;
    /// ```
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            clock,
            ..Self::new()
        }
    }

    /// How many events the log holds.
    pub fn len(&self) -> usize {
        self.log.read().events.len()
    }

    /// Whether the log holds no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The store's clock.
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Moves the store's clock forward (tests: expires leases without sleeping).
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn commit_sync(
        &self,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
        expected_version: Option<Version>,
    ) -> Result<Vec<Committed>, StoreError> {
        self.commit_marked_sync(stream, msgs, meta, expected_version, &[])
    }

    /// [`InMemoryStore::commit_owned_sync`] on borrowed messages: checks them first, so a
    /// refused commit copies nothing.
    fn commit_marked_sync(
        &self,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
        expected_version: Option<Version>,
        marks: &[(usize, Subscription)],
    ) -> Result<Vec<Committed>, StoreError> {
        check_commit(stream, msgs, meta, marks)?;
        self.append(stream, msgs.to_vec(), meta.clone(), expected_version, marks)
    }

    /// Commits `msgs`, moving them and `meta` into the log; then, still under the log lock,
    /// raises the mark of each `(i, sub)` of `marks` to the id of the `i`-th committed event.
    fn commit_owned_sync(
        &self,
        stream: &str,
        msgs: Vec<Message>,
        meta: EventMeta,
        expected_version: Option<Version>,
        marks: &[(usize, Subscription)],
    ) -> Result<Vec<Committed>, StoreError> {
        check_commit(stream, &msgs, &meta, marks)?;
        self.append(stream, msgs, meta, expected_version, marks)
    }

    /// The commit itself, on checked input.
    fn append(
        &self,
        stream: &str,
        msgs: Vec<Message>,
        meta: EventMeta,
        expected_version: Option<Version>,
        marks: &[(usize, Subscription)],
    ) -> Result<Vec<Committed>, StoreError> {
        let mut log = self.log.write();
        let Log {
            events,
            owners,
            streams,
            index,
            by_name,
            next_id,
        } = &mut *log;
        let slot = streams.get(stream).copied();
        let actual = slot.map_or(-1, |slot| index[slot as usize].version);
        if let Some(expected) = expected_version
            && expected != actual
        {
            return Err(ConcurrencyError {
                stream: stream.to_owned(),
                expected,
                actual,
            }
            .into());
        }
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        // A retired stream's head is a tombstone: it takes no more events.
        if let Some(slot) = slot
            && let Some(&last) = index[slot as usize].positions.last()
            && events[last].name == TOMBSTONE_EVENT
        {
            return Err(StreamClosedError {
                stream: stream.to_owned(),
            }
            .into());
        }

        let slot = match slot {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(index.len())
                    .map_err(|_| StoreError::backend("commit", "too many streams"))?;
                index.push(StreamIndex::default());
                streams.insert(stream.to_owned(), slot);
                slot
            }
        };
        let ix = &mut index[slot as usize];
        let created = self.now();
        let mut out = Vec::with_capacity(msgs.len());
        events.reserve(msgs.len());
        owners.reserve(msgs.len());
        let meta = Arc::new(meta);
        for (version, msg) in (actual + 1..).zip(msgs) {
            let e = Committed {
                id: *next_id,
                name: msg.name,
                data: msg.data,
                stream: stream.to_owned(),
                version,
                created,
                meta: meta.clone(),
            };
            *next_id += 1;
            ix.push(events.len(), &e);
            Log::file_name(by_name, events.len(), &e.name);
            out.push(e.clone());
            events.push(e);
            owners.push(slot);
        }
        if !marks.is_empty() {
            let subs = crate::ports::store::marked(marks, &out);
            Self::upsert(&mut self.subs.lock(), &subs);
        }
        Ok(out)
    }

    fn query_sync(&self, q: &Query, sink: &mut Sink<'_>) -> Result<usize, StoreError> {
        let matcher = q
            .stream
            .as_ref()
            .map(|f| self.patterns.matcher(f, "query", "/stream"))
            .transpose()?;
        if q.limit == Some(0) || q.names.as_ref().is_some_and(Vec::is_empty) {
            return Ok(0);
        }
        let limit = q.limit.unwrap_or(usize::MAX);
        let filter = EventFilter::new(q);

        let log = self.log.read();
        let events = log.events.as_slice();
        if let Some(Matcher::Exact(stream)) = &matcher {
            let Some(ix) = log.stream(stream) else {
                return Ok(0);
            };
            let mut pos = ix.positions.as_slice();
            if q.with_snaps
                && q.after.is_none()
                && let Some(snap) = ix.last_snap
            {
                pos = &pos[snap..];
            }
            if let Some(after) = q.after {
                // A warm load asks for what follows its cached head: usually nothing or a
                // few events at the tail, so look there before a binary search.
                let tail = pos
                    .iter()
                    .rev()
                    .take(8)
                    .take_while(|&&p| events[p].id > after)
                    .count();
                let from = if tail < 8 || tail == pos.len() {
                    pos.len() - tail
                } else {
                    pos.partition_point(|&p| events[p].id <= after)
                };
                pos = &pos[from..];
            }
            if let Some(before) = q.before {
                pos = &pos[..pos.partition_point(|&p| events[p].id < before)];
            }
            return Ok(emit_at(events, pos, q.backward, &filter, limit, sink));
        }

        let lo = q
            .after
            .map_or(0, |after| events.partition_point(|e| e.id <= after));
        let hi = q.before.map_or(events.len(), |before| {
            events.partition_point(|e| e.id < before)
        });
        if lo >= hi {
            return Ok(0);
        }
        let re = match &matcher {
            Some(Matcher::Pattern(re)) => Some(re),
            _ => None,
        };
        if let Some(names) = q.names.as_deref()
            && let Some(n) = scan_names(&log, names, re, lo..hi, q.backward, &filter, limit, sink)
        {
            return Ok(n);
        }
        Ok(match &matcher {
            Some(Matcher::Pattern(re)) => {
                scan_pattern(&log, re, lo..hi, q.backward, &filter, limit, sink)
            }
            _ => scan(&events[lo..hi], q.backward, None, &filter, limit, sink),
        })
    }

    fn subscribe_sync(
        &self,
        subs: &[Subscription],
        checkpoint: Option<EventId>,
    ) -> Result<Subscribed, StoreError> {
        validate_subs(subs)?;
        let mut table = self.subs.lock();
        let subscribed = Self::upsert(&mut table, subs);
        if checkpoint.is_some() {
            table.checkpoint = table.checkpoint.max(checkpoint);
        }
        Ok(Subscribed {
            subscribed,
            watermark: table.index.watermark(),
            checkpoint: table.checkpoint,
        })
    }

    /// Inserts or merges subscription rows; returns how many were new.
    fn upsert(table: &mut Subs, subs: &[Subscription]) -> usize {
        let mut subscribed = 0;
        for s in subs {
            let merged = table.update(&s.stream, |row| {
                row.priority = row.priority.max(s.priority);
                row.correlated_at = row.correlated_at.max(s.correlated_at);
                row.source.clone_from(&s.source);
                row.source_is_pattern = s.source_is_pattern;
            });
            if merged.is_some() {
                continue;
            }
            subscribed += 1;
            let mut row = Row {
                name: Arc::from(s.stream.as_str()),
                pos: StreamPosition {
                    stream: s.stream.clone(),
                    source: s.source.clone(),
                    source_is_pattern: s.source_is_pattern,
                    at: -1,
                    retry: -1,
                    blocked: false,
                    error: None,
                    priority: s.priority,
                    leased_by: None,
                    leased_until: None,
                    correlated_at: s.correlated_at,
                },
                slot: Slot::Idle,
            };
            table.index.insert(&mut row);
            table.rows.insert(s.stream.clone(), row);
        }
        subscribed
    }

    fn claim_sync(&self, lagging: usize, leading: usize, by: &str, lease: Duration) -> Vec<Lease> {
        if lagging == 0 && leading == 0 {
            return Vec::new();
        }
        let now = self.now();
        let until = TimeDelta::from_std(lease)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);

        let mut table = self.subs.lock();
        // Expired leases are claimable again.
        table.expire(now);
        let picks = table.pick(lagging, leading, now);
        picks
            .into_iter()
            .filter_map(|(stream, lagging)| {
                table.update(&stream, |row| {
                    row.leased_by = Some(by.to_owned());
                    row.leased_until = Some(until);
                    row.retry += 1;
                    Lease {
                        stream: row.stream.clone(),
                        source: row.source.clone(),
                        source_is_pattern: row.source_is_pattern,
                        at: row.at,
                        by: by.to_owned(),
                        retry: row.retry,
                        lagging,
                        due: None,
                    }
                })
            })
            .collect()
    }

    fn ack_sync(&self, leases: &[Lease]) -> Vec<Lease> {
        let mut table = self.subs.lock();
        let mut acked = Vec::with_capacity(leases.len());
        for lease in leases {
            match table.get(&lease.stream) {
                Some(row) if row.leased_by.as_deref() == Some(lease.by.as_str()) => {
                    table.update(&lease.stream, |row| {
                        row.at = lease.at;
                        match lease.due {
                            // Deferred: the holder keeps the row until due; the retry count
                            // is the lease's (the failures of the event it stopped at).
                            Some(due) => {
                                row.leased_until = Some(due);
                                row.retry = lease.retry;
                            }
                            None => {
                                row.retry = -1;
                                release(row);
                            }
                        }
                    });
                    acked.push(lease.clone());
                }
                row => tracing::warn!(
                    stream = %lease.stream,
                    by = %lease.by,
                    holder = ?row.and_then(|r| r.leased_by.as_deref()),
                    "ack dropped: the lease is not held by its holder any more"
                ),
            }
        }
        acked
    }

    fn block_sync(&self, leases: &[(Lease, String)]) -> Vec<StreamPosition> {
        let mut table = self.subs.lock();
        let mut blocked = Vec::with_capacity(leases.len());
        for (lease, error) in leases {
            match table.get(&lease.stream) {
                Some(row)
                    if !row.blocked && row.leased_by.as_deref() == Some(lease.by.as_str()) =>
                {
                    let row = table.update(&lease.stream, |row| {
                        // The progress made before the failure is kept.
                        row.at = lease.at;
                        row.blocked = true;
                        row.error = Some(error.clone());
                        release(row);
                        row.clone()
                    });
                    blocked.extend(row);
                }
                _ => tracing::debug!(
                    stream = %lease.stream,
                    by = %lease.by,
                    "block dropped: the row is not held by the lease's holder or is already blocked"
                ),
            }
        }
        blocked
    }

    /// Applies `change` to each distinct existing row of `streams` it accepts; returns how
    /// many it accepted.
    fn update_rows(
        &self,
        streams: &[String],
        mut change: impl FnMut(&mut StreamPosition) -> bool,
    ) -> usize {
        let mut table = self.subs.lock();
        let mut seen = HashSet::with_capacity(streams.len());
        let mut n = 0;
        for stream in streams {
            if !seen.insert(stream.as_str()) {
                continue;
            }
            if table.update(stream, &mut change) == Some(true) {
                n += 1;
            }
        }
        n
    }

    fn query_streams_sync(&self, filter: &StreamFilter) -> Result<Vec<StreamPosition>, StoreError> {
        let matcher = filter
            .stream
            .as_ref()
            .map(|f| self.patterns.matcher(f, "stream filter", "/stream"))
            .transpose()?;
        let limit = filter.limit.unwrap_or(DEFAULT_STREAMS_LIMIT);
        let table = self.subs.lock();
        let lower = filter
            .after
            .as_deref()
            .map_or(Bound::Unbounded, Bound::Excluded);
        Ok(table
            .rows
            .range::<str, _>((lower, Bound::Unbounded))
            .map(|(_, row)| &row.pos)
            .filter(|row| {
                matcher.as_ref().is_none_or(|m| m.is_match(&row.stream))
                    && filter.blocked.is_none_or(|b| row.blocked == b)
            })
            .take(limit)
            .cloned()
            .collect())
    }

    fn truncate_sync(
        &self,
        targets: &[TruncateTarget],
    ) -> Result<HashMap<String, Truncated>, StoreError> {
        if targets.is_empty() {
            return Ok(HashMap::new());
        }
        // What PostgreSQL cannot keep is refused here too, before anything is cut.
        for (i, t) in targets.iter().enumerate() {
            if let Some(s) = &t.snapshot {
                no_nul_json("truncate", &format!("/{i}/snapshot"), s.get())?;
                numbers_fit("truncate", &format!("/{i}/snapshot"), s.get())?;
            }
            no_nul_meta("truncate", &t.meta)?;
        }
        let tombstone = RawValue::from_string("{}".to_owned())
            .map_err(|e| StoreError::backend("truncate", e))?;

        let mut log = self.log.write();
        let Log {
            events,
            owners,
            streams,
            index,
            by_name,
            next_id,
        } = &mut *log;
        let created = self.now();

        // Targets run in order, as one transaction would: a stream named twice is cut
        // twice, and only the last seed survives.
        let mut result: HashMap<String, Truncated> = HashMap::new();
        for t in targets {
            let deleted = if result.contains_key(&t.stream) {
                1
            } else {
                match streams.get(&t.stream) {
                    Some(&slot) if !index[slot as usize].positions.is_empty() => {
                        index[slot as usize].positions.len() as u64
                    }
                    _ => continue,
                }
            };
            if let Some(expected) = t.expected_head {
                // The head is the seed of an earlier naming of the stream in this call, or
                // its last stored event.
                let head = match result.get(&t.stream) {
                    Some(earlier) => earlier.committed.id,
                    None => {
                        let ix = &index[streams[&t.stream] as usize];
                        ix.positions.last().map_or(-1, |&p| events[p].id)
                    }
                };
                if head != expected {
                    continue;
                }
            }
            let (name, data) = match &t.snapshot {
                Some(snap) => (SNAPSHOT_EVENT, snap.clone()),
                None => (TOMBSTONE_EVENT, tombstone.clone()),
            };
            let committed = Committed {
                id: *next_id,
                name: name.to_owned(),
                data,
                stream: t.stream.clone(),
                version: 0,
                created,
                meta: Arc::new(t.meta.clone()),
            };
            *next_id += 1;
            result.insert(t.stream.clone(), Truncated { deleted, committed });
        }
        if result.is_empty() {
            return Ok(result);
        }

        // Delete the targets' events, remapping the positions that move.
        let mut gone = vec![false; events.len()];
        for stream in result.keys() {
            let ix = &mut index[streams[stream] as usize];
            for &p in &ix.positions {
                gone[p] = true;
            }
            ix.clear();
        }
        let first = gone.iter().position(|&g| g).unwrap_or(events.len());
        let mut moved = vec![usize::MAX; events.len() - first];
        let mut next = first;
        for (old, slot) in (first..events.len()).zip(moved.iter_mut()) {
            if !gone[old] {
                *slot = next;
                next += 1;
            }
        }
        let mut i = 0;
        events.retain(|_| {
            i += 1;
            !gone[i - 1]
        });
        let mut i = 0;
        owners.retain(|_| {
            i += 1;
            !gone[i - 1]
        });
        for ix in index.iter_mut() {
            let from = ix.positions.partition_point(|&p| p < first);
            for p in &mut ix.positions[from..] {
                *p = moved[*p - first];
            }
        }
        by_name.retain(|_, positions| {
            let from = positions.partition_point(|&p| p < first);
            let mut kept = from;
            for i in from..positions.len() {
                let to = moved[positions[i] - first];
                if to != usize::MAX {
                    positions[kept] = to;
                    kept += 1;
                }
            }
            positions.truncate(kept);
            !positions.is_empty()
        });

        // Append the seeds in id order.
        let mut seeds: Vec<&Committed> = result.values().map(|t| &t.committed).collect();
        seeds.sort_unstable_by_key(|c| c.id);
        for seed in seeds {
            let slot = streams[&seed.stream];
            index[slot as usize].push(events.len(), seed);
            Log::file_name(by_name, events.len(), &seed.name);
            events.push(seed.clone());
            owners.push(slot);
        }
        Ok(result)
    }

    fn drop_all_sync(&self) {
        *self.log.write() = Log::default();
        *self.subs.lock() = Subs::default();
    }
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let log = self.log.read();
        f.debug_struct("InMemoryStore")
            .field("events", &log.events.len())
            .field("streams", &log.streams.len())
            .field("subscriptions", &self.subs.lock().rows.len())
            .finish()
    }
}

#[async_trait]
impl Store for InMemoryStore {
    async fn seed(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn drop_all(&self) -> Result<(), StoreError> {
        self.drop_all_sync();
        Ok(())
    }

    async fn commit(
        &self,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
        expected_version: Option<Version>,
    ) -> Result<Vec<Committed>, StoreError> {
        self.commit_sync(stream, msgs, meta, expected_version)
    }

    /// Commits and marks in one step: the marks are written before the log lock is
    /// released, so no claimer sees the events without their marks.
    async fn commit_marked(
        &self,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
        expected_version: Option<Version>,
        marks: &[(usize, Subscription)],
    ) -> Result<Vec<Committed>, StoreError> {
        self.commit_marked_sync(stream, msgs, meta, expected_version, marks)
    }

    /// Moves the messages and the meta into the log: no copy of them is made.
    async fn commit_owned(
        &self,
        stream: &str,
        msgs: Vec<Message>,
        meta: EventMeta,
        expected_version: Option<Version>,
        marks: &[(usize, Subscription)],
    ) -> Result<Vec<Committed>, StoreError> {
        self.commit_owned_sync(stream, msgs, meta, expected_version, marks)
    }

    async fn query(
        &self,
        query: &Query,
        sink: &mut (dyn for<'e> FnMut(&'e Committed) + Send),
    ) -> Result<usize, StoreError> {
        self.query_sync(query, sink)
    }

    async fn subscribe(
        &self,
        subs: &[Subscription],
        checkpoint: Option<EventId>,
    ) -> Result<Subscribed, StoreError> {
        self.subscribe_sync(subs, checkpoint)
    }

    async fn claim(
        &self,
        lagging: usize,
        leading: usize,
        by: &str,
        lease: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        Ok(self.claim_sync(lagging, leading, by, lease))
    }

    async fn ack(&self, leases: &[Lease]) -> Result<Vec<Lease>, StoreError> {
        Ok(self.ack_sync(leases))
    }

    async fn block(&self, leases: &[(Lease, String)]) -> Result<Vec<StreamPosition>, StoreError> {
        Ok(self.block_sync(leases))
    }

    async fn reset(&self, streams: &[String]) -> Result<usize, StoreError> {
        Ok(self.update_rows(streams, |row| {
            row.at = -1;
            row.retry = -1;
            row.blocked = false;
            row.error = None;
            release(row);
            true
        }))
    }

    async fn unblock(&self, streams: &[String]) -> Result<usize, StoreError> {
        Ok(self.update_rows(streams, |row| {
            if !row.blocked {
                return false;
            }
            row.blocked = false;
            row.error = None;
            row.retry = -1;
            release(row);
            true
        }))
    }

    async fn query_streams(
        &self,
        filter: &StreamFilter,
    ) -> Result<Vec<StreamPosition>, StoreError> {
        self.query_streams_sync(filter)
    }

    async fn truncate(
        &self,
        targets: &[TruncateTarget],
    ) -> Result<HashMap<String, Truncated>, StoreError> {
        self.truncate_sync(targets)
    }

    async fn dispose(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Actor;
    use crate::ports::StreamMatch;

    fn meta(correlation: &str) -> EventMeta {
        EventMeta {
            correlation: correlation.into(),
            causation: Default::default(),
            actor: Actor::new("u1", "Ada"),
        }
    }

    fn msg(name: &str) -> Message {
        Message::new(name, RawValue::from_string(r#"{"n":1}"#.into()).unwrap())
    }

    fn msgs(names: &[&str]) -> Vec<Message> {
        names.iter().map(|n| msg(n)).collect()
    }

    fn commit(store: &InMemoryStore, stream: &str, names: &[&str]) -> Vec<Committed> {
        store
            .commit_sync(stream, &msgs(names), &meta("c"), None)
            .unwrap()
    }

    fn read(store: &InMemoryStore, q: &Query) -> Vec<(EventId, String)> {
        let mut out = Vec::new();
        let n = store
            .query_sync(q, &mut |e| out.push((e.id, e.name.clone())))
            .unwrap();
        assert_eq!(n, out.len(), "the count is the number of events sunk");
        out
    }

    fn ids(store: &InMemoryStore, q: &Query) -> Vec<EventId> {
        read(store, q).into_iter().map(|(id, _)| id).collect()
    }

    fn marked(stream: &str, mark: EventId) -> Subscription {
        Subscription {
            correlated_at: Some(mark),
            ..Subscription::new(stream)
        }
    }

    fn row(store: &InMemoryStore, stream: &str) -> StreamPosition {
        store.subs.lock().rows[stream].pos.clone()
    }

    const LEASE: Duration = Duration::from_secs(10);

    // ---------------------------------------------------------------- commit

    #[test]
    fn commit_assigns_global_ids_and_per_stream_versions() {
        let s = InMemoryStore::new();
        let a = commit(&s, "a", &["E1", "E2"]);
        let b = commit(&s, "b", &["E1"]);
        let a2 = commit(&s, "a", &["E3"]);
        let got: Vec<_> = a
            .iter()
            .chain(&b)
            .chain(&a2)
            .map(|e| (e.id, e.version))
            .collect();
        assert_eq!(got, [(1, 0), (2, 1), (3, 0), (4, 2)]);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn commit_attaches_meta_and_one_created_per_batch() {
        let s = InMemoryStore::new();
        let out = s
            .commit_sync("a", &msgs(&["E1", "E2", "E3"]), &meta("req-9"), None)
            .unwrap();
        assert!(
            out.iter()
                .all(|e| *e.meta == meta("req-9") && e.stream == "a")
        );
        assert!(out.iter().all(|e| e.created == out[0].created));
        assert_eq!(out[1].data.get(), r#"{"n":1}"#);
        let stored = read(&s, &Query::stream("a"));
        assert_eq!(stored.len(), 3);
    }

    #[test]
    fn commit_with_expected_version() {
        let s = InMemoryStore::new();
        s.commit_sync("a", &msgs(&["E"]), &meta("c"), Some(-1))
            .unwrap();
        s.commit_sync("a", &msgs(&["E", "E"]), &meta("c"), Some(0))
            .unwrap();
        let err = s
            .commit_sync("a", &msgs(&["E"]), &meta("c"), Some(1))
            .unwrap_err();
        match err {
            StoreError::Concurrency(c) => assert_eq!(
                c,
                ConcurrencyError {
                    stream: "a".into(),
                    expected: 1,
                    actual: 2
                }
            ),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            s.len(),
            3,
            "a conflict writes nothing and keeps earlier events"
        );
        let err = s
            .commit_sync("new", &msgs(&["E"]), &meta("c"), Some(0))
            .unwrap_err();
        assert!(matches!(err, StoreError::Concurrency(ref c) if c.actual == -1));
        assert!(ids(&s, &Query::stream("new")).is_empty());
        // The next commit continues the ids without a gap.
        let next = commit(&s, "a", &["E"]);
        assert_eq!((next[0].id, next[0].version), (4, 3));
    }

    #[test]
    fn commit_of_nothing_writes_nothing_but_still_checks_the_version() {
        let s = InMemoryStore::new();
        assert!(
            s.commit_sync("a", &[], &meta("c"), None)
                .unwrap()
                .is_empty()
        );
        assert!(
            s.commit_sync("a", &[], &meta("c"), Some(-1))
                .unwrap()
                .is_empty()
        );
        assert!(s.is_empty());
        assert!(s.log.read().streams.is_empty(), "no empty index entry");
        assert!(matches!(
            s.commit_sync("a", &[], &meta("c"), Some(3)),
            Err(StoreError::Concurrency(_))
        ));
    }

    #[test]
    fn commit_rejects_unstorable_names() {
        let s = InMemoryStore::new();
        for (stream, name, path) in [
            ("", "E", "/stream"),
            ("a\0b", "E", "/stream"),
            ("a", "E\0", "/msgs/1/name"),
        ] {
            let batch = [msg("ok"), msg(name)];
            match s.commit_sync(stream, &batch, &meta("c"), None) {
                Err(StoreError::Invalid(v)) => assert!(v.paths().eq([path]), "{v}"),
                other => panic!("expected invalid for {stream:?}/{name:?}: {other:?}"),
            }
        }
        assert!(s.is_empty());
    }

    // ----------------------------------------------------------------- query

    /// a: 1 E1, 2 E2 | b: 3 E1 | a: 4 snap, 5 E3 | b: 6 E2 | a: 7 snap, 8 E4
    fn fixture() -> InMemoryStore {
        let s = InMemoryStore::new();
        commit(&s, "a", &["E1", "E2"]);
        commit(&s, "b", &["E1"]);
        commit(&s, "a", &[SNAPSHOT_EVENT, "E3"]);
        commit(&s, "b", &["E2"]);
        commit(&s, "a", &[SNAPSHOT_EVENT, "E4"]);
        s
    }

    #[test]
    fn query_all_forward_backward_and_limit_after_ordering() {
        let s = fixture();
        assert_eq!(
            ids(&s, &Query::all()),
            [1, 2, 3, 5, 6, 8],
            "snapshots excluded"
        );
        assert_eq!(ids(&s, &Query::all().backward()), [8, 6, 5, 3, 2, 1]);
        assert_eq!(ids(&s, &Query::all().limit(2)), [1, 2]);
        assert_eq!(ids(&s, &Query::all().backward().limit(2)), [8, 6]);
        assert_eq!(ids(&s, &Query::all().limit(0)), Vec::<EventId>::new());
        assert_eq!(
            ids(&s, &Query::all().with_snaps()),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn query_exact_stream() {
        let s = fixture();
        assert_eq!(ids(&s, &Query::stream("a")), [1, 2, 5, 8]);
        assert_eq!(ids(&s, &Query::stream("b").backward()), [6, 3]);
        assert!(ids(&s, &Query::stream("c")).is_empty());
        assert!(ids(&s, &Query::stream("")).is_empty());
        assert!(ids(&s, &Query::stream("A")).is_empty(), "case-sensitive");
    }

    #[test]
    fn query_bounds_are_exclusive_and_zero_is_a_bound() {
        let s = fixture();
        assert_eq!(ids(&s, &Query::all().after(2).before(6)), [3, 5]);
        assert_eq!(ids(&s, &Query::all().after(0)), [1, 2, 3, 5, 6, 8]);
        assert!(ids(&s, &Query::all().before(0)).is_empty());
        assert!(ids(&s, &Query::all().before(1)).is_empty());
        assert!(ids(&s, &Query::all().after(8)).is_empty());
        assert_eq!(ids(&s, &Query::stream("a").after(1).before(8)), [2, 5]);
        assert!(ids(&s, &Query::stream("a").before(0)).is_empty());
        assert_eq!(ids(&s, &Query::stream("a").after(2).backward()), [8, 5]);
        assert_eq!(
            ids(&s, &Query::all().after(1).before(8).backward().limit(3)),
            [6, 5, 3]
        );
    }

    #[test]
    fn query_names() {
        let s = fixture();
        assert_eq!(ids(&s, &Query::all().names(["E1"])), [1, 3]);
        assert_eq!(ids(&s, &Query::stream("a").names(["E2", "E4"])), [2, 8]);
        assert!(ids(&s, &Query::all().names(Vec::<String>::new())).is_empty());
        assert!(ids(&s, &Query::all().names(["nope"])).is_empty());
        // Many names go through a hash set.
        let many: Vec<String> = (0..20)
            .map(|i| format!("X{i}"))
            .chain(["E2".into()])
            .collect();
        assert_eq!(ids(&s, &Query::all().names(many)), [2, 6]);
        // Asking for snapshots by name still needs `with_snaps`.
        assert!(ids(&s, &Query::all().names([SNAPSHOT_EVENT])).is_empty());
        assert_eq!(
            ids(&s, &Query::all().names([SNAPSHOT_EVENT]).with_snaps()),
            [4, 7]
        );
    }

    #[test]
    fn with_snaps_on_an_exact_stream_starts_at_the_latest_snapshot_both_ways() {
        let s = fixture();
        assert_eq!(ids(&s, &Query::stream("a").with_snaps()), [7, 8]);
        assert_eq!(ids(&s, &Query::stream("a").with_snaps().backward()), [8, 7]);
        assert_eq!(
            ids(&s, &Query::stream("a").with_snaps().backward().limit(5)),
            [8, 7]
        );
        // A stream without snapshots reads from its start.
        assert_eq!(ids(&s, &Query::stream("b").with_snaps()), [3, 6]);
        // The floor applies before `before` (PostgreSQL: `id >= max snapshot id`).
        assert!(ids(&s, &Query::stream("a").with_snaps().before(7)).is_empty());
    }

    #[test]
    fn with_snaps_floor_is_off_with_after_and_for_patterns() {
        let s = fixture();
        assert_eq!(
            ids(&s, &Query::stream("a").with_snaps().after(1)),
            [2, 4, 5, 7, 8]
        );
        assert_eq!(
            ids(&s, &Query::stream("a").with_snaps().after(0)),
            [1, 2, 4, 5, 7, 8]
        );
        assert_eq!(
            ids(&s, &Query::pattern("^a$").with_snaps()),
            [1, 2, 4, 5, 7, 8]
        );
        assert_eq!(ids(&s, &Query::pattern("^a$")), [1, 2, 5, 8]);
    }

    #[test]
    fn query_created_bounds_are_strict() {
        let s = InMemoryStore::new();
        let t1 = commit(&s, "a", &["E1"])[0].created;
        std::thread::sleep(Duration::from_millis(2));
        let t2 = commit(&s, "a", &["E2"])[0].created;
        std::thread::sleep(Duration::from_millis(2));
        let t3 = commit(&s, "a", &["E3"])[0].created;
        assert_eq!(ids(&s, &Query::all().created_after(t1)), [2, 3]);
        assert_eq!(ids(&s, &Query::all().created_before(t3)), [1, 2]);
        assert_eq!(
            ids(&s, &Query::all().created_after(t1).created_before(t3)),
            [2]
        );
        assert!(ids(&s, &Query::all().created_after(t2).created_before(t3)).is_empty());
        assert_eq!(
            ids(&s, &Query::stream("a").created_after(t1).backward()),
            [3, 2]
        );
    }

    #[test]
    fn query_correlation() {
        let s = InMemoryStore::new();
        s.commit_sync("a", &msgs(&["E1"]), &meta("r1"), None)
            .unwrap();
        s.commit_sync("b", &msgs(&["E1", "E2"]), &meta("r2"), None)
            .unwrap();
        s.commit_sync("a", &msgs(&["E3"]), &meta("r2"), None)
            .unwrap();
        assert_eq!(ids(&s, &Query::all().correlation("r2")), [2, 3, 4]);
        assert_eq!(ids(&s, &Query::stream("a").correlation("r2")), [4]);
        assert!(ids(&s, &Query::all().correlation("r3")).is_empty());
    }

    #[test]
    fn query_patterns() {
        let s = InMemoryStore::new();
        for stream in [
            "cart-1", "cart-12", "my-cart", "Cart-2", "order_1", "order%1",
        ] {
            commit(&s, stream, &["E"]);
        }
        let streams = |p: &str| {
            let mut out = Vec::new();
            s.query_sync(&Query::pattern(p), &mut |e| out.push(e.stream.clone()))
                .unwrap();
            out
        };
        assert_eq!(
            streams("cart"),
            ["cart-1", "cart-12", "my-cart"],
            "substring"
        );
        assert_eq!(streams("^cart"), ["cart-1", "cart-12"], "prefix");
        assert_eq!(streams("^cart-1$"), ["cart-1"], "exact");
        assert_eq!(streams("^cart-1.$"), ["cart-12"]);
        assert_eq!(streams("^.art-.*$"), ["cart-1", "cart-12", "Cart-2"]);
        assert_eq!(streams("order_"), ["order_1"], "_ is a literal");
        assert_eq!(streams("order%"), ["order%1"], "% is a literal");
        assert!(streams("^nope").is_empty());
        let err = s
            .query_sync(&Query::pattern("cart("), &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(ref v) if v.target == "query"));
    }

    #[test]
    fn name_index_agrees_with_a_naive_scan_and_survives_truncate() {
        let s = InMemoryStore::new();
        let streams = ["a-1", "a-2", "b-1", "b-2"];
        for i in 0..800usize {
            let name = match i {
                _ if i % 101 == 0 => "Rare",
                _ if i % 53 == 0 => "Odd",
                _ if i % 13 == 0 => SNAPSHOT_EVENT,
                _ => "Common",
            };
            commit(&s, streams[i % 4], &[name]);
        }
        let check = |s: &InMemoryStore| {
            let all: Vec<Committed> = {
                let mut v = Vec::new();
                s.query_sync(&Query::all().with_snaps(), &mut |e| v.push(e.clone()))
                    .unwrap();
                v
            };
            {
                let log = s.log.read();
                let filed: usize = log.by_name.values().map(Vec::len).sum();
                assert_eq!(filed, log.events.len());
                for (name, positions) in &log.by_name {
                    assert!(positions.windows(2).all(|w| w[0] < w[1]));
                    assert!(positions.iter().all(|&p| log.events[p].name == *name));
                }
            }
            let name_sets: [&[&str]; 6] = [
                &["Rare"],
                &["Rare", "Odd"],
                &["Odd", "Rare", "Odd"],
                &["Nope"],
                &["Common", "Rare"],
                &[SNAPSHOT_EVENT, "Rare"],
            ];
            for names in name_sets {
                for stream in [None, Some("^a-"), Some("-1$")] {
                    for (after, before) in [(None, None), (Some(150), None), (Some(100), Some(700))]
                    {
                        for (backward, limit, snaps) in [
                            (false, None, false),
                            (true, Some(2), false),
                            (false, Some(3), true),
                        ] {
                            let mut q = Query::all().names(names.iter().copied());
                            q.stream = stream.map(|p| StreamMatch::Pattern(p.into()));
                            q.after = after;
                            q.before = before;
                            q.backward = backward;
                            q.limit = limit;
                            q.with_snaps = snaps;
                            let re = stream.map(|p| Regex::new(p).unwrap());
                            let mut want: Vec<EventId> = all
                                .iter()
                                .filter(|e| names.contains(&e.name.as_str()))
                                .filter(|e| snaps || e.name != SNAPSHOT_EVENT)
                                .filter(|e| re.as_ref().is_none_or(|re| re.is_match(&e.stream)))
                                .filter(|e| {
                                    after.is_none_or(|a| e.id > a)
                                        && before.is_none_or(|b| e.id < b)
                                })
                                .map(|e| e.id)
                                .collect();
                            if backward {
                                want.reverse();
                            }
                            want.truncate(limit.unwrap_or(usize::MAX));
                            assert_eq!(ids(s, &q), want, "{q:?}");
                        }
                    }
                }
            }
        };
        check(&s);
        s.truncate_sync(&[target("a-2", Some("{}")), target("b-1", None)])
            .unwrap();
        check(&s);
        commit(&s, "a-2", &["Rare"]);
        check(&s);
    }

    #[test]
    fn pattern_strategies_agree_with_a_naive_scan() {
        let s = InMemoryStore::new();
        // Strategies: a short range tests names; "^rare-1$" reads one index; "^rare" merges
        // two small indexes; the others scan with the verdict table.
        let streams = ["cart-1", "cart-2", "cart-3", "order-1", "user-1"];
        for i in 0..600usize {
            let stream = match i {
                _ if i % 97 == 0 => "rare-1",
                _ if i % 89 == 0 => "rare-2",
                _ => streams[i % 5],
            };
            let name = if i % 11 == 0 { SNAPSHOT_EVENT } else { "E" };
            commit(&s, stream, &[name]);
        }
        let all: Vec<Committed> = {
            let mut v = Vec::new();
            s.query_sync(&Query::all().with_snaps(), &mut |e| v.push(e.clone()))
                .unwrap();
            v
        };
        let patterns = ["^cart-", "^rare", "^rare-1$", "-1$", "nope"];
        for p in patterns {
            let re = Regex::new(p).unwrap();
            for (after, before) in [
                (None, None),
                (Some(3), None),
                (Some(100), Some(400)),
                (None, Some(590)),
                (Some(100), Some(104)),
            ] {
                for backward in [false, true] {
                    for limit in [None, Some(1), Some(7)] {
                        let mut q = Query::pattern(p);
                        q.after = after;
                        q.before = before;
                        q.backward = backward;
                        q.limit = limit;
                        let mut want: Vec<EventId> = all
                            .iter()
                            .filter(|e| re.is_match(&e.stream) && e.name != SNAPSHOT_EVENT)
                            .filter(|e| {
                                after.is_none_or(|a| e.id > a) && before.is_none_or(|b| e.id < b)
                            })
                            .map(|e| e.id)
                            .collect();
                        if backward {
                            want.reverse();
                        }
                        want.truncate(limit.unwrap_or(usize::MAX));
                        assert_eq!(ids(&s, &q), want, "{q:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn exact_stream_reads_only_its_events() {
        let s = InMemoryStore::new();
        for i in 0..1000 {
            commit(&s, if i % 100 == 0 { "rare" } else { "busy" }, &["E"]);
        }
        let mut seen = 0;
        s.query_sync(&Query::stream("rare"), &mut |e| {
            assert_eq!(e.stream, "rare");
            seen += 1;
        })
        .unwrap();
        assert_eq!(seen, 10);
        assert_eq!(s.log.read().stream("rare").unwrap().positions.len(), 10);
    }

    // ------------------------------------------------------------- subscribe

    #[test]
    fn subscribe_counts_new_rows_and_keeps_the_max_priority_and_mark() {
        let s = InMemoryStore::new();
        let mut sub = Subscription {
            priority: -5,
            ..marked("t", 3)
        };
        assert_eq!(
            s.subscribe_sync(&[sub.clone(), Subscription::new("u")], None)
                .unwrap()
                .subscribed,
            2
        );
        sub.priority = -7;
        sub.correlated_at = Some(2);
        sub.source = Some("^src".into());
        sub.source_is_pattern = true;
        let out = s.subscribe_sync(&[sub.clone(), sub.clone()], None).unwrap();
        assert_eq!(out.subscribed, 0, "idempotent");
        let r = row(&s, "t");
        assert_eq!((r.priority, r.correlated_at), (-5, Some(3)), "max kept");
        assert_eq!(
            (r.source.as_deref(), r.source_is_pattern),
            (Some("^src"), true)
        );
        assert_eq!((r.at, r.retry, r.blocked), (-1, -1, false));
        sub.priority = 0;
        sub.correlated_at = None;
        s.subscribe_sync(&[sub], None).unwrap();
        let r = row(&s, "t");
        assert_eq!(
            (r.priority, r.correlated_at),
            (0, Some(3)),
            "zero beats negative; None keeps the mark"
        );
        // Duplicates in one call count once.
        let out = s
            .subscribe_sync(&[Subscription::new("v"), Subscription::new("v")], None)
            .unwrap();
        assert_eq!(out.subscribed, 1);
    }

    #[test]
    fn subscribe_checkpoint_and_watermark() {
        let s = InMemoryStore::new();
        let out = s.subscribe_sync(&[], None).unwrap();
        assert_eq!(
            out,
            Subscribed {
                subscribed: 0,
                watermark: -1,
                checkpoint: None
            }
        );
        assert_eq!(
            s.subscribe_sync(&[], Some(10)).unwrap().checkpoint,
            Some(10)
        );
        assert_eq!(
            s.subscribe_sync(&[], Some(4)).unwrap().checkpoint,
            Some(10),
            "only moves up"
        );
        assert_eq!(
            s.subscribe_sync(&[], None).unwrap().checkpoint,
            Some(10),
            "untouched when omitted"
        );
        s.subscribe_sync(&[marked("a", 9), marked("b", 9)], Some(12))
            .unwrap();
        let l = s.claim_sync(2, 0, "w", LEASE);
        s.ack_sync(&[
            Lease {
                at: 7,
                ..l[0].clone()
            },
            Lease {
                at: 5,
                ..l[1].clone()
            },
        ]);
        let out = s.subscribe_sync(&[], None).unwrap();
        assert_eq!((out.watermark, out.checkpoint), (7, Some(12)));
        assert!(
            ids(&s, &Query::all()).is_empty(),
            "the checkpoint is not an event"
        );
        assert_eq!(
            s.query_streams_sync(&StreamFilter::default())
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn subscribe_rejects_nul_bytes() {
        let s = InMemoryStore::new();
        assert!(matches!(
            s.subscribe_sync(&[Subscription::new("a\0")], None),
            Err(StoreError::Invalid(_))
        ));
        let bad = Subscription {
            source: Some("x\0".into()),
            ..Subscription::new("a")
        };
        assert!(matches!(
            s.subscribe_sync(&[bad], None),
            Err(StoreError::Invalid(_))
        ));
        assert!(s.subs.lock().rows.is_empty());
    }

    // ----------------------------------------------------------------- claim

    #[test]
    fn claim_needs_a_mark_above_the_watermark() {
        let s = InMemoryStore::new();
        s.subscribe_sync(&[Subscription::new("unmarked")], None)
            .unwrap();
        assert!(
            s.claim_sync(5, 5, "w", LEASE).is_empty(),
            "an unmarked row is never claimed"
        );
        s.subscribe_sync(&[marked("unmarked", 4)], None).unwrap();
        let l = s.claim_sync(5, 5, "w", LEASE);
        assert_eq!(l.len(), 1);
        s.ack_sync(&[Lease {
            at: 4,
            ..l[0].clone()
        }]);
        assert!(
            s.claim_sync(5, 5, "w", LEASE).is_empty(),
            "retired once at catches up"
        );
        assert_eq!(row(&s, "unmarked").correlated_at, Some(4), "the mark stays");
        s.subscribe_sync(&[marked("unmarked", 6)], None).unwrap();
        assert_eq!(
            s.claim_sync(5, 5, "w", LEASE).len(),
            1,
            "a higher mark brings it back"
        );
        assert!(s.claim_sync(0, 0, "w", LEASE).is_empty());
    }

    #[test]
    fn claim_leases_and_counts_retries() {
        let s = InMemoryStore::new();
        s.subscribe_sync(
            &[Subscription {
                source: Some("src".into()),
                ..marked("t", 5)
            }],
            None,
        )
        .unwrap();
        let l = s.claim_sync(1, 0, "w1", LEASE);
        assert_eq!(
            l,
            [Lease {
                stream: "t".into(),
                source: Some("src".into()),
                source_is_pattern: false,
                at: -1,
                by: "w1".into(),
                retry: 0,
                lagging: true,
                due: None,
            }]
        );
        let r = row(&s, "t");
        assert_eq!(r.leased_by.as_deref(), Some("w1"));
        assert!(r.leased_until.unwrap() > Utc::now() + TimeDelta::seconds(9));
        assert!(
            s.claim_sync(1, 1, "w2", LEASE).is_empty(),
            "no double claim while leased"
        );
        s.advance_clock(LEASE);
        let l2 = s.claim_sync(0, 1, "w2", LEASE);
        assert_eq!(
            (l2[0].by.as_str(), l2[0].retry, l2[0].lagging),
            ("w2", 1, false),
            "an expired lease counts toward retry"
        );
        // The first holder's ack is dropped; the second holder's resets the retry count.
        assert!(s.ack_sync(&l).is_empty());
        assert_eq!(row(&s, "t").retry, 1);
        assert_eq!(
            s.ack_sync(&[Lease {
                at: 2,
                ..l2[0].clone()
            }])
            .len(),
            1
        );
        let r = row(&s, "t");
        assert_eq!(
            (r.at, r.retry, r.leased_by, r.leased_until),
            (2, -1, None, None)
        );
        assert_eq!(s.claim_sync(1, 0, "w3", LEASE)[0].retry, 0);
    }

    #[test]
    fn claim_with_a_zero_lease_is_claimable_again_at_once() {
        let s = InMemoryStore::new();
        s.subscribe_sync(&[marked("t", 1)], None).unwrap();
        let l = s.claim_sync(1, 0, "w1", Duration::ZERO);
        assert_eq!(s.claim_sync(1, 0, "w2", Duration::ZERO)[0].retry, 1);
        assert!(s.ack_sync(&l).is_empty(), "taken over");
        let huge = s.claim_sync(1, 0, "w3", Duration::MAX);
        assert_eq!(huge.len(), 1, "a huge lease saturates");
        assert!(s.claim_sync(1, 0, "w4", LEASE).is_empty());
    }

    #[test]
    fn claim_orders_the_frontiers() {
        let s = InMemoryStore::new();
        let subs: Vec<_> = [("a", 0), ("b", 0), ("c", 5), ("d", 0)]
            .into_iter()
            .map(|(n, p)| Subscription {
                priority: p,
                ..marked(n, 100)
            })
            .collect();
        s.subscribe_sync(&subs, None).unwrap();
        // Give them watermarks a=10, b=20, c=30, d=40.
        let l = s.claim_sync(4, 0, "w", LEASE);
        let acks: Vec<_> = l
            .iter()
            .map(|l| Lease {
                at: 10 * (1 + i64::from(l.stream.as_bytes()[0] - b'a')),
                ..l.clone()
            })
            .collect();
        assert_eq!(s.ack_sync(&acks).len(), 4);

        // Lagging = 1: priority first (c), no fairness reserve below 2.
        let l = s.claim_sync(1, 1, "w", LEASE);
        let got: Vec<_> = l
            .iter()
            .map(|l| (l.stream.as_str(), l.lagging, l.at))
            .collect();
        assert_eq!(got, [("c", true, 30), ("d", false, 40)]);
        s.reset_sync_for_test(&["a", "b", "c", "d"], [10, 20, 30, 40]);

        // Leading excludes rows already picked on the lagging side.
        let l = s.claim_sync(1, 3, "w", LEASE);
        let got: Vec<_> = l.iter().map(|l| (l.stream.as_str(), l.lagging)).collect();
        assert_eq!(got, [("c", true), ("d", false), ("b", false), ("a", false)]);
    }

    #[test]
    fn claim_keeps_a_fairness_reserve_for_the_lowest_watermarks() {
        let s = InMemoryStore::new();
        // Eight high-priority rows far ahead, two low-priority rows far behind.
        let mut subs: Vec<_> = (0..8)
            .map(|i| Subscription {
                priority: 9,
                ..marked(&format!("hi{i}"), 1000)
            })
            .collect();
        subs.push(marked("lo1", 1000));
        subs.push(marked("lo2", 1000));
        s.subscribe_sync(&subs, None).unwrap();
        let names: Vec<String> = subs.iter().map(|s| s.stream.clone()).collect();
        let ats: Vec<EventId> = names
            .iter()
            .map(|n| if n.starts_with("hi") { 500 } else { 1 })
            .collect();
        s.reset_sync_for_test(&names.iter().map(String::as_str).collect::<Vec<_>>(), ats);

        // lagging 4 → reserve max(1, 4/4) = 1 slot for the lowest watermark.
        let l = s.claim_sync(4, 0, "w", LEASE);
        let got: Vec<_> = l.iter().map(|l| l.stream.as_str()).collect();
        assert_eq!(got, ["hi0", "hi1", "hi2", "lo1"]);
        assert!(l.iter().all(|l| l.lagging));
        // lagging 8 → reserve 2.
        s.reset_sync_for_test(
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
            names
                .iter()
                .map(|n| if n.starts_with("hi") { 500 } else { 1 }),
        );
        let l = s.claim_sync(8, 0, "w", LEASE);
        assert!(l.iter().any(|l| l.stream == "lo1") && l.iter().any(|l| l.stream == "lo2"));
        assert_eq!(l.len(), 8);
        // No stream appears twice.
        let mut seen: Vec<_> = l.iter().map(|l| l.stream.clone()).collect();
        seen.dedup();
        assert_eq!(seen.len(), 8);
    }

    // ------------------------------------------------------- ack/block/reset

    #[test]
    fn ack_from_the_wrong_holder_or_for_unknown_rows_is_dropped() {
        let s = InMemoryStore::new();
        s.subscribe_sync(&[marked("t", 5)], None).unwrap();
        let l = s.claim_sync(1, 0, "w1", LEASE).remove(0);
        let wrong = Lease {
            by: "w2".into(),
            at: 3,
            ..l.clone()
        };
        let unknown = Lease {
            stream: "nope".into(),
            ..l.clone()
        };
        assert!(s.ack_sync(&[wrong, unknown]).is_empty());
        assert_eq!(row(&s, "t").at, -1);
        let acked = s.ack_sync(&[Lease { at: 3, ..l.clone() }, Lease { at: 4, ..l.clone() }]);
        assert_eq!(acked.len(), 1, "a second ack of the same lease is stale");
        assert_eq!(row(&s, "t").at, 3);
        assert!(s.ack_sync(&[]).is_empty());
    }

    #[test]
    fn ack_with_due_defers_and_keeps_the_retry_count() {
        let s = InMemoryStore::new();
        s.subscribe_sync(&[marked("t", 9)], None).unwrap();
        let l = s.claim_sync(1, 0, "w1", LEASE).remove(0);
        let due = s.now() + TimeDelta::seconds(60);
        let deferred = Lease {
            at: 4,
            due: Some(due),
            ..l.clone()
        };
        assert_eq!(
            s.ack_sync(std::slice::from_ref(&deferred)),
            std::slice::from_ref(&deferred)
        );
        let r = row(&s, "t");
        assert_eq!(
            (r.at, r.retry, r.leased_until),
            (4, 0, Some(due)),
            "partial progress, retry kept"
        );
        assert!(
            s.claim_sync(1, 1, "w2", LEASE).is_empty(),
            "hidden until due"
        );
        s.advance_clock(Duration::from_secs(61));
        let again = s.claim_sync(1, 0, "w2", LEASE);
        assert_eq!(
            (again[0].at, again[0].retry),
            (4, 1),
            "claimable when due, retry accrues"
        );
        assert!(s.ack_sync(&[deferred]).is_empty(), "the old holder lost it");
        // A due in the past is claimable at once.
        let past = Lease {
            due: Some(s.now() - TimeDelta::seconds(1)),
            ..again[0].clone()
        };
        assert_eq!(s.ack_sync(&[past]).len(), 1);
        assert_eq!(s.claim_sync(1, 0, "w3", LEASE)[0].retry, 2);
    }

    #[tokio::test]
    async fn commit_marked_raises_the_marks_to_the_committed_ids() {
        let s = InMemoryStore::new();
        commit(&s, "other", &["E"]);
        let marks = [
            (1, Subscription::new("t1")),
            (
                0,
                Subscription {
                    priority: 3,
                    ..Subscription::new("t2")
                },
            ),
            (7, Subscription::new("t3")),
        ];
        let out = s
            .commit_marked("a", &msgs(&["E1", "E2"]), &meta("c"), Some(-1), &marks)
            .await
            .unwrap();
        assert_eq!(out.iter().map(|e| e.id).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(row(&s, "t1").correlated_at, Some(3));
        assert_eq!(
            (row(&s, "t2").correlated_at, row(&s, "t2").priority),
            (Some(2), 3)
        );
        assert!(
            !s.subs.lock().rows.contains_key("t3"),
            "a mark past the batch is skipped"
        );
        assert_eq!(s.claim_sync(5, 0, "w", LEASE).len(), 2);
        // A conflict writes neither events nor marks.
        let err = s
            .commit_marked(
                "a",
                &msgs(&["E3"]),
                &meta("c"),
                Some(0),
                &[(0, Subscription::new("t4"))],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Concurrency(_)));
        assert!(!s.subs.lock().rows.contains_key("t4"));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn block_hides_the_row_and_returns_it() {
        let s = InMemoryStore::new();
        s.subscribe_sync(&[marked("t", 5), marked("u", 5)], None)
            .unwrap();
        let l = s.claim_sync(2, 0, "w1", LEASE);
        let t = l.iter().find(|l| l.stream == "t").unwrap().clone();
        let u = l.iter().find(|l| l.stream == "u").unwrap().clone();
        let other = Lease {
            by: "w2".into(),
            ..u.clone()
        };
        let rows = s.block_sync(&[(t.clone(), "boom".into()), (other, "no".into())]);
        assert_eq!(rows.len(), 1, "another holder is rejected");
        let r = &rows[0];
        assert_eq!(
            (r.stream.as_str(), r.blocked, r.error.as_deref()),
            ("t", true, Some("boom"))
        );
        assert_eq!((r.leased_by.as_ref(), r.retry, r.at), (None, 0, -1));
        assert_eq!(r, &row(&s, "t"));
        assert!(
            s.block_sync(&[(t.clone(), "again".into())]).is_empty(),
            "re-block is a no-op"
        );
        assert_eq!(row(&s, "t").error.as_deref(), Some("boom"));
        s.advance_clock(LEASE * 2);
        let l = s.claim_sync(5, 5, "w3", LEASE);
        assert_eq!(
            l.iter().map(|l| l.stream.as_str()).collect::<Vec<_>>(),
            ["u"],
            "blocked is never claimed"
        );
        assert!(s.ack_sync(&[t]).is_empty());
    }

    #[tokio::test]
    async fn reset_rewinds_and_unblocks() {
        let s = InMemoryStore::new();
        s.subscribe_sync(&[marked("t", 5), marked("u", 5)], None)
            .unwrap();
        let l = s.claim_sync(2, 0, "w", LEASE);
        s.ack_sync(
            &l.iter()
                .map(|l| Lease { at: 4, ..l.clone() })
                .collect::<Vec<_>>(),
        );
        let l = s.claim_sync(2, 0, "w", LEASE);
        s.block_sync(&[(l[0].clone(), "boom".into())]);
        let names = ["t".to_string(), "u".into(), "t".into(), "nope".into()];
        assert_eq!(s.reset(&names).await.unwrap(), 2, "distinct existing rows");
        for name in ["t", "u"] {
            let r = row(&s, name);
            assert_eq!(
                (r.at, r.retry, r.blocked, r.error, r.leased_by),
                (-1, -1, false, None, None)
            );
            assert_eq!(r.correlated_at, Some(5), "the mark survives a reset");
        }
        assert_eq!(s.reset(&[]).await.unwrap(), 0);
        assert_eq!(s.reset(&["nope".into()]).await.unwrap(), 0);
        assert_eq!(s.claim_sync(2, 0, "w", LEASE).len(), 2, "claimable again");
    }

    #[tokio::test]
    async fn unblock_counts_only_blocked_rows_and_keeps_the_watermark() {
        let s = InMemoryStore::new();
        s.subscribe_sync(&[marked("t", 5), marked("u", 5)], None)
            .unwrap();
        let l = s.claim_sync(2, 0, "w", LEASE);
        s.ack_sync(
            &l.iter()
                .map(|l| Lease { at: 2, ..l.clone() })
                .collect::<Vec<_>>(),
        );
        let l = s.claim_sync(2, 0, "w", LEASE);
        let t = l.iter().find(|l| l.stream == "t").unwrap();
        s.block_sync(&[(t.clone(), "boom".into())]);
        let names = ["t".to_string(), "u".into(), "t".into()];
        assert_eq!(s.unblock(&names).await.unwrap(), 1);
        let r = row(&s, "t");
        assert_eq!((r.at, r.retry, r.blocked, r.error), (2, -1, false, None));
        assert_eq!(s.unblock(&names).await.unwrap(), 0);
        assert_eq!(
            row(&s, "u").leased_by.as_deref(),
            Some("w"),
            "unblock leaves other rows alone"
        );
        assert_eq!(
            s.claim_sync(2, 0, "w2", LEASE).len(),
            1,
            "t is claimable again, u still leased"
        );
    }

    #[test]
    fn query_streams_filters_and_pages_by_name() {
        let s = InMemoryStore::new();
        let subs: Vec<_> = ["b", "a", "c-1", "c-2", "C-3", "d"]
            .map(|n| marked(n, 1))
            .to_vec();
        s.subscribe_sync(&subs, None).unwrap();
        let l = s.claim_sync(6, 0, "w", LEASE);
        let d = l.iter().find(|l| l.stream == "d").unwrap().clone();
        s.block_sync(&[(d, "x".into())]);
        let names = |f: StreamFilter| -> Vec<String> {
            s.query_streams_sync(&f)
                .unwrap()
                .into_iter()
                .map(|r| r.stream)
                .collect()
        };
        assert_eq!(
            names(StreamFilter::default()),
            ["C-3", "a", "b", "c-1", "c-2", "d"]
        );
        assert_eq!(
            names(StreamFilter {
                limit: Some(2),
                after: Some("a".into()),
                ..Default::default()
            }),
            ["b", "c-1"]
        );
        assert_eq!(
            names(StreamFilter {
                after: Some("c-2".into()),
                ..Default::default()
            }),
            ["d"]
        );
        assert_eq!(
            names(StreamFilter {
                blocked: Some(true),
                ..Default::default()
            }),
            ["d"]
        );
        assert_eq!(
            names(StreamFilter {
                blocked: Some(false),
                ..Default::default()
            })
            .len(),
            5
        );
        assert_eq!(
            names(StreamFilter {
                stream: Some(StreamMatch::Pattern("^c-".into())),
                ..Default::default()
            }),
            ["c-1", "c-2"]
        );
        assert_eq!(
            names(StreamFilter {
                stream: Some(StreamMatch::Exact("c".into())),
                ..Default::default()
            }),
            Vec::<String>::new()
        );
        assert_eq!(
            names(StreamFilter {
                stream: Some(StreamMatch::Exact("a".into())),
                ..Default::default()
            }),
            ["a"]
        );
        assert!(
            names(StreamFilter {
                limit: Some(0),
                ..Default::default()
            })
            .is_empty()
        );
        let rows = s.query_streams_sync(&StreamFilter::default()).unwrap();
        assert!(
            rows.iter().all(|r| r.correlated_at == Some(1)),
            "the mark shows"
        );
        assert!(
            rows.iter()
                .filter(|r| r.stream != "d")
                .all(|r| r.leased_by.as_deref() == Some("w"))
        );
        let bad = StreamFilter {
            stream: Some(StreamMatch::Pattern("(".into())),
            ..Default::default()
        };
        assert!(matches!(
            s.query_streams_sync(&bad),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn query_streams_defaults_to_a_page_of_100() {
        let s = InMemoryStore::new();
        let subs: Vec<_> = (0..150)
            .map(|i| Subscription::new(format!("s{i:03}")))
            .collect();
        s.subscribe_sync(&subs, None).unwrap();
        let page = s.query_streams_sync(&StreamFilter::default()).unwrap();
        assert_eq!(page.len(), 100);
        let rest = s
            .query_streams_sync(&StreamFilter {
                after: Some(page[99].stream.clone()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rest.len(), 50);
        assert_eq!(rest[0].stream, "s100");
    }

    // -------------------------------------------------------------- truncate

    fn target(stream: &str, snapshot: Option<&str>) -> TruncateTarget {
        TruncateTarget {
            stream: stream.into(),
            snapshot: snapshot.map(|s| RawValue::from_string(s.into()).unwrap()),
            meta: meta("close"),
            expected_head: None,
        }
    }

    #[test]
    fn truncate_replaces_events_with_a_seed() {
        let s = fixture();
        s.subscribe_sync(&[marked("a", 8)], Some(8)).unwrap();
        let out = s
            .truncate_sync(&[
                target("a", Some(r#"{"count":4}"#)),
                target("b", None),
                target("zz", None),
            ])
            .unwrap();
        assert_eq!(out.len(), 2, "unknown streams are left out");
        let a = &out["a"];
        assert_eq!(a.deleted, 6);
        assert_eq!(
            (
                a.committed.name.as_str(),
                a.committed.version,
                a.committed.data.get()
            ),
            (SNAPSHOT_EVENT, 0, r#"{"count":4}"#)
        );
        assert_eq!(*a.committed.meta, meta("close"));
        let b = &out["b"];
        assert_eq!(
            (b.deleted, b.committed.name.as_str(), b.committed.data.get()),
            (2, TOMBSTONE_EVENT, "{}")
        );
        assert_eq!(
            (a.committed.id, b.committed.id),
            (9, 10),
            "new global ids, in target order"
        );
        assert_eq!(
            read(&s, &Query::stream("a").with_snaps()),
            [(9, SNAPSHOT_EVENT.to_string())]
        );
        assert_eq!(
            read(&s, &Query::stream("b")),
            [(10, TOMBSTONE_EVENT.to_string())]
        );
        assert_eq!(ids(&s, &Query::all().with_snaps()), [9, 10]);
        assert_eq!(
            row(&s, "a").correlated_at,
            Some(8),
            "subscriptions untouched"
        );
        // The stream stays writable from version 1.
        let next = s
            .commit_sync("a", &msgs(&["E5"]), &meta("c"), Some(0))
            .unwrap();
        assert_eq!((next[0].id, next[0].version), (11, 1));
        assert!(s.truncate_sync(&[]).unwrap().is_empty());
    }

    #[test]
    fn truncate_keeps_other_streams_indexes_right() {
        let s = InMemoryStore::new();
        for i in 0..30 {
            let stream = ["x", "y", "z"][i % 3];
            let name = if i % 7 == 0 { SNAPSHOT_EVENT } else { "E" };
            commit(&s, stream, &[name]);
        }
        let before_x = ids(&s, &Query::stream("x").with_snaps());
        let before_z = ids(&s, &Query::stream("z").with_snaps().after(0));
        s.truncate_sync(&[target("y", None)]).unwrap();
        assert_eq!(ids(&s, &Query::stream("x").with_snaps()), before_x);
        assert_eq!(ids(&s, &Query::stream("z").with_snaps().after(0)), before_z);
        assert_eq!(ids(&s, &Query::stream("y")), [31]);
        let log = s.log.read();
        assert_eq!(log.owners.len(), log.events.len());
        for (name, &slot) in &log.streams {
            let ix = &log.index[slot as usize];
            assert!(ix.positions.iter().all(|&p| log.events[p].stream == *name));
            assert!(ix.positions.iter().all(|&p| log.owners[p] == slot));
            assert_eq!(
                ix.version,
                log.events[*ix.positions.last().unwrap()].version
            );
            assert!(ix.positions.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(log.events.windows(2).all(|w| w[0].id < w[1].id));
    }

    #[test]
    fn truncate_twice_in_one_call_keeps_the_last_seed() {
        let s = fixture();
        let out = s
            .truncate_sync(&[target("b", None), target("b", Some("{}"))])
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (
                out["b"].deleted,
                out["b"].committed.id,
                out["b"].committed.name.as_str()
            ),
            (1, 10, SNAPSHOT_EVENT)
        );
        assert_eq!(ids(&s, &Query::stream("b").with_snaps()), [10]);
    }

    // ----------------------------------------------------------------- misc

    #[tokio::test]
    async fn drop_all_clears_everything_and_restarts_ids() {
        let s = fixture();
        s.subscribe_sync(&[marked("t", 1)], Some(3)).unwrap();
        s.seed().await.unwrap();
        s.drop_all().await.unwrap();
        assert!(s.is_empty());
        assert!(
            s.query_streams(&StreamFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.subscribe(&[], None).await.unwrap().checkpoint, None);
        assert_eq!(commit(&s, "a", &["E"])[0].id, 1);
        s.dispose().await.unwrap();
        s.dispose().await.unwrap();
        assert_eq!(
            format!("{s:?}"),
            "InMemoryStore { events: 1, streams: 1, subscriptions: 0 }"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_commits_and_claims_never_collide() {
        let s = std::sync::Arc::new(InMemoryStore::new());
        let mut tasks = Vec::new();
        for w in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..200 {
                    let stream = format!("s{}", w % 3);
                    let v = s
                        .query_sync(
                            &Query::stream(stream.as_str()).backward().limit(1),
                            &mut |_| {},
                        )
                        .unwrap();
                    let _ = v;
                    let mut last = -1;
                    s.query_sync(
                        &Query::stream(stream.as_str()).backward().limit(1),
                        &mut |e| last = e.version,
                    )
                    .unwrap();
                    if s.commit(&stream, &msgs(&["E"]), &meta("c"), Some(last))
                        .await
                        .is_ok()
                    {
                        ok += 1;
                    }
                }
                ok
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(s.len(), total);
        for stream in ["s0", "s1", "s2"] {
            let mut versions = Vec::new();
            s.query_sync(&Query::stream(stream), &mut |e| versions.push(e.version))
                .unwrap();
            assert_eq!(versions, (0..versions.len() as i64).collect::<Vec<_>>());
        }

        // Competing claimers never hold one row at once.
        let subs: Vec<_> = (0..50).map(|i| marked(&format!("t{i}"), 10)).collect();
        s.subscribe_sync(&subs, None).unwrap();
        let mut tasks = Vec::new();
        for w in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.claim(5, 5, &format!("w{w}"), LEASE).await.unwrap()
            }));
        }
        let mut claimed = Vec::new();
        for t in tasks {
            claimed.extend(t.await.unwrap().into_iter().map(|l| l.stream));
        }
        let n = claimed.len();
        claimed.sort();
        claimed.dedup();
        assert_eq!((n, claimed.len()), (50, 50));
    }

    impl InMemoryStore {
        /// Sets watermarks directly and clears leases (test setup).
        fn reset_sync_for_test(&self, streams: &[&str], ats: impl IntoIterator<Item = EventId>) {
            let mut table = self.subs.lock();
            for (stream, at) in streams.iter().zip(ats) {
                table
                    .update(stream, |row| {
                        row.at = at;
                        row.retry = -1;
                        release(row);
                    })
                    .unwrap();
            }
        }
    }

    impl Subs {
        /// Checks the claim indexes against the rows (tests).
        fn check_indexes(&self) {
            let (mut ready, mut held) = (0, 0);
            let mut ats: BTreeMap<EventId, usize> = BTreeMap::new();
            for (name, row) in &self.rows {
                assert_eq!(&*row.name, name.as_str());
                *ats.entry(row.pos.at).or_default() += 1;
                match row.slot {
                    Slot::Idle => assert!(!has_work(&row.pos), "{name}: idle with work"),
                    Slot::Ready { priority, at } => {
                        assert!(has_work(&row.pos), "{name}: ready without work");
                        assert_eq!((priority, at), (row.pos.priority, row.pos.at), "{name}");
                        assert!(self.index.lagging.contains(&(
                            Reverse(priority),
                            at,
                            row.name.clone()
                        )));
                        assert!(self.index.lowest.contains(&(at, row.name.clone())));
                        assert!(
                            self.index
                                .highest
                                .contains(&(Reverse(at), row.name.clone()))
                        );
                        ready += 1;
                    }
                    Slot::Held { until } => {
                        assert!(has_work(&row.pos), "{name}: held without work");
                        assert_eq!(Some(until), row.pos.leased_until, "{name}");
                        assert!(self.index.leased.contains(&(until, row.name.clone())));
                        held += 1;
                    }
                }
            }
            assert_eq!(self.index.lagging.len(), ready);
            assert_eq!(self.index.lowest.len(), ready);
            assert_eq!(self.index.highest.len(), ready);
            assert_eq!(self.index.leased.len(), held);
            assert_eq!(self.index.ats, ats);
        }
    }

    /// The claim by a full scan and sort, as the store did before it kept indexes: the
    /// picks `(stream, lagging)` for `rows` at `now`.
    fn naive_claim(
        rows: &[StreamPosition],
        lagging: usize,
        leading: usize,
        now: DateTime<Utc>,
    ) -> Vec<(String, bool)> {
        let cands: Vec<&StreamPosition> = rows
            .iter()
            .filter(|r| has_work(r) && r.leased_until.is_none_or(|u| u <= now))
            .collect();
        let fair = if lagging >= 2 {
            (lagging / 4).max(1)
        } else {
            0
        };
        let mut picks: Vec<(String, bool)> = Vec::new();
        let mut pick = |order: &[&StreamPosition], k: usize, lag: bool| {
            let mut n = 0;
            for r in order {
                if n == k {
                    break;
                }
                if !picks.iter().any(|(s, _)| *s == r.stream) {
                    picks.push((r.stream.clone(), lag));
                    n += 1;
                }
            }
        };
        let mut order = cands.clone();
        order.sort_by_key(|r| (Reverse(r.priority), r.at, r.stream.clone()));
        pick(&order, lagging - fair, true);
        order.sort_by_key(|r| (r.at, r.stream.clone()));
        pick(&order, fair, true);
        order.sort_by_key(|r| (Reverse(r.at), r.stream.clone()));
        pick(&order, leading, false);
        picks
    }

    #[derive(Debug, Clone)]
    enum TableOp {
        Subscribe(usize, i32, Option<EventId>),
        Claim(usize, usize, bool),
        Ack(usize, EventId, Option<bool>),
        Block(usize, EventId),
        Reset(usize),
        Unblock(usize),
        Advance,
    }

    fn table_op() -> impl proptest::strategy::Strategy<Value = TableOp> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (0usize..8, -2i32..3, proptest::option::of(0i64..12))
                .prop_map(|(t, p, m)| TableOp::Subscribe(t, p, m)),
            4 => (0usize..5, 0usize..5, any::<bool>()).prop_map(|(a, b, z)| TableOp::Claim(a, b, z)),
            3 => (0usize..4, -1i64..4, proptest::option::of(any::<bool>()))
                .prop_map(|(i, d, due)| TableOp::Ack(i, d, due)),
            1 => (0usize..4, -1i64..4).prop_map(|(i, d)| TableOp::Block(i, d)),
            1 => (0usize..8).prop_map(TableOp::Reset),
            1 => (0usize..8).prop_map(TableOp::Unblock),
            1 => Just(TableOp::Advance),
        ]
    }

    proptest::proptest! {
        /// The indexed claim picks what a full scan would, and every write keeps the
        /// indexes in step with the rows.
        #[test]
        fn indexed_claims_match_a_full_scan(ops in proptest::collection::vec(table_op(), 1..80)) {
            let s = InMemoryStore::new();
            let mut leases: Vec<Lease> = Vec::new();
            let recent = |leases: &[Lease], i: usize| leases.iter().rev().nth(i).cloned();
            for op in ops {
                match op {
                    TableOp::Subscribe(t, priority, mark) => {
                        let sub = Subscription {
                            priority,
                            correlated_at: mark,
                            ..Subscription::new(format!("t{t}"))
                        };
                        s.subscribe_sync(&[sub], None).unwrap();
                    }
                    TableOp::Claim(lagging, leading, zero) => {
                        let rows: Vec<StreamPosition> =
                            s.subs.lock().rows.values().map(|r| r.pos.clone()).collect();
                        let lease = if zero { Duration::ZERO } else { Duration::from_secs(3600) };
                        let got = s.claim_sync(lagging, leading, "w", lease);
                        let expected = naive_claim(&rows, lagging, leading, s.now());
                        let got_picks: Vec<(String, bool)> =
                            got.iter().map(|l| (l.stream.clone(), l.lagging)).collect();
                        proptest::prop_assert_eq!(got_picks, expected);
                        for l in &got {
                            let before = rows.iter().find(|r| r.stream == l.stream).unwrap();
                            proptest::prop_assert_eq!((l.at, l.retry), (before.at, before.retry + 1));
                        }
                        leases.extend(got);
                    }
                    TableOp::Ack(i, d, due) => {
                        if let Some(mut l) = recent(&leases, i) {
                            l.at += d;
                            l.due = due.map(|future| {
                                s.now() + TimeDelta::hours(if future { 1 } else { -1 })
                            });
                            s.ack_sync(&[l]);
                        }
                    }
                    TableOp::Block(i, d) => {
                        if let Some(mut l) = recent(&leases, i) {
                            l.at += d;
                            let held = s.subs.lock().get(&l.stream).cloned().unwrap();
                            let rows = s.block_sync(&[(l.clone(), "boom".into())]);
                            if !held.blocked && held.leased_by.as_deref() == Some("w") {
                                proptest::prop_assert_eq!(rows.len(), 1);
                                proptest::prop_assert_eq!(rows[0].at, l.at);
                            } else {
                                proptest::prop_assert!(rows.is_empty());
                            }
                        }
                    }
                    TableOp::Reset(t) => {
                        s.update_rows(&[format!("t{t}")], |row| {
                            row.at = -1;
                            row.retry = -1;
                            row.blocked = false;
                            row.error = None;
                            release(row);
                            true
                        });
                    }
                    TableOp::Unblock(t) => {
                        s.update_rows(&[format!("t{t}")], |row| {
                            let was = row.blocked;
                            row.blocked = false;
                            row.error = None;
                            if was {
                                row.retry = -1;
                                release(row);
                            }
                            was
                        });
                    }
                    TableOp::Advance => s.advance_clock(Duration::from_secs(7200)),
                }
                let table = s.subs.lock();
                table.check_indexes();
                let max = table.rows.values().map(|r| r.pos.at).max().unwrap_or(-1);
                proptest::prop_assert_eq!(table.index.watermark(), max);
            }
        }
    }

    // ------------------------------------------------------------ properties

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Expect {
            Any,
            Right,
            Wrong(i64),
        }

        fn op() -> impl Strategy<Value = (usize, usize, Expect)> {
            let expect = prop_oneof![
                Just(Expect::Any),
                Just(Expect::Right),
                (-3i64..4)
                    .prop_filter("wrong", |d| *d != 0)
                    .prop_map(Expect::Wrong),
            ];
            (0usize..4, 0usize..4, expect)
        }

        proptest! {
            #[test]
            fn versions_are_dense_and_conflicts_write_nothing(ops in prop::collection::vec(op(), 1..60)) {
                let s = InMemoryStore::new();
                let mut model = [0i64; 4];
                let mut last_id = 0;
                for (stream, n, expect) in ops {
                    let name = format!("s{stream}");
                    let current = model[stream] - 1;
                    let expected = match expect {
                        Expect::Any => None,
                        Expect::Right => Some(current),
                        Expect::Wrong(d) => Some(current + d),
                    };
                    let before = s.len();
                    let names = vec!["E"; n];
                    match s.commit_sync(&name, &msgs(&names), &meta("c"), expected) {
                        Ok(out) => {
                            prop_assert!(!matches!(expect, Expect::Wrong(_)));
                            prop_assert_eq!(out.len(), n);
                            for e in &out {
                                prop_assert!(e.id > last_id, "ids strictly increase");
                                last_id = e.id;
                                prop_assert_eq!(e.version, model[stream]);
                                model[stream] += 1;
                            }
                        }
                        Err(StoreError::Concurrency(c)) => {
                            prop_assert!(matches!(expect, Expect::Wrong(_)));
                            prop_assert_eq!(c.actual, current);
                            prop_assert_eq!(s.len(), before, "a conflict commits nothing");
                        }
                        Err(other) => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                for (i, &count) in model.iter().enumerate() {
                    let mut versions = Vec::new();
                    s.query_sync(&Query::stream(format!("s{i}")), &mut |e| versions.push(e.version)).unwrap();
                    prop_assert_eq!(versions, (0..count).collect::<Vec<_>>());
                }
                let all = ids(&s, &Query::all());
                prop_assert!(all.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
