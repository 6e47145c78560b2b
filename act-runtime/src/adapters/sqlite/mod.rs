//! The SQLite store: embedded, persistent, one database file per tenant (feature `sqlite`).
//!
//! * [`SqliteStore::open`] a file (created if missing), [`SqliteStore::open_in_memory`] for
//!   tests, or [`SqliteStore::connect`] with a URL (`sqlite://path/to/app.db`,
//!   `sqlite::memory:`). Each of them runs [`Store::seed`], so the store is ready to use.
//! * **Never on a tokio worker.** Every connection lives on its own OS thread (see
//!   `engine.rs`), on [rusqlite](https://docs.rs/rusqlite): a call sends its thread a job and
//!   awaits the answer, so disk I/O, `fsync` and waiting for another process's lock never
//!   stall the async runtime. Statements are prepared once per connection and cached.
//! * **Writers never see `SQLITE_BUSY`.** Every write runs on the one writer thread, in a
//!   `BEGIN IMMEDIATE` transaction: writes queue in the process instead of racing for
//!   SQLite's lock, so any number of concurrent commits and drains succeed. `busy_timeout`
//!   (30 s) covers another *process* (or an app's own connection) writing the same file; the
//!   writer thread waits, the runtime does not.
//! * **Reads never wait for writes.** The file is in WAL mode, and queries and listings run on
//!   a pool of reader threads, each seeing the last committed state; a query streams its rows
//!   to the caller in chunks while it reads, and a query over one stream walks the
//!   `(stream, version)` index.
//! * **Checkpoints beside the writer.** A checkpoint thread with its own connection copies
//!   the write-ahead log back into the file while the writer goes on; only the commit that
//!   brings the log to 4,000 pages copies back the rest itself, so the log restarts (see
//!   `checkpoint.rs`). New files use 2 KiB pages; a file keeps the page size it was made with.
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

mod checkpoint;
mod codec;
mod engine;
mod events;
mod pattern;
mod schema;
mod subscriptions;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;
use crate::model::{Committed, EventId, EventMeta, Message, Version};
use crate::ports::{
    Lease, Query, Store, StreamFilter, StreamPosition, Subscribed, Subscription, TruncateTarget,
    Truncated,
};
use checkpoint::Checkpointer;
use engine::Engine;

