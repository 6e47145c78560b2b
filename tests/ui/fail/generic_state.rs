// A state is stored and loaded by name: it cannot be generic.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Bag<T> { pub items: Vec<T> }

fn main() {}
