//! Conversions between the port's records and SQLite values: times, JSON text, errors.
//!
//! Times are stored as `INTEGER` microseconds since the Unix epoch (UTC). That is exact for
//! every `DateTime<Utc>` at microsecond precision, orders and compares as numbers, and has no
//! text-format pitfalls (years before 0 or after 9999). Read them in SQL with
//! `strftime('%Y-%m-%dT%H:%M:%fZ', created / 1e6, 'unixepoch')`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::raw::{self, Run};
use crate::error::StoreError;
use crate::model::{Committed, EventMeta};
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

pub(crate) use crate::adapters::text::{no_nul, no_nul_json};

/// Maps a driver error for `operation`: a closed pool is a disposed store, anything else is a
/// backend failure.
pub(crate) fn backend(operation: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match e {
        sqlx::Error::PoolClosed => StoreError::Disposed,
        e => StoreError::backend(operation, e),
    }
}

/// The columns [`event`] reads, in order.
pub(crate) const EVENT_COLUMNS: &str = "id, name, data, stream, version, created, meta";

/// The last meta decoded while reading rows: the events of one commit share one meta text,
/// so they share one parsed [`EventMeta`] too.
#[derive(Default)]
pub(crate) struct MetaCache {
    last: Option<(String, Arc<EventMeta>)>,
}

impl MetaCache {
    fn get(&mut self, text: &str, operation: &'static str) -> Result<Arc<EventMeta>, StoreError> {
        if let Some((t, meta)) = &self.last
            && t == text
        {
            return Ok(Arc::clone(meta));
        }
        let meta = Arc::new(
            serde_json::from_str::<EventMeta>(text)
                .map_err(|e| StoreError::backend(operation, e))?,
        );
        self.last = Some((text.to_owned(), Arc::clone(&meta)));
        Ok(meta)
    }
}

/// Decodes an `events` row selected with [`EVENT_COLUMNS`].
pub(crate) fn event(row: &Run<'_, '_>, metas: &mut MetaCache) -> Result<Committed, StoreError> {
    const OP: &str = "query";
    let get = raw::backend(OP);
    let id = row.i64(0);
    let stream = row.text(3).map_err(&get)?.to_owned();
    let corrupt = |reason: String| StoreError::Corrupt {
        id,
        stream: stream.clone(),
        reason,
    };
    let data = row.text(2).map_err(|e| corrupt(format!("payload: {e}")))?;
    let data = RawValue::from_string(data.to_owned())
        .map_err(|e| corrupt(format!("payload is not JSON: {e}")))?;
    let meta = metas
        .get(row.text(6).map_err(|e| corrupt(format!("meta: {e}")))?, OP)
        .map_err(|e| corrupt(format!("meta: {e}")))?;
    Ok(Committed {
        id,
        name: row.text(1).map_err(&get)?.to_owned(),
        data,
        version: row.i64(4),
        created: from_micros(row.i64(5)),
        meta,
        stream,
    })
}

/// The columns [`position`] reads, in order.
pub(crate) const STREAM_COLUMNS: &str = "stream, source, source_is_pattern, at, retry, blocked, \
     error, priority, leased_by, leased_until, correlated_at";

/// Decodes a `streams` row selected with [`STREAM_COLUMNS`].
pub(crate) fn position(
    row: &SqliteRow,
    operation: &'static str,
) -> Result<StreamPosition, StoreError> {
    let get = backend(operation);
    let retry: i64 = row.try_get(4).map_err(&get)?;
    let priority: i64 = row.try_get(7).map_err(&get)?;
    let until: Option<i64> = row.try_get(9).map_err(&get)?;
    Ok(StreamPosition {
        stream: row.try_get(0).map_err(&get)?,
        source: row.try_get(1).map_err(&get)?,
        source_is_pattern: row.try_get::<i64, _>(2).map_err(&get)? != 0,
        at: row.try_get(3).map_err(&get)?,
        retry: clamp_i32(retry),
        blocked: row.try_get::<i64, _>(5).map_err(&get)? != 0,
        error: row.try_get(6).map_err(&get)?,
        priority: clamp_i32(priority),
        leased_by: row.try_get(8).map_err(&get)?,
        leased_until: until.map(from_micros),
        correlated_at: row.try_get(10).map_err(&get)?,
    })
}

/// Decodes a `streams` row selected with [`STREAM_COLUMNS`] (direct read).
pub(crate) fn position_raw(
    row: &Run<'_, '_>,
    operation: &'static str,
) -> Result<StreamPosition, StoreError> {
    let get = raw::backend(operation);
    Ok(StreamPosition {
        stream: row.text(0).map_err(&get)?.to_owned(),
        source: row.opt_text(1).map_err(&get)?,
        source_is_pattern: row.i64(2) != 0,
        at: row.i64(3),
        retry: clamp_i32(row.i64(4)),
        blocked: row.i64(5) != 0,
        error: row.opt_text(6).map_err(&get)?,
        priority: clamp_i32(row.i64(7)),
        leased_by: row.opt_text(8).map_err(&get)?,
        leased_until: row.opt_i64(9).map(from_micros),
        correlated_at: row.opt_i64(10),
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
