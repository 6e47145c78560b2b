// A reaction takes its field bindings first, then the committed event, then the scope.
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
async fn audit(e: &Committed<AccountEvent>, amount: &u64, _: &Scope) -> Result<(), ReactionError> {
    let _ = (e, amount);
    Ok(())
}

fn main() {}
