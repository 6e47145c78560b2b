// Once `Deposited_v2` exists, `Deposited` is only read back: actions emit the latest version.
use act_runtime::prelude::*;

#[state(actions(Deposit))]
#[derive(Debug, Clone, Default)]
pub struct Account { pub balance: u64 }

#[emits(Account)]
#[derive(Debug, Clone)]
pub enum AccountEvent {
    Deposited { amount: u64 },
    Deposited_v2 { amount: u64, memo: String },
}

impl Patch<AccountEvent> for Account {
    fn patch(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited { amount } | AccountEvent::Deposited_v2 { amount, .. } => {
                self.balance += amount
            }
        }
    }
}

#[action(Account, emit = AccountEvent::Deposited)]
pub struct Deposit { pub amount: u64 }

fn main() {}
