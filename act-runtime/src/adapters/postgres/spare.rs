//! The store's spare connection.
//!
//! sqlx pings every connection it takes back into its pool: a `Sync` and its answer after
//! every statement, which wakes the server's backend and the client once more each time
//! (a sequential writer paid about 1.5 extra messages per commit for it). The store keeps
//! the connection its last single-statement operation used (a commit, a read, a claim, an
//! ack...) aside instead, and the next one runs on it straight away.
//!
//! * Only a connection whose statement answered is kept. One whose statement failed, or
//!   whose caller stopped waiting mid-statement, goes back to the pool, whose ping settles
//!   it or closes it.
//! * One connection at most is kept, and none when the pool has fewer than [`MIN_POOL`]
//!   connections, so the spare never starves the store's other statements.
//! * A spare idle for [`IDLE`] or longer goes back to the pool instead of being used (a
//!   server or pooler may have closed it meanwhile).
//! * The spare goes back when the pool closes (a task waits for the pool's close event), so
//!   a pool shared with the app closes without waiting for it; [`Spare::clear`] hands it
//!   back at once, and the store calls it before it closes its own pool.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::oneshot;

/// The smallest pool that keeps a spare: the rest is left to every other statement.
pub(crate) const MIN_POOL: u32 = 4;
/// A spare idle this long goes back to the pool instead of being used.
pub(crate) const IDLE: Duration = Duration::from_secs(30);

/// At most one connection kept out of the pool between statements.
#[derive(Debug)]
pub(crate) struct Spare {
    pool: PgPool,
    keeps: bool,
    /// How long a spare may stay idle and still be used: [`IDLE`] (shorter in tests).
    fresh_for: Duration,
    idle: Arc<Mutex<Option<Idle>>>,
    /// Held while the task that hands the spare back when the pool closes runs; dropped
    /// with the spare, it ends that task.
    watch: Mutex<Option<oneshot::Sender<()>>>,
}

/// The spare and since when it is idle.
type Idle = (PoolConnection<Postgres>, Instant);

impl Spare {
    /// A spare for `pool` (kept only when the pool has at least [`MIN_POOL`] connections).
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            keeps: pool.options().get_max_connections() >= MIN_POOL,
            pool,
            fresh_for: IDLE,
            idle: Arc::default(),
            watch: Mutex::new(None),
        }
    }

    /// A spare whose connection is used only while idle for less than `fresh_for`.
    #[cfg(test)]
    fn fresh_for(pool: PgPool, fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            ..Self::new(pool)
        }
    }

    /// Starts the task that hands the spare back when the pool closes; whether it runs
    /// (not without a runtime to run it on).
    fn watch(&self) -> bool {
        let mut watch = self.watch.lock();
        if watch.is_some() {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let closed = self.pool.close_event();
        let idle = Arc::downgrade(&self.idle);
        runtime.spawn(async move {
            tokio::select! {
                () = closed => {
                    if let Some(idle) = idle.upgrade() {
                        let held = idle.lock().take();
                        drop(held);
                    }
                }
                _ = stopped => {}
            }
        });
        *watch = Some(stop);
        true
    }

    /// The spare when there is a fresh one, otherwise a connection from the pool.
    pub(crate) async fn take(&self) -> Result<Taken<'_>, sqlx::Error> {
        let held = self.idle.lock().take();
        let conn = match held {
            Some((conn, since)) if since.elapsed() < self.fresh_for => conn,
            stale => {
                drop(stale); // back to the pool, which pings it
                self.pool.acquire().await?
            }
        };
        Ok(Taken {
            spare: self,
            conn: Some(conn),
        })
    }

    /// Runs `query` and returns its rows.
    pub(crate) async fn fetch_all(
        &self,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let mut conn = self.take().await?;
        let rows = query.fetch_all(&mut *conn).await?;
        conn.keep();
        Ok(rows)
    }

    /// Runs `query` and returns its one row.
    pub(crate) async fn fetch_one(
        &self,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<PgRow, sqlx::Error> {
        let mut conn = self.take().await?;
        let row = query.fetch_one(&mut *conn).await?;
        conn.keep();
        Ok(row)
    }

    /// Runs `query` and returns what it changed.
    pub(crate) async fn execute(
        &self,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<PgQueryResult, sqlx::Error> {
        let mut conn = self.take().await?;
        let done = query.execute(&mut *conn).await?;
        conn.keep();
        Ok(done)
    }

    /// Hands the spare (if any) back to the pool.
    pub(crate) fn clear(&self) {
        let held = self.idle.lock().take();
        drop(held);
    }

    /// Whether a connection is kept aside now.
    #[cfg(test)]
    fn holds(&self) -> bool {
        self.idle.lock().is_some()
    }
}

/// A connection taken for one statement; back to the pool when dropped, unless
/// [`Taken::keep`] keeps it as the spare.
#[derive(Debug)]
pub(crate) struct Taken<'a> {
    spare: &'a Spare,
    conn: Option<PoolConnection<Postgres>>,
}

