// A reaction's timeout is a whole, positive number of milliseconds: `timeout_ms = 30000`.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter, passthrough)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { count: i64 } }

#[reaction(on = CounterEvent::Incremented, to = "a", timeout_ms = 0)]
async fn zero(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = "b", timeout_ms = "30s")]
async fn text(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = "c", timeout_ms = 1.5)]
async fn fraction(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

fn main() {}
