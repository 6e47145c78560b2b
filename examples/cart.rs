//! The seed's shopping cart: an event stream per cart, an invariant, and snapshots.
//!
//! `cargo run --example cart`

use act::prelude::*;

#[state(name = "Cart", snap = every_five, actions(AddItem, RemoveItem, CheckOut))]
#[derive(Debug, Clone, Default)]
pub struct Cart {
    pub items: Vec<Item>,
    pub checked_out: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Item {
    pub sku: String,
    pub qty: u32,
}

/// Persist a snapshot every five events, so a cold load replays at most five.
fn every_five(s: &Snapshot<Cart>) -> bool {
    s.patches >= 5
}

#[emits(Cart)]
#[derive(Debug, Clone)]
pub enum CartEvent {
    ItemAdded { sku: String, qty: u32 },
    ItemRemoved { sku: String },
    CheckedOut,
}

impl Patch<CartEvent> for Cart {
    fn patch(&mut self, event: &CartEvent) {
        match event {
            CartEvent::ItemAdded { sku, qty } => self.items.push(Item {
                sku: sku.clone(),
                qty: *qty,
            }),
            CartEvent::ItemRemoved { sku } => self.items.retain(|i| &i.sku != sku),
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

#[action(Cart, emit = CartEvent::ItemAdded)]
#[given(is_open = "cart is checked out")]
pub struct AddItem {
    pub sku: String,
    pub qty: u32,
}

#[action(Cart, emit = CartEvent::ItemRemoved)]
#[given(is_open = "cart is checked out")]
pub struct RemoveItem {
    pub sku: String,
}

#[action(Cart)]
#[given(is_open = "cart is checked out", has_items = "cart is empty")]
pub struct CheckOut;

impl Handle for CheckOut {
    fn handle(&self, _: &Cart, _: &Target) -> Emit<CartEvent> {
        Ok(vec![CartEvent::CheckedOut])
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = act().with_state::<Cart>().build()?;
    let target = || Target::new("Cart-123", Actor::new("u-7", "Grace"));

    for (sku, qty) in [("A123", 2), ("B456", 1), ("C789", 4), ("D012", 1)] {
        app.execute(
            AddItem {
                sku: sku.into(),
                qty,
            },
            target(),
        )
        .await?;
    }
    app.execute(RemoveItem { sku: "B456".into() }, target())
        .await?;
    app.execute(
        AddItem {
            sku: "E345".into(),
            qty: 3,
        },
        target(),
    )
    .await?;
    app.execute(CheckOut, target()).await?;

    match app
        .execute(
            AddItem {
                sku: "late".into(),
                qty: 1,
            },
            target(),
        )
        .await
    {
        Err(ActError::Invariant(e)) => println!("after checkout: {e}"),
        other => return Err(format!("expected an invariant error, got {other:?}").into()),
    }

    println!("\nthe stream, snapshots included:");
    for e in app.query(&Query::stream("Cart-123").with_snaps()).await? {
        println!("  v{:<2} {:<13} {}", e.version, e.name, e.data.get());
    }

    app.cache().clear().await?;
    let snap = app.load::<Cart>("Cart-123").await?;
    println!(
        "\ncold load: version {}, {} event(s) replayed from the latest snapshot",
        snap.version, snap.replayed
    );
    for item in &snap.state.items {
        println!("  {} x{}", item.sku, item.qty);
    }
    println!("  checked out: {}", snap.state.checked_out);
    Ok(())
}
