//! The bank over HTTP: actions by name, account states, the OpenAPI document and a live
//! feed of committed events (Server-Sent Events), with the audit and ledger reactions run
//! by the background worker.
//!
//! `cargo run --example http -- [--port N] [--sqlite FILE] [--for-secs N]`
//!
//! Serves on 127.0.0.1:N (3000 by default; `--port 0` lets the system pick), on the
//! in-memory store or a SQLite file, until Ctrl-C (or for N seconds), and prints curl
//! commands to try.

use std::time::Duration;

use act::adapters::SqliteStore;
use act::http::axum;
use act::prelude::*;

mod bank_domain;

use bank_domain::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| -> Result<Option<&str>, String> {
        match args.iter().position(|a| a == flag) {
            Some(i) => args
                .get(i + 1)
                .map(|v| Some(v.as_str()))
                .ok_or_else(|| format!("`{flag}` expects a value")),
            None => Ok(None),
        }
    };
    let port: u16 = match value("--port")? {
        Some(p) => p.parse().map_err(|_| "`--port` expects a port number")?,
        None => 3000,
    };
    let for_secs: Option<u64> = match value("--for-secs")? {
        Some(n) => Some(n.parse().map_err(|_| "`--for-secs` expects seconds")?),
        None => None,
    };

    let builder = act()
        .with_state::<Account>()
        .with_state::<Journal>()
        .with_reaction(audit_deposit)
        .with_reaction(ledger_withdrawal);
    let app = match value("--sqlite")? {
        Some(path) => builder.with_store(SqliteStore::open(path).await?).build()?,
        None => builder.build()?,
    };
    let _worker = app.start()?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    print_usage(&base);

    let stopping = app.clone();
    let stop = async move {
        match for_secs {
            Some(n) => tokio::time::sleep(Duration::from_secs(n)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        // shut the app first: open event feeds end at their next read, so the server's
        // graceful shutdown is not held up by them
        println!("shutting down");
        if let Err(e) = stopping.shutdown().await {
            eprintln!("shutdown: {e}");
        }
    };
    axum::serve(listener, act::http::router(app))
        .with_graceful_shutdown(stop)
        .await?;
    Ok(())
}

fn print_usage(base: &str) {
    let json = "-H 'content-type: application/json'";
    let ada = r#""actor": {"id": "ada", "name": "Ada"}"#;
    println!("serving the bank on {base}; try, in another terminal:\n");
    println!("  # follow every committed event (Ctrl-C, then again with -H 'Last-Event-ID: <id>')");
    println!("  curl -N {base}/events\n");
    println!("  # open an account, deposit, withdraw");
    println!(
        r#"  curl -s {base}/actions/Open {json} -d '{{"stream": "acct-ada", {ada}, "payload": {{"owner": "Ada"}}}}'"#
    );
    println!(
        r#"  curl -s {base}/actions/Deposit {json} -d '{{"stream": "acct-ada", {ada}, "payload": {{"amount": 100}}}}'"#
    );
    println!(
        r#"  curl -s {base}/actions/Withdraw {json} -d '{{"stream": "acct-ada", {ada}, "payload": {{"amount": 30}}}}'"#
    );
    println!("\n  # a bad payload (422, with the field's path), an overdraft (409)");
    println!(
        r#"  curl -s {base}/actions/Deposit {json} -d '{{"stream": "acct-ada", {ada}, "payload": {{"amount": "lots"}}}}'"#
    );
    println!(
        r#"  curl -s {base}/actions/Withdraw {json} -d '{{"stream": "acct-ada", {ada}, "payload": {{"amount": 1000}}}}'"#
    );
    println!("\n  # the account, its audit trail (written by a reaction), the ledger");
    println!("  curl -s {base}/streams/Account/acct-ada");
    println!("  curl -s {base}/streams/Journal/audit-acct-ada");
    println!("  curl -s {base}/streams/Journal/ledger");
    println!("\n  # the OpenAPI 3.1 document");
    println!("  curl -s {base}/openapi.json\n");
}
