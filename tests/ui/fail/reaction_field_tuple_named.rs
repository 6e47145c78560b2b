// A tuple variant's payload is bound as `_0`, not by a name of one's own.
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

#[reaction(on = AccountEvent::Noted, to = "audit")]
async fn audit(text: &String, _: &Scope) -> Result<(), ReactionError> {
    let _ = text;
    Ok(())
}

fn main() {}
