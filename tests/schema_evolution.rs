//! Changing a state's shape never bricks its snapshotted streams: a snapshot taken for
//! another schema is skipped (the stream is replayed from its events), on every store.

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
