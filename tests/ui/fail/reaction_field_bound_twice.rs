// A field is bound once.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Account { pub balance: u64 }

#[emits(Account)]
#[derive(Debug, Clone)]
pub enum AccountEvent { Deposited { amount: u64 }, Noted(String) }

impl Patch<AccountEvent> for Account {
    fn patch(&mut self, _: &AccountEvent) {}
}

#[reaction(on = AccountEvent::Deposited, to = "audit")]
async fn audit(amount: &u64, amount: &u64, _: &Scope) -> Result<(), ReactionError> {
    let _ = amount;
    Ok(())
}

fn main() {}
