//! Configuration: connection fields with the defaults of act-pg, the tenant's identifiers
//! (validated before any SQL is built), and the pool.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::PostgresStore;
use super::codec::backend;
use crate::error::{StoreError, ValidationError};

/// The longest schema name: with the longest table name, every generated name (tables,
/// indexes, functions, the sequence) fits in PostgreSQL's 63 bytes (longer names would be
/// truncated silently, and two tenants could collide).
const SCHEMA_MAX: usize = 28;
/// The longest table (prefix) name.
const TABLE_MAX: usize = 20;

/// How many commits (or groups of commits) one store runs at once, by default.
pub(crate) const COMMIT_SLOTS: usize = 4;

/// How a [`PostgresStore`] connects, and which tenant it serves.
///
/// Every field is optional; the defaults are act-pg's: host `localhost`, port `5432`,
/// database `postgres`, user `postgres`, password `postgres`, schema `public`, table
/// `events` (the log is `"public"."events"`, the subscription table `"public"."events_streams"`),
/// plus a pool of 16 connections.
///
/// ```
/// use act_runtime::adapters::postgres::PostgresConfig;
///
/// let config = PostgresConfig::new()
///     .host("db.example.com")
///     .database("production")
///     .schema("tenant_a")
///     .table("act_events")
///     .pool_size(32);
/// assert_eq!(config.get_schema(), "tenant_a");
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    options: PgConnectOptions,
    schema: String,
    table: String,
    pool_size: u32,
    commit_slots: usize,
    acquire_timeout: Duration,
    statement_timeout: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.options.get_host())
            .field("port", &self.options.get_port())
            .field("database", &self.options.get_database())
            .field("user", &self.options.get_username())
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("pool_size", &self.pool_size)
            .field("commit_slots", &self.commit_slots)
            .finish_non_exhaustive()
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl PostgresConfig {
    /// The defaults (see the type's docs); environment variables such as `PGHOST` are not
    /// read.
    pub fn new() -> Self {
        Self::with_options(
            PgConnectOptions::new_without_pgpass()
                .host("localhost")
                .port(5432)
                .database("postgres")
                .username("postgres")
                .password("postgres"),
        )
    }

    /// The connection fields of a URL (`postgres://user:pass@host:5432/db?sslmode=require`),
    /// with the default schema, table and pool size.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(backend("connect"))?;
        Ok(Self::with_options(options))
    }

    /// Starts from sqlx's own connect options (TLS, sockets, ...).
    pub fn with_options(options: PgConnectOptions) -> Self {
        Self {
            options,
            schema: "public".into(),
            table: "events".into(),
            pool_size: 16,
            commit_slots: COMMIT_SLOTS,
            acquire_timeout: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(30),
        }
    }

    /// The server's host name or address.
    #[must_use]
    pub fn host(mut self, host: &str) -> Self {
        self.options = self.options.host(host);
        self
    }

    /// The server's port.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.options = self.options.port(port);
        self
    }

    /// The database.
    #[must_use]
    pub fn database(mut self, database: &str) -> Self {
        self.options = self.options.database(database);
        self
    }

    /// The user to connect as.
    #[must_use]
    pub fn user(mut self, user: &str) -> Self {
        self.options = self.options.username(user);
        self
    }

    /// The user's password.
    #[must_use]
    pub fn password(mut self, password: &str) -> Self {
        self.options = self.options.password(password);
        self
    }

    /// The tenant's schema (`^[a-z_][a-z0-9_]{0,27}$`, not `pg_*` nor
    /// `information_schema`); checked by [`PostgresConfig::connect`].
    #[must_use]
    pub fn schema(mut self, schema: &str) -> Self {
        schema.clone_into(&mut self.schema);
        self
    }

    /// The base name of the tenant's tables (`^[a-z_][a-z0-9_]{0,19}$`): the log is
    /// `<table>`, the subscriptions `<table>_streams`; checked by [`PostgresConfig::connect`].
    #[must_use]
    pub fn table(mut self, table: &str) -> Self {
        table.clone_into(&mut self.table);
        self
    }

    /// The most connections the pool opens (default 16; 8 is plenty for read-mostly
    /// processes). From 4 up, the store keeps one of them aside between statements (the
    /// last one whose statement answered), which spares sqlx's ping when it takes a
    /// connection back.
    #[must_use]
    pub fn pool_size(mut self, n: u32) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// How many commits run at once (default 4, at least 1). A commit that finds every
    /// slot busy waits, with the others that arrive meanwhile, for the next free slot,
    /// which sends them all as one group: one round trip and one transaction, in which
    /// each commit still checks its own stream's version and fails or succeeds alone.
    /// More slots mean more connections busy with commits and smaller groups. The store
    /// uses at most the pool size minus one slots (at least one), so commits always leave a
    /// connection to the reads.
    ///
    /// ```
    /// use act_runtime::adapters::postgres::PostgresConfig;
    ///
    /// let config = PostgresConfig::new().pool_size(32).commit_slots(8);
    /// ```
    #[must_use]
    pub fn commit_slots(mut self, n: usize) -> Self {
        self.commit_slots = n.max(1);
        self
    }

    /// How long an operation waits for a free connection (default 30 s).
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The server-side `statement_timeout` of every connection (default 30 s). It also
    /// bounds how long a stuck writer can hold back multi-stream readers.
    #[must_use]
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// The configured schema.
    pub fn get_schema(&self) -> &str {
        &self.schema
    }

    /// The configured table.
    pub fn get_table(&self) -> &str {
        &self.table
    }

    /// The connect options with the store's session settings.
    pub(crate) fn session_options(&self) -> PgConnectOptions {
        let ms = self.statement_timeout.as_millis().max(1);
        self.options
            .clone()
            .application_name("act-rs")
            .statement_cache_capacity(256)
            .options([("statement_timeout", format!("{ms}ms"))])
    }

    /// Validates the identifiers, opens the pool (one connection is made now, so a missing
    /// server fails here) and returns the store. Does not seed: call
    /// [`Store::seed`](crate::ports::Store::seed).
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
        let tenant = Tenant::new(&self.schema, &self.table)?;
        let pool = PgPoolOptions::new()
            .max_connections(self.pool_size)
            .min_connections(0)
            .acquire_timeout(self.acquire_timeout)
            // The default pings on every acquire: one more round trip per operation. A
            // broken connection surfaces once as an error and is dropped.
            .test_before_acquire(false)
            .connect_with(self.session_options())
            .await
            .map_err(backend("connect"))?;
        Ok(PostgresStore::from_parts(
            pool,
            tenant,
            true,
            self.commit_slots,
        ))
    }
}

