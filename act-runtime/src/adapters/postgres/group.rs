//! Group commit: when every commit slot of the store is busy, the commits that arrive wait
//! in a queue, and the slot that frees up next sends all of them in one call of the
//! tenant's group-commit function — one round trip, one transaction, one WAL flush.
//!
//! A commit that finds a free slot runs alone, exactly as before: one writer pays nothing
//! for the queue. Under load the groups grow by themselves, as large as the backlog. Each
//! commit of a group keeps its own semantics (its stream's lock, head check, conflict or
//! closed answer): a commit that loses its race fails alone and the others are stored.
//! A group is sorted by stream, so groups of several processes take the streams' locks in
//! one order and never wait for each other in a cycle (`tests/postgres.rs` holds two
//! stores' groups, queued in opposite orders, at one stream, and neither is aborted). When
//! the server refuses a group (a value it rejects, a deadlock against a writer outside this
//! store), nothing of it was written, and each commit runs again alone, to get its own
//! answer. A group that fails for another reason (a lost connection) fails
//! every commit in it with that error — as one commit would, nothing half-written.
//!
//! The queue is drained by a spawned task, so a caller that stops waiting (a timeout)
//! never strands the commits queued behind it; a queued commit whose caller stopped
//! waiting before it was sent is dropped unsent.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use sqlx::{AssertSqlSafe, PgPool, Row};
use tokio::sync::oneshot;

use super::codec::{self, backend, refused};
use super::spare::Spare;
use crate::error::StoreError;
use crate::model::{BoxError, Version};

/// The most commits in one group.
const GROUP_COMMITS: usize = 64;
/// A group stops growing once its payloads reach this many bytes (it takes at least one
/// commit, whatever its size).
const GROUP_BYTES: usize = 4 << 20;

/// One commit's arguments, borrowed from the caller.
#[derive(Debug)]
pub(crate) struct Args<'a> {
    pub(crate) stream: &'a str,
    pub(crate) names: Vec<&'a str>,
    pub(crate) datas: Vec<&'a str>,
    pub(crate) meta: &'a str,
    pub(crate) expected: Option<Version>,
    pub(crate) marks: Vec<Mark<'a>>,
}

/// A reaction mark of a commit: the message's index, then the subscription's target,
/// source, pattern flag and priority.
pub(crate) type Mark<'a> = (i32, &'a str, Option<&'a str>, bool, i32);

/// One commit's arguments, owned, while it waits in the queue.
#[derive(Debug)]
struct Owned {
    stream: String,
    names: Vec<String>,
    datas: Vec<String>,
    meta: String,
    expected: Option<Version>,
    marks: Vec<(i32, String, Option<String>, bool, i32)>,
}

impl Args<'_> {
    fn to_owned(&self) -> Owned {
        Owned {
            stream: self.stream.to_owned(),
            names: self.names.iter().map(|s| (*s).to_owned()).collect(),
            datas: self.datas.iter().map(|s| (*s).to_owned()).collect(),
            meta: self.meta.to_owned(),
            expected: self.expected,
            marks: self
                .marks
                .iter()
                .map(|(i, t, s, p, r)| (*i, (*t).to_owned(), s.map(str::to_owned), *p, *r))
                .collect(),
        }
    }
}

impl Owned {
    fn args(&self) -> Args<'_> {
        Args {
            stream: &self.stream,
            names: self.names.iter().map(String::as_str).collect(),
            datas: self.datas.iter().map(String::as_str).collect(),
            meta: &self.meta,
            expected: self.expected,
            marks: self
                .marks
                .iter()
                .map(|(i, t, s, p, r)| (*i, t.as_str(), s.as_deref(), *p, *r))
                .collect(),
        }
    }

    fn bytes(&self) -> usize {
        self.datas.iter().map(String::len).sum::<usize>() + self.meta.len()
    }
}

/// What the commit function answered for one commit.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// The stored events as `(version, id, created)`, in version order.
    Stored(Vec<(Version, i64, DateTime<Utc>)>),
    /// The stream's head did not match: the expected version to report, and the head.
    Conflict { expected: Version, actual: Version },
    /// The stream's head is a tombstone.
    Closed,
}

