// The harness's `then` expects events of the action's state: another state's is refused.
use act_runtime::prelude::*;
use act_runtime::testing::TestApp;

#[state(name = "Counter", actions(Increment))]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

#[emits(Counter)]
#[derive(Debug, Clone)]
pub enum CounterEvent { Incremented { by: i64 } }

impl Patch<CounterEvent> for Counter {
    fn patch(&mut self, e: &CounterEvent) {
        match e { CounterEvent::Incremented { by } => self.count += by }
    }
}

#[action(Counter, emit = CounterEvent::Incremented)]
pub struct Increment { pub by: i64 }

#[state(name = "Light", actions(Switch))]
#[derive(Debug, Clone, Default)]
pub struct Light { pub on: bool }

#[emits(Light)]
#[derive(Debug, Clone)]
pub enum LightEvent { Switched { on: bool } }

impl Patch<LightEvent> for Light {
    fn patch(&mut self, e: &LightEvent) {
        match e { LightEvent::Switched { on } => self.on = *on }
    }
}

#[action(Light, emit = LightEvent::Switched)]
pub struct Switch { pub on: bool }

async fn check(t: &TestApp) {
    t.when(Increment { by: 1 }, "c-1").await.then([LightEvent::Switched { on: true }]);
}

fn main() {}
