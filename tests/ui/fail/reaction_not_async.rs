// A reaction is an `async fn`.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter, passthrough)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { count: i64 } }

#[reaction(on = CounterEvent::Incremented, to = "ledger")]
fn record(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

fn main() {}
