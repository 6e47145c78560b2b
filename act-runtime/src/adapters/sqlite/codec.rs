//! Conversions between the port's records and SQLite values: times, JSON text, errors.
//!
//! Times are stored as `INTEGER` microseconds since the Unix epoch (UTC). That is exact for
//! every `DateTime<Utc>` at microsecond precision, orders and compares as numbers, and has no
//! text-format pitfalls (years before 0 or after 9999). Read them in SQL with
//! `strftime('%Y-%m-%dT%H:%M:%fZ', created / 1e6, 'unixepoch')`.

use chrono::{DateTime, Utc};
use rusqlite::Row;
use serde_json::value::RawValue;

use crate::error::StoreError;
use crate::model::Committed;
use crate::ports::{Lease, StreamPosition};

/// `t` as microseconds since the epoch, rounded down.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// `t` as microseconds since the epoch, rounded up (for exclusive upper bounds).
pub(crate) fn micros_ceil(t: DateTime<Utc>) -> i64 {
    let floor = t.timestamp_micros();
    if t.timestamp_subsec_nanos().is_multiple_of(1_000) {
        floor
    } else {
        floor.saturating_add(1)
    }
}

/// The instant `us` microseconds after the epoch, clamped to chrono's range.
pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(if us < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// Now, truncated to the microsecond (what the store can keep exactly).
pub(crate) fn now() -> DateTime<Utc> {
    from_micros(micros(Utc::now()))
}

pub(crate) use crate::adapters::text::{no_nul, no_nul_json, numbers_fit};

/// Maps an SQLite error for `operation`.
pub(crate) fn backend(operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(operation, e)
}

/// Whether `e` is a `UNIQUE` or `PRIMARY KEY` constraint violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// The columns [`event`] reads, in order (id, name, data, stream, version, created, meta),
/// as a query needs them: without the meta when it skips it, and without the stream when it
/// reads one exact stream (the decoder knows it).
pub(crate) fn event_columns(skip_meta: bool, one_stream: bool) -> String {
    format!(
        "id, name, data, {}, version, created, {}",
        if one_stream { "NULL" } else { "stream" },
        if skip_meta { "NULL" } else { "meta" }
    )
}

pub(crate) use crate::adapters::meta::MetaCache;

/// Decodes an `events` row selected with [`event_columns`] (`stream` is the stream when
/// the query read one exact stream): a payload or meta that is not JSON is
/// [`StoreError::Corrupt`], naming the event.
pub(crate) fn event(
    row: &Row<'_>,
    metas: &mut MetaCache,
    stream: Option<&str>,
) -> Result<Committed, StoreError> {
    const OP: &str = "query";
    let get = backend(OP);
    let id: i64 = row.get(0).map_err(&get)?;
    let stream: String = match stream {
        Some(s) => s.to_owned(),
        None => row.get(3).map_err(&get)?,
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        id,
        stream: stream.clone(),
        reason,
    };
    let data = text(row, 2).map_err(|e| corrupt(format!("payload: {e}")))?;
    let data = RawValue::from_string(data.to_owned())
        .map_err(|e| corrupt(format!("payload is not JSON: {e}")))?;
    let meta = metas
        .next(|| text(row, 6))
        .map_err(|e| corrupt(format!("meta: {e}")))?;
    Ok(Committed {
        id,
        name: row.get(1).map_err(&get)?,
        data,
        version: row.get(4).map_err(&get)?,
        created: from_micros(row.get(5).map_err(&get)?),
        meta,
        stream,
    })
}

/// Column `i` as text, borrowed from the row.
fn text<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r str, rusqlite::types::FromSqlError> {
    row.get_ref(i)
        .map_err(|e| rusqlite::types::FromSqlError::Other(e.into()))?
        .as_str()
}

/// The columns [`position`] reads, in order.
pub(crate) const STREAM_COLUMNS: &str = "stream, source, source_is_pattern, at, retry, blocked, \
     error, priority, leased_by, leased_until, correlated_at";

/// Decodes a `streams` row selected with [`STREAM_COLUMNS`].
pub(crate) fn position(row: &Row<'_>) -> rusqlite::Result<StreamPosition> {
    Ok(StreamPosition {
        stream: row.get(0)?,
        source: row.get(1)?,
        source_is_pattern: row.get::<_, i64>(2)? != 0,
        at: row.get(3)?,
        retry: clamp_i32(row.get(4)?),
        blocked: row.get::<_, i64>(5)? != 0,
        error: row.get(6)?,
        priority: clamp_i32(row.get(7)?),
        leased_by: row.get(8)?,
        leased_until: row.get::<_, Option<i64>>(9)?.map(from_micros),
        correlated_at: row.get(10)?,
    })
}

/// The lease a claimed row hands out.
pub(crate) fn lease(p: StreamPosition, lagging: bool) -> Lease {
    Lease {
        stream: p.stream,
        source: p.source,
        source_is_pattern: p.source_is_pattern,
        at: p.at,
        by: p.leased_by.unwrap_or_default(),
        retry: p.retry,
        lagging,
        due: None,
    }
}

fn clamp_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

/// A `usize` count as an SQLite integer (`LIMIT`), saturating.
pub(crate) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn micros_round_trip_exactly() {
        for t in [
            Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap()
                + chrono::Duration::microseconds(999_999),
            Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::microseconds(1),
            Utc.with_ymd_and_hms(-200, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(12_000, 1, 1, 0, 0, 0).unwrap(),
            now(),
        ] {
            assert_eq!(from_micros(micros(t)), t);
            assert_eq!(micros_ceil(t), micros(t));
        }
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(1_500);
        assert_eq!(micros_ceil(t), micros(t) + 1);
        let before_epoch = Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap()
            + chrono::Duration::nanoseconds(500);
        assert!(from_micros(micros(before_epoch)) <= before_epoch);
        assert!(from_micros(micros_ceil(before_epoch)) > before_epoch);
        assert_eq!(from_micros(i64::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(from_micros(i64::MIN), DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn nul_in_json_text() {
        assert!(no_nul_json("e", "", r#"{"a":"x"}"#).is_ok());
        assert!(no_nul_json("e", "", r#"{"a":"\u0000"}"#).is_err());
        assert!(no_nul_json("e", "", r#"{"a":"\\u0000"}"#).is_ok());
        assert!(no_nul_json("e", "", r#"{"a":"\\\u0000"}"#).is_err());
        assert!(no_nul_json("e", "", "{\"a\":\"\0\"}").is_err());
    }
}
