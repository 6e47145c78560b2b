//! The PostgreSQL store: many processes share one database and its work (feature
//! `postgres`).
//!
//! * **Connect** with [`PostgresStore::connect`] (a URL) or a [`PostgresConfig`] (host,
//!   port, database, user, password, schema, table, pool size; act-pg's defaults), or share
//!   one pool between tenants with [`PostgresStore::with_pool`]. Then call
//!   [`Store::seed`]: it creates the schema, runs no DDL at all when the schema is current
//!   (a version row in `<table>_meta`), and is safe when several processes boot at once (an
//!   advisory lock per schema serializes the slow path).
//! * **Tenants.** One tenant is one `(schema, table)`: its log is `"<schema>"."<table>"`,
//!   plus `<table>_streams` (subscriptions), `<table>_marks` (pending reaction marks),
//!   `<table>_correlated` (the correlation checkpoint), `<table>_meta`, and the functions
//!   `<table>_commit`, `_horizon`, `_fold`, `_claim`, `_subscribe`, `_register`. Identifiers
//!   are validated (`^[a-z_][a-z0-9_]*$`, schema ≤ 28 and table ≤ 20 characters, no `pg_`
//!   schema) before any SQL is built, and always quoted; every statement is built once per
//!   store. The pool never sets `search_path`.
//!
//! # Data structures
//!
//! * **The log** (`<table>`): `id bigint` identity with `CACHE 1`, `stream`, `version`
//!   (unique with `stream`), `name`, `data` and `meta` as `jsonb`, `created timestamptz`.
//!   Stream and name columns are `COLLATE "C"`: byte order, like Rust strings, for
//!   listings and paging.
//! * **Subscriptions** (`<table>_streams`): one row per reaction target, with its source,
//!   watermark `at`, retry count, block and lease columns, priority and work mark
//!   `correlated_at`. Three partial indexes serve claim's three frontiers.
//! * **Marks** (`<table>_marks`): an append-only queue. [`Store::commit_marked`] inserts
//!   the static targets' marks *in the commit's statement*, so a commit never updates a row
//!   other commits also update (a shared subscription row would serialize every commit
//!   feeding one projection). `claim`, `subscribe` and `query_streams` first *fold* the
//!   queue into the subscription rows (`DELETE … SKIP LOCKED`, then an upsert keeping the
//!   highest mark and priority and the newest source).
//!
//! # Guarantees
//!
//! * **Commit** is one round trip (one call of `<table>_commit`) and atomic. It takes a
//!   transaction advisory lock *of its stream only*, reads the head in a new statement, and
//!   returns a conflict as a row, without taking ids: writers to different streams never
//!   wait for one another, and a rejected commit leaves no gap. A conflict is
//!   [`ConcurrencyError`](crate::error::ConcurrencyError) `{stream, expected, actual}`. A NUL
//!   character in a stream or event name, payload or meta, or any value PostgreSQL refuses,
//!   is [`StoreError::Invalid`] naming the stream, never a driver error. A lost connection
//!   is [`StoreError::Backend`]; nothing is half-written (the commit is one statement). A
//!   commit whose connection dies after the server committed may still have landed.
//! * **The spare connection.** sqlx pings every connection it takes back into its pool (one
//!   more message and answer after every statement), so the store keeps the connection of
//!   its last commit, read, claim or ack aside and runs the next one on it (`spare.rs`): one
//!   connection at most, none when the pool has fewer than 4, only after its statement
//!   answered; handed back when the pool closes, and not used after 30 s idle (the next
//!   statement hands it back and takes another).
//! * **Group commit.** At most [`PostgresConfig::commit_slots`] commits run at once (4 by
//!   default, and never more than the pool size minus one). Commits that find every slot
//!   busy queue, and the next free slot sends the whole queue in one call of
//!   `<table>_commit_group`: one round trip, one transaction and
//!   one WAL flush for all of them, each commit still taking its own stream's lock and
//!   getting its own answer (stored, conflict, closed). A group is sorted by stream, so
//!   groups take locks in one order. A group the server refuses wrote nothing and runs
//!   again commit by commit, so a refused value fails its own commit only (`group.rs`).
//! * **Ids and readers.** Ids are global and increase, but concurrent commits become
//!   visible out of id order. Within one stream, ids increase in commit order. A read over
//!   several streams (the whole log, a pattern) stops at the **read horizon** (see
//!   `horizon.rs`), so *a reader that has seen id X is never later shown a new id below X*:
//!   drains and correlation scans paging with `after` never skip an event. A writer stuck
//!   with its transaction open holds multi-stream readers back (never longer than
//!   `statement_timeout`); [`PostgresStore::horizon_lag`] shows it. `created` is the
//!   commit transaction's start (`now()`), one per batch, microsecond precision: it does
//!   not decrease along ids for sequential commits only.
//! * **Claim** is one call: fold, then one statement whose three `FOR UPDATE SKIP LOCKED`
//!   arms (priority, a fairness reserve of the lowest watermarks, the leading frontier)
//!   lease rows in the SQLite adapter's order. Concurrent claimers never share a row and
//!   never wait. Leases run on the **database clock** (`now()`), so hosts' clocks do not
//!   matter; an ack's `due` is converted to a delay. A row whose source is not one exact
//!   stream is not claimed while its watermark is at or above the oldest in-flight writer
//!   (it could read nothing yet). Ack, block, reset and unblock are single statements
//!   guarded by the holder; a lease taken over is dropped.
//! * Block errors keep their text, with NUL characters (which PostgreSQL cannot store)
//!   replaced by U+FFFD.
//!
//! ```no_run
//! use act_runtime::adapters::PostgresStore;
//! use act_runtime::adapters::postgres::PostgresConfig;
//! use act_runtime::ports::Store;
//!
//! # async fn run() -> Result<(), act_runtime::error::StoreError> {
//! let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/app").await?;
//! store.seed().await?;
//!
//! let tenant = PostgresConfig::new()
//!     .host("127.0.0.1")
//!     .database("app")
//!     .schema("tenant_a")
//!     .pool_size(8)
//!     .connect()
//!     .await?;
//! tenant.seed().await?;
//! # Ok(()) }
//! ```

