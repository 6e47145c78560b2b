// `#[action]` goes on a struct.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[action(Counter)]
pub enum Increment { ByOne, ByTwo }

fn main() {}
