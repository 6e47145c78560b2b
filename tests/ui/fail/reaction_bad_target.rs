// `to` is a stream name, `_this_`, a resolver function or a closure.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter, passthrough)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { count: i64 } }

fn target() -> String {
    "ledger".into()
}

#[reaction(on = CounterEvent::Incremented, to = 42)]
async fn numbered(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = target())]
async fn called(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

fn main() {}
