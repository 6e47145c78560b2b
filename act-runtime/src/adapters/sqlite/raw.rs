//! Direct calls into SQLite on a connection locked out of sqlx's worker thread.
//!
//! sqlx runs every SQLite connection on a worker thread and ships each statement, and each
//! row, across a channel: two thread switches per statement and a few microseconds per row.
//! The hot paths (commit, query, claim, ack, subscribe) instead take the connection's handle
//! once per operation ([`sqlx::sqlite::SqliteConnection::lock_handle`]: one round trip) and
//! run all their statements on the calling thread through this thin, safe wrapper over
//! `libsqlite3-sys` (the very library sqlx links; the versions are pinned together).
//!
//! Every operation is synchronous between taking the handle and releasing it, so it cannot be
//! cancelled halfway: a transaction opened here is always committed or rolled back here.

use std::collections::HashMap;
use std::ffi::{CStr, c_int};
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;

use crate::error::StoreError;

/// An SQLite error: the extended result code and the connection's message.
#[derive(Debug)]
pub(crate) struct RawError {
    pub(crate) code: c_int,
    pub(crate) message: String,
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for RawError {}

impl RawError {
    /// Whether this is a `UNIQUE` or `PRIMARY KEY` constraint violation.
    pub(crate) fn is_unique_violation(&self) -> bool {
        self.code == ffi::SQLITE_CONSTRAINT_UNIQUE || self.code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    }
}

pub(crate) type RawResult<T> = Result<T, RawError>;

/// A database handle, valid while the sqlx handle it was taken from stays locked.
#[derive(Clone, Copy)]
pub(crate) struct Db<'h> {
    db: NonNull<ffi::sqlite3>,
    _locked: std::marker::PhantomData<&'h mut ()>,
}

impl<'h> Db<'h> {
    /// The handle of `locked`.
    pub(crate) fn new(locked: &'h mut sqlx::sqlite::LockedSqliteHandle<'_>) -> Self {
        Self {
            db: locked.as_raw_handle(),
            _locked: std::marker::PhantomData,
        }
    }

    fn error(&self, code: c_int) -> RawError {
        // SAFETY: the handle is valid (locked); the message is a NUL-terminated string owned
        // by SQLite, copied at once.
        let message = unsafe {
            let m = ffi::sqlite3_errmsg(self.db.as_ptr());
            if m.is_null() {
                String::new()
            } else {
                CStr::from_ptr(m).to_string_lossy().into_owned()
            }
        };
        let extended = unsafe { ffi::sqlite3_extended_errcode(self.db.as_ptr()) };
        RawError {
            code: if extended != 0 { extended } else { code },
            message,
        }
    }

    /// Prepares `sql` (one statement); `persistent` for statements kept in a cache.
    pub(crate) fn prepare(&self, sql: &str, persistent: bool) -> RawResult<Stmt> {
        let mut stmt = ptr::null_mut();
        let len = c_int::try_from(sql.len()).map_err(|_| RawError {
            code: ffi::SQLITE_TOOBIG,
            message: "statement too long".into(),
        })?;
        let flags = if persistent {
            ffi::SQLITE_PREPARE_PERSISTENT
        } else {
            0
        };
        // SAFETY: valid handle; `sql` outlives the call and its length is given.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                flags,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error(rc));
        }
        let stmt = NonNull::new(stmt).ok_or_else(|| RawError {
            code: ffi::SQLITE_MISUSE,
            message: format!("empty statement: {sql}"),
        })?;
        Ok(Stmt { stmt })
    }

    /// The number of rows the last statement changed.
    pub(crate) fn changes(&self) -> i64 {
        // SAFETY: valid handle.
        unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) }
    }

    /// The rowid of the last insert.
    pub(crate) fn last_insert_rowid(&self) -> i64 {
        // SAFETY: valid handle.
        unsafe { ffi::sqlite3_last_insert_rowid(self.db.as_ptr()) }
    }

    /// Whether no transaction is open.
    pub(crate) fn autocommit(&self) -> bool {
        // SAFETY: valid handle.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) != 0 }
    }
}

/// A prepared statement; finalized on drop.
pub(crate) struct Stmt {
    stmt: NonNull<ffi::sqlite3_stmt>,
}

// SAFETY: a statement is only used while its connection's handle is locked by the caller
// (behind the store's mutex), never from two threads at once.
unsafe impl Send for Stmt {}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: the statement is valid and finalized once.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// A parameter value.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// A value to bind, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl<'a> From<&'a Param> for Arg<'a> {
    fn from(p: &'a Param) -> Self {
        match p {
            Param::Null => Self::Null,
            Param::Int(v) => Self::Int(*v),
            Param::Text(s) => Self::Text(s),
        }
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Self::Text(v)
    }
}

impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// A statement being run: bound, stepped, then reset (and unbound) when dropped, so the
/// statement can be reused and holds no read lock.
pub(crate) struct Run<'s, 'h> {
    stmt: &'s mut Stmt,
    db: Db<'h>,
}

impl Drop for Run<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: valid statement.
        unsafe {
            ffi::sqlite3_reset(self.stmt.stmt.as_ptr());
            ffi::sqlite3_clear_bindings(self.stmt.stmt.as_ptr());
        }
    }
}

