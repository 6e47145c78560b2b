// `#[emits]` names the state whose events these are.
use act_runtime::prelude::*;

#[emits]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { by: i64 } }

fn main() {}