mod codec;
mod config;
mod events;
mod group;
mod horizon;
mod notify;
mod schema;
mod spare;
mod subscriptions;
mod truncate;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;

pub use config::PostgresConfig;

use crate::error::StoreError;
use crate::model::{Committed, EventId, EventMeta, Message, Version};
use crate::ports::{
    Lease, Query, Store, StreamFilter, StreamPosition, Subscribed, Subscription, TruncateTarget,
    Truncated,
};

/// The PostgreSQL event store. See the [module docs](self).
///
/// Cheap to share: wrap it in an `Arc` (it is `Send + Sync`).
pub struct PostgresStore {
    pool: PgPool,
    tenant: config::Tenant,
    sql: schema::Statements,
    /// Whether [`Store::dispose`] closes the pool (not when it was handed in).
    owns_pool: bool,
    disposed: AtomicBool,
    /// `LISTEN`/`NOTIFY` wake-ups between processes (see `notify.rs`).
    doorbells: notify::Doorbells,
    /// The commit slots, and the group commit behind them (see `group.rs`).
    group: group::Group,
    /// The connection the last commit or read used, kept aside (see `spare.rs`).
    spare: Arc<spare::Spare>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.tenant.schema)
            .field("table", &self.tenant.table)
            .field("disposed", &self.disposed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects with a URL (`postgres://user:password@host:5432/database`), default
    /// schema (`public`) and table (`events`). Does not seed.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresConfig::from_url(url)?.connect().await
    }

    /// A store for tenant `(schema, table)` on an existing pool, which it shares (dispose
    /// leaves the pool open). Validates the identifiers; does not connect or seed.
    ///
    /// Give the pool's connections a `statement_timeout` (see
    /// [`PostgresConfig::statement_timeout`]): it bounds how long a stuck writer can hold
    /// back readers.
    pub fn with_pool(pool: PgPool, schema: &str, table: &str) -> Result<Self, StoreError> {
        Ok(Self::from_parts(
            pool,
            config::Tenant::new(schema, table)?,
            false,
            config::COMMIT_SLOTS,
        ))
    }

    pub(crate) fn from_parts(
        pool: PgPool,
        tenant: config::Tenant,
        owns_pool: bool,
        commit_slots: usize,
    ) -> Self {
        let sql = schema::Statements::new(&tenant);
        let statements = group::Statements {
            commit: sql.commit.clone(),
            commit_group: sql.commit_group.clone(),
            head: sql.head.clone(),
        };
        let spare = Arc::new(spare::Spare::new(pool.clone()));
        Self {
            group: group::Group::new(pool.clone(), Arc::clone(&spare), statements, commit_slots),
            spare,
            sql,
            doorbells: notify::Doorbells::new(&pool, &tenant),
            pool,
            tenant,
            owns_pool,
            disposed: AtomicBool::new(false),
        }
    }

    /// The connection pool (shared by every clone of it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The tenant's schema.
    pub fn schema(&self) -> &str {
        &self.tenant.schema
    }

    /// The tenant's table (the log; the other tables share it as a prefix).
    pub fn table(&self) -> &str {
        &self.tenant.table
    }

    /// Rings the doorbell when `done` changed something other processes may work on (after
    /// the change committed; never waits).
    fn rang<T>(
        &self,
        done: Result<T, StoreError>,
        changed: impl FnOnce(&T) -> bool,
    ) -> Result<T, StoreError> {
        if let Ok(t) = &done
            && changed(t)
        {
            self.doorbells.ring();
        }
        done
    }

    /// Fails once the store is disposed.
    fn live(&self) -> Result<(), StoreError> {
        if self.disposed.load(Ordering::Acquire) {
            Err(StoreError::Disposed)
        } else {
            Ok(())
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.doorbells.stop();
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn seed(&self) -> Result<(), StoreError> {
        self.live()?;
        schema::seed(&self.pool, &self.tenant).await
    }

    async fn drop_all(&self) -> Result<(), StoreError> {
        self.drop_all_in().await
    }

    async fn commit(
        &self,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
        expected_version: Option<Version>,
    ) -> Result<Vec<Committed>, StoreError> {
        let done = self
            .commit_in(stream, msgs, meta, expected_version, &[])
            .await;
        self.rang(done, |c| !c.is_empty())
    }

    /// Commits and records the marks in one statement: the events and their marks are
    /// written together or not at all, and no subscription row is touched (the marks are
    /// folded in by the next claim, subscribe or listing).
    async fn commit_marked(
        &self,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
        expected_version: Option<Version>,
        marks: &[(usize, Subscription)],
    ) -> Result<Vec<Committed>, StoreError> {
        let done = self
            .commit_in(stream, msgs, meta, expected_version, marks)
            .await;
        self.rang(done, |c| !c.is_empty())
    }

    async fn query(
        &self,
        query: &Query,
        sink: &mut (dyn for<'e> FnMut(&'e Committed) + Send),
    ) -> Result<usize, StoreError> {
        self.query_in(query, sink).await
    }

    async fn subscribe(
        &self,
        subs: &[Subscription],
        checkpoint: Option<EventId>,
    ) -> Result<Subscribed, StoreError> {
        self.subscribe_in(subs, checkpoint).await
    }

    async fn claim(
        &self,
        lagging: usize,
        leading: usize,
        by: &str,
        lease: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        self.claim_in(lagging, leading, by, lease).await
    }

    async fn ack(&self, leases: &[Lease]) -> Result<Vec<Lease>, StoreError> {
        self.ack_in(leases).await
    }

    async fn block(&self, leases: &[(Lease, String)]) -> Result<Vec<StreamPosition>, StoreError> {
        self.block_in(leases).await
    }

    async fn reset(&self, streams: &[String]) -> Result<usize, StoreError> {
        let done = self.reset_in(streams).await;
        self.rang(done, |n| *n > 0)
    }

    async fn unblock(&self, streams: &[String]) -> Result<usize, StoreError> {
        let done = self.unblock_in(streams).await;
        self.rang(done, |n| *n > 0)
    }

    async fn query_streams(
        &self,
        filter: &StreamFilter,
    ) -> Result<Vec<StreamPosition>, StoreError> {
        self.query_streams_in(filter).await
    }

    async fn truncate(
        &self,
        targets: &[TruncateTarget],
    ) -> Result<HashMap<String, Truncated>, StoreError> {
        self.truncate_in(targets).await
    }

    /// Rung by the other processes' doorbells (`NOTIFY` on the tenant's channel, sent after
    /// their commits, resets and unblocks), and once after each reconnection of the
    /// listener. The first call starts the listener (one connection of its own, outside the
    /// pool); [`Store::dispose`] stops it.
    fn wakeups(&self) -> Option<tokio::sync::broadcast::Receiver<()>> {
        if self.disposed.load(Ordering::Acquire) {
            return None;
        }
        self.doorbells.subscribe()
    }

    async fn dispose(&self) -> Result<(), StoreError> {
        if self.disposed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.doorbells.stop();
        self.spare.clear();
        if self.owns_pool {
            self.pool.close().await;
        }
        Ok(())
    }
}