impl Stmt {
    /// Binds `args` (1-based, in order) and returns the statement ready to step.
    pub(crate) fn run<'s, 'h>(
        &'s mut self,
        db: Db<'h>,
        args: &[Arg<'_>],
    ) -> RawResult<Run<'s, 'h>> {
        let run = Run { stmt: self, db };
        for (i, arg) in args.iter().enumerate() {
            let idx = c_int::try_from(i + 1).unwrap_or(c_int::MAX);
            let s = run.stmt.stmt.as_ptr();
            // SAFETY: valid statement; text is copied by SQLite (SQLITE_TRANSIENT).
            let rc = unsafe {
                match *arg {
                    Arg::Null => ffi::sqlite3_bind_null(s, idx),
                    Arg::Int(v) => ffi::sqlite3_bind_int64(s, idx, v),
                    Arg::Text(t) => ffi::sqlite3_bind_text64(
                        s,
                        idx,
                        t.as_ptr().cast(),
                        t.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(db.error(rc));
            }
        }
        Ok(run)
    }
}

impl Run<'_, '_> {
    /// Steps once: `Ok(true)` when a row is available.
    pub(crate) fn step(&mut self) -> RawResult<bool> {
        // SAFETY: valid statement.
        match unsafe { ffi::sqlite3_step(self.stmt.stmt.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(self.db.error(rc)),
        }
    }

    /// Runs to completion, ignoring rows; returns the rows changed.
    pub(crate) fn execute(mut self) -> RawResult<i64> {
        while self.step()? {}
        Ok(self.db.changes())
    }

    /// The first row's first column as an integer (`None` without a row or when NULL).
    pub(crate) fn scalar(mut self) -> RawResult<Option<i64>> {
        Ok(if self.step()? { self.opt_i64(0) } else { None })
    }

    /// Column `i` of the current row as an integer.
    pub(crate) fn i64(&self, i: c_int) -> i64 {
        // SAFETY: valid statement on a row; out-of-range columns read as 0.
        unsafe { ffi::sqlite3_column_int64(self.stmt.stmt.as_ptr(), i) }
    }

    fn is_null(&self, i: c_int) -> bool {
        // SAFETY: valid statement on a row.
        unsafe { ffi::sqlite3_column_type(self.stmt.stmt.as_ptr(), i) == ffi::SQLITE_NULL }
    }

    /// Column `i` as an integer, `None` when NULL.
    pub(crate) fn opt_i64(&self, i: c_int) -> Option<i64> {
        (!self.is_null(i)).then(|| self.i64(i))
    }

    /// Column `i` as text, borrowed until the next step (NULL reads as `""`).
    pub(crate) fn text(&self, i: c_int) -> RawResult<&str> {
        let s = self.stmt.stmt.as_ptr();
        // SAFETY: valid statement on a row; the pointer and length come from SQLite and stay
        // valid until the next step or reset, which need `&mut self`.
        let bytes = unsafe {
            let p = ffi::sqlite3_column_text(s, i);
            let n = ffi::sqlite3_column_bytes(s, i);
            if p.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(p, usize::try_from(n).unwrap_or(0))
            }
        };
        std::str::from_utf8(bytes).map_err(|e| RawError {
            code: ffi::SQLITE_MISMATCH,
            message: format!("column {i} is not UTF-8: {e}"),
        })
    }

    /// Column `i` as text, `None` when NULL.
    pub(crate) fn opt_text(&self, i: c_int) -> RawResult<Option<String>> {
        if self.is_null(i) {
            Ok(None)
        } else {
            self.text(i).map(|s| Some(s.to_owned()))
        }
    }
}

/// Prepared statements kept for one connection, by SQL text. Must be dropped before the
/// connection closes (sqlx's close refuses a handle with live statements).
#[derive(Default)]
pub(crate) struct Cache {
    stmts: HashMap<Box<str>, Stmt>,
}

/// Statements kept per connection before the cache starts over.
const CACHED: usize = 128;

impl Cache {
    /// The cached statement for `sql`, prepared on first use.
    pub(crate) fn get(&mut self, db: Db<'_>, sql: &str) -> RawResult<&mut Stmt> {
        if !self.stmts.contains_key(sql) {
            if self.stmts.len() >= CACHED {
                self.stmts.clear();
            }
            let stmt = db.prepare(sql, true)?;
            self.stmts.insert(sql.into(), stmt);
        }
        self.stmts.get_mut(sql).ok_or_else(|| RawError {
            code: ffi::SQLITE_INTERNAL,
            message: "statement cache".into(),
        })
    }

    /// Runs `sql` with `args` to completion; returns the rows changed.
    pub(crate) fn execute(
        &mut self,
        db: Db<'_>,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> RawResult<i64> {
        self.get(db, sql)?.run(db, args)?.execute()
    }

    /// Drops every statement.
    pub(crate) fn clear(&mut self) {
        self.stmts.clear();
    }
}

/// Maps an SQLite error for `operation`.
pub(crate) fn backend(operation: &'static str) -> impl Fn(RawError) -> StoreError {
    move |e| StoreError::backend(operation, e)
}

/// Runs `f` in a `BEGIN IMMEDIATE` transaction: committed when `f` succeeds, rolled back
/// otherwise.
pub(crate) fn immediate<T>(
    cache: &mut Cache,
    db: Db<'_>,
    operation: &'static str,
    f: impl FnOnce(&mut Cache) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let err = backend(operation);
    cache.execute(db, "BEGIN IMMEDIATE", &[]).map_err(&err)?;
    let result = f(cache).and_then(|v| cache.execute(db, "COMMIT", &[]).map(|_| v).map_err(&err));
    if result.is_err()
        && !db.autocommit()
        && let Err(e) = cache.execute(db, "ROLLBACK", &[])
    {
        tracing::error!(error = %e, "sqlite store: rollback failed");
    }
    result
}
