//! The event log: commit, query, truncate.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::codec::{self, backend, micros, micros_ceil, no_nul, no_nul_json};
use super::pattern::{self, push_stream_match};
use crate::error::{ConcurrencyError, StoreError, ValidationError};
use crate::model::{Committed, EventMeta, Message, SNAPSHOT_EVENT, TOMBSTONE_EVENT, Version};
use crate::ports::{Query, StreamMatch, TruncateTarget, Truncated};

/// Rows per `INSERT` statement (6 parameters each, under SQLite's 32766-parameter limit).
const ROWS_PER_INSERT: usize = 1_000;

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
    }
    no_nul_json("commit", "/meta", meta_json)
}

/// The stream's current version (`-1` when empty).
async fn version_of(conn: &mut SqliteConnection, stream: &str) -> Result<Version, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(version), -1) FROM events WHERE stream = ?")
        .bind(stream)
        .fetch_one(conn)
        .await
}

/// Inserts `msgs` after `version`, returning the committed events in version order.
async fn insert(
    conn: &mut SqliteConnection,
    stream: &str,
    msgs: &[(&str, &str)],
    meta: &EventMeta,
    meta_json: &str,
    version: Version,
) -> Result<Vec<Committed>, sqlx::Error> {
    let created = codec::now();
    let created_us = micros(created);
    let mut committed = Vec::with_capacity(msgs.len());
    for (c, chunk) in msgs.chunks(ROWS_PER_INSERT).enumerate() {
        let first = version + 1 + (c * ROWS_PER_INSERT) as Version;
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO events (name, data, stream, version, created, meta) ");
        qb.push_values(chunk.iter().enumerate(), |mut b, (i, (name, data))| {
            b.push_bind(*name)
                .push_bind(*data)
                .push_bind(stream)
                .push_bind(first + i as Version)
                .push_bind(created_us)
                .push_bind(meta_json);
        });
        // RETURNING order is unspecified: map ids back by version.
        qb.push(" RETURNING id, version");
        let rows = qb.build().fetch_all(&mut *conn).await?;
        let mut ids = vec![0; chunk.len()];
        for row in &rows {
            let id: i64 = row.try_get(0)?;
            let v: Version = row.try_get(1)?;
            if let Some(slot) = usize::try_from(v - first).ok().and_then(|i| ids.get_mut(i)) {
                *slot = id;
            }
        }
        let shared = std::sync::Arc::new(meta.clone());
        for (i, (name, data)) in chunk.iter().enumerate() {
            committed.push(Committed {
                id: ids[i],
                name: (*name).to_owned(),
                data: serde_json::value::RawValue::from_string((*data).to_owned())
                    .map_err(|e| sqlx::Error::Decode(e.into()))?,
                stream: stream.to_owned(),
                version: first + i as Version,
                created,
                meta: std::sync::Arc::clone(&shared),
            });
        }
    }
    Ok(committed)
}

