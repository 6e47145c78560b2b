//! Adapters: implementations of the [`crate::ports`].
//!
//! * [`InMemoryStore`] and [`InMemoryCache`]: the defaults, zero setup.
//! * `SqliteStore` (feature `sqlite`): embedded and persistent, one database file per tenant.
//! * `PostgresStore` (feature `postgres`): one database shared by a fleet of processes, one
//!   schema per tenant.
//! * `RedisCache` (feature `redis`): one cache shared by a fleet of processes, one key
//!   prefix per tenant.

pub mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod meta;
mod text;

pub use memory::{InMemoryCache, InMemoryStore};

#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;

#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
pub use redis::RedisCache;
