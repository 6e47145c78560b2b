// A reaction has one target: `void` or `to`, not both.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter, passthrough)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { count: i64 } }

#[reaction(on = CounterEvent::Incremented, to = "ledger", void)]
async fn record(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

fn main() {}
