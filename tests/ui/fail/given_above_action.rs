// `#[given]` is read by the `#[action]` above it.
use act_runtime::prelude::*;

#[state(actions(CheckOut))]
#[derive(Debug, Clone, Default)]
pub struct Cart { pub closed: bool }

#[emits(Cart, passthrough)]
#[derive(Debug, Clone)]
pub enum CartEvent { CheckedOut { closed: bool } }

fn is_open(cart: &Cart) -> bool {
    !cart.closed
}

#[given(is_open = "cart is checked out")]
#[action(Cart, emit = CartEvent::CheckedOut)]
pub struct CheckOut { pub closed: bool }

fn main() {}
