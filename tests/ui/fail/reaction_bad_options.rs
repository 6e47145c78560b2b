// Unknown and repeated options are rejected, each where it is written.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter, passthrough)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { count: i64 } }

#[reaction(on = CounterEvent::Incremented, to = "ledger", retry = 3)]
async fn misspelled(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = "ledger", retries = 3, retries = 5)]
async fn repeated(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

fn main() {}
