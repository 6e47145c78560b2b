//! The event log: commit, query, truncate.

use std::collections::HashMap;

use std::sync::Arc;

use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::codec::{self, backend, micros, micros_ceil, no_nul, no_nul_json};
use super::pattern::{self, Cond};
use super::raw::{self, Arg, Db, Param};
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

/// Inserts `msgs` after `version` at time `created` (whole microseconds), returning the
/// committed events in version order.
async fn insert(
    conn: &mut SqliteConnection,
    stream: &str,
    msgs: &[(&str, &str)],
    meta: &EventMeta,
    meta_json: &str,
    version: Version,
    created: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Committed>, sqlx::Error> {
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

/// The stream's current version (`-1` when empty).
const VERSION_SQL: &str = "SELECT COALESCE(MAX(version), -1) FROM events WHERE stream = ?";
/// One event.
const INSERT_SQL: &str = "INSERT INTO events (name, data, stream, version, created, meta) \
     VALUES (?, ?, ?, ?, ?, ?)";

/// Appends `msgs` to `stream` inside the caller's `IMMEDIATE` transaction: reads the
/// version, checks it, and inserts one row per message with cached statements.
pub(crate) fn commit_in(
    cache: &mut raw::Cache,
    db: Db<'_>,
    stream: &str,
    msgs: &[Message],
    meta: &EventMeta,
    meta_json: &str,
    expected: Option<Version>,
) -> Result<Vec<Committed>, StoreError> {
    let err = raw::backend("commit");
    let actual = cache
        .get(db, VERSION_SQL)
        .and_then(|s| s.run(db, &[stream.into()])?.scalar())
        .map_err(&err)?
        .unwrap_or(-1);
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
    let created = codec::now();
    let created_us = micros(created);
    let shared = Arc::new(meta.clone());
    let insert = cache.get(db, INSERT_SQL).map_err(&err)?;
    let mut committed = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let version = actual + 1 + i as Version;
        let args = [
            Arg::Text(&m.name),
            Arg::Text(m.data.get()),
            Arg::Text(stream),
            Arg::Int(version),
            Arg::Int(created_us),
            Arg::Text(meta_json),
        ];
        match insert.run(db, &args).and_then(raw::Run::execute) {
            Ok(_) => {}
            // Only another process can append between our read and our insert.
            Err(e) if e.is_unique_violation() => {
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
            id: db.last_insert_rowid(),
            name: m.name.clone(),
            data: m.data.clone(),
            stream: stream.to_owned(),
            version,
            created,
            meta: Arc::clone(&shared),
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

/// The `SELECT` for `q` and its parameters; `None` when it selects nothing.
pub(crate) fn select(q: &Query) -> Result<Option<(String, Vec<Param>)>, StoreError> {
    validate_query(q)?;
    if matches!(&q.names, Some(n) if n.is_empty()) || q.limit == Some(0) {
        return Ok(None);
    }
    let mut sql = format!("SELECT {} FROM events WHERE 1 = 1", codec::EVENT_COLUMNS);
    let mut params = Vec::new();
    // Within one stream, versions increase with ids: ordering by version walks the
    // `(stream, version)` index instead of sorting the rows in a temporary b-tree.
    let mut order = "id";
    if let Some(m) = &q.stream {
        match pattern::stream_match(m, "query", "/stream")? {
            Cond::Nothing => sql.push_str(" AND 0"),
            Cond::Eq(s) => {
                order = "version";
                sql.push_str(" AND stream = ?");
                params.push(Param::Text(s));
            }
            Cond::Glob(g) => {
                sql.push_str(" AND stream GLOB ?");
                params.push(Param::Text(g));
            }
        }
    }
    if let Some(names) = &q.names {
        let json = serde_json::to_string(names).map_err(|e| StoreError::backend("query", e))?;
        sql.push_str(" AND name IN (SELECT value FROM json_each(?))");
        params.push(Param::Text(json));
    }
    if let Some(after) = q.after {
        sql.push_str(" AND id > ?");
        params.push(Param::Int(after));
    } else if let (true, Some(StreamMatch::Exact(stream))) = (q.with_snaps, &q.stream) {
        sql.push_str(" AND id >= COALESCE((SELECT MAX(id) FROM events WHERE stream = ?");
        sql.push_str(" AND name = '");
        sql.push_str(SNAPSHOT_EVENT);
        sql.push_str("'), 0)");
        params.push(Param::Text(stream.clone()));
    }
    if let Some(before) = q.before {
        sql.push_str(" AND id < ?");
        params.push(Param::Int(before));
    }
    if let Some(t) = q.created_after {
        sql.push_str(" AND created > ?");
        params.push(Param::Int(micros(t)));
    }
    if let Some(t) = q.created_before {
        sql.push_str(" AND created < ?");
        params.push(Param::Int(micros_ceil(t)));
    }
    if let Some(c) = &q.correlation {
        sql.push_str(" AND json_extract(meta, '$.correlation') = ?");
        params.push(Param::Text(c.clone()));
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
        params.push(Param::Int(codec::count(limit)));
    }
    Ok(Some((sql, params)))
}

/// Runs `q` on `db`, handing each event to `sink`; returns how many.
pub(crate) fn query(
    cache: &mut raw::Cache,
    db: Db<'_>,
    q: &Query,
    sink: &mut (dyn for<'e> FnMut(&'e Committed) + Send),
) -> Result<usize, StoreError> {
    let Some((sql, params)) = select(q)? else {
        return Ok(0);
    };
    let err = raw::backend("query");
    let stmt = cache.get(db, &sql).map_err(&err)?;
    let args: Vec<Arg<'_>> = params.iter().map(Arg::from).collect();
    let mut run = stmt.run(db, &args).map_err(&err)?;
    let mut metas = codec::MetaCache::default();
    let mut n = 0;
    while run.step().map_err(&err)? {
        sink(&codec::event(&run, &mut metas)?);
        n += 1;
    }
    Ok(n)
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
    // One time for every seed of the call, as one PostgreSQL transaction's `now()`.
    let created = codec::now();
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
        let mut seeded = insert(
            &mut tx,
            &t.stream,
            &[(name, data)],
            &t.meta,
            meta_json,
            -1,
            created,
        )
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
