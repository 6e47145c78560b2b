//! The seed's sales projection: checkouts grouped by day into a SQL table, kept up to date
//! by the drain, then rebuilt from the log beside the live table and swapped in.
//!
//! ```text
//! cargo run --example sales                                   # the table in in-memory SQLite
//! cargo run --example sales -- --db sqlite:sales.db           # a SQLite file
//! cargo run --example sales -- --db postgres://postgres@127.0.0.1/test
//! ```
//!
//! The events live in the in-memory store, so each run starts a fresh table.

mod sales_model;

use act::prelude::*;
use act::projections::{RebuildOptions, progress_bar};
use sales_model::{CheckOut, LIVE, SalesByDay};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut db = "sqlite::memory:".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => db = args.next().ok_or("--db takes a URL")?,
            other => return Err(format!("unknown argument `{other}` (try --db URL)").into()),
        }
    }
    let sales = SalesByDay::connect(&db).await?;
    sales.drop_all().await?;

    let app = act()
        .with_state::<sales_model::Cart>()
        .with_projection(sales.clone())
        .build()?;
    let cashier = Actor::new("c-1", "cashier");
    let checkouts = [
        ("Cart-123", 120.5, "2024-06-01T14:23:00Z"),
        ("Cart-124", 80.0, "2024-06-01T15:10:00Z"),
        ("Cart-125", 200.0, "2024-06-02T09:00:00Z"),
    ];
    for (cart, total, timestamp) in checkouts {
        let target = Target::new(cart, cashier.clone());
        let action = CheckOut {
            total,
            timestamp: timestamp.into(),
        };
        app.execute(action, target).await?;
    }

    // The drain feeds the projection, as it would a reaction.
    app.settle_now(SettleOptions::default()).await?;
    let status = &app.projections().await?[0];
    println!(
        "{} (table `{LIVE}`, at event {}, {} behind):",
        status.name, status.position, status.behind
    );
    let live = sales.rows(LIVE).await?;
    for row in &live {
        println!(
            "{}: total {:?}, count {}",
            row.day, row.total, row.checkouts
        );
    }

    // A rebuild fills `sales_by_day_next` from the log while `sales_by_day` is served, then
    // swaps it in.
    let options = RebuildOptions::default().on_progress(progress_bar());
    let rebuilt = app.rebuild(status.name, options).await?;
    let again = sales.rows(LIVE).await?;
    let same = if again == live {
        "the same"
    } else {
        "DIFFERENT"
    };
    println!(
        "rebuilt from the log: {} event(s), {} row(s), {same} row for row",
        rebuilt.filled,
        again.len()
    );
    app.shutdown().await?;
    if again != live {
        return Err("the rebuilt table differs from the live one".into());
    }
    Ok(())
}