/// How long a connection waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Reader connections (and threads) per file store.
const READERS: usize = 4;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;
/// The page size of a new file. A commit writes one page of the write-ahead log per b-tree
/// it changes (the log, each index), and the checkpoint copies them back: with half of
/// SQLite's default 4 KiB, a commit costs about a sixth less, a long read about a tenth
/// more. A file keeps the page size it was created with.
const PAGE_SIZE: i64 = 2048;

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
    engine: Engine,
    /// A file's checkpoint thread (none in memory: no write-ahead log).
    checkpointer: Option<Checkpointer>,
    in_memory: bool,
    disposed: AtomicBool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("in_memory", &self.in_memory)
            .field("disposed", &self.disposed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Where a store's database lives.
enum Location {
    /// A file (or an SQLite `file:` URI, opened with URI parsing on).
    File { path: PathBuf, uri: bool },
    /// A private in-memory database.
    Memory,
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
        let path = path.as_ref().to_path_buf();
        Self::start(Location::File { path, uri: false }, durability).await
    }

    /// A private in-memory database (for tests): gone when the store is dropped.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        Self::start(Location::Memory, Durability::default()).await
    }

    /// Connects with a URL: `sqlite://data/app.db` or `sqlite:data/app.db` (created if
    /// missing), `sqlite::memory:`, or with SQLite URI parameters such as
    /// `sqlite://data/app.db?mode=ro` (passed on as a `file:` URI).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = act_runtime::adapters::SqliteStore::connect("sqlite::memory:").await?;
    /// # Ok::<(), act_runtime::error::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                StoreError::backend(
                    "connect",
                    format!("`{url}` is not an SQLite URL (sqlite://path or sqlite::memory:)"),
                )
            })?;
        let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
        let location = if path == ":memory:" || params.split('&').any(|p| p == "mode=memory") {
            Location::Memory
        } else if params.is_empty() {
            Location::File {
                path: PathBuf::from(path),
                uri: false,
            }
        } else {
            Location::File {
                path: PathBuf::from(format!("file:{path}?{params}")),
                uri: true,
            }
        };
        Self::start(location, Durability::default()).await
    }

    async fn start(location: Location, durability: Durability) -> Result<Self, StoreError> {
        let in_memory = matches!(location, Location::Memory);
        let (engine, checkpointer) = match location {
            Location::Memory => (
                Engine::start(open_memory, 0, || unreachable!()).await?,
                None,
            ),
            Location::File { path, uri } => {
                let signal = Arc::new(checkpoint::Signal::default());
                let writer_signal = Arc::clone(&signal);
                let (reader_path, checkpoint_path) = (path.clone(), path.clone());
                let engine = Engine::start(
                    move || {
                        let conn = open_writer(&path, uri, durability)?;
                        checkpoint::install(&conn, writer_signal);
                        Ok(conn)
                    },
                    READERS,
                    move || open_reader(&reader_path, uri),
                )
                .await?;
                let checkpointer =
                    Checkpointer::start(signal, move || open_checkpointer(&checkpoint_path, uri))
                        .await;
                match checkpointer {
                    Ok(checkpointer) => (engine, Some(checkpointer)),
                    Err(e) => {
                        engine.close().await;
                        return Err(e);
                    }
                }
            }
        };
        let store = Self {
            engine,
            checkpointer,
            in_memory,
            disposed: AtomicBool::new(false),
        };
        store.seed().await?;
        Ok(store)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.disposed.load(Ordering::Acquire) {
            Err(StoreError::Disposed)
        } else {
            Ok(())
        }
    }
}

/// Per-connection settings: the busy timeout, the statement cache, 16 MiB of page cache,
/// reads through a memory map (no `pread` per page), temporary b-trees (json_each, sorts)
/// in memory.
fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "cache_size", -16384)?;
    conn.pragma_update(None, "mmap_size", 268_435_456)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
}

fn flags(uri: bool) -> OpenFlags {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if uri {
        flags |= OpenFlags::SQLITE_OPEN_URI;
    }
    flags
}

fn open_memory() -> Result<Connection, StoreError> {
    let err = codec::backend("open");
    let conn = Connection::open_in_memory().map_err(&err)?;
    tune(&conn).map_err(&err)?;
    Ok(conn)
}