/// The statements a commit runs.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    pub(crate) commit: Arc<str>,
    pub(crate) commit_group: Arc<str>,
    pub(crate) head: Arc<str>,
}

/// The store's commit slots and the queue behind them.
#[derive(Debug)]
pub(crate) struct Group {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pool: PgPool,
    /// The connection the last statement used, kept aside (see `spare.rs`).
    spare: Arc<Spare>,
    sql: Statements,
    slots: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    busy: usize,
    queue: VecDeque<Waiting>,
}

#[derive(Debug)]
struct Waiting {
    commit: Owned,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

impl Group {
    /// Commit slots over `pool`: at most `slots` commits (or groups) in flight at once,
    /// on `spare` when it is free. Never more slots than the pool has connections but one
    /// (at least one slot), so commits leave a connection to the reads, and a commit that
    /// finds every slot busy joins the next group instead of waiting for a connection.
    pub(crate) fn new(pool: PgPool, spare: Arc<Spare>, sql: Statements, slots: usize) -> Self {
        let connections =
            usize::try_from(pool.options().get_max_connections()).unwrap_or(usize::MAX);
        Self {
            shared: Arc::new(Shared {
                spare,
                pool,
                sql,
                slots: slots.min(connections.saturating_sub(1)).max(1),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Commits `args`: alone when a slot is free, otherwise in the next group.
    pub(crate) async fn commit(&self, args: Args<'_>) -> Result<Outcome, StoreError> {
        let queued = {
            let mut state = self.shared.state.lock();
            if state.busy < self.shared.slots {
                state.busy += 1;
                None
            } else {
                let (reply, answer) = oneshot::channel();
                state.queue.push_back(Waiting {
                    commit: args.to_owned(),
                    reply,
                });
                Some(answer)
            }
        };
        match queued {
            None => {
                let slot = Slot(Arc::clone(&self.shared));
                let outcome = commit_one(&self.shared, &args).await;
                drop(slot);
                outcome
            }
            Some(answer) => answer.await.unwrap_or_else(|_| {
                Err(StoreError::backend(
                    "commit",
                    "the group commit stopped before it answered (the runtime shut down)",
                ))
            }),
        }
    }
}

/// A busy slot. Freed, it hands the queue (if any) to a task that drains it.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        if state.queue.is_empty() {
            state.busy -= 1;
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                drop(state);
                runtime.spawn(drain(Slot(Arc::clone(&self.0))));
            }
            Err(_) => {
                // No runtime to run them on: they fail, rather than wait forever.
                state.busy -= 1;
                for w in state.queue.drain(..) {
                    let _ = w.reply.send(Err(StoreError::backend(
                        "commit",
                        "no async runtime to run the queued commit on",
                    )));
                }
            }
        }
    }
}

/// Sends the queued commits, group after group, until the queue is empty.
async fn drain(slot: Slot) {
    loop {
        let group: Vec<Waiting> = {
            let mut state = slot.0.state.lock();
            let mut group = Vec::new();
            let mut bytes = 0;
            while let Some(next) = state.queue.front() {
                // A caller that stopped waiting before its commit was sent: not sent at
                // all, as when it is dropped before a lone commit's statement goes out.
                if next.reply.is_closed() {
                    state.queue.pop_front();
                    continue;
                }
                if !group.is_empty()
                    && (group.len() == GROUP_COMMITS || bytes + next.commit.bytes() > GROUP_BYTES)
                {
                    break;
                }
                bytes += next.commit.bytes();
                group.extend(state.queue.pop_front());
            }
            group
        };
        if group.is_empty() {
            return; // the slot's drop frees it, or drains what arrived since
        }
        send(&slot.0, group).await;
    }
}

/// Sends one group and answers each of its commits.
async fn send(shared: &Shared, mut group: Vec<Waiting>) {
    if group.len() == 1 {
        let w = group.remove(0);
        let outcome = commit_one(shared, &w.commit.args()).await;
        let _ = w.reply.send(outcome);
        return;
    }
    // One lock order for every group (stable: one stream's commits keep their order).
    group.sort_by(|a, b| a.commit.stream.cmp(&b.commit.stream));
    match commit_group(shared, &group).await {
        Ok(outcomes) => {
            for (w, outcome) in group.into_iter().zip(outcomes) {
                let _ = w.reply.send(outcome);
            }
        }
        // The server refused the group, so none of it was written: each commit alone gets
        // its own answer (the one at fault its error, the others their events).
        Err(e) if e.as_database_error().is_some() => {
            tracing::debug!(error = %e, commits = group.len(), "postgres store: group refused, committing one by one");
            for w in group {
                let outcome = commit_one(shared, &w.commit.args()).await;
                let _ = w.reply.send(outcome);
            }
        }
        Err(e) => {
            let message = crate::error::chain(&e);
            let closed = matches!(e, sqlx::Error::PoolClosed);
            for w in group {
                let _ = w.reply.send(Err(if closed {
                    StoreError::Disposed
                } else {
                    StoreError::backend("commit", BoxError::from(message.clone()))
                }));
            }
        }
    }
}

/// One row of the commit function: id, version, created, head.
type Answer = (Option<i64>, Option<i32>, Option<DateTime<Utc>>, i32);

/// Commits one stream's events alone.
async fn commit_one(shared: &Shared, a: &Args<'_>) -> Result<Outcome, StoreError> {
    let marks = &a.marks;
    let mut conn = shared
        .spare
        .take()
        .await
        .map_err(refused("commit", a.stream))?;
    let result = sqlx::query(AssertSqlSafe(shared.sql.commit.clone()))
        .bind(a.stream)
        .bind(&a.names)
        .bind(&a.datas)
        .bind(a.meta)
        .bind(a.expected)
        .bind(marks.iter().map(|m| m.0).collect::<Vec<_>>())
        .bind(marks.iter().map(|m| m.1).collect::<Vec<_>>())
        .bind(marks.iter().map(|m| m.2).collect::<Vec<_>>())
        .bind(marks.iter().map(|m| m.3).collect::<Vec<_>>())
        .bind(marks.iter().map(|m| m.4).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await;
    let rows = match result {
        Ok(rows) => {
            conn.keep();
            rows
        }
        // Only a writer outside this store can slip past the stream lock.
        Err(e) if codec::sqlstate(&e).as_deref() == Some("23505") => {
            let actual = sqlx::query_scalar::<_, i64>(AssertSqlSafe(shared.sql.head.clone()))
                .bind(a.stream)
                .fetch_one(&shared.pool)
                .await
                .map_err(refused("commit", a.stream))?;
            return Ok(Outcome::Conflict {
                expected: a.expected.unwrap_or(actual - 1),
                actual,
            });
        }
        Err(e) => return Err(refused("commit", a.stream)(e)),
    };
    let err = backend("commit");
    let answers = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect::<Result<Vec<Answer>, sqlx::Error>>()
        .map_err(err)?;
    outcome(a.expected, answers)
}

/// Commits a group (two or more) in one call; one answer per commit, in order.
async fn commit_group(
    shared: &Shared,
    group: &[Waiting],
) -> Result<Vec<Result<Outcome, StoreError>>, sqlx::Error> {
    let commits = || group.iter().map(|w| &w.commit);
    let marks = || commits().flat_map(|c| c.marks.iter());
    let streams: Vec<&str> = commits().map(|c| c.stream.as_str()).collect();
    let counts: Vec<i32> = commits().map(|c| count(c.names.len())).collect();
    let names: Vec<&str> = commits()
        .flat_map(|c| c.names.iter().map(String::as_str))
        .collect();
    let datas: Vec<&str> = commits()
        .flat_map(|c| c.datas.iter().map(String::as_str))
        .collect();
    let metas: Vec<&str> = commits().map(|c| c.meta.as_str()).collect();
    let expected: Vec<Option<i64>> = commits().map(|c| c.expected).collect();
    let mark_counts: Vec<i32> = commits().map(|c| count(c.marks.len())).collect();
    let mut conn = shared.spare.take().await?;
    let rows = sqlx::query(AssertSqlSafe(shared.sql.commit_group.clone()))
        .bind(&streams)
        .bind(&counts)
        .bind(&names)
        .bind(&datas)
        .bind(&metas)
        .bind(&expected)
        .bind(&mark_counts)
        .bind(marks().map(|m| m.0).collect::<Vec<_>>())
        .bind(marks().map(|m| m.1.as_str()).collect::<Vec<_>>())
        .bind(marks().map(|m| m.2.as_deref()).collect::<Vec<_>>())
        .bind(marks().map(|m| m.3).collect::<Vec<_>>())
        .bind(marks().map(|m| m.4).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
    conn.keep();
    let mut answers: Vec<Vec<Answer>> = group.iter().map(|_| Vec::new()).collect();
    for r in &rows {
        let req: i32 = r.try_get(0)?;
        let slot = usize::try_from(req)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| answers.get_mut(i))
            .ok_or_else(|| sqlx::Error::Protocol(format!("group commit row for commit {req}")))?;
        slot.push((r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?));
    }
    Ok(commits()
        .zip(answers)
        .map(|(c, a)| outcome(c.expected, a))
        .collect())
}

/// Reads the commit function's rows for one commit.
fn outcome(expected: Option<Version>, answers: Vec<Answer>) -> Result<Outcome, StoreError> {
    let Some(&(id, version, _, head)) = answers.first() else {
        return Err(StoreError::backend(
            "commit",
            "the commit function returned no rows",
        ));
    };
    if id.is_none() {
        return Ok(if version == Some(-1) {
            Outcome::Closed
        } else {
            Outcome::Conflict {
                expected: expected.unwrap_or_default(),
                actual: i64::from(head),
            }
        });
    }
    let mut stored = Vec::with_capacity(answers.len());
    for (id, version, created, _) in answers {
        match (id, version, created) {
            (Some(id), Some(version), Some(created)) => {
                stored.push((i64::from(version), id, created));
            }
            _ => {
                return Err(StoreError::backend(
                    "commit",
                    "the commit function returned a row without id, version or time",
                ));
            }
        }
    }
    // `RETURNING` promises no order: the caller maps rows to messages by version.
    stored.sort_unstable_by_key(|(version, ..)| *version);
    Ok(Outcome::Stored(stored))
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgPoolOptions;

    use super::*;

    fn group(pool_size: u32, slots: usize) -> Group {
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .connect_lazy("postgres://postgres@127.0.0.1:5432/test")
            .expect("a lazy pool");
        let sql = Statements {
            commit: "".into(),
            commit_group: "".into(),
            head: "".into(),
        };
        Group::new(pool.clone(), Arc::new(Spare::new(pool)), sql, slots)
    }

    #[tokio::test]
    async fn slots_leave_a_connection_to_the_reads() {
        assert_eq!(group(16, 4).shared.slots, 4);
        assert_eq!(group(4, 4).shared.slots, 3);
        assert_eq!(group(2, 8).shared.slots, 1);
        assert_eq!(group(1, 4).shared.slots, 1, "at least one slot");
        assert_eq!(group(16, 0).shared.slots, 1);
    }

    fn at() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default()
    }

    #[test]
    fn rows_become_outcomes() {
        assert_eq!(
            outcome(Some(3), vec![(None, None, None, 5)]).unwrap(),
            Outcome::Conflict {
                expected: 3,
                actual: 5
            }
        );
        assert_eq!(
            outcome(None, vec![(None, Some(-1), None, 2)]).unwrap(),
            Outcome::Closed
        );
        assert_eq!(
            outcome(
                None,
                vec![
                    (Some(8), Some(1), Some(at()), 0),
                    (Some(7), Some(0), Some(at()), 0)
                ]
            )
            .unwrap(),
            Outcome::Stored(vec![(0, 7, at()), (1, 8, at())])
        );
        assert!(outcome(None, vec![]).is_err());
        assert!(outcome(None, vec![(Some(1), None, Some(at()), 0)]).is_err());
    }
}
