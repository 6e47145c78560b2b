//! The schema: three tables with fixed names (one database file per tenant), created and
//! upgraded by [`seed`] idempotently and additively.
//!
//! * `events`: the log. `id` is `AUTOINCREMENT`, so ids are never reused, even after a
//!   truncate. `data` and `meta` are JSON text, `created` is microseconds since the epoch.
//! * `streams`: the subscription table the reaction pipeline claims from. Its partial
//!   indexes hold only the rows with work (`blocked = 0 AND at < correlated_at`), one per
//!   claim order (lagging: `priority DESC, at, stream`; the fairness reserve: `at, stream`;
//!   leading: `at DESC, stream`), so a claim walks the rows it takes in order and stops at
//!   its limit instead of sorting every pending row; `streams_at` answers `MAX(at)`.
//! * `correlated`: the durable correlation checkpoint (the `''` row).

use std::collections::HashSet;

use rusqlite::{Connection, TransactionBehavior};

use super::codec::backend;
use crate::error::StoreError;

/// A table: its name, the columns an upgrade can add (with the declaration `ALTER TABLE ADD
/// COLUMN` accepts), the statements that create it and its indexes, and the indexes of
/// earlier versions it no longer uses (dropped on seed; only ever indexes, never data).
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, &'static str)],
    create: &'static str,
    indexes: &'static [&'static str],
    obsolete: &'static [&'static str],
}

const TABLES: &[Table] = &[
    Table {
        name: "events",
        columns: &[
            ("name", "TEXT NOT NULL DEFAULT ''"),
            ("data", "TEXT NOT NULL DEFAULT 'null'"),
            ("stream", "TEXT NOT NULL DEFAULT ''"),
            ("version", "INTEGER NOT NULL DEFAULT 0"),
            ("created", "INTEGER NOT NULL DEFAULT 0"),
            (
                "meta",
                r#"TEXT NOT NULL DEFAULT '{"correlation":"","causation":{},"actor":{"id":"","name":""}}'"#,
            ),
        ],
        create: "CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            data TEXT NOT NULL,
            stream TEXT NOT NULL,
            version INTEGER NOT NULL,
            created INTEGER NOT NULL,
            meta TEXT NOT NULL
        )",
        indexes: &[
            "CREATE UNIQUE INDEX IF NOT EXISTS events_stream_version ON events (stream, version)",
            "CREATE INDEX IF NOT EXISTS events_correlation \
             ON events (json_extract(meta, '$.correlation'))",
            "CREATE INDEX IF NOT EXISTS events_snapshots ON events (stream, id) \
             WHERE name = '__snapshot__'",
        ],
        // Each index costs every commit a page of the write-ahead log. `(created, id)` (about
        // an eighth of a commit's time) sped up only queries by time, and `(name)` (about a
        // fifth) only queries by event name over the whole log; both scan in id order
        // instead, as on PostgreSQL, which has neither.
        obsolete: &["events_created_id", "events_name"],
    },
    Table {
        name: "streams",
        columns: &[
            ("source", "TEXT"),
            ("source_is_pattern", "INTEGER NOT NULL DEFAULT 0"),
            ("at", "INTEGER NOT NULL DEFAULT -1"),
            ("retry", "INTEGER NOT NULL DEFAULT -1"),
            ("blocked", "INTEGER NOT NULL DEFAULT 0"),
            ("error", "TEXT"),
            ("leased_by", "TEXT"),
            ("leased_until", "INTEGER"),
            ("priority", "INTEGER NOT NULL DEFAULT 0"),
            ("correlated_at", "INTEGER"),
        ],
        create: "CREATE TABLE IF NOT EXISTS streams (
            stream TEXT PRIMARY KEY NOT NULL,
            source TEXT,
            source_is_pattern INTEGER NOT NULL DEFAULT 0,
            at INTEGER NOT NULL DEFAULT -1,
            retry INTEGER NOT NULL DEFAULT -1,
            blocked INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            leased_by TEXT,
            leased_until INTEGER,
            priority INTEGER NOT NULL DEFAULT 0,
            correlated_at INTEGER
        )",
        // The claim's `WHERE` repeats `blocked = 0 AND at < correlated_at` word for word:
        // SQLite uses a partial index only when the query implies its condition.
        indexes: &[
            "CREATE INDEX IF NOT EXISTS streams_lagging ON streams (priority DESC, at, stream) \
             WHERE blocked = 0 AND at < correlated_at",
            "CREATE INDEX IF NOT EXISTS streams_lowest ON streams (at, stream) \
             WHERE blocked = 0 AND at < correlated_at",
            "CREATE INDEX IF NOT EXISTS streams_leading ON streams (at DESC, stream) \
             WHERE blocked = 0 AND at < correlated_at",
            "CREATE INDEX IF NOT EXISTS streams_at ON streams (at)",
        ],
        // `streams_claim` made claims walk every unblocked row, `streams_work` could not
        // give the claim orders: both only cost writes now.
        obsolete: &["streams_claim", "streams_work"],
    },
    Table {
        name: "correlated",
        columns: &[("at", "INTEGER NOT NULL DEFAULT -1")],
        create: "CREATE TABLE IF NOT EXISTS correlated (
            key TEXT PRIMARY KEY NOT NULL,
            at INTEGER NOT NULL DEFAULT -1
        )",
        indexes: &[],
        obsolete: &[],
    },
];

/// The schema version this code writes (`PRAGMA user_version`).
pub(crate) const VERSION: i64 = 4;

/// Creates the tables and indexes that are missing and adds missing columns, in one
/// transaction on the writer connection, then records [`VERSION`]; a file already at this
/// version is left alone (no DDL, no write lock). Safe to run on every boot and concurrently
/// with other processes (the transaction is `IMMEDIATE`, and every statement is idempotent).
pub(crate) fn seed(conn: &mut Connection) -> Result<(), StoreError> {
    let err = backend("seed");
    // A file this code (or a newer one) seeded needs nothing: no DDL, no write lock.
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&err)?;
    if current >= VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&err)?;
    for table in TABLES {
        tx.execute(table.create, []).map_err(&err)?;
        let existing: HashSet<String> = tx
            .prepare("SELECT name FROM pragma_table_info(?)")
            .and_then(|mut s| {
                s.query_map([table.name], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(&err)?;
        for (column, decl) in table.columns {
            if !existing.contains(*column) {
                tracing::info!(table = table.name, column, "sqlite store: adding column");
                let sql = format!("ALTER TABLE {} ADD COLUMN {column} {decl}", table.name);
                tx.execute(&sql, []).map_err(&err)?;
            }
        }
        for index in table.obsolete {
            tx.execute(&format!("DROP INDEX IF EXISTS {index}"), [])
                .map_err(&err)?;
        }
        for index in table.indexes {
            tx.execute(index, []).map_err(&err)?;
        }
    }
    tx.pragma_update(None, "user_version", VERSION)
        .map_err(&err)?;
    tx.commit().map_err(&err)
}
