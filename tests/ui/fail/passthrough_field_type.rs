// `passthrough` needs the event field and the state field to have one type.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Profile { pub age: u32 }

#[emits(Profile, passthrough)]
#[derive(Debug, Clone)]
pub enum ProfileEvent { Aged { age: String } }

fn main() {}