fn open_writer(path: &Path, uri: bool, durability: Durability) -> Result<Connection, StoreError> {
    let err = codec::backend("open");
    let conn = Connection::open_with_flags(path, flags(uri)).map_err(&err)?;
    tune(&conn).map_err(&err)?;
    // Only a file with no page yet takes it (before the switch to WAL); others keep theirs.
    conn.pragma_update(None, "page_size", PAGE_SIZE)
        .map_err(&err)?;
    // Read back: a read-only file or a memory URI stays in its own journal mode.
    let _: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(&err)?;
    let synchronous = match durability {
        Durability::Process => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(&err)?;
    Ok(conn)
}

fn open_checkpointer(path: &Path, uri: bool) -> Result<Connection, StoreError> {
    let err = codec::backend("open");
    let conn = Connection::open_with_flags(path, flags(uri)).map_err(&err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
    Ok(conn)
}

fn open_reader(path: &Path, uri: bool) -> Result<Connection, StoreError> {
    let err = codec::backend("open");
    let conn = Connection::open_with_flags(path, flags(uri)).map_err(&err)?;
    tune(&conn).map_err(&err)?;
    conn.pragma_update(None, "query_only", "ON").map_err(&err)?;
    Ok(conn)
}

#[async_trait]
impl Store for SqliteStore {
    async fn seed(&self) -> Result<(), StoreError> {
        self.check()?;
        self.engine.write("seed", schema::seed).await
    }

    async fn drop_all(&self) -> Result<(), StoreError> {
        self.check()?;
        self.engine.write("drop", events::drop_all).await
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
        self.check()?;
        let meta_json = events::meta_json(stream, msgs, meta)?;
        subscriptions::validate_subs(marks.iter().map(|(_, s)| s))?;
        let stream = stream.to_owned();
        let msgs = msgs.to_vec();
        let meta = Arc::new(meta.clone());
        let marks = marks.to_vec();
        self.engine
            .write("commit", move |conn| {
                let tx = subscriptions::immediate(conn, "commit")?;
                let committed =
                    events::commit_in(&tx, &stream, msgs, meta, &meta_json, expected_version)?;
                if !marks.is_empty() {
                    let subs: Vec<Subscription> = marks
                        .into_iter()
                        .filter_map(|(i, sub)| {
                            committed.get(i).map(|e| Subscription {
                                correlated_at: Some(e.id),
                                ..sub
                            })
                        })
                        .collect();
                    subscriptions::subscribe_in(&tx, &subs, None)?;
                }
                tx.commit().map_err(codec::backend("commit"))?;
                Ok(committed)
            })
            .await
    }

    async fn query(
        &self,
        query: &Query,
        sink: &mut (dyn for<'e> FnMut(&'e Committed) + Send),
    ) -> Result<usize, StoreError> {
        self.check()?;
        // Invalid queries fail before a connection is taken.
        events::validate_query(query)?;
        let query = query.clone();
        self.engine
            .read_events(
                "query",
                move |conn, emit| events::query(conn, &query, emit),
                sink,
            )
            .await
    }

    async fn subscribe(
        &self,
        subs: &[Subscription],
        checkpoint: Option<EventId>,
    ) -> Result<Subscribed, StoreError> {
        self.check()?;
        let subs = subs.to_vec();
        self.engine
            .write("subscribe", move |conn| {
                subscriptions::subscribe(conn, &subs, checkpoint)
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
        self.check()?;
        let by = by.to_owned();
        self.engine
            .write("claim", move |conn| {
                subscriptions::claim(conn, lagging, leading, &by, lease)
            })
            .await
    }

    async fn ack(&self, leases: &[Lease]) -> Result<Vec<Lease>, StoreError> {
        self.check()?;
        let leases = leases.to_vec();
        self.engine
            .write("ack", move |conn| subscriptions::ack(conn, &leases))
            .await
    }

    async fn block(&self, leases: &[(Lease, String)]) -> Result<Vec<StreamPosition>, StoreError> {
        self.check()?;
        let leases = leases.to_vec();
        self.engine
            .write("block", move |conn| subscriptions::block(conn, &leases))
            .await
    }

    async fn reset(&self, streams: &[String]) -> Result<usize, StoreError> {
        self.check()?;
        let streams = streams.to_vec();
        self.engine
            .write("reset", move |conn| subscriptions::reset(conn, &streams))
            .await
    }

    async fn unblock(&self, streams: &[String]) -> Result<usize, StoreError> {
        self.check()?;
        let streams = streams.to_vec();
        self.engine
            .write("unblock", move |conn| {
                subscriptions::unblock(conn, &streams)
            })
            .await
    }

    async fn query_streams(
        &self,
        filter: &StreamFilter,
    ) -> Result<Vec<StreamPosition>, StoreError> {
        self.check()?;
        let filter = filter.clone();
        self.engine
            .read("query_streams", move |conn| {
                subscriptions::query_streams(conn, &filter)
            })
            .await
    }

    async fn truncate(
        &self,
        targets: &[TruncateTarget],
    ) -> Result<HashMap<String, Truncated>, StoreError> {
        self.check()?;
        let targets = targets.to_vec();
        self.engine
            .write("truncate", move |conn| events::truncate(conn, &targets))
            .await
    }

    /// Waits for the calls in flight, then closes every connection (the last one to close
    /// checkpoints the WAL). Every call after this one is [`StoreError::Disposed`].
    async fn dispose(&self) -> Result<(), StoreError> {
        if self.disposed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.close().await;
        }
        self.engine.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
