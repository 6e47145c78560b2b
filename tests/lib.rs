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
