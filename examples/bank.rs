//! A bank: accounts, an audit trail per account (dynamic resolver), a global ledger (static
//! target), settled in the background.
//!
//! `cargo run --example bank`
//!
//! `cargo run --example bank -- --worker [--for-secs N]`: the same bank run by the background
//! worker until Ctrl-C (or for N seconds). Deposits keep coming every 300 ms; every
//! lifecycle notification is printed. Bob's text messages fail twice before they go through
//! (retried with backoff), and the frozen account's audit trail refuses every entry, so its
//! stream is blocked while the other accounts keep flowing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use act::app::Lifecycle;
use act::model::EventId;
use act::prelude::*;

mod bank_domain;

use bank_domain::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--diagram") {
        // the event flow, as Mermaid
        print!("{}", bank_app().build()?.diagram());
        return Ok(());
    }
    if args.iter().any(|a| a == "--worker") {
        let for_secs = match args.iter().position(|a| a == "--for-secs") {
            Some(i) => Some(
                args.get(i + 1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or("`--for-secs` expects a number of seconds")?,
            ),
            None => None,
        };
        return run_worker(for_secs).await;
    }
    settle_once().await
}

/// The default mode: a few commands, one settle, the journals and the balances.
async fn settle_once() -> Result<(), Box<dyn std::error::Error>> {
    let app = bank_app().build()?;

    let (tx, mut settled) = tokio::sync::mpsc::unbounded_channel();
    app.on(move |e| {
        if let Lifecycle::Settled(summary) = e {
            let _ = tx.send(summary.handled);
        }
    });

    let ada = || Target::new("acct-ada", Actor::new("ada", "Ada"));
    let bob = || Target::new("acct-bob", Actor::new("bob", "Bob"));
    app.execute(
        Open {
            owner: "Ada".into(),
        },
        ada(),
    )
    .await?;
    app.execute(
        Open {
            owner: "Bob".into(),
        },
        bob(),
    )
    .await?;
    app.execute(Deposit { amount: 100 }, ada()).await?;
    app.execute(Deposit { amount: 40 }, bob()).await?;
    app.execute(Withdraw { amount: 30 }, ada()).await?;
    if let Err(e) = app.execute(Withdraw { amount: 500 }, bob()).await {
        println!("refused: {e}");
    }
    app.settle(); // returns at once; the drain runs in the background

    let handled = tokio::time::timeout(std::time::Duration::from_secs(5), settled.recv())
        .await?
        .unwrap_or(0);
    println!("settled: {handled} reaction event(s) handled\n");

    for stream in ["audit-acct-ada", "audit-acct-bob", "ledger"] {
        println!("{stream}:");
        for e in app.query(&Query::stream(stream)).await? {
            let cause = e.meta.causation.event.as_ref();
            println!(
                "  {:<40} correlation {}  caused by {}",
                e.data_as::<serde_json::Value>()?["entry"]
                    .as_str()
                    .unwrap_or(""),
                e.meta.correlation,
                cause.map_or("-".to_string(), |c| format!(
                    "{}#{} ({})",
                    c.stream, c.id, c.name
                )),
            );
        }
    }
    for (name, stream) in [("Ada", "acct-ada"), ("Bob", "acct-bob")] {
        let a = app.load::<Account>(stream).await?;
        println!("\n{name}'s balance: {}", a.state.balance);
    }
    app.shutdown().await?;
    Ok(())
}

// ---- `--worker`: the background worker, a flaky reaction and a blocked stream ----------

/// The accounts the worker mode deposits on, in turn.
const ACCOUNTS: [(&str, &str); 4] = [
    ("acct-ada", "Ada"),
    ("acct-bob", "Bob"),
    ("acct-cyd", "Cyd"),
    (FROZEN, "Frank"),
];

/// An account whose text messages fail twice before they go through (see `text_deposit`).
const FLAKY: &str = "acct-bob";

/// Attempts so far per deposit event, for the flaky SMS gateway.
static SMS_ATTEMPTS: Mutex<BTreeMap<EventId, u32>> = Mutex::new(BTreeMap::new());

/// Where a deposit's text message goes: the account's own outbox.
fn sms_stream(e: &Committed<AccountEvent>) -> Resolved {
    Resolved::to(format!("sms-{}", e.stream)).from_stream(&e.stream)
}

/// Texts the owner about each deposit (worker mode only). The gateway drops the first two
/// attempts of each of Bob's messages: a retryable error, tried again with backoff.
#[reaction(
    on = AccountEvent::Deposited,
    to = sms_stream,
    retries = 5,
    backoff(exponential, base_ms = 100, max_ms = 2000, jitter),
    timeout_ms = 2000
)]
async fn text_deposit(e: &Committed<AccountEvent>, app: &Scope) -> Result<(), ReactionError> {
    let AccountEvent::Deposited { amount } = e.data else {
        return Ok(());
    };
    let attempt = {
        let mut attempts = SMS_ATTEMPTS.lock().unwrap_or_else(|p| p.into_inner());
        let n = attempts.entry(e.id).or_default();
        *n += 1;
        *n
    };
    if e.stream == FLAKY && attempt <= 2 {
        return Err(ReactionError::retry(format!(
            "SMS gateway timed out (attempt {attempt})"
        )));
    }
    let entry = format!("texted {} about {amount} (attempt {attempt})", e.stream);
    app.execute(Note { entry }, Target::new(app.stream(), teller()))
        .await?;
    Ok(())
}

