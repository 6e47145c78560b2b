// A state lists only its own actions.
use act_runtime::prelude::*;

#[state(actions(Open))]
#[derive(Debug, Clone, Default)]
pub struct Door { pub open: bool }

#[emits(Door, passthrough)]
#[derive(Debug, Clone)]
pub enum DoorEvent { Opened { open: bool } }

#[state]
#[derive(Debug, Clone, Default)]
pub struct Window { pub open: bool }

#[emits(Window, passthrough)]
#[derive(Debug, Clone)]
pub enum WindowEvent { Opened { open: bool } }

#[action(Window, emit = WindowEvent::Opened)]
pub struct Open { pub open: bool }

fn main() {}
