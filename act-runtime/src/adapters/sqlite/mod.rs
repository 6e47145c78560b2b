//! The SQLite store: embedded, persistent, one database file per tenant (feature `sqlite`).
//!
//! * [`SqliteStore::open`] a file (created if missing), [`SqliteStore::open_in_memory`] for
//!   tests, or [`SqliteStore::connect`] with a URL (`sqlite://path/to/app.db`,
//!   `sqlite::memory:`). Each of them runs [`Store::seed`], so the store is ready to use.
//! * **Writers never see `SQLITE_BUSY`.** Every write goes through one writer connection
//!   behind an async mutex, in a `BEGIN IMMEDIATE` transaction: writes queue in the process
//!   instead of racing for SQLite's lock, so any number of concurrent commits and drains
//!   succeed. `busy_timeout` (30 s) covers another *process* writing the same file.
//! * **Reads never wait for writes.** The file is in WAL mode, and queries and listings run on
//!   a pool of reader connections, each seeing the last committed state.
//! * **Hot paths skip sqlx's worker thread.** Commit, query, subscribe, claim and ack take the
//!   connection's handle once per call and run their statements directly, prepared once per
//!   connection (see `raw.rs`); a query over one stream walks the `(stream, version)` index.
//! * **Durability.** [`Durability::Process`] (the default) is `synchronous = NORMAL`: in WAL
//!   mode a returned commit is in the WAL (the OS's page cache), so it survives the process
//!   being killed, even by `SIGKILL`; only an OS crash or power loss can lose the last
//!   commits, and never corrupts the file. [`Durability::Full`] (`synchronous = FULL`, with
//!   [`SqliteStore::open_with`]) fsyncs every commit, at the cost of one fsync per commit.
//! * Times are microseconds since the epoch: `created` round-trips a `DateTime<Utc>` exactly
//!   at microsecond precision (commit truncates `now` to the microsecond). Payloads and meta
//!   are JSON text. Stream patterns become case-sensitive `GLOB`s; a pattern outside the
//!   portable grammar is rejected (see [`crate::ports::StreamMatch`]).
//!
//! ```
//! use act_runtime::adapters::SqliteStore;
//! use act_runtime::model::{Actor, EventMeta, Message};
//! use act_runtime::ports::{Query, Store};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = SqliteStore::open_in_memory().await?;
//! let meta = EventMeta {
//!     correlation: "c-1".into(),
//!     causation: Default::default(),
//!     actor: Actor::new("u1", "Ada"),
//! };
//! let data = serde_json::value::to_raw_value(&serde_json::json!({ "by": 2 }))?;
//! let committed = store
//!     .commit("counter-1", &[Message::new("Incremented", data)], &meta, Some(-1))
//!     .await?;
//! assert_eq!((committed[0].id, committed[0].version), (1, 0));
//!
//! let mut names = Vec::new();
//! store.query(&Query::stream("counter-1"), &mut |e| names.push(e.name.clone())).await?;
//! assert_eq!(names, ["Incremented"]);
//! store.dispose().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod codec;
mod events;
mod pattern;
mod raw;
mod schema;
mod subscriptions;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::error::StoreError;
use crate::model::{Committed, EventId, EventMeta, Message, Version};
use crate::ports::{
    Lease, Query, Store, StreamFilter, StreamPosition, Subscribed, Subscription, TruncateTarget,
    Truncated,
};

/// How long a connection waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Reader connections per file store.
const READERS: usize = 4;

/// When a commit is durable (SQLite's `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = NORMAL` (the default): a returned commit survives the process being
    /// killed; an OS crash or power loss may lose the last commits, never corrupt the file.
    #[default]
    Process,
    /// `synchronous = FULL`: every commit is fsynced before it returns, so it also survives
    /// an OS crash or power loss. Slower (one fsync per commit).
    Full,
}

