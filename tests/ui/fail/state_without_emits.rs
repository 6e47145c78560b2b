// A state is registered with its events: an enum marked `#[emits(State)]`.
use act_runtime::prelude::*;

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter { pub count: i64 }

fn main() {
    let _ = act().with_state::<Counter>();
}
