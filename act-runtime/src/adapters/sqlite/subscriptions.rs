//! The subscription table: subscribe, claim, ack, block, reset, unblock, listing.
//!
//! Every write runs in one `IMMEDIATE` transaction on the writer connection, so claims
//! never hand a row out twice: there is one writer, and a claim reads and leases its rows
//! atomically.

use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::codec::{self, STREAM_COLUMNS, backend, no_nul};
use super::pattern::{self, push_stream_match};
use crate::error::StoreError;
use crate::model::EventId;
use crate::ports::{Lease, StreamFilter, StreamPosition, Subscribed, Subscription};

/// Validates subscriptions: NUL characters, and sources outside the portable grammar (which
/// the drain could never read exactly, so they are refused up front).
pub(crate) fn validate_subs<'a>(
    subs: impl IntoIterator<Item = &'a Subscription>,
) -> Result<(), StoreError> {
    for (i, s) in subs.into_iter().enumerate() {
        no_nul("subscription", &format!("/{i}/stream"), &s.stream)?;
        if let Some(source) = &s.source {
            no_nul("subscription", &format!("/{i}/source"), source)?;
            if s.source_is_pattern {
                pattern::validate(source, "subscription", &format!("/{i}/source"))?;
            }
        }
    }
    Ok(())
}

/// Registers targets and raises the checkpoint, in one transaction.
pub(crate) fn subscribe(
    conn: &mut Connection,
    subs: &[Subscription],
    checkpoint: Option<EventId>,
) -> Result<Subscribed, StoreError> {
    validate_subs(subs)?;
    let err = backend("subscribe");
    let tx = immediate(conn, "subscribe")?;
    let subscribed = subscribe_in(&tx, subs, checkpoint)?;
    let watermark = tx
        .prepare_cached(WATERMARK_SQL)
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(&err)?;
    let checkpoint = tx
        .prepare_cached("SELECT at FROM correlated WHERE key = ''")
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(&err)?;
    tx.commit().map_err(&err)?;
    Ok(Subscribed {
        subscribed,
        watermark,
        checkpoint,
    })
}

/// Opens a `BEGIN IMMEDIATE` transaction (rolled back when dropped uncommitted).
pub(crate) fn immediate<'c>(
    conn: &'c mut Connection,
    operation: &'static str,
) -> Result<Transaction<'c>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend(operation))
}

/// Upserts `subs` (validated by the caller) and raises the checkpoint inside the caller's
/// transaction; returns how many rows were new.
pub(crate) fn subscribe_in(
    conn: &Connection,
    subs: &[Subscription],
    checkpoint: Option<EventId>,
) -> Result<usize, StoreError> {
    let err = backend("subscribe");
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO streams (stream, source, source_is_pattern, priority, correlated_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (stream) DO NOTHING",
        )
        .map_err(&err)?;
    // An existing row keeps the higher priority and mark, and takes the new source.
    let mut update = conn
        .prepare_cached(
            "UPDATE streams SET priority = max(priority, ?1), \
             correlated_at = CASE WHEN ?2 IS NULL THEN correlated_at \
                 WHEN correlated_at IS NULL THEN ?2 ELSE max(correlated_at, ?2) END, \
             source = ?3, source_is_pattern = ?4 \
             WHERE stream = ?5",
        )
        .map_err(&err)?;
    let mut subscribed = 0;
    for s in subs {
        let inserted = insert
            .execute(params![
                s.stream,
                s.source,
                s.source_is_pattern,
                s.priority,
                s.correlated_at
            ])
            .map_err(&err)?;
        if inserted > 0 {
            subscribed += 1;
            continue;
        }
        update
            .execute(params![
                s.priority,
                s.correlated_at,
                s.source,
                s.source_is_pattern,
                s.stream
            ])
            .map_err(&err)?;
    }
    if let Some(at) = checkpoint {
        conn.prepare_cached(
            "INSERT INTO correlated (key, at) VALUES ('', ?) \
             ON CONFLICT (key) DO UPDATE SET at = max(at, excluded.at)",
        )
        .and_then(|mut s| s.execute([at]))
        .map_err(&err)?;
    }
    Ok(subscribed)
}