/// The SQLite event store. See the [module docs](self).
///
/// Cheap to share: wrap it in an `Arc` (it is `Send + Sync`).
pub struct SqliteStore {
    /// The one connection that writes (and, in memory, also reads).
    writer: Mutex<Option<Writer>>,
    /// Readers, for a file; `None` in memory (every connection would see its own database).
    readers: Option<Readers>,
    disposed: AtomicBool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("in_memory", &self.readers.is_none())
            .field("disposed", &self.disposed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The writer connection and its prepared statements (declared first: they are finalized
/// before the connection closes).
struct Writer {
    stmts: raw::Cache,
    conn: SqliteConnection,
}

impl Writer {
    fn new(conn: SqliteConnection) -> Self {
        Self {
            stmts: raw::Cache::default(),
            conn,
        }
    }
}

/// The reader connections of a file store, each with its prepared statements, opened on
/// first use.
struct Readers {
    options: SqliteConnectOptions,
    slots: Vec<Mutex<Option<Writer>>>,
    next: AtomicUsize,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`, in WAL mode, and seeds it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::default()).await
    }

    /// [`SqliteStore::open`] with a chosen [`Durability`].
    pub async fn open_with(
        path: impl AsRef<Path>,
        durability: Durability,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::connect_file(options, durability).await
    }

    /// A private in-memory database (for tests): gone when the store is dropped.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let options =
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(codec::backend("connect"))?;
        Self::connect_memory(options).await
    }

    /// Connects with an sqlx SQLite URL: `sqlite://data/app.db` (created if missing),
    /// `sqlite::memory:`, or with options such as `?mode=ro`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(codec::backend("connect"))?
            .create_if_missing(true);
        if url.contains(":memory:") || url.contains("mode=memory") {
            Self::connect_memory(options).await
        } else {
            Self::connect_file(options, Durability::default()).await
        }
    }

    fn tune(options: SqliteConnectOptions) -> SqliteConnectOptions {
        options
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(false)
            .statement_cache_capacity(256)
            .disable_statement_logging()
            // 16 MiB of page cache per connection, reads through a memory map (no `pread`
            // per page), temporary b-trees (json_each, sorts) in memory.
            .pragma("cache_size", "-16384")
            .pragma("mmap_size", "268435456")
            .pragma("temp_store", "memory")
    }

    async fn connect_file(
        options: SqliteConnectOptions,
        durability: Durability,
    ) -> Result<Self, StoreError> {
        let base = Self::tune(options);
        let writer = base
            .clone()
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Process => SqliteSynchronous::Normal,
                Durability::Full => SqliteSynchronous::Full,
            })
            .connect()
            .await
            .map_err(codec::backend("connect"))?;
        let readers = Readers {
            options: base.pragma("query_only", "ON"),
            slots: (0..READERS).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        };
        let store = Self {
            writer: Mutex::new(Some(Writer::new(writer))),
            readers: Some(readers),
            disposed: AtomicBool::new(false),
        };
        store.seed().await?;
        Ok(store)
    }

    async fn connect_memory(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let writer = Self::tune(options)
            .connect()
            .await
            .map_err(codec::backend("connect"))?;
        let store = Self {
            writer: Mutex::new(Some(Writer::new(writer))),
            readers: None,
            disposed: AtomicBool::new(false),
        };
        store.seed().await?;
        Ok(store)
    }

