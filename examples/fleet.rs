//! A fleet of bank workers on PostgreSQL: the bank's reactions (`bank_domain.rs`: an audit
//! trail per account, found by correlation, and one ledger for every withdrawal) drained by
//! as many worker processes as you start on one tenant.
//!
//! Three workers in three terminals, then some work from a fourth:
//!
//! ```text
//! cargo run --example fleet -- worker      # terminal 1
//! cargo run --example fleet -- worker      # terminal 2
//! cargo run --example fleet -- worker      # terminal 3
//! cargo run --example fleet -- load --accounts 20 --ops 500
//! ```
//!
//! Each worker prints the streams it acked and a line each time it caught up. A stream is
//! leased to one worker at a time; kill a worker (Ctrl-C, or `kill -9`) and the others take
//! its streams over once its leases expire (the default lease is 30 s; a worker stopped
//! with Ctrl-C finishes its leases first). `worker --for-secs N` stops by itself.
//!
//! `ACT_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and `PG_SCHEMA`
//! (default `act_fleet`) choose the database and the tenant; `load` is safe to run again
//! (accounts already open stay open). Start over with `DROP SCHEMA act_fleet CASCADE`.

use std::time::{Duration, Instant};

use act::adapters::postgres::PostgresConfig;
use act::app::Lifecycle;
use act::prelude::*;

mod bank_domain;

use bank_domain::*;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str);
    if !matches!(command, Some("worker" | "load")) {
        return Err(
            "usage: fleet worker [--for-secs N] | fleet load [--accounts N] [--ops M]".into(),
        );
    }
    let app = connect().await?;
    let result = if command == Some("worker") {
        worker(&app, flag(&args, "--for-secs")?).await
    } else {
        let accounts = flag(&args, "--accounts")?.unwrap_or(10).max(1);
        load(&app, accounts, flag(&args, "--ops")?.unwrap_or(100)).await
    };
    app.shutdown().await?;
    result
}

/// The bank on the tenant's schema (seeded: safe when several processes boot at once).
async fn connect() -> Result<Act, Error> {
    let url = std::env::var("ACT_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let schema = std::env::var("PG_SCHEMA").unwrap_or_else(|_| "act_fleet".into());
    let store = PostgresConfig::from_url(&url)?
        .schema(&schema)
        .pool_size(8)
        .connect()
        .await?;
    store.seed().await?;
    // The loader registers the reactions too: its commits mark the static targets.
    Ok(act()
        .with_store(store)
        .with_state::<Account>()
        .with_state::<Journal>()
        .with_reaction(audit_deposit)
        .with_reaction(ledger_withdrawal)
        .build()?)
}

/// Runs the app's worker until Ctrl-C (or `for_secs`), printing what it handled.
async fn worker(app: &Act, for_secs: Option<u64>) -> Result<(), Error> {
    let me = std::process::id();
    let start = Instant::now();
    app.on(move |l| {
        let t = start.elapsed().as_millis();
        match l {
            Lifecycle::Acked(leases) => {
                for l in leases.iter() {
                    println!(
                        "[{me} {t:>6} ms] acked    {} up to event {}",
                        l.stream, l.at
                    );
                }
            }
            Lifecycle::Retrying(r) => {
                for r in r.iter() {
                    println!("[{me} {t:>6} ms] retrying {}: {}", r.lease.stream, r.error);
                }
            }
            Lifecycle::Blocked(b) => {
                for b in b.iter() {
                    println!("[{me} {t:>6} ms] BLOCKED  {}: {}", b.lease.stream, b.error);
                }
            }
            Lifecycle::Settled(s) if s.handled > 0 => {
                println!("[{me} {t:>6} ms] caught up: {} event(s) handled", s.handled);
            }
            _ => {}
        }
    });
    let worker = app.start()?;
    println!("worker {me} running; Ctrl-C stops it");
    let stop = async {
        match for_secs {
            Some(n) => tokio::time::sleep(Duration::from_secs(n)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = stop => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    worker.stop().await; // lets the leases in flight end
    println!("worker {me} stopped");
    Ok(())
}

/// Opens `accounts` accounts and commits `ops` deposits and withdrawals over them (every
/// third one a withdrawal, refused when it would overdraw), one task per account.
async fn load(app: &Act, accounts: u64, ops: u64) -> Result<(), Error> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for a in 0..accounts {
        let app = app.clone();
        tasks.spawn(async move {
            let stream = format!("acct-{a}");
            let owner = format!("owner-{a}");
            let target = || Target::new(&stream, Actor::new(&owner, &owner));
            if !app.load::<Account>(&stream).await?.state.open {
                app.execute(
                    Open {
                        owner: owner.clone(),
                    },
                    target(),
                )
                .await?;
            }
            let mut refused = 0u64;
            for op in (a..ops).step_by(accounts as usize) {
                let amount = 10 * (op as i64 % 5 + 1);
                if op % 3 == 2 {
                    match app.execute(Withdraw { amount }, target()).await {
                        Err(ActError::Rejected { .. }) => refused += 1,
                        done => {
                            done?;
                        }
                    }
                } else {
                    app.execute(Deposit { amount }, target()).await?;
                }
            }
            Ok::<_, Error>(refused)
        });
    }
    let mut refused = 0;
    while let Some(done) = tasks.join_next().await {
        refused += done??;
    }
    println!(
        "committed {ops} operation(s) on {accounts} account(s) in {} ms ({refused} withdrawal(s) refused: overdraft)",
        start.elapsed().as_millis()
    );
    Ok(())
}

/// The number after `name`, if given.
fn flag(args: &[String], name: &str) -> Result<Option<u64>, Error> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => Ok(Some(
            args.get(i + 1)
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("`{name}` expects a number"))?,
        )),
    }
}
