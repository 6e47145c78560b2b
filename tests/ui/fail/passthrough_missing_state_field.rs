// `passthrough` assigns each event field to the state field of the same name.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Profile { pub name: String }

#[emits(Profile, passthrough)]
#[derive(Debug, Clone)]
pub enum ProfileEvent { Renamed { name: String, nickname: String } }

fn main() {}