/// Prints one line per lifecycle notification, stamped with the time since start.
fn print_lifecycle(start: Instant, l: &Lifecycle<'_>) {
    let t = format!("[{:>6} ms]", start.elapsed().as_millis());
    match l {
        Lifecycle::Committed(events) => {
            for e in events.iter() {
                println!(
                    "{t} committed  {} v{} {} {}",
                    e.stream,
                    e.version,
                    e.name,
                    e.data.get()
                );
            }
        }
        Lifecycle::Acked(leases) => {
            for lease in leases.iter() {
                println!("{t} acked      {} up to event {}", lease.stream, lease.at);
            }
        }
        Lifecycle::Retrying(retrying) => {
            for r in retrying.iter() {
                let wait = (r.due - chrono::Utc::now()).num_milliseconds().max(0);
                println!(
                    "{t} RETRYING   {} (failure {}): {} -- next try in {wait} ms",
                    r.lease.stream,
                    r.lease.retry + 1,
                    r.error
                );
            }
        }
        Lifecycle::Blocked(blocked) => {
            for b in blocked.iter() {
                println!("{t} BLOCKED    {}: {}", b.lease.stream, b.error);
            }
        }
        Lifecycle::Settled(s) => println!(
            "{t} settled    {} handled, {} acked, {} retrying, {} blocked",
            s.handled,
            s.acked.len(),
            s.retrying.len(),
            s.blocked.len()
        ),
        _ => {}
    }
}

/// The worker mode: deposits every 300 ms until Ctrl-C (or `for_secs`), drained by the
/// background worker; then the blocked streams and each account's journals.
async fn run_worker(for_secs: Option<u64>) -> Result<(), Box<dyn std::error::Error>> {
    let app = act()
        .with_state::<Account>()
        .with_state::<Journal>()
        .with_reaction(audit_deposit)
        .with_reaction(ledger_withdrawal)
        .with_reaction(text_deposit)
        .with_shutdown_grace(Duration::from_secs(3))
        .build()?;
    let start = Instant::now();
    app.on(move |l| print_lifecycle(start, l));

    let target =
        |stream: &str, owner: &str| Target::new(stream, Actor::new(owner.to_lowercase(), owner));
    for (stream, owner) in ACCOUNTS {
        let owner = owner.to_string();
        app.execute(
            Open {
                owner: owner.clone(),
            },
            target(stream, &owner),
        )
        .await?;
    }
    // Deposits go to dynamic targets, found by correlate: the poll paces how soon the
    // worker sees them.
    let worker = app.start_with(WorkerOptions {
        poll: Duration::from_millis(100),
        ..Default::default()
    })?;
    match for_secs {
        Some(n) => println!("worker running for {n} s (Ctrl-C stops it sooner)"),
        None => println!("worker running; Ctrl-C stops it"),
    }

    let stop = async {
        match for_secs {
            Some(n) => tokio::time::sleep(Duration::from_secs(n)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    let mut n = 0usize;
    loop {
        tokio::select! {
            () = &mut stop => break,
            r = tokio::signal::ctrl_c() => {
                r?;
                println!("\nCtrl-C");
                break;
            }
            _ = tick.tick() => {
                let (stream, owner) = ACCOUNTS[n % ACCOUNTS.len()];
                let amount = 10 * (n as i64 % 5 + 1);
                app.execute(Deposit { amount }, target(stream, owner)).await?;
                n += 1;
            }
        }
    }

    println!("no more deposits; letting the worker finish the retries in flight");
    tokio::time::sleep(Duration::from_secs(1)).await;
    worker.stop().await;

    println!("\nblocked streams:");
    for b in app.blocked_streams().await? {
        let at = if b.at < 0 {
            "nothing handled".to_string()
        } else {
            format!("handled up to event {}", b.at)
        };
        println!(
            "  {} ({at}): {}",
            b.stream,
            b.error.as_deref().unwrap_or("-")
        );
    }
    println!("\naccounts:");
    for (stream, _) in ACCOUNTS {
        let balance = app.load::<Account>(stream).await?.state.balance;
        let deposits = app
            .query(&Query::stream(stream))
            .await?
            .iter()
            .filter(|e| e.name == "Deposited")
            .count();
        let audited = app.load::<Journal>(&format!("audit-{stream}")).await?;
        let texted = app.load::<Journal>(&format!("sms-{stream}")).await?;
        println!(
            "  {stream:<12} balance {balance:>4}  {deposits} deposit(s), {} audited, {} texted",
            audited.state.entries.len(),
            texted.state.entries.len()
        );
    }
    app.shutdown().await?;
    Ok(())
}
