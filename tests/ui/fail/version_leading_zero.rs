// Event versions are written `_v2`, `_v3`, ...
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Account { pub balance: u64 }

#[emits(Account, passthrough)]
#[derive(Debug, Clone)]
pub enum AccountEvent {
    Deposited { balance: u64 },
    Deposited_v02 { balance: u64 },
}

fn main() {}
