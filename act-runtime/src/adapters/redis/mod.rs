//! The Redis cache: one cache shared by a fleet of processes (feature `redis`).
//!
//! * **Connect** with [`RedisCache::new`]: a `redis://` (or `rediss://`, `unix://`) URL and
//!   the tenant's key prefix. Nothing connects until the first call, so an app builds and
//!   runs while Redis is down. Calls share one multiplexed connection
//!   (`redis::aio::ConnectionManager`), which reconnects in the background after a failure.
//!   Needs a Tokio runtime.
//! * **Tenants.** Entry keys are `<prefix>:{<stream>}`, for example `act:tenant-a:{cart-1}`
//!   (the stream is a Redis Cluster hash tag). A prefix is 1 to 128 bytes of ASCII letters,
//!   digits, `_`, `-`, `.` and `:` (checked by [`RedisCache::new`]): without `{` or glob
//!   characters, a tenant's keys and its `clear` never reach another tenant's keys, even
//!   one whose prefix extends it (`act:a` and `act:a:b`). Give each store its own prefix:
//!   entries are only valid for the store they were folded from.
//!
//! # Data structures
//!
//! One hash per stream: `e`, the event id of the entry, and `v`, the JSON of
//! `{state, version, patches, snaps}`, with a TTL (1 hour by default,
//! [`RedisCache::with_ttl`]) to bound memory.
//!
//! # Guarantees
//!
//! * **`get`** is one `HMGET`. An entry that does not parse is a miss (and logged).
//! * **`set`** is one Lua compare-and-set on the event id: it lands only if no entry of a
//!   higher or equal event id is cached. A slow process can never replace a newer entry with
//!   an older one. Event ids keep rising when a stream restarts, unlike versions, so the
//!   newest entry always wins. Ids are compared as Lua numbers: exactly below 2^53.
//! * **`invalidate`** is `DEL`: once it returns `Ok`, `get` misses until the next `set`. It
//!   returns an error whenever it cannot be sure of that.
//! * **`clear`** walks the prefix with `SCAN MATCH <prefix>:{*` and `UNLINK`s each batch,
//!   never `KEYS`. An entry set while it runs may survive it.
//! * **`dispose`** drops the connection; it never deletes entries (the fleet shares them).
//!   After it, every call fails (a miss).
//!
//! # Outages
//!
//! A Redis outage fails no action and stalls no load. Every call has a timeout:
//! [`RedisCache::with_timeout`] (250 ms by default) for `get` and `set`, which sit on the path
//! of every load and execute, and [`RedisCache::with_invalidate_timeout`] (2 s by default)
//! for `invalidate` and each round trip of `clear`. A failure or a timeout is an
//! error, which the app treats as the port says: a failed `get` is a miss (the load replays
//! the stream from the store), a failed `set` is skipped, a failed `invalidate` is logged.
//! After a connection failure or a timeout, `get` and `set` fail at once for a back-off
//! period ([`RedisCache::with_backoff`], 1 s by default) instead of waiting on an
//! unresponsive server again; `invalidate` and `clear` always try.
//!
//! ```
//! use std::time::Duration;
//!
//! use act_runtime::adapters::RedisCache;
//!
//! let cache = RedisCache::new("redis://127.0.0.1:6379", "act:tenant-a")
//!     .unwrap()
//!     .with_timeout(Duration::from_millis(100))
//!     .with_ttl(Some(Duration::from_secs(600)));
//! assert_eq!(cache.prefix(), "act:tenant-a");
//! assert_eq!(cache.key("cart-1"), "act:tenant-a:{cart-1}");
//! assert!(RedisCache::new("redis://127.0.0.1:6379", "act:*").is_err());
//! ```

mod codec;
mod keys;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script};
use async_trait::async_trait;
use parking_lot::Mutex;

pub use keys::PREFIX_MAX;

use crate::error::CacheError;
use crate::ports::{Cache, CacheEntry};

/// The compare-and-set of `set`: `KEYS[1]` = entry, `ARGV[1]` = event id, `ARGV[2]` = entry
/// JSON, `ARGV[3]` = TTL in ms (0 = none). Returns 1 when it stored the entry, 0 when a
/// newer (or the same) entry is cached.
const SET_SCRIPT: &str = r"
local cur = redis.call('HGET', KEYS[1], 'e')
if cur and tonumber(cur) and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'v', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
return 1
";

