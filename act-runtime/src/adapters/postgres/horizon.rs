//! The read horizon: how a read over several streams avoids skipping an event whose id was
//! taken before, but committed after, a later id the reader has already seen.
//!
//! * **Writers register.** A `BEFORE INSERT … FOR EACH STATEMENT` trigger on the log takes
//!   a *shared* transaction advisory lock `(ns, low 32 bits of k)`, where `k` is the id
//!   sequence's `last_value` read just before: a lower bound of every id the statement
//!   takes. Writers never wait for one another (shared locks).
//! * **Readers cap.** `<table>_horizon()` reads `last_value` (`l`), **then** `pg_locks`, and
//!   returns `h = min(l, oldest registered key)`. The events are read in a **later**
//!   statement (a fresh snapshot) as `id <= h`. No id `≤ h` can become visible afterwards:
//!   its writer registered before `l` was read, so it was either still registered at the
//!   `pg_locks` read (then `h ≤ k <` its ids) or already committed or rolled back.
//! * The argument needs: `CACHE 1` on the sequence (checked by seed), registration before
//!   `nextval` (the trigger), the three reads in that order in separate statements (this
//!   module), no transaction holding ids while 2³¹ more are taken (`statement_timeout`),
//!   and the reads on the primary.
//! * Reads of one exact stream skip the horizon: its commits serialize on the stream's lock
//!   and take their ids under it, so within a stream ids increase in commit order.

use sqlx::{AssertSqlSafe, Row};

use super::PostgresStore;
use super::codec::backend;
use crate::error::StoreError;
use crate::model::EventId;

impl PostgresStore {
    /// The read horizon: no event with an id at or below it can become visible later.
    /// Valid for every snapshot taken after it returns.
    pub(crate) async fn horizon(&self) -> Result<EventId, StoreError> {
        self.spare
            .fetch_one(sqlx::query(AssertSqlSafe(self.sql.horizon.clone())))
            .await
            .and_then(|row| row.try_get::<i64, _>(0))
            .map_err(backend("query"))
    }

    /// How far the read horizon trails the last id handed out (`0` when no writer is in
    /// flight): a lasting lag means a writer is stuck with its transaction open.
    pub async fn horizon_lag(&self) -> Result<i64, StoreError> {
        self.live()?;
        let last: i64 = sqlx::query_scalar::<_, i64>(AssertSqlSafe(self.sql.last_id.clone()))
            .fetch_one(&self.pool)
            .await
            .map_err(backend("query"))?;
        Ok((last - self.horizon().await?).max(0))
    }
}
