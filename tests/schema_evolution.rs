//! Schema evolution on every store:
//! * changing a state's shape never bricks its snapshotted streams: a snapshot taken for
//!   another schema is skipped (the stream is replayed from its events);
//! * an event gains fields with serde defaults: the payloads committed before load with
//!   the defaults (the non-breaking path; a breaking change is a new `_vN` version).

use std::sync::Arc;

use act_runtime::adapters::SqliteStore;
use act_runtime::ports::{Query, Store};
use act_runtime::prelude::*;
use act_tests::actor;

/// The cart as first deployed: snapshots every 2 events.
mod v1 {
    use act_runtime::prelude::*;

    #[state(name = "Cart", snap = every_two, actions(AddItem))]
    #[derive(Debug, Clone, Default)]
    pub struct Cart {
        pub items: Vec<String>,
    }

    fn every_two(s: &Snapshot<Cart>) -> bool {
        s.patches >= 2
    }

    #[emits(Cart)]
    #[derive(Debug, Clone)]
    pub enum CartEvent {
        ItemAdded { sku: String, qty: u32 },
    }

    impl Patch<CartEvent> for Cart {
        fn patch(&mut self, event: &CartEvent) {
            match event {
                CartEvent::ItemAdded { sku, .. } => self.items.push(sku.clone()),
            }
        }
    }

    #[action(Cart, emit = CartEvent::ItemAdded)]
    pub struct AddItem {
        pub sku: String,
        pub qty: u32,
    }
}

/// The cart after a change: items carry their quantity (v1's snapshots no longer decode),
/// and a running total (which v1's JSON could never fill in).
mod v2 {
    use act_runtime::prelude::*;

    #[state(name = "Cart", actions(AddItem))]
    #[derive(Debug, Clone, Default)]
    pub struct Cart {
        pub items: Vec<(String, u32)>,
        #[serde(default)]
        pub total: u32,
    }

    #[emits(Cart)]
    #[derive(Debug, Clone)]
    pub enum CartEvent {
        ItemAdded { sku: String, qty: u32 },
    }

    impl Patch<CartEvent> for Cart {
        fn patch(&mut self, event: &CartEvent) {
            match event {
                CartEvent::ItemAdded { sku, qty } => {
                    self.items.push((sku.clone(), *qty));
                    self.total += qty;
                }
            }
        }
    }

    #[action(Cart, emit = CartEvent::ItemAdded)]
    pub struct AddItem {
        pub sku: String,
        pub qty: u32,
    }
}

/// Just v2's total is new: v1's snapshot JSON (`{"items": [...]}`) would decode into it,
/// with a wrong total of 0.
mod v2_compatible {
    use act_runtime::prelude::*;

    #[state(name = "Cart", actions(AddItem))]
    #[derive(Debug, Clone, Default)]
    pub struct Cart {
        pub items: Vec<String>,
        #[serde(default)]
        pub total: u32,
    }

    #[emits(Cart)]
    #[derive(Debug, Clone)]
    pub enum CartEvent {
        ItemAdded { sku: String, qty: u32 },
    }

    impl Patch<CartEvent> for Cart {
        fn patch(&mut self, event: &CartEvent) {
            match event {
                CartEvent::ItemAdded { sku, qty } => {
                    self.items.push(sku.clone());
                    self.total += qty;
                }
            }
        }
    }

    #[action(Cart, emit = CartEvent::ItemAdded)]
    pub struct AddItem {
        pub sku: String,
        pub qty: u32,
    }
}

/// Five adds under v1 (snapshots after the 2nd and 4th), then loads under `v2` and
/// `v2_compatible` from fresh apps on the same store.
async fn snapshots_of_another_shape_are_skipped(store: Arc<dyn Store>) {
    let old = act()
        .with_store_arc(Arc::clone(&store))
        .with_state::<v1::Cart>()
        .build()
        .unwrap();
    for (i, sku) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let add = v1::AddItem {
            sku: (*sku).into(),
            qty: i as u32 + 1,
        };
        old.execute(add, Target::new("cart-1", actor()))
            .await
            .unwrap();
    }
    let snaps = store
        .query(
            &Query::stream("cart-1")
                .names(["__snapshot__"])
                .with_snaps()
                .after(0),
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(snaps, 2, "v1 snapshotted twice");
    let cold = old.load::<v1::Cart>("cart-1").await.unwrap();
    assert_eq!(cold.state.items.len(), 5);

    let new = act()
        .with_store_arc(Arc::clone(&store))
        .with_state::<v2::Cart>()
        .build()
        .unwrap();
    let loaded = new.load::<v2::Cart>("cart-1").await.unwrap();
    assert_eq!(loaded.state.items.len(), 5, "replayed from the events");
    assert_eq!(loaded.state.total, 15);
    assert_eq!(loaded.snaps, 0, "no snapshot was folded");
    assert_eq!(loaded.replayed, 5);
    // And the stream keeps working under v2.
    let out = new
        .execute(
            v2::AddItem {
                sku: "f".into(),
                qty: 6,
            },
            Target::new("cart-1", actor()),
        )
        .await
        .unwrap();
    assert_eq!(out.snapshot.state.total, 21);

    let compatible = act()
        .with_store_arc(Arc::clone(&store))
        .with_state::<v2_compatible::Cart>()
        .build()
        .unwrap();
    let loaded = compatible
        .load::<v2_compatible::Cart>("cart-1")
        .await
        .unwrap();
    assert_eq!(
        loaded.state.total, 21,
        "a snapshot that would decode into the new shape is still skipped: its total is unknown"
    );
}

