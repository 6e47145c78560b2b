//! The bank's domain, shared by the `bank` and `fleet` examples: accounts, an audit trail
//! per account (dynamic resolver), a global ledger (static target).
//!
//! Included as a module (`mod bank_domain;`) by each example; each uses a part of it.

#![allow(dead_code)]

use act::prelude::*;

/// An account whose audit trail refuses every entry (see `audit_deposit`).
pub const FROZEN: &str = "acct-frozen";

/// The bank's states and its two reactions, ready for ports and options.
pub fn bank_app() -> ActBuilder {
    act()
        .with_state::<Account>()
        .with_state::<Journal>()
        .with_reaction(audit_deposit)
        .with_reaction(ledger_withdrawal)
}

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

pub fn teller() -> Actor {
    Actor::new("system", "teller")
}

/// Where a deposit's audit line goes: the account's own audit stream.
pub fn audit_stream(e: &Committed<AccountEvent>) -> Resolved {
    Resolved::to(format!("audit-{}", e.stream)).from_stream(&e.stream)
}

/// Audits every deposit (dynamic resolver: found by correlate).
#[reaction(on = AccountEvent::Deposited, to = audit_stream)]
pub async fn audit_deposit(e: &Committed<AccountEvent>, app: &Scope) -> Result<(), ReactionError> {
    let AccountEvent::Deposited { amount } = e.data else {
        return Ok(());
    };
    if e.stream == FROZEN {
        // fails the same way every time: blocks the audit stream at once
        return Err(ReactionError::fatal(format!(
            "{} is frozen: compliance holds its audit trail",
            e.stream
        )));
    }
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
pub async fn ledger_withdrawal(
    e: &Committed<AccountEvent>,
    app: &Scope,
) -> Result<(), ReactionError> {
    let AccountEvent::Withdrawn { amount } = e.data else {
        return Ok(());
    };
    let entry = format!("{} withdrew {amount}", e.stream);
    app.execute(Note { entry }, Target::new("ledger", teller()))
        .await?;
    Ok(())
}
