//! The subscription table: subscribe, claim, ack, block, reset, unblock, listing.
//!
//! Every write runs in one `IMMEDIATE` transaction on the writer connection, so claims
//! never hand a row out twice: there is one writer, and a claim reads and leases its rows
//! atomically.

use std::time::Duration;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::codec::{self, STREAM_COLUMNS, backend, no_nul};
use super::pattern::{self, push_stream_match};
use super::raw::{self, Arg, Db};
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
    cache: &mut raw::Cache,
    db: Db<'_>,
    subs: &[Subscription],
    checkpoint: Option<EventId>,
) -> Result<Subscribed, StoreError> {
    validate_subs(subs)?;
    let err = raw::backend("subscribe");
    raw::immediate(cache, db, "subscribe", |cache| {
        let subscribed = subscribe_in(cache, db, subs, checkpoint)?;
        let watermark = cache
            .get(db, WATERMARK_SQL)
            .and_then(|s| s.run(db, &[])?.scalar())
            .map_err(&err)?
            .unwrap_or(-1);
        let checkpoint = cache
            .get(db, "SELECT at FROM correlated WHERE key = ''")
            .and_then(|s| s.run(db, &[])?.scalar())
            .map_err(&err)?;
        Ok(Subscribed {
            subscribed,
            watermark,
            checkpoint,
        })
    })
}

/// Upserts `subs` (validated by the caller) and raises the checkpoint inside the caller's
/// transaction; returns how many rows were new.
pub(crate) fn subscribe_in(
    cache: &mut raw::Cache,
    db: Db<'_>,
    subs: &[Subscription],
    checkpoint: Option<EventId>,
) -> Result<usize, StoreError> {
    let err = raw::backend("subscribe");
    let mut subscribed = 0;
    for s in subs {
        let inserted = cache
            .execute(
                db,
                "INSERT INTO streams (stream, source, source_is_pattern, priority, correlated_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (stream) DO NOTHING",
                &[
                    Arg::Text(&s.stream),
                    s.source.as_ref().into(),
                    Arg::Int(i64::from(s.source_is_pattern)),
                    Arg::Int(i64::from(s.priority)),
                    s.correlated_at.into(),
                ],
            )
            .map_err(&err)?;
        if inserted > 0 {
            subscribed += 1;
            continue;
        }
        // An existing row keeps the higher priority and mark, and takes the new source.
        cache
            .execute(
                db,
                "UPDATE streams SET priority = max(priority, ?1), \
                 correlated_at = CASE WHEN ?2 IS NULL THEN correlated_at \
                     WHEN correlated_at IS NULL THEN ?2 ELSE max(correlated_at, ?2) END, \
                 source = ?3, source_is_pattern = ?4 \
                 WHERE stream = ?5",
                &[
                    Arg::Int(i64::from(s.priority)),
                    s.correlated_at.into(),
                    s.source.as_ref().into(),
                    Arg::Int(i64::from(s.source_is_pattern)),
                    Arg::Text(&s.stream),
                ],
            )
            .map_err(&err)?;
    }
    if let Some(at) = checkpoint {
        cache
            .execute(
                db,
                "INSERT INTO correlated (key, at) VALUES ('', ?) \
                 ON CONFLICT (key) DO UPDATE SET at = max(at, excluded.at)",
                &[Arg::Int(at)],
            )
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
    cache: &mut raw::Cache,
    db: Db<'_>,
    sql: &'static str,
    now: i64,
    limit: usize,
    taken: &[String],
) -> Result<Vec<String>, raw::RawError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let json = serde_json::to_string(taken).unwrap_or_else(|_| "[]".to_owned());
    let stmt = cache.get(db, sql)?;
    let mut run = stmt.run(
        db,
        &[
            Arg::Int(now),
            Arg::Text(&json),
            Arg::Int(codec::count(limit)),
        ],
    )?;
    let mut out = Vec::new();
    while run.step()? {
        out.push(run.text(0)?.to_owned());
    }
    Ok(out)
}

/// Claims rows on both frontiers and leases them, in one transaction.
pub(crate) fn claim(
    cache: &mut raw::Cache,
    db: Db<'_>,
    lagging: usize,
    leading: usize,
    by: &str,
    lease: Duration,
) -> Result<Vec<Lease>, StoreError> {
    if lagging == 0 && leading == 0 {
        return Ok(Vec::new());
    }
    let err = raw::backend("claim");
    let now = codec::micros(chrono::Utc::now());
    let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
    let fair = if lagging >= 2 {
        (lagging / 4).max(1)
    } else {
        0
    };
    raw::immediate(cache, db, "claim", |cache| {
        let mut lag = candidates(cache, db, LAGGING_SQL, now, lagging - fair, &[]).map_err(&err)?;
        let reserve = candidates(cache, db, LOWEST_SQL, now, fair, &lag).map_err(&err)?;
        lag.extend(reserve);
        let lead = candidates(cache, db, LEADING_SQL, now, leading, &lag).map_err(&err)?;
        let mut leases = Vec::with_capacity(lag.len() + lead.len());
        let update = cache
            .get(
                db,
                "UPDATE streams SET leased_by = ?, leased_until = ?, retry = retry + 1 \
                 WHERE stream = ? RETURNING stream, source, source_is_pattern, at, retry, \
                 blocked, error, priority, leased_by, leased_until, correlated_at",
            )
            .map_err(&err)?;
        for (streams, lagging) in [(&lag, true), (&lead, false)] {
            for stream in streams {
                let mut run = update
                    .run(db, &[Arg::Text(by), Arg::Int(until), Arg::Text(stream)])
                    .map_err(&err)?;
                if !run.step().map_err(&err)? {
                    return Err(StoreError::backend(
                        "claim",
                        format!("claimed stream `{stream}` vanished"),
                    ));
                }
                let position = codec::position_raw(&run, "claim")?;
                // Finish the statement before the next one.
                while run.step().map_err(&err)? {}
                leases.push(codec::lease(position, lagging));
            }
        }
        Ok(leases)
    })
}

