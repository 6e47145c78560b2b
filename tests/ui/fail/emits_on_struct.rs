// `#[emits]` goes on an enum.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter)]
pub struct Incremented { pub by: i64 }

fn main() {}
