//! The seed's sales projection: checkouts grouped by day, computed from a query over the
//! committed events.
//!
//! `cargo run --example sales`

use std::collections::BTreeMap;

use act::prelude::*;

#[state(name = "Register", actions(CheckOut))]
#[derive(Debug, Clone, Default)]
pub struct Register {
    pub sales: u32,
    pub total: f64,
}

#[emits(Register)]
#[derive(Debug, Clone)]
pub enum RegisterEvent {
    CheckedOut { total: f64, timestamp: String },
}

impl Patch<RegisterEvent> for Register {
    fn patch(&mut self, event: &RegisterEvent) {
        match event {
            RegisterEvent::CheckedOut { total, .. } => {
                self.sales += 1;
                self.total += total;
            }
        }
    }
}

/// A checkout: passes through as the `CheckedOut` event.
#[action(Register, emit = RegisterEvent::CheckedOut)]
pub struct CheckOut {
    pub total: f64,
    pub timestamp: String,
}

#[derive(Debug, Default)]
struct Day {
    total: f64,
    count: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = act().with_state::<Register>().build()?;
    let cashier = Actor::new("c-1", "cashier");
    let checkouts = [
        ("Cart-123", 120.5, "2024-06-01T14:23:00Z"),
        ("Cart-124", 80.0, "2024-06-01T15:10:00Z"),
        ("Cart-125", 200.0, "2024-06-02T09:00:00Z"),
    ];
    for (cart, total, timestamp) in checkouts {
        let target = Target::new(cart, cashier.clone());
        app.execute(
            CheckOut {
                total,
                timestamp: timestamp.into(),
            },
            target,
        )
        .await?;
    }

    // The projection: one pass over the committed CheckedOut events of every stream.
    let mut by_day: BTreeMap<String, Day> = BTreeMap::new();
    let mut bad = None;
    app.query_with(
        &Query::all().names(["CheckedOut"]),
        |e| match e.typed::<RegisterEvent>() {
            Ok(Some(e)) => {
                let RegisterEvent::CheckedOut { total, timestamp } = e.data;
                let day = by_day.entry(timestamp[..10].to_owned()).or_default();
                day.total += total;
                day.count += 1;
            }
            Ok(None) => {}
            Err(err) => bad = Some(err),
        },
    )
    .await?;
    if let Some(err) = bad {
        return Err(err.into());
    }
    println!("sales by day:");
    for (day, Day { total, count }) in &by_day {
        println!("  {day}: total {total:.2} over {count} checkout(s)");
    }
    Ok(())
}
