// An event has named fields, no fields, or one payload type.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Account { pub balance: u64 }

#[emits(Account)]
#[derive(Debug, Clone)]
pub enum AccountEvent {
    Deposited(u64, String),
}

impl Patch<AccountEvent> for Account {
    fn patch(&mut self, event: &AccountEvent) {
        match event { AccountEvent::Deposited(amount, _) => self.balance += amount }
    }
}

fn main() {}