/// The claimable rows (not blocked, with work: `at < correlated_at`, and not leased or with
/// an expired lease at `?1`, now in microseconds), minus the streams in the JSON array `?2`,
/// in one of three orders, up to `?3` rows. Each order is the key of a partial index on the
/// rows with work (see `schema.rs`): the query walks it and stops at the limit.
macro_rules! candidates_sql {
    ($order:literal) => {
        concat!(
            "SELECT stream FROM streams WHERE blocked = 0 AND correlated_at IS NOT NULL \
             AND at < correlated_at AND (leased_by IS NULL OR leased_until <= ?1) \
             AND stream NOT IN (SELECT value FROM json_each(?2)) ORDER BY ",
            $order,
            " LIMIT ?3"
        )
    };
}

/// The lagging frontier's candidates (index `streams_lagging`).
pub(super) const LAGGING_SQL: &str = candidates_sql!("priority DESC, at ASC, stream ASC");
/// The fairness reserve's candidates (index `streams_lowest`).
pub(super) const LOWEST_SQL: &str = candidates_sql!("at ASC, stream ASC");
/// The leading frontier's candidates (index `streams_leading`).
pub(super) const LEADING_SQL: &str = candidates_sql!("at DESC, stream ASC");
/// `max(at)` over every row (index `streams_at`).
pub(super) const WATERMARK_SQL: &str = "SELECT COALESCE(MAX(at), -1) FROM streams";

/// Selects up to `limit` eligible streams with `sql`, excluding `taken`.
fn candidates(
    conn: &Connection,
    sql: &'static str,
    now: i64,
    limit: usize,
    taken: &[String],
) -> rusqlite::Result<Vec<String>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let json = serde_json::to_string(taken).unwrap_or_else(|_| "[]".to_owned());
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![now, json, codec::count(limit)], |r| r.get(0))?;
    rows.collect()
}

/// Claims rows on both frontiers and leases them, in one transaction.
pub(crate) fn claim(
    conn: &mut Connection,
    lagging: usize,
    leading: usize,
    by: &str,
    lease: Duration,
) -> Result<Vec<Lease>, StoreError> {
    if lagging == 0 && leading == 0 {
        return Ok(Vec::new());
    }
    let err = backend("claim");
    let now = codec::micros(chrono::Utc::now());
    let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
    let fair = if lagging >= 2 {
        (lagging / 4).max(1)
    } else {
        0
    };
    let tx = immediate(conn, "claim")?;
    let mut lag = candidates(&tx, LAGGING_SQL, now, lagging - fair, &[]).map_err(&err)?;
    let reserve = candidates(&tx, LOWEST_SQL, now, fair, &lag).map_err(&err)?;
    lag.extend(reserve);
    let lead = candidates(&tx, LEADING_SQL, now, leading, &lag).map_err(&err)?;
    let mut leases = Vec::with_capacity(lag.len() + lead.len());
    {
        let mut update = tx
            .prepare_cached(&format!(
                "UPDATE streams SET leased_by = ?, leased_until = ?, retry = retry + 1 \
                 WHERE stream = ? RETURNING {STREAM_COLUMNS}"
            ))
            .map_err(&err)?;
        for (streams, lagging) in [(&lag, true), (&lead, false)] {
            for stream in streams {
                let position = update
                    .query_row(params![by, until, stream], codec::position)
                    .optional()
                    .map_err(&err)?
                    .ok_or_else(|| {
                        StoreError::backend("claim", format!("claimed stream `{stream}` vanished"))
                    })?;
                leases.push(codec::lease(position, lagging));
            }
        }
    }
    tx.commit().map_err(&err)?;
    Ok(leases)
}