/// A validated tenant: its schema and table, and the names derived from them.
#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    pub(crate) schema: String,
    pub(crate) table: String,
    /// The tenant's advisory-lock namespace (see the module docs).
    pub(crate) ns: i32,
}

impl Tenant {
    pub(crate) fn new(schema: &str, table: &str) -> Result<Self, StoreError> {
        identifier("schema", schema, SCHEMA_MAX)?;
        identifier("table", table, TABLE_MAX)?;
        if schema.starts_with("pg_") || schema == "information_schema" {
            return Err(ValidationError::new(
                "postgres config",
                "/schema",
                format!("schema `{schema}` is reserved by PostgreSQL"),
            )
            .into());
        }
        Ok(Self {
            schema: schema.to_owned(),
            table: table.to_owned(),
            ns: namespace(schema, table),
        })
    }

    /// The quoted, schema-qualified name of the tenant's object `<table><suffix>`.
    pub(crate) fn object(&self, suffix: &str) -> String {
        format!("\"{}\".\"{}{suffix}\"", self.schema, self.table)
    }

    /// The unqualified, quoted name `<table><suffix>` (indexes, triggers).
    pub(crate) fn local(&self, suffix: &str) -> String {
        format!("\"{}{suffix}\"", self.table)
    }
}

/// Checks `value` matches `^[a-z_][a-z0-9_]{0,max-1}$`.
fn identifier(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= max
        && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "postgres config",
            format!("/{what}"),
            format!(
                "{what} `{}` is not a safe identifier: lowercase ASCII letters, digits and `_`, \
                 not starting with a digit, at most {max} characters",
                value.escape_debug()
            ),
        )
        .into())
    }
}

/// The advisory-lock namespace of a tenant: FNV-1a (32 bits) of `schema.table`, the same in
/// every process. A collision between tenants only makes readers wait a little longer.
fn namespace(schema: &str, table: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in schema.bytes().chain([b'.']).chain(table.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(h.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["public", "_a", "a1_b", "act_t_0123456789abcdef0123"] {
            assert!(Tenant::new(ok, "events").is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "1a",
            "a-b",
            "a\"b",
            "a;drop",
            "pg_catalog",
            "information_schema",
            "ünï",
            "a b",
            "abcdefghijklmnopqrstuvwxyz012",
        ] {
            assert!(
                matches!(Tenant::new(bad, "events"), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(Tenant::new("public", "abcdefghijklmnopqrst").is_ok());
        assert!(Tenant::new("public", "abcdefghijklmnopqrstu").is_err());
        assert!(Tenant::new("public", "Events").is_err());
    }

    #[test]
    fn namespaces_differ_per_tenant() {
        assert_ne!(namespace("a", "events"), namespace("b", "events"));
        assert_ne!(namespace("a", "b_c"), namespace("a_b", "c"));
        assert_eq!(namespace("a", "events"), namespace("a", "events"));
    }
}
