//! The event log: commit, query, truncate.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::codec::{
    self, backend, is_unique_violation, micros, micros_ceil, no_nul, no_nul_json, numbers_fit,
};
use super::pattern::{self, Cond};
use crate::error::{ConcurrencyError, StoreError, StreamClosedError, ValidationError};
use crate::model::{Committed, EventMeta, Message, SNAPSHOT_EVENT, TOMBSTONE_EVENT, Version};
use crate::ports::{Query, StreamMatch, TruncateTarget, Truncated};

/// Validates a commit's input: no NUL characters anywhere PostgreSQL would refuse them.
pub(crate) fn validate_commit(
    stream: &str,
    msgs: &[Message],
    meta_json: &str,
) -> Result<(), StoreError> {
    if stream.is_empty() {
        return Err(ValidationError::new("commit", "/stream", "stream name is empty").into());
    }
    no_nul("commit", "/stream", stream)?;
    for (i, m) in msgs.iter().enumerate() {
        no_nul("commit", &format!("/msgs/{i}/name"), &m.name)?;
        no_nul_json("commit", &format!("/msgs/{i}/data"), m.data.get())?;
        numbers_fit("commit", &format!("/msgs/{i}/data"), m.data.get())?;
    }
    no_nul_json("commit", "/meta", meta_json)
}

/// The stream's head: its version and event name (no row when empty).
const HEAD_SQL: &str =
    "SELECT version, name FROM events WHERE stream = ? ORDER BY version DESC LIMIT 1";
/// One event.
const INSERT_SQL: &str = "INSERT INTO events (name, data, stream, version, created, meta) \
     VALUES (?, ?, ?, ?, ?, ?)";