impl Taken<'_> {
    /// Keeps the connection as the spare (its statement answered): when the pool is large
    /// enough and open, and no other connection is kept already.
    pub(crate) fn keep(mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.spare.keeps && !self.spare.pool.is_closed() && self.spare.watch() {
            let mut idle = self.spare.idle.lock();
            if idle.is_none() {
                *idle = Some((conn, Instant::now()));
                return;
            }
        }
        drop(conn);
    }
}

impl Deref for Taken<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn
            .as_deref()
            .expect("a taken connection is held until kept or dropped")
    }
}

impl DerefMut for Taken<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_deref_mut()
            .expect("a taken connection is held until kept or dropped")
    }
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgPoolOptions;

    use super::*;

    fn url() -> String {
        std::env::var("ACT_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    async fn pool(size: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(size)
            .connect(&url())
            .await
            .expect("the test database")
    }

    async fn backend(conn: &mut PgConnection) -> i32 {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(conn)
            .await
            .expect("a pid")
    }

    #[tokio::test]
    async fn a_kept_connection_serves_the_next_statement() {
        let spare = Spare::new(pool(4).await);
        let mut first = spare.take().await.unwrap();
        let pid = backend(&mut first).await;
        first.keep();
        assert!(spare.holds());
        let mut second = spare.take().await.unwrap();
        assert!(!spare.holds(), "taken, the spare is no longer kept");
        assert_eq!(backend(&mut second).await, pid);
    }

    #[tokio::test]
    async fn a_dropped_connection_is_not_kept() {
        let spare = Spare::new(pool(4).await);
        let mut taken = spare.take().await.unwrap();
        backend(&mut taken).await;
        drop(taken);
        assert!(!spare.holds());
    }

    #[tokio::test]
    async fn a_failed_statement_keeps_no_spare() {
        let spare = Spare::new(pool(4).await);
        let err = spare
            .fetch_one(sqlx::query("SELECT 1 / 0"))
            .await
            .expect_err("division by zero");
        assert!(err.as_database_error().is_some(), "{err}");
        assert!(!spare.holds());
        spare.fetch_one(sqlx::query("SELECT 1")).await.unwrap();
        assert!(
            spare.holds(),
            "a statement that answered keeps its connection"
        );
    }

    #[tokio::test]
    async fn a_spare_idle_too_long_is_not_used() {
        // As the store's pool: no test before a connection is handed out.
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect(&url())
            .await
            .expect("the test database");
        let limit = Duration::from_millis(100);
        let spare = Spare::fresh_for(pool.clone(), limit);
        let kill = |pid: i32| {
            let pool = pool.clone();
            async move {
                let mut other = pool.acquire().await.unwrap();
                sqlx::query("SELECT pg_terminate_backend($1)")
                    .bind(pid)
                    .execute(&mut *other)
                    .await
                    .unwrap();
            }
        };

        // A fresh spare is used as it is: a server that closed it fails the statement.
        let mut taken = spare.take().await.unwrap();
        let pid = backend(&mut taken).await;
        taken.keep();
        kill(pid).await;
        spare
            .fetch_one(sqlx::query("SELECT 1"))
            .await
            .expect_err("the fresh spare was used, and its backend is gone");

        // Idle past the limit, it goes back to the pool and another connection serves.
        let mut taken = spare.take().await.unwrap();
        let pid = backend(&mut taken).await;
        taken.keep();
        kill(pid).await;
        tokio::time::sleep(limit * 3).await;
        spare
            .fetch_one(sqlx::query("SELECT 1"))
            .await
            .expect("a stale spare is not used");
        let mut next = spare.take().await.unwrap();
        assert_ne!(backend(&mut next).await, pid);
    }

    #[tokio::test]
    async fn a_small_pool_keeps_no_spare() {
        let spare = Spare::new(pool(MIN_POOL - 1).await);
        let taken = spare.take().await.unwrap();
        taken.keep();
        assert!(!spare.holds());
    }

    #[tokio::test]
    async fn one_spare_at_most_and_clear_hands_it_back() {
        let pool = pool(4).await;
        let spare = Spare::new(pool.clone());
        let a = spare.take().await.unwrap();
        let b = spare.take().await.unwrap();
        a.keep();
        b.keep();
        assert!(spare.holds());
        spare.clear();
        assert!(!spare.holds());
        // Every connection is back: closing the pool does not wait for the spare.
        tokio::time::timeout(Duration::from_secs(10), pool.close())
            .await
            .expect("the pool closes");
    }

    #[tokio::test]
    async fn closing_the_pool_hands_the_spare_back() {
        let pool = pool(4).await;
        let spare = Spare::new(pool.clone());
        spare.take().await.unwrap().keep();
        assert!(spare.holds());
        // Not cleared by hand: the pool's close event hands the spare back.
        tokio::time::timeout(Duration::from_secs(10), pool.close())
            .await
            .expect("the pool closes with a spare kept");
        assert!(!spare.holds());
        assert!(
            spare.take().await.is_err(),
            "a closed pool gives no connection"
        );
    }
}
