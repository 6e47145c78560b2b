// A state with events needs a reducer: `impl Patch<Events> for State`.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { by: i64 } }

fn main() {}
