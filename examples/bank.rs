//! A bank: accounts, an audit trail per account (dynamic resolver), a global ledger (static
//! target), settled in the background.
//!
//! `cargo run --example bank`

use act::app::Lifecycle;
use act::prelude::*;

// ---- accounts ------------------------------------------------------------------------

#[state(name = "Account", actions(Open, Deposit, Withdraw))]
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub owner: String,
    pub balance: i64,
    pub open: bool,
}

#[emits(Account)]
#[derive(Debug, Clone)]
pub enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: i64 },
    Withdrawn { amount: i64 },
}

impl Patch<AccountEvent> for Account {
    fn patch(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => {
                self.owner = owner.clone();
                self.open = true;
            }
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

fn is_open(a: &Account) -> bool {
    a.open
}

fn is_new(a: &Account) -> bool {
    !a.open
}

#[action(Account, emit = AccountEvent::Opened)]
#[given(is_new = "account is already open")]
pub struct Open {
    pub owner: String,
}

#[action(Account, emit = AccountEvent::Deposited)]
#[given(is_open = "account is not open")]
pub struct Deposit {
    pub amount: i64,
}

#[action(Account)]
#[given(is_open = "account is not open")]
pub struct Withdraw {
    pub amount: i64,
}

/// No overdraft: a rule over the payload and the state, so it lives in the handler.
impl Handle for Withdraw {
    fn handle(&self, account: &Account, _: &Target) -> Emit<AccountEvent> {
        if self.amount > account.balance {
            return Err(format!(
                "overdraft: withdrawing {} from a balance of {}",
                self.amount, account.balance
            )
            .into());
        }
        Ok(vec![AccountEvent::Withdrawn {
            amount: self.amount,
        }])
    }
}

// ---- journals: the audit trail and the ledger ----------------------------------------

#[state(name = "Journal", actions(Note))]
#[derive(Debug, Clone, Default)]
pub struct Journal {
    pub entries: Vec<String>,
}

#[emits(Journal)]
#[derive(Debug, Clone)]
pub enum JournalEvent {
    Noted { entry: String },
}

impl Patch<JournalEvent> for Journal {
    fn patch(&mut self, event: &JournalEvent) {
        match event {
            JournalEvent::Noted { entry } => self.entries.push(entry.clone()),
        }
    }
}

#[action(Journal, emit = JournalEvent::Noted)]
pub struct Note {
    pub entry: String,
}

fn teller() -> Actor {
    Actor::new("system", "teller")
}

/// Where a deposit's audit line goes: the account's own audit stream.
fn audit_stream(e: &Committed<AccountEvent>) -> Resolved {
    Resolved::to(format!("audit-{}", e.stream)).from_stream(&e.stream)
}

/// Audits every deposit (dynamic resolver: found by correlate).
#[reaction(on = AccountEvent::Deposited, to = audit_stream)]
async fn audit_deposit(e: &Committed<AccountEvent>, app: &Scope) -> Result<(), ReactionError> {
    let AccountEvent::Deposited { amount } = e.data else {
        return Ok(());
    };
    let entry = format!("deposit of {amount} on {} v{}", e.stream, e.version);
    app.execute(
        Note { entry },
        Target::new(format!("audit-{}", e.stream), teller()),
    )
    .await?;
    Ok(())
}

/// Records every withdrawal in the bank's ledger (static target).
#[reaction(on = AccountEvent::Withdrawn, to = "ledger")]
async fn ledger_withdrawal(e: &Committed<AccountEvent>, app: &Scope) -> Result<(), ReactionError> {
    let AccountEvent::Withdrawn { amount } = e.data else {
        return Ok(());
    };
    let entry = format!("{} withdrew {amount}", e.stream);
    app.execute(Note { entry }, Target::new("ledger", teller()))
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = act()
        .with_state::<Account>()
        .with_state::<Journal>()
        .with_reaction(audit_deposit)
        .with_reaction(ledger_withdrawal)
        .build()?;

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
