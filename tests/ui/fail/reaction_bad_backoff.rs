// A backoff is `fixed`, `linear` or `exponential`, with a base of at least 1 ms.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter, passthrough)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { count: i64 } }

#[reaction(on = CounterEvent::Incremented, to = "a", backoff(quadratic))]
async fn unknown_flag(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = "b", backoff(strategy = "random"))]
async fn unknown_strategy(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = "c", backoff(fixed, base_ms = -5))]
async fn negative(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = "d", backoff(linear, base_ms = 0))]
async fn zero(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = "e", backoff(exponential, base_ms = 500, max_ms = 100))]
async fn capped_below(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

fn main() {}