/// Appends `msgs` to `stream` inside the caller's `IMMEDIATE` transaction `tx`.
pub(crate) async fn commit_in(
    tx: &mut SqliteConnection,
    stream: &str,
    msgs: &[Message],
    meta: &EventMeta,
    meta_json: &str,
    expected: Option<Version>,
) -> Result<Vec<Committed>, StoreError> {
    let err = backend("commit");
    let actual = version_of(&mut *tx, stream).await.map_err(&err)?;
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
    let pairs: Vec<(&str, &str)> = msgs
        .iter()
        .map(|m| (m.name.as_str(), m.data.get()))
        .collect();
    match insert(&mut *tx, stream, &pairs, meta, meta_json, actual).await {
        Ok(committed) => Ok(committed),
        // Only another process can append between our read and our insert.
        Err(e) if is_conflict(&e) => Err(ConcurrencyError {
            stream: stream.to_owned(),
            expected: expected.unwrap_or(actual),
            actual: actual + 1,
        }
        .into()),
        Err(e) => Err(err(e)),
    }
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

fn is_conflict(e: &sqlx::Error) -> bool {
    codec::is_unique_violation(e)
}

/// Validates a query: its stream pattern must be in the portable grammar (checked before
/// anything else, even when the query selects nothing).
pub(crate) fn validate_query(q: &Query) -> Result<(), StoreError> {
    if let Some(StreamMatch::Pattern(p)) = &q.stream {
        pattern::validate(p, "query", "/stream")?;
    }
    Ok(())
}

/// Builds the `SELECT` for `q`, with bound parameters only; `None` when it selects nothing.
pub(crate) fn select(q: &Query) -> Result<Option<QueryBuilder<Sqlite>>, StoreError> {
    validate_query(q)?;
    if matches!(&q.names, Some(n) if n.is_empty()) || q.limit == Some(0) {
        return Ok(None);
    }
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT ");
    qb.push(codec::EVENT_COLUMNS)
        .push(" FROM events WHERE 1 = 1");
    if let Some(m) = &q.stream {
        qb.push(" AND ");
        push_stream_match(&mut qb, "stream", m, "query", "/stream")?;
    }
    if let Some(names) = &q.names {
        let json = serde_json::to_string(names).map_err(|e| StoreError::backend("query", e))?;
        qb.push(" AND name IN (SELECT value FROM json_each(")
            .push_bind(json)
            .push("))");
    }
    if let Some(after) = q.after {
        qb.push(" AND id > ").push_bind(after);
    } else if let (true, Some(StreamMatch::Exact(stream))) = (q.with_snaps, &q.stream) {
        qb.push(" AND id >= COALESCE((SELECT MAX(id) FROM events WHERE stream = ")
            .push_bind(stream.clone())
            .push(" AND name = '")
            .push(SNAPSHOT_EVENT)
            .push("'), 0)");
    }
    if let Some(before) = q.before {
        qb.push(" AND id < ").push_bind(before);
    }
    if let Some(t) = q.created_after {
        qb.push(" AND created > ").push_bind(micros(t));
    }
    if let Some(t) = q.created_before {
        qb.push(" AND created < ").push_bind(micros_ceil(t));
    }
    if let Some(c) = &q.correlation {
        qb.push(" AND json_extract(meta, '$.correlation') = ")
            .push_bind(c.clone());
    }
    if !q.with_snaps {
        qb.push(" AND name <> '").push(SNAPSHOT_EVENT).push("'");
    }
    qb.push(if q.backward {
        " ORDER BY id DESC"
    } else {
        " ORDER BY id ASC"
    });
    if let Some(limit) = q.limit {
        qb.push(" LIMIT ").push_bind(codec::count(limit));
    }
    Ok(Some(qb))
}

/// Replaces each target's events with one seed event at version 0, in one transaction.
pub(crate) async fn truncate(
    conn: &mut SqliteConnection,
    targets: &[TruncateTarget],
) -> Result<HashMap<String, Truncated>, StoreError> {
    let err = backend("truncate");
    let mut seeds = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let meta_json =
            serde_json::to_string(&t.meta).map_err(|e| StoreError::backend("truncate", e))?;
        if let Some(s) = &t.snapshot {
            no_nul_json("truncate", &format!("/{i}/snapshot"), s.get())?;
        }
        no_nul_json("truncate", &format!("/{i}/meta"), &meta_json)?;
        seeds.push(meta_json);
    }
    let mut out = HashMap::new();
    if targets.is_empty() {
        return Ok(out);
    }
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
        .await
        .map_err(&err)?;
    for (t, meta_json) in targets.iter().zip(&seeds) {
        let deleted = sqlx::query("DELETE FROM events WHERE stream = ?")
            .bind(&t.stream)
            .execute(&mut *tx)
            .await
            .map_err(&err)?
            .rows_affected();
        if deleted == 0 {
            continue;
        }
        let (name, data) = match &t.snapshot {
            Some(s) => (SNAPSHOT_EVENT, s.get()),
            None => (TOMBSTONE_EVENT, "{}"),
        };
        let mut seeded = insert(&mut tx, &t.stream, &[(name, data)], &t.meta, meta_json, -1)
            .await
            .map_err(&err)?;
        let committed = seeded.pop().ok_or_else(|| {
            StoreError::backend("truncate", "the seed event was not inserted".to_owned())
        })?;
        out.insert(t.stream.clone(), Truncated { deleted, committed });
    }
    tx.commit().await.map_err(&err)?;
    Ok(out)
}

/// Deletes every event, subscription and checkpoint, and restarts ids at 1.
pub(crate) async fn drop_all(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let err = backend("drop");
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
        .await
        .map_err(&err)?;
    for sql in [
        "DELETE FROM events",
        "DELETE FROM streams",
        "DELETE FROM correlated",
        "DELETE FROM sqlite_sequence WHERE name = 'events'",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.map_err(&err)?;
    }
    tx.commit().await.map_err(&err)
}