/// Acks the leases still held by their holders.
pub(crate) fn ack(
    cache: &mut raw::Cache,
    db: Db<'_>,
    leases: &[Lease],
) -> Result<Vec<Lease>, StoreError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let err = raw::backend("ack");
    raw::immediate(cache, db, "ack", |cache| {
        let mut acked = Vec::new();
        for l in leases {
            let n = match l.due {
                // Deferred: the holder keeps the row until due; the retry count is the
                // lease's (the failures of the event it stopped at).
                Some(due) => cache.execute(
                    db,
                    "UPDATE streams SET at = ?, retry = ?, leased_until = ? \
                     WHERE stream = ? AND leased_by = ?",
                    &[
                        Arg::Int(l.at),
                        Arg::Int(i64::from(l.retry)),
                        Arg::Int(codec::micros(due)),
                        Arg::Text(&l.stream),
                        Arg::Text(&l.by),
                    ],
                ),
                None => cache.execute(
                    db,
                    "UPDATE streams SET at = ?, retry = -1, leased_by = NULL, \
                     leased_until = NULL WHERE stream = ? AND leased_by = ?",
                    &[Arg::Int(l.at), Arg::Text(&l.stream), Arg::Text(&l.by)],
                ),
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
        Ok(acked)
    })
}

/// Blocks the leased rows still held by their holders and not yet blocked, moving each
/// row's watermark to its lease's `at` (the progress made before the failure).
pub(crate) async fn block(
    conn: &mut SqliteConnection,
    leases: &[(Lease, String)],
) -> Result<Vec<StreamPosition>, StoreError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let err = backend("block");
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
        .await
        .map_err(&err)?;
    let sql = format!(
        "UPDATE streams SET blocked = 1, error = ?, at = ?, leased_by = NULL, \
         leased_until = NULL WHERE stream = ? AND leased_by = ? AND blocked = 0 \
         RETURNING {STREAM_COLUMNS}"
    );
    let mut blocked = Vec::new();
    for (l, error) in leases {
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(error)
            .bind(l.at)
            .bind(&l.stream)
            .bind(&l.by)
            .fetch_optional(&mut *tx)
            .await
            .map_err(&err)?;
        if let Some(row) = row {
            blocked.push(codec::position(&row, "block")?);
        }
    }
    tx.commit().await.map_err(&err)?;
    Ok(blocked)
}

/// Runs `update` on the rows named in `streams`; returns how many it changed.
async fn update_named(
    conn: &mut SqliteConnection,
    operation: &'static str,
    update: &'static str,
    streams: &[String],
) -> Result<usize, StoreError> {
    if streams.is_empty() {
        return Ok(0);
    }
    let err = backend(operation);
    let json = serde_json::to_string(streams).map_err(|e| StoreError::backend(operation, e))?;
    let n = sqlx::query(update)
        .bind(json)
        .execute(&mut *conn)
        .await
        .map_err(&err)?
        .rows_affected();
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Rewinds rows to `at = -1` and clears their blocks, errors and leases.
pub(crate) async fn reset(
    conn: &mut SqliteConnection,
    streams: &[String],
) -> Result<usize, StoreError> {
    update_named(
        conn,
        "reset",
        "UPDATE streams SET at = -1, retry = -1, blocked = 0, error = NULL, \
         leased_by = NULL, leased_until = NULL \
         WHERE stream IN (SELECT value FROM json_each(?))",
        streams,
    )
    .await
}

/// Unblocks blocked rows, keeping their watermark.
pub(crate) async fn unblock(
    conn: &mut SqliteConnection,
    streams: &[String],
) -> Result<usize, StoreError> {
    update_named(
        conn,
        "unblock",
        "UPDATE streams SET retry = -1, blocked = 0, error = NULL, \
         leased_by = NULL, leased_until = NULL \
         WHERE blocked = 1 AND stream IN (SELECT value FROM json_each(?))",
        streams,
    )
    .await
}

/// Lists rows by stream name.
pub(crate) async fn query_streams(
    conn: &mut SqliteConnection,
    filter: &StreamFilter,
) -> Result<Vec<StreamPosition>, StoreError> {
    let err = backend("query_streams");
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT ");
    qb.push(STREAM_COLUMNS).push(" FROM streams WHERE 1 = 1");
    if let Some(m) = &filter.stream {
        qb.push(" AND ");
        push_stream_match(&mut qb, "stream", m, "stream filter", "/stream")?;
    }
    if let Some(blocked) = filter.blocked {
        qb.push(" AND blocked = ").push_bind(i64::from(blocked));
    }
    if let Some(after) = &filter.after {
        qb.push(" AND stream > ").push_bind(after.clone());
    }
    qb.push(" ORDER BY stream ASC LIMIT ")
        .push_bind(codec::count(filter.limit.unwrap_or(100)));
    qb.build()
        .fetch_all(&mut *conn)
        .await
        .map_err(&err)?
        .iter()
        .map(|r| codec::position(r, "query_streams"))
        .collect()
}
