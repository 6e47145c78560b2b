//! The seed's sales domain and its sales-by-day projection, kept in a SQL table (SQLite or
//! PostgreSQL, through sqlx's `Any` driver). Shared by the `sales` example and the
//! projection tests (`mod sales_model;`).
//!
//! The table `sales_by_day(day, total, checkouts)` is the live model; a rebuild fills
//! `sales_by_day_next` beside it and promotes it in one transaction. Each model's checkpoint
//! (the id of the last event it applied) is a row of `projection_checkpoints`, written in
//! the same transaction as the rows, so a batch delivered twice is applied once.

#![allow(dead_code)]

use std::time::Duration;

use act::prelude::*;
use act::projections::{Batch, Model, Projection};
use act::reactions::ReactionError;
use sqlx::AnyPool;
use sqlx::pool::PoolOptions;
// Table names below are this module's constants, never input: safe to format into SQL.
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

// ---- the domain -----------------------------------------------------------------------

#[state(name = "Cart", actions(CheckOut))]
#[derive(Debug, Clone, Default)]
pub struct Cart {
    pub checked_out: bool,
    pub total: f64,
}

#[emits(Cart)]
#[derive(Debug, Clone)]
pub enum CartEvent {
    CheckedOut { total: f64, timestamp: String },
}

impl Patch<CartEvent> for Cart {
    fn patch(&mut self, event: &CartEvent) {
        match event {
            CartEvent::CheckedOut { total, .. } => {
                self.checked_out = true;
                self.total = *total;
            }
        }
    }
}

/// A checkout: passes through as the `CheckedOut` event.
#[action(Cart, emit = CartEvent::CheckedOut)]
#[given(open = "the cart is already checked out")]
pub struct CheckOut {
    pub total: f64,
    pub timestamp: String,
}

fn open(cart: &Cart) -> bool {
    !cart.checked_out
}

// ---- the projection -------------------------------------------------------------------

/// The live table.
pub const LIVE: &str = "sales_by_day";
/// The table a rebuild fills.
pub const NEXT: &str = "sales_by_day_next";

/// One row of the sales-by-day table.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRow {
    pub day: String,
    pub total: f64,
    pub checkouts: i64,
}

/// Checkouts grouped by day: the day's total and count.
#[derive(Clone)]
pub struct SalesByDay {
    pub db: AnyPool,
    /// A pause before each batch applied to the next copy (to watch a rebuild, or to stop
    /// one halfway in a test).
    pub pace: Duration,
    /// Whether `db` is SQLite: its write transactions take the write lock up front.
    sqlite: bool,
}

impl SalesByDay {
    /// Connects to `url` (`sqlite:...` or `postgres://...`) and creates the live table.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        // an in-memory SQLite database lives in one connection
        let max = if url.contains(":memory:") { 1 } else { 4 };
        let db = PoolOptions::<Any>::new()
            .max_connections(max)
            .connect(url)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS projection_checkpoints (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
        )
        .execute(&db)
        .await?;
        let model = Self {
            db,
            pace: Duration::ZERO,
            sqlite: url.starts_with("sqlite:"),
        };
        let mut tx = model.write().await?;
        create(&mut tx, LIVE, false).await?;
        tx.commit().await?;
        Ok(model)
    }

    /// A write transaction. On SQLite it begins `IMMEDIATE`: a deferred one that reads
    /// first fails at once with "database is locked" when another process (a rebuild
    /// elsewhere) wrote meanwhile, where an immediate one waits its turn.
    async fn write(&self) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        if self.sqlite {
            self.db.begin_with("BEGIN IMMEDIATE").await
        } else {
            self.db.begin().await
        }
    }

    /// Drops both copies and their checkpoints: a fresh model.
    pub async fn drop_all(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.write().await?;
        for t in [LIVE, NEXT] {
            sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {t}")))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM projection_checkpoints WHERE name IN ($1, $2)")
            .bind(LIVE)
            .bind(NEXT)
            .execute(&mut *tx)
            .await?;
        create(&mut tx, LIVE, false).await?;
        tx.commit().await
    }

    /// The rows of `table`, by day.
    pub async fn rows(&self, table: &str) -> Result<Vec<DayRow>, sqlx::Error> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT day, total, checkouts FROM {table} ORDER BY day"
        )))
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DayRow {
                    day: r.try_get(0)?,
                    total: r.try_get(1)?,
                    checkouts: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// The checkpoint of `table`: the id of the last event applied to it.
    pub async fn checkpoint(&self, table: &str) -> Result<Option<i64>, sqlx::Error> {
        let row = sqlx::query("SELECT position FROM projection_checkpoints WHERE name = $1")
            .bind(table)
            .fetch_optional(&self.db)
            .await?;
        row.map(|r| r.try_get(0)).transpose()
    }
}

