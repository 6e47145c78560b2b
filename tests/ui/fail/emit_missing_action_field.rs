// `emit = Event::Variant` builds the event from the action's fields: every event field must
// be an action field, and the other way round.
use act_runtime::prelude::*;

#[state(actions(AddItem))]
#[derive(Debug, Clone, Default)]
pub struct Cart { pub items: Vec<String> }

#[emits(Cart)]
#[derive(Debug, Clone)]
pub enum CartEvent { ItemAdded { sku: String, qty: u32 } }

impl Patch<CartEvent> for Cart {
    fn patch(&mut self, event: &CartEvent) {
        match event { CartEvent::ItemAdded { sku, .. } => self.items.push(sku.clone()) }
    }
}

#[action(Cart, emit = CartEvent::ItemAdded)]
pub struct AddItem { pub sku: String }

fn main() {}