    /// The writer connection, waiting for the writes queued before this one.
    async fn writer(&self) -> Result<MappedMutexGuard<'_, Writer>, StoreError> {
        if self.disposed.load(Ordering::Acquire) {
            return Err(StoreError::Disposed);
        }
        MutexGuard::try_map(self.writer.lock().await, Option::as_mut)
            .map_err(|_| StoreError::Disposed)
    }

    /// The writer connection, for sqlx.
    async fn writer_conn(&self) -> Result<MappedMutexGuard<'_, SqliteConnection>, StoreError> {
        Ok(MappedMutexGuard::map(self.writer().await?, |w| &mut w.conn))
    }

    /// Runs `f` on the writer's handle, taken from sqlx's worker thread for the whole call,
    /// with the writer's prepared statements.
    async fn with_writer<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut raw::Cache, raw::Db<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut writer = self.writer().await?;
        let Writer { stmts, conn } = &mut *writer;
        let mut locked = conn
            .lock_handle()
            .await
            .map_err(codec::backend(operation))?;
        f(stmts, raw::Db::new(&mut locked))
    }

    /// Runs `f` on a reader's handle (the writer's for an in-memory store), with its
    /// prepared statements.
    async fn with_reader<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut raw::Cache, raw::Db<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut reader = self.reader(operation).await?;
        let Writer { stmts, conn } = &mut *reader;
        let mut locked = conn
            .lock_handle()
            .await
            .map_err(codec::backend(operation))?;
        f(stmts, raw::Db::new(&mut locked))
    }

    /// A connection to read with: a free reader (opened on first use), or the writer for an
    /// in-memory store.
    async fn reader(
        &self,
        operation: &'static str,
    ) -> Result<MappedMutexGuard<'_, Writer>, StoreError> {
        let Some(readers) = &self.readers else {
            return self.writer().await;
        };
        if self.disposed.load(Ordering::Acquire) {
            return Err(StoreError::Disposed);
        }
        let free = readers.slots.iter().find_map(|s| s.try_lock().ok());
        let mut slot = match free {
            Some(slot) => slot,
            None => {
                let i = readers.next.fetch_add(1, Ordering::Relaxed) % readers.slots.len();
                readers.slots[i].lock().await
            }
        };
        if self.disposed.load(Ordering::Acquire) {
            return Err(StoreError::Disposed);
        }
        if slot.is_none() {
            let conn = readers
                .options
                .connect()
                .await
                .map_err(codec::backend(operation))?;
            *slot = Some(Writer::new(conn));
        }
        MutexGuard::try_map(slot, Option::as_mut).map_err(|_| StoreError::Disposed)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn seed(&self) -> Result<(), StoreError> {
        schema::seed(&mut *self.writer_conn().await?).await
    }

    async fn drop_all(&self) -> Result<(), StoreError> {
        events::drop_all(&mut *self.writer_conn().await?).await
    }

    async fn commit(
        &self,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
        expected_version: Option<Version>,
    ) -> Result<Vec<Committed>, StoreError> {
        self.commit_marked(stream, msgs, meta, expected_version, &[])
            .await
    }

    /// Commits and marks the targets in one transaction: the events and their marks are
    /// written together or not at all.
    async fn commit_marked(
        &self,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
        expected_version: Option<Version>,
        marks: &[(usize, Subscription)],
    ) -> Result<Vec<Committed>, StoreError> {
        let meta_json = events::meta_json(stream, msgs, meta)?;
        subscriptions::validate_subs(marks.iter().map(|(_, s)| s))?;
        self.with_writer("commit", |stmts, db| {
            raw::immediate(stmts, db, "commit", |stmts| {
                let committed =
                    events::commit_in(stmts, db, stream, msgs, meta, &meta_json, expected_version)?;
                if !marks.is_empty() {
                    let subs: Vec<Subscription> = marks
                        .iter()
                        .filter_map(|(i, sub)| {
                            committed.get(*i).map(|e| Subscription {
                                correlated_at: Some(e.id),
                                ..sub.clone()
                            })
                        })
                        .collect();
                    subscriptions::subscribe_in(stmts, db, &subs, None)?;
                }
                Ok(committed)
            })
        })
        .await
    }

    async fn query(
        &self,
        query: &Query,
        sink: &mut (dyn for<'e> FnMut(&'e Committed) + Send),
    ) -> Result<usize, StoreError> {
        // Invalid queries fail before a connection is taken.
        events::validate_query(query)?;
        self.with_reader("query", |stmts, db| events::query(stmts, db, query, sink))
            .await
    }

    async fn subscribe(
        &self,
        subs: &[Subscription],
        checkpoint: Option<EventId>,
    ) -> Result<Subscribed, StoreError> {
        self.with_writer("subscribe", |stmts, db| {
            subscriptions::subscribe(stmts, db, subs, checkpoint)
        })
        .await
    }

    async fn claim(
        &self,
        lagging: usize,
        leading: usize,
        by: &str,
        lease: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        self.with_writer("claim", |stmts, db| {
            subscriptions::claim(stmts, db, lagging, leading, by, lease)
        })
        .await
    }

    async fn ack(&self, leases: &[Lease]) -> Result<Vec<Lease>, StoreError> {
        self.with_writer("ack", |stmts, db| subscriptions::ack(stmts, db, leases))
            .await
    }

    async fn block(&self, leases: &[(Lease, String)]) -> Result<Vec<StreamPosition>, StoreError> {
        subscriptions::block(&mut *self.writer_conn().await?, leases).await
    }

    async fn reset(&self, streams: &[String]) -> Result<usize, StoreError> {
        subscriptions::reset(&mut *self.writer_conn().await?, streams).await
    }

    async fn unblock(&self, streams: &[String]) -> Result<usize, StoreError> {
        subscriptions::unblock(&mut *self.writer_conn().await?, streams).await
    }

    async fn query_streams(
        &self,
        filter: &StreamFilter,
    ) -> Result<Vec<StreamPosition>, StoreError> {
        subscriptions::query_streams(&mut self.reader("query_streams").await?.conn, filter).await
    }

    async fn truncate(
        &self,
        targets: &[TruncateTarget],
    ) -> Result<HashMap<String, Truncated>, StoreError> {
        events::truncate(&mut *self.writer_conn().await?, targets).await
    }

    async fn dispose(&self) -> Result<(), StoreError> {
        if self.disposed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(readers) = &self.readers {
            for slot in &readers.slots {
                let reader = slot.lock().await.take();
                if let Some(Writer { mut stmts, conn }) = reader {
                    stmts.clear();
                    conn.close().await.map_err(codec::backend("dispose"))?;
                }
            }
        }
        // Waits for the writes in flight; the last connection to close checkpoints the WAL.
        let writer = self.writer.lock().await.take();
        if let Some(Writer { mut stmts, conn }) = writer {
            stmts.clear();
            conn.close().await.map_err(codec::backend("dispose"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