/// Acks the leases still held by their holders.
pub(crate) fn ack(conn: &mut Connection, leases: &[Lease]) -> Result<Vec<Lease>, StoreError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let err = backend("ack");
    let tx = immediate(conn, "ack")?;
    let mut acked = Vec::new();
    for l in leases {
        let n = match l.due {
            // Deferred: the holder keeps the row until due; the retry count is the lease's
            // (the failures of the event it stopped at).
            Some(due) => tx
                .prepare_cached(
                    "UPDATE streams SET at = ?, retry = ?, leased_until = ? \
                     WHERE stream = ? AND leased_by = ?",
                )
                .and_then(|mut s| {
                    s.execute(params![l.at, l.retry, codec::micros(due), l.stream, l.by])
                }),
            None => tx
                .prepare_cached(
                    "UPDATE streams SET at = ?, retry = -1, leased_by = NULL, \
                     leased_until = NULL WHERE stream = ? AND leased_by = ?",
                )
                .and_then(|mut s| s.execute(params![l.at, l.stream, l.by])),
        }
        .map_err(&err)?;
        if n > 0 {
            acked.push(l.clone());
        } else {
            tracing::warn!(
                stream = %l.stream,
                by = %l.by,
                "ack dropped: the lease is not held by its holder any more"
            );
        }
    }
    tx.commit().map_err(&err)?;
    Ok(acked)
}

/// Blocks the leased rows still held by their holders and not yet blocked, moving each
/// row's watermark to its lease's `at` (the progress made before the failure).
pub(crate) fn block(
    conn: &mut Connection,
    leases: &[(Lease, String)],
) -> Result<Vec<StreamPosition>, StoreError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let err = backend("block");
    let tx = immediate(conn, "block")?;
    let mut blocked = Vec::new();
    {
        let mut update = tx
            .prepare_cached(&format!(
                "UPDATE streams SET blocked = 1, error = ?, at = ?, leased_by = NULL, \
                 leased_until = NULL WHERE stream = ? AND leased_by = ? AND blocked = 0 \
                 RETURNING {STREAM_COLUMNS}"
            ))
            .map_err(&err)?;
        for (l, error) in leases {
            let row = update
                .query_row(params![error, l.at, l.stream, l.by], codec::position)
                .optional()
                .map_err(&err)?;
            blocked.extend(row);
        }
    }
    tx.commit().map_err(&err)?;
    Ok(blocked)
}

/// Runs `update` on the rows named in `streams`; returns how many it changed.
fn update_named(
    conn: &Connection,
    operation: &'static str,
    update: &'static str,
    streams: &[String],
) -> Result<usize, StoreError> {
    if streams.is_empty() {
        return Ok(0);
    }
    let json = serde_json::to_string(streams).map_err(|e| StoreError::backend(operation, e))?;
    conn.execute(update, [json]).map_err(backend(operation))
}

/// Rewinds rows to `at = -1` and clears their blocks, errors and leases.
pub(crate) fn reset(conn: &Connection, streams: &[String]) -> Result<usize, StoreError> {
    update_named(
        conn,
        "reset",
        "UPDATE streams SET at = -1, retry = -1, blocked = 0, error = NULL, \
         leased_by = NULL, leased_until = NULL \
         WHERE stream IN (SELECT value FROM json_each(?))",
        streams,
    )
}

/// Unblocks blocked rows, keeping their watermark.
pub(crate) fn unblock(conn: &Connection, streams: &[String]) -> Result<usize, StoreError> {
    update_named(
        conn,
        "unblock",
        "UPDATE streams SET retry = -1, blocked = 0, error = NULL, \
         leased_by = NULL, leased_until = NULL \
         WHERE blocked = 1 AND stream IN (SELECT value FROM json_each(?))",
        streams,
    )
}

/// Lists rows by stream name.
pub(crate) fn query_streams(
    conn: &Connection,
    filter: &StreamFilter,
) -> Result<Vec<StreamPosition>, StoreError> {
    let err = backend("query_streams");
    let mut sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE 1 = 1");
    let mut params: Vec<Value> = Vec::new();
    if let Some(m) = &filter.stream {
        sql.push_str(" AND ");
        push_stream_match(
            &mut sql,
            &mut params,
            "stream",
            m,
            "stream filter",
            "/stream",
        )?;
    }
    if let Some(blocked) = filter.blocked {
        sql.push_str(" AND blocked = ?");
        params.push(Value::Integer(i64::from(blocked)));
    }
    if let Some(after) = &filter.after {
        sql.push_str(" AND stream > ?");
        params.push(Value::Text(after.clone()));
    }
    sql.push_str(" ORDER BY stream ASC LIMIT ?");
    params.push(Value::Integer(codec::count(filter.limit.unwrap_or(100))));
    let mut stmt = conn.prepare_cached(&sql).map_err(&err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), codec::position)
        .map_err(&err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(&err)
}