/// Appends `msgs` to `stream` inside the caller's `IMMEDIATE` transaction: reads the
/// version, checks it, and inserts one row per message with cached statements.
pub(crate) fn commit_in(
    conn: &Connection,
    stream: &str,
    msgs: Vec<Message>,
    meta: Arc<EventMeta>,
    meta_json: &str,
    expected: Option<Version>,
) -> Result<Vec<Committed>, StoreError> {
    let err = backend("commit");
    let head: Option<(Version, String)> = conn
        .prepare_cached(HEAD_SQL)
        .and_then(|mut s| {
            s.query_row([stream], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(&err)?;
    let actual = head.as_ref().map_or(-1, |h| h.0);
    if let Some(expected) = expected
        && expected != actual
    {
        return Err(ConcurrencyError {
            stream: stream.to_owned(),
            expected,
            actual,
        }
        .into());
    }
    // A retired stream's head is a tombstone: it takes no more events.
    if !msgs.is_empty() && head.is_some_and(|h| h.1 == TOMBSTONE_EVENT) {
        return Err(StreamClosedError {
            stream: stream.to_owned(),
        }
        .into());
    }
    let created = codec::now();
    let created_us = micros(created);
    let mut insert = conn.prepare_cached(INSERT_SQL).map_err(&err)?;
    let mut committed = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.into_iter().enumerate() {
        let version = actual + 1 + i as Version;
        let row = params![m.name, m.data.get(), stream, version, created_us, meta_json];
        match insert.execute(row) {
            Ok(_) => {}
            // Only another process can append between our read and our insert.
            Err(e) if is_unique_violation(&e) => {
                return Err(ConcurrencyError {
                    stream: stream.to_owned(),
                    expected: expected.unwrap_or(actual),
                    actual: actual + 1,
                }
                .into());
            }
            Err(e) => return Err(err(e)),
        }
        committed.push(Committed {
            id: conn.last_insert_rowid(),
            name: m.name,
            data: m.data,
            stream: stream.to_owned(),
            version,
            created,
            meta: Arc::clone(&meta),
        });
    }
    Ok(committed)
}

/// Serializes and validates a commit's meta.
pub(crate) fn meta_json(
    stream: &str,
    msgs: &[Message],
    meta: &EventMeta,
) -> Result<String, StoreError> {
    let json = serde_json::to_string(meta).map_err(|e| StoreError::backend("commit", e))?;
    validate_commit(stream, msgs, &json)?;
    Ok(json)
}

/// Validates a query: its stream pattern must be in the portable grammar (checked before
/// anything else, even when the query selects nothing).
pub(crate) fn validate_query(q: &Query) -> Result<(), StoreError> {
    if let Some(StreamMatch::Pattern(p)) = &q.stream {
        pattern::validate(p, "query", "/stream")?;
    }
    Ok(())
}

/// The `SELECT` for `q`, its parameters, and the stream when it reads one exact stream (its
/// rows do not carry its name); `None` when it selects nothing.
pub(crate) fn select(q: &Query) -> Result<Option<Select>, StoreError> {
    validate_query(q)?;
    if matches!(&q.names, Some(n) if n.is_empty()) || q.limit == Some(0) {
        return Ok(None);
    }
    let cond = match &q.stream {
        Some(m) => Some(pattern::stream_match(m, "query", "/stream")?),
        None => None,
    };
    let one_stream = match &cond {
        Some(Cond::Eq(s)) => Some(s.clone()),
        _ => None,
    };
    let mut sql = format!(
        "SELECT {} FROM events WHERE 1 = 1",
        codec::event_columns(q.skip_meta, one_stream.is_some())
    );
    let mut params = Vec::new();
    // Within one stream, versions increase with ids: ordering by version walks the
    // `(stream, version)` index instead of sorting the rows in a temporary b-tree.
    let mut order = "id";
    if let Some(cond) = cond {
        match cond {
            Cond::Nothing => sql.push_str(" AND 0"),
            Cond::Eq(s) => {
                order = "version";
                sql.push_str(" AND stream = ?");
                params.push(Value::Text(s));
            }
            Cond::Glob(g) => {
                sql.push_str(" AND stream GLOB ?");
                params.push(Value::Text(g));
            }
        }
    }
    if let Some(names) = &q.names {
        let json = serde_json::to_string(names).map_err(|e| StoreError::backend("query", e))?;
        sql.push_str(" AND name IN (SELECT value FROM json_each(?))");
        params.push(Value::Text(json));
    }
    // In one stream, versions increase with ids: a bound on the id becomes a bound on the
    // version too, so the read seeks in `(stream, version)` and costs what it returns,
    // whatever the stream's length (the events since a cached state, or a snapshot).
    let exact = match &q.stream {
        Some(StreamMatch::Exact(stream)) => Some(stream),
        _ => None,
    };
    if let Some(after) = q.after {
        sql.push_str(" AND id > ?");
        params.push(Value::Integer(after));
        if let Some(stream) = exact {
            sql.push_str(
                " AND version > COALESCE((SELECT b.version FROM events b \
                 WHERE b.id = ? AND b.stream = ?), -1)",
            );
            params.push(Value::Integer(after));
            params.push(Value::Text(stream.clone()));
        }
    } else if let (true, Some(stream)) = (q.with_snaps, exact) {
        sql.push_str(" AND version >= COALESCE((SELECT b.version FROM events b WHERE b.stream = ?");
        sql.push_str(" AND b.name = '");
        sql.push_str(SNAPSHOT_EVENT);
        sql.push_str("' ORDER BY b.id DESC LIMIT 1), 0)");
        params.push(Value::Text(stream.clone()));
    }
    if let Some(before) = q.before {
        sql.push_str(" AND id < ?");
        params.push(Value::Integer(before));
    }
    if let Some(t) = q.created_after {
        sql.push_str(" AND created > ?");
        params.push(Value::Integer(micros(t)));
    }
    if let Some(t) = q.created_before {
        sql.push_str(" AND created < ?");
        params.push(Value::Integer(micros_ceil(t)));
    }
    if let Some(c) = &q.correlation {
        sql.push_str(" AND json_extract(meta, '$.correlation') = ?");
        params.push(Value::Text(c.clone()));
    }
    if !q.with_snaps {
        sql.push_str(" AND name <> '");
        sql.push_str(SNAPSHOT_EVENT);
        sql.push('\'');
    }
    sql.push_str(" ORDER BY ");
    sql.push_str(order);
    sql.push_str(if q.backward { " DESC" } else { " ASC" });
    if let Some(limit) = q.limit {
        sql.push_str(" LIMIT ?");
        params.push(Value::Integer(codec::count(limit)));
    }
    Ok(Some(Select {
        sql,
        params,
        one_stream,
    }))
}

/// A query's statement: see [`select`].
#[derive(Debug)]
pub(crate) struct Select {
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
    pub(crate) one_stream: Option<String>,
}

/// Runs `q` on `conn`, handing each event to `emit` until it returns `false`; returns how
/// many events were emitted.
pub(crate) fn query(
    conn: &Connection,
    q: &Query,
    emit: &mut dyn FnMut(Committed) -> bool,
) -> Result<usize, StoreError> {
    let Some(Select {
        sql,
        params,
        one_stream,
    }) = select(q)?
    else {
        return Ok(0);
    };
    let err = backend("query");
    let mut stmt = conn.prepare_cached(&sql).map_err(&err)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(&err)?;
    let mut metas = codec::MetaCache::for_query(q);
    let mut n = 0;
    while let Some(row) = rows.next().map_err(&err)? {
        n += 1;
        if !emit(codec::event(row, &mut metas, one_stream.as_deref())?) {
            break;
        }
    }
    Ok(n)
}

/// Replaces each target's events with one seed event at version 0, in one transaction.
pub(crate) fn truncate(
    conn: &mut Connection,
    targets: &[TruncateTarget],
) -> Result<HashMap<String, Truncated>, StoreError> {
    let err = backend("truncate");
    let mut seeds = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let meta_json =
            serde_json::to_string(&t.meta).map_err(|e| StoreError::backend("truncate", e))?;
        if let Some(s) = &t.snapshot {
            no_nul_json("truncate", &format!("/{i}/snapshot"), s.get())?;
            numbers_fit("truncate", &format!("/{i}/snapshot"), s.get())?;
        }
        no_nul_json("truncate", &format!("/{i}/meta"), &meta_json)?;
        seeds.push(meta_json);
    }
    let mut out = HashMap::new();
    if targets.is_empty() {
        return Ok(out);
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&err)?;
    // One time for every seed of the call, as one PostgreSQL transaction's `now()`.
    let created = codec::now();
    for (t, meta_json) in targets.iter().zip(&seeds) {
        if let Some(expected) = t.expected_head {
            let head: Option<i64> = tx
                .query_row(
                    "SELECT MAX(id) FROM events WHERE stream = ?",
                    [&t.stream],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            if head != Some(expected) {
                continue;
            }
        }
        let deleted = tx
            .execute("DELETE FROM events WHERE stream = ?", [&t.stream])
            .map_err(&err)?;
        if deleted == 0 {
            continue;
        }
        let (name, data) = match &t.snapshot {
            Some(s) => (SNAPSHOT_EVENT, s.get()),
            None => (TOMBSTONE_EVENT, "{}"),
        };
        tx.execute(
            INSERT_SQL,
            params![name, data, t.stream, 0, micros(created), meta_json],
        )
        .map_err(&err)?;
        let data = serde_json::value::RawValue::from_string(data.to_owned())
            .map_err(|e| StoreError::backend("truncate", e))?;
        let committed = Committed {
            id: tx.last_insert_rowid(),
            name: name.to_owned(),
            data,
            stream: t.stream.clone(),
            version: 0,
            created,
            meta: Arc::new(t.meta.clone()),
        };
        out.insert(
            t.stream.clone(),
            Truncated {
                deleted: deleted as u64,
                committed,
            },
        );
    }
    tx.commit().map_err(&err)?;
    Ok(out)
}

/// Deletes every event, subscription and checkpoint, and restarts ids at 1.
pub(crate) fn drop_all(conn: &mut Connection) -> Result<(), StoreError> {
    let err = backend("drop");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&err)?;
    tx.execute_batch(
        "DELETE FROM events; DELETE FROM streams; DELETE FROM correlated; \
         DELETE FROM sqlite_sequence WHERE name = 'events';",
    )
    .map_err(&err)?;
    tx.commit().map_err(&err)
}
