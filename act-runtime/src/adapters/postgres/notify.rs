//! Doorbells: `LISTEN`/`NOTIFY` wake-ups between processes sharing a tenant.
//!
//! * **Ring** after a commit (never inside it): [`Doorbells::ring`] only sets a flag and
//!   wakes a background task, which sends `SELECT pg_notify($1, $2)` as its own
//!   transaction on a dedicated connection (`synchronous_commit = off`: a lost doorbell is
//!   harmless, the poll covers it). Doorbells are coalesced to at most one per
//!   [`WINDOW`] per store: the leading edge fires at once, the trailing edge once more if
//!   commits happened in the window. A slow or unreachable notify connection delays only
//!   doorbells, never a commit.
//! * **Listen** on the tenant's channel `act_<schema>_<table>` with one `PgListener` on its
//!   own connection, started by the first [`Doorbells::subscribe`]. The payload is the
//!   store's instance id: a store ignores its own doorbells (its local commit already woke
//!   its worker). After every (re)connection the listener rings its subscribers once, since
//!   doorbells sent while it was away are lost.
//! * **Stop** with [`Doorbells::stop`] (dispose, or dropping the store): both tasks end and
//!   the subscribers' receivers close.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use super::config::Tenant;
use crate::error::Report;

/// At most one doorbell per store in this window.
pub(crate) const WINDOW: Duration = Duration::from_millis(5);
/// The longest a doorbell may take before it is given up (the poll covers it).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// The first pause before the listener reconnects; doubled on each failure in a row.
const BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between the listener's reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Wake-ups a slow subscriber may have pending before it sees `Lagged` (also a wake-up).
const CAPACITY: usize = 16;

/// The doorbells of one store: the notifier and the listener, both started lazily.
pub(crate) struct Doorbells {
    /// This store's instance id: the payload of its doorbells.
    id: String,
    /// The tenant's channel.
    channel: String,
    /// How to reach the database (the store pool's options).
    options: Arc<PgConnectOptions>,
    stop: CancellationToken,
    /// The notifier, started by the first ring.
    bell: OnceLock<Arc<Bell>>,
    /// The listener's subscriber end, started by the first subscription.
    listener: Mutex<Option<broadcast::Sender<()>>>,
}

/// What a ring leaves for the notifier task.
#[derive(Default)]
pub(crate) struct Bell {
    pending: AtomicBool,
    notify: Notify,
}

impl Bell {
    fn ring(&self) {
        self.pending.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

/// The tenant's channel name, `act_<schema>_<table>` (≤ 53 bytes with the identifier limits).
pub(crate) fn channel(tenant: &Tenant) -> String {
    format!("act_{}_{}", tenant.schema, tenant.table)
}

impl Doorbells {
    pub(crate) fn new(pool: &PgPool, tenant: &Tenant) -> Self {
        Self {
            id: uuid::Uuid::now_v7().simple().to_string(),
            channel: channel(tenant),
            options: pool.connect_options(),
            stop: CancellationToken::new(),
            bell: OnceLock::new(),
            listener: Mutex::new(None),
        }
    }

    /// Rings the doorbell after a commit: sets a flag and wakes the notifier (started here
    /// the first time). Never waits.
    pub(crate) fn ring(&self) {
        if self.stop.is_cancelled() {
            return;
        }
        let bell = self.bell.get_or_init(|| {
            let bell = Arc::new(Bell::default());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let options = (*self.options)
                    .clone()
                    .options([("synchronous_commit", "off")]);
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .min_connections(0)
                    .connect_lazy_with(options);
                let (channel, id) = (self.channel.clone(), self.id.clone());
                let send = move || {
                    let (pool, channel, id) = (pool.clone(), channel.clone(), id.clone());
                    async move {
                        let sent = sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(&channel)
                            .bind(&id)
                            .execute(&pool)
                            .await;
                        if let Err(e) = sent {
                            tracing::debug!(channel, error = %Report::new(&e), "a doorbell was not sent; other processes poll");
                        }
                    }
                };
                rt.spawn(notifier(bell.clone(), self.stop.clone(), WINDOW, send));
            }
            bell
        });
        bell.ring();
    }

    /// A receiver rung when another process may have committed work (see
    /// [`Store::wakeups`](crate::ports::Store::wakeups)). Starts the listener the first
    /// time; `None` once stopped or outside a Tokio runtime.
    pub(crate) fn subscribe(&self) -> Option<broadcast::Receiver<()>> {
        if self.stop.is_cancelled() {
            return None;
        }
        let mut slot = self.listener.lock();
        if let Some(tx) = &*slot {
            return Some(tx.subscribe());
        }
        let rt = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = broadcast::channel(CAPACITY);
        rt.spawn(listen(
            (*self.options).clone(),
            self.channel.clone(),
            self.id.clone(),
            tx.clone(),
            self.stop.clone(),
        ));
        *slot = Some(tx);
        Some(rx)
    }

    /// Stops the notifier and the listener; the subscribers' receivers close.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
        self.listener.lock().take();
    }
}

