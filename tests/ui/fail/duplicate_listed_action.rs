// An action is listed once in `actions(...)`.
use act_runtime::prelude::*;

#[state(actions(Increment, Increment))]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { by: i64 } }

impl Patch<CounterEvent> for Counter {
    fn patch(&mut self, event: &CounterEvent) {
        match event { CounterEvent::Incremented { by } => self.count += by }
    }
}

#[action(Counter, emit = CounterEvent::Incremented)]
pub struct Increment { pub by: i64 }

fn main() {}
