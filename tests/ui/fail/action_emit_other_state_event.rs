// `emit = Event::Variant` must name a variant of the action's own state's events.
use act_runtime::prelude::*;

#[state(actions(Close))]
#[derive(Debug, Clone, Default)]
pub struct Door { pub open: bool }

#[emits(Door, passthrough)]
#[derive(Debug, Clone)]
pub enum DoorEvent { Closed { open: bool } }

#[state]
#[derive(Debug, Clone, Default)]
pub struct Window { pub open: bool }

#[emits(Window, passthrough)]
#[derive(Debug, Clone)]
pub enum WindowEvent { Shut { open: bool } }

#[action(Door, emit = WindowEvent::Shut)]
pub struct Close { pub open: bool }

fn main() {}