/// The notifier: waits for a ring, sends one doorbell, then waits out the window and
/// sends once more if rings came in it (leading and trailing edge).
pub(crate) async fn notifier<F, Fut>(
    bell: Arc<Bell>,
    stop: CancellationToken,
    window: Duration,
    mut send: F,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = bell.notify.notified() => {}
        }
        while bell.pending.swap(false, Ordering::AcqRel) {
            tokio::select! {
                () = stop.cancelled() => return,
                r = tokio::time::timeout(SEND_TIMEOUT, send()) => {
                    if r.is_err() {
                        tracing::debug!("a doorbell timed out; other processes poll");
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(window) => {}
            }
        }
    }
}

/// The listener: `LISTEN`s on `channel` over its own connection, rings `tx` for every
/// burst of doorbells not sent by `me`, and once after each (re)connection.
async fn listen(
    options: PgConnectOptions,
    channel: String,
    me: String,
    tx: broadcast::Sender<()>,
    stop: CancellationToken,
) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(options);
    let mut backoff = BACKOFF;
    'connect: loop {
        let connected = tokio::select! {
            () = stop.cancelled() => break 'connect,
            c = connect(&pool, &channel) => c,
        };
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(channel, error = %Report::new(&e), ?backoff, "the doorbell listener cannot connect; it retries (the worker polls meanwhile)");
                tokio::select! {
                    () = stop.cancelled() => break 'connect,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                continue;
            }
        };
        // (re)connected: doorbells sent meanwhile are lost, so wake the subscribers once
        let _ = tx.send(());
        loop {
            let received = tokio::select! {
                () = stop.cancelled() => break 'connect,
                r = listener.try_recv() => r,
            };
            match received {
                Ok(Some(n)) => {
                    backoff = BACKOFF;
                    let mut ring = n.payload() != me;
                    while let Some(n) = listener.next_buffered() {
                        ring |= n.payload() != me;
                    }
                    if ring {
                        let _ = tx.send(());
                    }
                }
                // the connection was lost and is back (eager reconnect): catch up
                Ok(None) => {
                    let _ = tx.send(());
                }
                Err(e) => {
                    tracing::warn!(channel, error = %Report::new(&e), ?backoff, "the doorbell listener lost its connection; it reconnects");
                    drop(listener);
                    tokio::select! {
                        () = stop.cancelled() => break 'connect,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                    continue 'connect;
                }
            }
        }
    }
    pool.close().await;
}

async fn connect(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(channel).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rings_coalesce_to_a_leading_and_a_trailing_doorbell() {
        let bell = Arc::new(Bell::default());
        let stop = CancellationToken::new();
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        tokio::spawn(notifier(bell.clone(), stop.clone(), WINDOW, move || {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::ready(())
        }));
        for _ in 0..100 {
            bell.ring();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            sent.load(Ordering::SeqCst),
            1,
            "the leading edge fires at once"
        );
        for _ in 0..100 {
            bell.ring();
        }
        tokio::time::sleep(WINDOW * 4).await;
        assert_eq!(
            sent.load(Ordering::SeqCst),
            2,
            "one trailing doorbell for the window"
        );
        tokio::time::sleep(WINDOW * 4).await;
        assert_eq!(sent.load(Ordering::SeqCst), 2, "no rings, no doorbells");
        bell.ring();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(sent.load(Ordering::SeqCst), 3);
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_doorbell_never_blocks_a_ring() {
        let bell = Arc::new(Bell::default());
        let stop = CancellationToken::new();
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let task = tokio::spawn(notifier(bell.clone(), stop.clone(), WINDOW, move || {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>()
        }));
        bell.ring();
        tokio::time::sleep(Duration::from_millis(1)).await;
        // the doorbell hangs; rings still return at once and coalesce
        for _ in 0..1000 {
            bell.ring();
        }
        assert_eq!(sent.load(Ordering::SeqCst), 1);
        // the hung doorbell is given up; the pending ring is sent after the window
        tokio::time::sleep(SEND_TIMEOUT + WINDOW * 2).await;
        assert_eq!(sent.load(Ordering::SeqCst), 2);
        stop.cancel();
        task.await.unwrap();
    }
}
