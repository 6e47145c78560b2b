//! Conversions between the port's records and PostgreSQL values: errors, NUL checks, the
//! portable stream-pattern grammar as `LIKE`, times and row decoding.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::{StoreError, ValidationError};
use crate::model::Committed;
use crate::ports::pattern::{Pattern, Token};
use crate::ports::{Lease, StreamMatch, StreamPosition};

/// SQLSTATEs of values PostgreSQL refuses: `22P05` untranslatable character (`\u0000` in
/// `jsonb`), `22021` a NUL byte in text, `22P02` invalid text representation (bad JSON),
/// `54000` a value too large, `22003` a number out of range (beyond `numeric` in `jsonb`).
const REFUSED_VALUES: &[&str] = &["22P05", "22021", "22P02", "54000", "22003"];
/// SQLSTATEs worth one more try: deadlock, serialization failure.
const TRANSIENT: &[&str] = &["40P01", "40001"];

/// The SQLSTATE of a database error.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Whether `e` is a deadlock or serialization failure (the statement can be retried).
pub(crate) fn is_transient(e: &sqlx::Error) -> bool {
    sqlstate(e).is_some_and(|c| TRANSIENT.contains(&c.as_str()))
}

/// Maps a driver error for `operation`: a closed pool is a disposed store, anything else is a
/// backend failure.
pub(crate) fn backend(operation: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match e {
        sqlx::Error::PoolClosed => StoreError::Disposed,
        e => StoreError::backend(operation, e),
    }
}

/// Like [`backend`], but a value PostgreSQL refuses is [`StoreError::Invalid`] naming
/// `target` (a stream) rather than a driver error.
pub(crate) fn refused<'a>(
    operation: &'static str,
    target: &'a str,
) -> impl Fn(sqlx::Error) -> StoreError + 'a {
    move |e| match sqlstate(&e) {
        Some(code) if REFUSED_VALUES.contains(&code.as_str()) => ValidationError::new(
            format!("{operation} on stream `{target}`"),
            "",
            format!("PostgreSQL refused a value: {e}"),
        )
        .into(),
        _ => backend(operation)(e),
    }
}

pub(crate) use crate::adapters::text::{no_nul, no_nul_json};

/// Text for a column that must accept anything (error messages): NUL becomes U+FFFD.
pub(crate) fn lossless_enough(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

/// `t` rounded down to the microsecond (what `timestamptz` keeps).
pub(crate) fn floor_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// `t` rounded up to the microsecond (for exclusive upper bounds).
pub(crate) fn ceil_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = floor_micros(t);
    if floor == t {
        t
    } else {
        floor + chrono::Duration::microseconds(1)
    }
}

/// Microseconds from now until `t` (negative when `t` is past), for times converted to the
/// database clock.
pub(crate) fn micros_until(t: DateTime<Utc>) -> i64 {
    (t - Utc::now())
        .num_microseconds()
        .unwrap_or(if t > Utc::now() {
            i64::MAX / 2
        } else {
            i64::MIN / 2
        })
}

/// A `usize` as a PostgreSQL `bigint` (limits), saturating.
pub(crate) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The SQL condition "a column matches `m`".
pub(crate) enum Cond {
    /// Matches nothing.
    Nothing,
    /// `column = $`
    Eq(String),
    /// `column LIKE $`
    Like(String),
}

/// The condition for `m`; a pattern outside the portable grammar is
/// [`StoreError::Invalid`] (`target` and `path` name the input).
pub(crate) fn stream_match(m: &StreamMatch, target: &str, path: &str) -> Result<Cond, StoreError> {
    Ok(match m {
        StreamMatch::Exact(s) if s.contains('\0') => Cond::Nothing,
        StreamMatch::Exact(s) => Cond::Eq(s.clone()),
        StreamMatch::Pattern(p) => {
            let like = to_like(p).map_err(|e| ValidationError::new(target, path, e))?;
            // No stored name holds a NUL (commit and subscribe refuse them).
            if p.contains('\0') {
                Cond::Nothing
            } else {
                Cond::Like(like)
            }
        }
    })
}

/// Checks `pattern` is in the portable grammar.
pub(crate) fn validate_pattern(pattern: &str, target: &str, path: &str) -> Result<(), StoreError> {
    to_like(pattern)
        .map(drop)
        .map_err(|e| ValidationError::new(target, path, e).into())
}