#[tokio::test]
async fn snapshots_of_another_shape_are_skipped_in_memory() {
    snapshots_of_another_shape_are_skipped(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
async fn snapshots_of_another_shape_are_skipped_on_sqlite() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    snapshots_of_another_shape_are_skipped(Arc::new(store)).await;
}

/// The account as first deployed: a deposit is an amount.
mod deposit_v1 {
    use act_runtime::prelude::*;

    #[state(name = "Account", actions(Deposit))]
    #[derive(Debug, Clone, Default)]
    pub struct Account {
        pub balance: u64,
    }

    #[emits(Account)]
    #[derive(Debug, Clone)]
    pub enum AccountEvent {
        Deposited { amount: u64 },
    }

    impl Patch<AccountEvent> for Account {
        fn patch(&mut self, event: &AccountEvent) {
            match event {
                AccountEvent::Deposited { amount } => self.balance += amount,
            }
        }
    }

    #[action(Account, emit = AccountEvent::Deposited)]
    pub struct Deposit {
        pub amount: u64,
    }
}

/// A non-breaking change: `Deposited` gains two fields with serde defaults, so the
/// payloads `deposit_v1` committed (`{"amount": 5}`) still decode, with the defaults.
mod deposit_v2 {
    use act_runtime::prelude::*;

    #[state(name = "Account", actions(Deposit))]
    #[derive(Debug, Clone, Default)]
    pub struct Account {
        pub balance: u64,
        pub memos: Vec<String>,
        pub currencies: Vec<String>,
    }

    fn eur() -> String {
        "EUR".to_owned()
    }

    #[emits(Account)]
    #[derive(Debug, Clone)]
    pub enum AccountEvent {
        Deposited {
            amount: u64,
            #[serde(default)]
            memo: String,
            #[serde(default = "eur")]
            currency: String,
        },
    }

    impl Patch<AccountEvent> for Account {
        fn patch(&mut self, event: &AccountEvent) {
            match event {
                AccountEvent::Deposited {
                    amount,
                    memo,
                    currency,
                } => {
                    self.balance += amount;
                    self.memos.push(memo.clone());
                    self.currencies.push(currency.clone());
                }
            }
        }
    }

    #[action(Account, emit = AccountEvent::Deposited)]
    pub struct Deposit {
        pub amount: u64,
        pub memo: String,
        pub currency: String,
    }
}

/// Events committed before a field existed load under the new code with the field's
/// serde default; new events carry the field.
async fn old_payloads_load_with_the_new_fields_defaults(store: Arc<dyn Store>) {
    let old = act()
        .with_store_arc(Arc::clone(&store))
        .with_state::<deposit_v1::Account>()
        .build()
        .unwrap();
    old.execute(
        deposit_v1::Deposit { amount: 5 },
        Target::new("acct-1", actor()),
    )
    .await
    .unwrap();
    let stored = old.query(&Query::stream("acct-1")).await.unwrap();
    assert_eq!(stored[0].data.get(), r#"{"amount":5}"#, "the old payload");

    let new = act()
        .with_store_arc(Arc::clone(&store))
        .with_state::<deposit_v2::Account>()
        .build()
        .unwrap();
    let deposit = deposit_v2::Deposit {
        amount: 7,
        memo: "rent".into(),
        currency: "USD".into(),
    };
    new.execute(deposit, Target::new("acct-1", actor()))
        .await
        .unwrap();
    let loaded = new.load::<deposit_v2::Account>("acct-1").await.unwrap();
    assert_eq!(loaded.state.balance, 12);
    assert_eq!(loaded.state.memos, ["", "rent"], "`#[serde(default)]`");
    assert_eq!(
        loaded.state.currencies,
        ["EUR", "USD"],
        "`#[serde(default = \"eur\")]`"
    );
    let events = new.query(&Query::stream("acct-1")).await.unwrap();
    let read: Vec<_> = events
        .iter()
        .map(|e| deposit_v2::AccountEvent::from_data(&e.name, &e.data).unwrap())
        .collect();
    assert!(
        matches!(&read[0], Some(deposit_v2::AccountEvent::Deposited { memo, currency, .. }) if memo.is_empty() && currency == "EUR"),
        "{read:?}"
    );

    // and the schema lock agrees: defaulted new fields are not a breaking change
    assert_eq!(old.schema_lock().check(&new.schema_lock()), Ok(()));
}

#[tokio::test]
async fn old_payloads_load_with_the_new_fields_defaults_in_memory() {
    old_payloads_load_with_the_new_fields_defaults(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
async fn old_payloads_load_with_the_new_fields_defaults_on_sqlite() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    old_payloads_load_with_the_new_fields_defaults(Arc::new(store)).await;
}
