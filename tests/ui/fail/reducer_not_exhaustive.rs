// A reducer that forgets an event does not compile.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { by: i64 }, Reset }

impl Patch<CounterEvent> for Counter {
    fn patch(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Incremented { by } => self.count += by,
        }
    }
}

fn main() {}
