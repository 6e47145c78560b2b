//! The bank's operator CLI: `act_runtime::cli` over the bank's app (its registry decodes
//! the events and draws the diagram).
//!
//! `cargo run --example ops -- --sqlite bank.db blocked`
//! `cargo run --example ops -- --pg postgres://postgres@127.0.0.1:5432/postgres --schema act_fleet streams`
//! `cargo run --example ops -- --help` (and `ops <command> --help`): every command.
//!
//! `cargo run --example ops -- fill bank.db` (this example's own, not the CLI's) makes a
//! bank to look at: two accounts, a few deposits, one on the frozen account, whose audit
//! trail refuses it, so `blocked` shows that target with its error.

use std::process::ExitCode;

use act::adapters::SqliteStore;
use act::prelude::*;

mod bank_domain;

use bank_domain::*;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [fill, path] = args.as_slice()
        && fill == "fill"
    {
        return match fill_bank(path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    act::cli::main(bank_app)
}

/// Commits a small bank to the SQLite file at `path` and settles its reactions once.
fn fill_bank(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let app = bank_app()
            .with_store(SqliteStore::open(path).await?)
            .build()?;
        let open = |owner: &str| Open {
            owner: owner.to_owned(),
        };
        let to = |stream: &str| Target::new(stream, teller());
        app.execute(open("Ada"), to("acct-ada")).await?;
        app.execute(open("Bob"), to("acct-bob")).await?;
        app.execute(open("Frank"), to(FROZEN)).await?;
        app.execute(Deposit { amount: 100 }, to("acct-ada")).await?;
        app.execute(Deposit { amount: 40 }, to("acct-bob")).await?;
        app.execute(Withdraw { amount: 30 }, to("acct-ada")).await?;
        app.execute(Deposit { amount: 7 }, to(FROZEN)).await?;
        let summary = app.settle_now(SettleOptions::default()).await?;
        println!(
            "{path}: {} reaction event(s) handled, {} target(s) blocked",
            summary.handled,
            summary.blocked.len()
        );
        app.shutdown().await?;
        Ok(())
    })
}
