//! Shared fixtures of the integration tests: small domains used by several test files.

pub mod cart {
    //! The seed's shopping cart, with an invariant and snapshots every 3 events.

    use act_runtime::prelude::*;

    /// A cart.
    #[state(name = "Cart", snap = every_three, actions(AddItem, RemoveItem, CheckOut))]
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct Cart {
        /// Items in the cart.
        pub items: Vec<(String, u32)>,
        /// Whether the cart was checked out.
        pub checked_out: bool,
    }

    fn every_three(s: &Snapshot<Cart>) -> bool {
        s.patches >= 3
    }

    /// The cart's events.
    #[emits(Cart)]
    #[derive(Debug, Clone, PartialEq)]
    pub enum CartEvent {
        /// An item was added.
        ItemAdded {
            /// Stock keeping unit.
            sku: String,
            /// Quantity.
            qty: u32,
        },
        /// An item was removed.
        ItemRemoved {
            /// Stock keeping unit.
            sku: String,
        },
        /// The cart was checked out.
        CheckedOut,
    }

    impl Patch<CartEvent> for Cart {
        fn patch(&mut self, event: &CartEvent) {
            match event {
                CartEvent::ItemAdded { sku, qty } => self.items.push((sku.clone(), *qty)),
                CartEvent::ItemRemoved { sku } => self.items.retain(|(s, _)| s != sku),
                CartEvent::CheckedOut => self.checked_out = true,
            }
        }
    }

    fn is_open(cart: &Cart) -> bool {
        !cart.checked_out
    }

    fn has_items(cart: &Cart) -> bool {
        !cart.items.is_empty()
    }

    /// Adds an item.
    #[action(Cart, emit = CartEvent::ItemAdded)]
    #[given(is_open = "cart is checked out")]
    #[serde(deny_unknown_fields)]
    pub struct AddItem {
        /// Stock keeping unit.
        pub sku: String,
        /// Quantity.
        pub qty: u32,
    }

    /// Removes an item.
    #[action(Cart)]
    #[given(is_open = "cart is checked out")]
    pub struct RemoveItem {
        /// Stock keeping unit.
        pub sku: String,
    }

    impl Handle for RemoveItem {
        fn handle(&self, cart: &Cart, _: &Target) -> Emit<CartEvent> {
            if !cart.items.iter().any(|(s, _)| s == &self.sku) {
                return Err(format!("{} is not in the cart", self.sku).into());
            }
            Ok(vec![CartEvent::ItemRemoved {
                sku: self.sku.clone(),
            }])
        }
    }

    /// Checks the cart out.
    #[action(Cart)]
    #[given(is_open = "cart is checked out", has_items = "cart is empty")]
    pub struct CheckOut;

    impl Handle for CheckOut {
        fn handle(&self, _: &Cart, _: &Target) -> Emit<CartEvent> {
            Ok(vec![CartEvent::CheckedOut])
        }
    }
}

pub mod counter {
    //! A counter: the benchmark's domain.

    use act_runtime::prelude::*;

    /// A counter.
    #[state(name = "Counter", actions(Increment))]
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct Counter {
        /// The count.
        pub count: i64,
    }

    /// The counter's events.
    #[emits(Counter)]
    #[derive(Debug, Clone, PartialEq)]
    pub enum CounterEvent {
        /// The count went up.
        Incremented {
            /// By how much.
            amount: i64,
        },
    }

    impl Patch<CounterEvent> for Counter {
        fn patch(&mut self, event: &CounterEvent) {
            match event {
                CounterEvent::Incremented { amount } => self.count += amount,
            }
        }
    }

    /// Increments the counter.
    #[action(Counter)]
    pub struct Increment {
        /// By how much.
        pub by: i64,
    }

    impl Handle for Increment {
        fn handle(&self, _: &Counter, _: &Target) -> Emit<CounterEvent> {
            Ok(vec![CounterEvent::Incremented { amount: self.by }])
        }
    }
}

pub mod clash {
    //! A state that claims the cart's `CheckedOut` event name: `build()` must refuse both.

    use act_runtime::prelude::*;

    /// A till.
    #[state(name = "Till")]
    #[derive(Debug, Clone, Default)]
    pub struct Till {
        /// Whether it is closed.
        pub closed: bool,
    }

    /// The till's events.
    #[emits(Till)]
    #[derive(Debug, Clone)]
    pub enum TillEvent {
        /// Same name as the cart's event.
        CheckedOut,
    }

    impl Patch<TillEvent> for Till {
        fn patch(&mut self, event: &TillEvent) {
            match event {
                TillEvent::CheckedOut => self.closed = true,
            }
        }
    }
}

/// The actor the tests act as.
pub fn actor() -> act_runtime::model::Actor {
    act_runtime::model::Actor::new("u-1", "tester")
}

pub mod ledger {
    //! An append-only ledger: the target of reactions in the tests.

    use act_runtime::prelude::*;

    /// A ledger of lines.
    #[state(name = "Ledger", actions(Record))]
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct Ledger {
        /// The lines, in order.
        pub lines: Vec<String>,
    }

    /// The ledger's events.
    #[emits(Ledger)]
    #[derive(Debug, Clone, PartialEq)]
    pub enum LedgerEvent {
        /// A line was recorded.
        Recorded {
            /// The line.
            line: String,
        },
    }

    impl Patch<LedgerEvent> for Ledger {
        fn patch(&mut self, event: &LedgerEvent) {
            match event {
                LedgerEvent::Recorded { line } => self.lines.push(line.clone()),
            }
        }
    }

    /// Records a line.
    #[action(Ledger, emit = LedgerEvent::Recorded)]
    pub struct Record {
        /// The line.
        pub line: String,
    }
}