/// Keys asked for per `SCAN` round trip of `clear`.
const SCAN_COUNT: usize = 1000;

/// A [`Cache`] in Redis, shared by every process serving a tenant: see the
/// [module docs](self).
pub struct RedisCache {
    client: Client,
    prefix: String,
    timeout: Duration,
    invalidate_timeout: Duration,
    ttl: Option<Duration>,
    backoff: Duration,
    script: Script,
    /// The connection, made on first use; `None` again after `dispose`.
    conn: Mutex<Option<ConnectionManager>>,
    disposed: AtomicBool,
    /// Until when `get` and `set` fail at once, in ms since `epoch` (0: not backing off).
    down_until: AtomicU64,
    epoch: Instant,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the address is shown.
        f.debug_struct("RedisCache")
            .field(
                "addr",
                &self.client.get_connection_info().addr().to_string(),
            )
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("invalidate_timeout", &self.invalidate_timeout)
            .field("ttl", &self.ttl)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// Why a call failed, before it becomes a [`CacheError`].
enum Failure {
    /// The timeout elapsed.
    Timeout(Duration),
    /// Redis answered with an error, or could not be reached.
    Redis(RedisError),
    /// Anything else (disposed, backing off, an entry that does not serialize).
    Other(String),
}

impl Failure {
    /// Whether the server looks unreachable: starts a back-off.
    fn is_outage(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_refusal()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
            }
            Self::Other(_) => false,
        }
    }

    fn into_error(self, operation: &'static str) -> CacheError {
        let source = match self {
            Self::Timeout(d) => format!("timed out after {d:?}").into(),
            Self::Redis(e) => e.into(),
            Self::Other(s) => s.into(),
        };
        CacheError { operation, source }
    }
}

impl From<RedisError> for Failure {
    fn from(e: RedisError) -> Self {
        Self::Redis(e)
    }
}

impl RedisCache {
    /// The default timeout of `get` and `set`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
    /// The default timeout of `invalidate` and each round trip of `clear`.
    pub const DEFAULT_INVALIDATE_TIMEOUT: Duration = Duration::from_secs(2);
    /// The default time to live of an entry.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
    /// The default back-off after a connection failure.
    pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

