//! Shared by the PostgreSQL tests: the server's URL, a fresh schema per store, and cleanup.
//!
//! The server is `postgres://postgres@127.0.0.1:5432/test` unless `ACT_PG_URL` says
//! otherwise. A missing server fails the tests; it never skips them.

#![allow(dead_code)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use act_runtime::adapters::PostgresStore;
use act_runtime::adapters::postgres::PostgresConfig;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

/// The test server.
pub fn url() -> String {
    std::env::var("ACT_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema name no other test uses: `act_t_<16 hex digits>`.
pub fn fresh_schema() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let mut h = nanos ^ (u64::from(std::process::id()) << 32) ^ N.fetch_add(1, Ordering::Relaxed);
    // splitmix64: spread the bits.
    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    format!("act_t_{h:016x}")
}

/// The schemas a test made, dropped by [`Schemas::drop_all`].
#[derive(Default)]
pub struct Schemas(Mutex<Vec<String>>);

impl Schemas {
    /// A fresh schema, remembered for cleanup.
    pub fn fresh(&self) -> String {
        let s = fresh_schema();
        self.0.lock().unwrap().push(s.clone());
        s
    }

    /// A store on a fresh schema, with a small pool (tests run in parallel).
    pub async fn store(&self) -> PostgresStore {
        store_on(&self.fresh()).await
    }

    /// Drops every schema made so far.
    pub async fn drop_all(&self) {
        let names: Vec<String> = std::mem::take(&mut *self.0.lock().unwrap());
        let pool = admin().await;
        for s in names {
            drop_schema(&pool, &s).await;
        }
        pool.close().await;
    }
}

/// A store on `schema` (table `events`), not seeded.
pub async fn store_on(schema: &str) -> PostgresStore {
    PostgresConfig::from_url(&url())
        .expect("ACT_PG_URL is a PostgreSQL URL")
        .schema(schema)
        .pool_size(4)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is required: {e}", url()))
}

/// A plain pool on the test database.
pub async fn admin() -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect(&url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is required: {e}", url()))
}

/// Drops `schema` and everything in it.
pub async fn drop_schema(pool: &PgPool, schema: &str) {
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    sqlx::query(AssertSqlSafe(sql))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("drop schema {schema}: {e}"));
}
