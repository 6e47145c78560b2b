// An invariant is a `fn(&State) -> bool` or a `fn(&State, &Actor) -> bool`.
use act_runtime::prelude::*;

#[state(actions(CheckOut))]
#[derive(Debug, Clone, Default)]
pub struct Cart { pub items: Vec<String>, pub closed: bool }

#[emits(Cart, passthrough)]
#[derive(Debug, Clone)]
pub enum CartEvent { CheckedOut { closed: bool } }

fn is_open(cart: &Cart, strict: bool) -> bool {
    !cart.closed || !strict
}

#[action(Cart, emit = CartEvent::CheckedOut)]
#[given(is_open = "cart is checked out")]
pub struct CheckOut { pub closed: bool }

fn main() {}