    /// A cache at `url` whose keys all start with `prefix` and a `:` (see the
    /// [module docs](self) for what a prefix may hold). Connects on first use, so it
    /// succeeds while Redis is down; fails only on an invalid URL or prefix.
    pub fn new(url: &str, prefix: &str) -> Result<Self, CacheError> {
        keys::validate_prefix(prefix).map_err(|e| CacheError {
            operation: "new",
            source: e.into(),
        })?;
        let client = Client::open(url).map_err(|e| CacheError {
            operation: "new",
            source: e.into(),
        })?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            invalidate_timeout: Self::DEFAULT_INVALIDATE_TIMEOUT,
            ttl: Some(Self::DEFAULT_TTL),
            backoff: Self::DEFAULT_BACKOFF,
            script: Script::new(SET_SCRIPT),
            conn: Mutex::new(None),
            disposed: AtomicBool::new(false),
            down_until: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Bounds `get` and `set` (each at least 1 ms), including connecting.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Bounds `invalidate` and each round trip of `clear` (each at least 1 ms),
    /// including connecting.
    pub fn with_invalidate_timeout(mut self, timeout: Duration) -> Self {
        self.invalidate_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Entries expire `ttl` after their last `set` (rounded to ms, at least 1 ms); `None`
    /// keeps them until invalidated.
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long `get` and `set` fail at once after a connection failure or a timeout
    /// (`Duration::ZERO`: never back off).
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of `stream`'s entry.
    pub fn key(&self, stream: &str) -> String {
        keys::entry_key(&self.prefix, stream)
    }

    /// The timeout of `get` and `set`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The timeout of `invalidate` and each round trip of `clear`.
    pub fn invalidate_timeout(&self) -> Duration {
        self.invalidate_timeout
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.map_or(0, |t| {
            u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The shared connection, made (lazily: it connects on first command) on first use.
    fn conn(&self) -> Result<ConnectionManager, Failure> {
        let mut conn = self.conn.lock();
        if self.disposed.load(Ordering::Acquire) {
            return Err(Failure::Other("cache is disposed".into()));
        }
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let longest = self.timeout.max(self.invalidate_timeout);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(longest))
            .set_response_timeout(Some(longest))
            // One attempt per reconnect: the next failing call triggers the next one.
            .set_number_of_retries(0);
        let c = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Runs `op` on the connection within `timeout`, tracking outages. `fast` calls fail at
    /// once while backing off.
    async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        timeout: Duration,
        fast: bool,
        op: F,
    ) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        if fast && self.now_ms() < self.down_until.load(Ordering::Relaxed) {
            return Err(
                Failure::Other("redis unreachable; backing off".into()).into_error(operation)
            );
        }
        let result = match self.conn() {
            Ok(conn) => match tokio::time::timeout(timeout, op(conn)).await {
                Ok(r) => r,
                Err(_) => Err(Failure::Timeout(timeout)),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(v) => {
                self.down_until.store(0, Ordering::Relaxed);
                Ok(v)
            }
            Err(failure) => {
                if failure.is_outage() && !self.backoff.is_zero() {
                    let backoff = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX);
                    self.down_until
                        .store(self.now_ms().saturating_add(backoff), Ordering::Relaxed);
                }
                Err(failure.into_error(operation))
            }
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, stream: &str) -> Result<Option<CacheEntry>, CacheError> {
        let key = self.key(stream);
        let fields = self
            .call("get", self.timeout, true, |mut conn| async move {
                Ok(::redis::cmd("HMGET")
                    .arg(&key)
                    .arg("e")
                    .arg("v")
                    .query_async::<(Option<String>, Option<String>)>(&mut conn)
                    .await?)
            })
            .await?;
        match fields {
            (Some(e), Some(v)) => match codec::decode(&e, &v) {
                Ok(entry) => Ok(Some(entry)),
                Err(err) => {
                    tracing::warn!(stream, key = self.key(stream), error = %err, "unreadable redis cache entry; a miss");
                    Ok(None)
                }
            },
            _ => Ok(None),
        }
    }

    async fn set(&self, stream: &str, entry: CacheEntry) -> Result<(), CacheError> {
        let v = codec::encode(&entry).map_err(|e| CacheError {
            operation: "set",
            source: e.into(),
        })?;
        let key = self.key(stream);
        let ttl = self.ttl_ms();
        let script = &self.script;
        let stored = self
            .call("set", self.timeout, true, |mut conn| async move {
                Ok(script
                    .key(&key)
                    .arg(entry.event_id)
                    .arg(&v)
                    .arg(ttl)
                    .invoke_async::<i64>(&mut conn)
                    .await?)
            })
            .await?;
        if stored == 0 {
            tracing::debug!(
                stream,
                event_id = entry.event_id,
                "redis cache holds a newer entry; set skipped"
            );
        }
        Ok(())
    }

    async fn invalidate(&self, stream: &str) -> Result<(), CacheError> {
        let key = self.key(stream);
        self.call(
            "invalidate",
            self.invalidate_timeout,
            false,
            |mut conn| async move {
                ::redis::cmd("DEL")
                    .arg(&key)
                    .query_async::<i64>(&mut conn)
                    .await?;
                Ok(())
            },
        )
        .await
    }

    async fn clear(&self) -> Result<(), CacheError> {
        let pattern = keys::scan_pattern(&self.prefix);
        let mut cursor = 0_u64;
        loop {
            let pattern = &pattern;
            cursor = self
                .call(
                    "clear",
                    self.invalidate_timeout,
                    false,
                    |mut conn| async move {
                        let (next, keys) = ::redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(SCAN_COUNT)
                            .query_async::<(u64, Vec<String>)>(&mut conn)
                            .await?;
                        if !keys.is_empty() {
                            ::redis::cmd("UNLINK")
                                .arg(&keys)
                                .query_async::<i64>(&mut conn)
                                .await?;
                        }
                        Ok(next)
                    },
                )
                .await?;
            if cursor == 0 {
                return Ok(());
            }
        }
    }

    async fn dispose(&self) -> Result<(), CacheError> {
        let conn = {
            let mut conn = self.conn.lock();
            self.disposed.store(true, Ordering::Release);
            conn.take()
        };
        // Dropping the last handle closes the connection; nothing to flush.
        drop(conn);
        Ok(())
    }
}