/// Translates a portable pattern ([`StreamMatch::Pattern`]) to a `LIKE` pattern with the
/// default escape `\`, or says why it cannot. On a `COLLATE "C"` column the match is exact
/// and case-sensitive; `_` matches one character, line breaks included, like the oracle's
/// `.` (`dot_matches_new_line`).
///
/// | pattern | LIKE    | | pattern | LIKE      |
/// |---------|---------|-|---------|-----------|
/// | `abc`   | `%abc%` | | `a.c`   | `%a_c%`   |
/// | `^abc`  | `abc%`  | | `a.*c`  | `%a%c%`   |
/// | `abc$`  | `%abc`  | | `a\*`   | `%a*%`    |
/// | `^abc$` | `abc`   | | `a_b%`  | `%a\_b\%%`|
pub(crate) fn to_like(pattern: &str) -> Result<String, String> {
    let tokens = Pattern::parse(pattern)?.whole();
    let mut out = String::with_capacity(pattern.len() + 2);
    for t in tokens {
        match t {
            Token::AnyRun => out.push('%'),
            Token::AnyOne => out.push('_'),
            Token::Literal(c) => push_literal(&mut out, c),
        }
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if matches!(c, '%' | '_' | '\\') {
        out.push('\\');
    }
    out.push(c);
}

/// The columns [`event`] reads, in order: id, name, data, version, created, then the stream
/// unless the query reads one exact stream (the decoder knows it), then the meta unless the
/// query skips it. The server renders and sends only what is read (even a `NULL`
/// placeholder column cost about 3 % of reading 10,000 events).
pub(crate) fn event_columns(skip_meta: bool, one_stream: bool) -> String {
    let mut columns = String::from("id, name, data::text, version, created");
    if !one_stream {
        columns.push_str(", stream");
    }
    if !skip_meta {
        columns.push_str(", meta::text");
    }
    columns
}

pub(crate) use crate::adapters::meta::MetaCache;

/// Decodes an events row selected with [`event_columns`] (`stream` is the stream when the
/// query read one exact stream); a row whose payload or meta does not decode is
/// [`StoreError::Corrupt`].
pub(crate) fn event(
    row: &PgRow,
    metas: &mut MetaCache,
    stream: Option<&str>,
) -> Result<Committed, StoreError> {
    let get = backend("query");
    // The columns' types are fixed by the select list: decode without re-checking them
    // (a value that does not decode is still an error).
    let id: i64 = row.try_get_unchecked(0).map_err(&get)?;
    // After the five fixed columns: the stream when it was selected, then the meta.
    let (stream, meta_column) = match stream {
        Some(s) => (s.to_owned(), 5),
        None => (row.try_get_unchecked(5).map_err(&get)?, 6),
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        id,
        stream: stream.clone(),
        reason,
    };
    let data: String = row
        .try_get_unchecked(2)
        .map_err(|e| corrupt(format!("payload: {e}")))?;
    let data =
        RawValue::from_string(data).map_err(|e| corrupt(format!("payload is not JSON: {e}")))?;
    let meta = metas
        .next(|| row.try_get_unchecked::<&str, _>(meta_column))
        .map_err(|e| corrupt(format!("meta: {e}")))?;
    let version: i32 = row.try_get_unchecked(3).map_err(&get)?;
    let created: DateTime<Utc> = row.try_get_unchecked(4).map_err(&get)?;
    Ok(Committed {
        id,
        name: row.try_get_unchecked(1).map_err(&get)?,
        data,
        version: i64::from(version),
        created,
        meta,
        stream,
    })
}

/// The columns [`position`] reads, in order.
pub(crate) const STREAM_COLUMNS: &str = "stream, source, source_is_pattern, at, retry, blocked, \
     error, priority, leased_by, leased_until, correlated_at";

/// Decodes a subscription row selected with [`STREAM_COLUMNS`].
pub(crate) fn position(row: &PgRow, operation: &'static str) -> Result<StreamPosition, StoreError> {
    let get = backend(operation);
    Ok(StreamPosition {
        stream: row.try_get(0).map_err(&get)?,
        source: row.try_get(1).map_err(&get)?,
        source_is_pattern: row.try_get(2).map_err(&get)?,
        at: row.try_get(3).map_err(&get)?,
        retry: row.try_get(4).map_err(&get)?,
        blocked: row.try_get(5).map_err(&get)?,
        error: row.try_get(6).map_err(&get)?,
        priority: row.try_get(7).map_err(&get)?,
        leased_by: row.try_get(8).map_err(&get)?,
        leased_until: row.try_get(9).map_err(&get)?,
        correlated_at: row.try_get(10).map_err(&get)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn like(p: &str) -> String {
        to_like(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn translation_table() {
        let table = [
            ("", "%"),
            ("^", "%"),
            ("$", "%"),
            ("^$", ""),
            ("abc", "%abc%"),
            ("^abc", "abc%"),
            ("abc$", "%abc"),
            ("^abc$", "abc"),
            ("a.c", "%a_c%"),
            ("a.*c", "%a%c%"),
            (".*", "%"),
            ("^.*$", "%"),
            (".*.*", "%"),
            ("^..$", "__"),
            ("a_b%", "%a\\_b\\%%"),
            ("%", "%\\%%"),
            ("^%.*", "\\%%"),
            (r"a\.b", "%a.b%"),
            (r"a\*", "%a*%"),
            (r"\\", "%\\\\%"),
            (r"^\\.*", "\\\\%"),
            ("ünï.ç", "%ünï_ç%"),
        ];
        for (pattern, expected) in table {
            assert_eq!(like(pattern), expected, "pattern {pattern:?}");
        }
    }

    #[test]
    fn rejects_what_like_cannot_express() {
        for p in [
            "[a-z]", "a+", "a?", "ab*", "*", "a|b", "(a)", "a{2}", "}", "]", r"\d", r"\w", r"\b",
            r"\<", r"\", "a^b", "a$b", "^^a", "a$$", ".**", ".*?", r"\ ",
        ] {
            let err = to_like(p).expect_err(p);
            assert!(err.contains(&format!("`{p}`")), "{p}: {err}");
        }
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
