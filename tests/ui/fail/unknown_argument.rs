// Unknown arguments are named, with the valid ones listed.
use act_runtime::prelude::*;

#[state(nmae = "Counter")]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter, passthru)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { count: i64 } }

impl Patch<CounterEvent> for Counter {
    fn patch(&mut self, event: &CounterEvent) {
        match event { CounterEvent::Incremented { count } => self.count = *count }
    }
}

#[action(Counter, retry = 3, name = "Set", name = "Put")]
pub struct Set { pub count: i64 }

fn main() {}