/// A fresh SQLite database path under the system temp dir, removed with its `-wal` and
/// `-shm` files when dropped.
pub struct TempDb(pub std::path::PathBuf);

impl TempDb {
    /// A new path tagged `tag` (unique per process and call).
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!("act-{tag}-{}-{nanos}.db", std::process::id());
        Self(std::env::temp_dir().join(name))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

pub mod intercept {
    //! A store that passes every call to another one, with hooks before some of them: the
    //! fault and race injections of the tests, each written once as an [`Intercept`].

    use std::collections::HashMap;
    use std::ops::Deref;
    use std::sync::Arc;
    use std::time::Duration;

    use act_runtime::async_trait;
    use act_runtime::error::StoreError;
    use act_runtime::model::{Committed, EventId, EventMeta, Message, Version};
    use act_runtime::ports::{
        Lease, Query, Store, StreamFilter, StreamPosition, Subscribed, Subscription,
        TruncateTarget, Truncated,
    };

    /// What an [`Intercepted`] store does before it passes a call on. Every hook does
    /// nothing by default.
    #[async_trait]
    pub trait Intercept: Send + Sync + 'static {
        /// Before a commit, plain or marked: may write to `inner` first (a racing writer)
        /// or fail the call.
        async fn commit(
            &self,
            _inner: &dyn Store,
            _stream: &str,
            _msgs: &[Message],
            _meta: &EventMeta,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        /// Before a query: `Some` answers it in the store's place.
        fn query(&self, _query: &Query) -> Option<Result<usize, StoreError>> {
            None
        }
        /// Before a claim: an error fails it.
        fn claim(&self) -> Result<(), StoreError> {
            Ok(())
        }
        /// Before a read of the subscription rows: an error fails it.
        fn query_streams(&self) -> Result<(), StoreError> {
            Ok(())
        }
        /// Before a truncate: may write to `inner` first, or fail the call.
        async fn truncate(
            &self,
            _inner: &dyn Store,
            _targets: &[TruncateTarget],
        ) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// `inner`, with `hooks` before its calls. Derefs to the hooks, so a test arms them
    /// through the store it hands to the app.
    pub struct Intercepted<I> {
        /// The store every call reaches (unless a hook answers or fails it).
        pub inner: Arc<dyn Store>,
        /// The hooks.
        pub hooks: I,
    }

    impl<I: Intercept> Intercepted<I> {
        /// `inner` with `hooks`.
        pub fn new(inner: Arc<dyn Store>, hooks: I) -> Arc<Self> {
            Arc::new(Self { inner, hooks })
        }
    }

    impl<I> Deref for Intercepted<I> {
        type Target = I;
        fn deref(&self) -> &I {
            &self.hooks
        }
    }

    #[async_trait]
    impl<I: Intercept> Store for Intercepted<I> {
        async fn seed(&self) -> Result<(), StoreError> {
            self.inner.seed().await
        }
        async fn drop_all(&self) -> Result<(), StoreError> {
            self.inner.drop_all().await
        }
        async fn commit(
            &self,
            stream: &str,
            msgs: &[Message],
            meta: &EventMeta,
            expected: Option<Version>,
        ) -> Result<Vec<Committed>, StoreError> {
            self.hooks
                .commit(self.inner.as_ref(), stream, msgs, meta)
                .await?;
            self.inner.commit(stream, msgs, meta, expected).await
        }
        async fn commit_marked(
            &self,
            stream: &str,
            msgs: &[Message],
            meta: &EventMeta,
            expected: Option<Version>,
            marks: &[(usize, Subscription)],
        ) -> Result<Vec<Committed>, StoreError> {
            self.hooks
                .commit(self.inner.as_ref(), stream, msgs, meta)
                .await?;
            // marks are atomic with their events on every adapter: keep it so
            self.inner
                .commit_marked(stream, msgs, meta, expected, marks)
                .await
        }
        async fn query(
            &self,
            query: &Query,
            sink: &mut (dyn for<'e> FnMut(&'e Committed) + Send),
        ) -> Result<usize, StoreError> {
            if let Some(answer) = self.hooks.query(query) {
                return answer;
            }
            self.inner.query(query, sink).await
        }
        async fn subscribe(
            &self,
            subs: &[Subscription],
            checkpoint: Option<EventId>,
        ) -> Result<Subscribed, StoreError> {
            self.inner.subscribe(subs, checkpoint).await
        }
        async fn claim(
            &self,
            lagging: usize,
            leading: usize,
            by: &str,
            lease: Duration,
        ) -> Result<Vec<Lease>, StoreError> {
            self.hooks.claim()?;
            self.inner.claim(lagging, leading, by, lease).await
        }
        async fn ack(&self, leases: &[Lease]) -> Result<Vec<Lease>, StoreError> {
            self.inner.ack(leases).await
        }
        async fn block(
            &self,
            leases: &[(Lease, String)],
        ) -> Result<Vec<StreamPosition>, StoreError> {
            self.inner.block(leases).await
        }
        async fn reset(&self, streams: &[String]) -> Result<usize, StoreError> {
            self.inner.reset(streams).await
        }
        async fn unblock(&self, streams: &[String]) -> Result<usize, StoreError> {
            self.inner.unblock(streams).await
        }
        async fn query_streams(
            &self,
            filter: &StreamFilter,
        ) -> Result<Vec<StreamPosition>, StoreError> {
            self.hooks.query_streams()?;
            self.inner.query_streams(filter).await
        }
        async fn truncate(
            &self,
            targets: &[TruncateTarget],
        ) -> Result<HashMap<String, Truncated>, StoreError> {
            self.hooks.truncate(self.inner.as_ref(), targets).await?;
            self.inner.truncate(targets).await
        }
        async fn dispose(&self) -> Result<(), StoreError> {
            self.inner.dispose().await
        }
    }
}
