// The first parameter of a reaction is the committed event of the enum named by `on`.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter, passthrough)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { count: i64 } }

#[state]
#[derive(Debug, Clone, Default)]
pub struct Ledger { pub lines: Vec<String> }

#[emits(Ledger, passthrough)]
#[derive(Debug, Clone)]
pub enum LedgerEvent { Recorded { lines: Vec<String> } }

#[reaction(on = CounterEvent::Incremented, to = "ledger")]
async fn record(_: &Committed<LedgerEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

fn main() {}