/// Creates `table`, unless it exists (or afresh). Its unique constraint on `day` is named
/// uniquely, so that a renamed table's index never collides with a new one's.
async fn create(
    tx: &mut Transaction<'_, Any>,
    table: &str,
    fresh: bool,
) -> Result<(), sqlx::Error> {
    if fresh {
        sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
            .execute(&mut **tx)
            .await?;
    }
    let tag = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {table} (day TEXT NOT NULL, total DOUBLE PRECISION NOT NULL, \
         checkouts BIGINT NOT NULL, CONSTRAINT {table}_day_{tag} UNIQUE (day))"
    )))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn retry(e: sqlx::Error) -> ReactionError {
    ReactionError::retry(e)
}

impl Projection for SalesByDay {
    type Event = CartEvent;
    const NAME: &'static str = "sales-by-day";
    const EVENTS: &'static [&'static str] = &["CheckedOut"];
    const BATCH: bool = true;

    async fn apply(&self, batch: Batch<'_, CartEvent>) -> Result<(), ReactionError> {
        let table = match batch.model {
            Model::Live => LIVE,
            Model::Next => {
                if !self.pace.is_zero() {
                    tokio::time::sleep(self.pace).await;
                }
                NEXT
            }
        };
        let mut tx = self.write().await.map_err(retry)?;
        let checkpoint: Option<i64> =
            sqlx::query("SELECT position FROM projection_checkpoints WHERE name = $1")
                .bind(table)
                .fetch_optional(&mut *tx)
                .await
                .map_err(retry)?
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(retry)?;
        let events = batch.since(checkpoint)?;
        let Some(last) = events.last() else {
            return Ok(());
        };
        let upsert = format!(
            "INSERT INTO {table} (day, total, checkouts) VALUES ($1, $2, 1) \
             ON CONFLICT (day) DO UPDATE SET total = {table}.total + excluded.total, \
             checkouts = {table}.checkouts + 1"
        );
        for e in events {
            let CartEvent::CheckedOut { total, timestamp } = &e.data;
            let day = timestamp.get(..10).unwrap_or(timestamp);
            sqlx::query(AssertSqlSafe(upsert.as_str()))
                .bind(day)
                .bind(*total)
                .execute(&mut *tx)
                .await
                .map_err(retry)?;
        }
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        )
        .bind(table)
        .bind(last.id)
        .execute(&mut *tx)
        .await
        .map_err(retry)?;
        tx.commit().await.map_err(retry)
    }

    async fn clear_next(&self) -> Result<(), ReactionError> {
        let mut tx = self.write().await.map_err(retry)?;
        create(&mut tx, NEXT, true).await.map_err(retry)?;
        sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1")
            .bind(NEXT)
            .execute(&mut *tx)
            .await
            .map_err(retry)?;
        tx.commit().await.map_err(retry)
    }

    async fn promote_next(&self) -> Result<(), ReactionError> {
        let mut tx = self.write().await.map_err(retry)?;
        for sql in [
            format!("DROP TABLE IF EXISTS {LIVE}"),
            format!("ALTER TABLE {NEXT} RENAME TO {LIVE}"),
        ] {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(retry)?;
        }
        sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1")
            .bind(LIVE)
            .execute(&mut *tx)
            .await
            .map_err(retry)?;
        sqlx::query("UPDATE projection_checkpoints SET name = $1 WHERE name = $2")
            .bind(LIVE)
            .bind(NEXT)
            .execute(&mut *tx)
            .await
            .map_err(retry)?;
        tx.commit().await.map_err(retry)
    }
}
