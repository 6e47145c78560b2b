// An action's handler can only return its own state's events.
use act_runtime::prelude::*;

#[state(actions(Close))]
#[derive(Debug, Clone, Default)]
pub struct Door { pub open: bool }

#[emits(Door)]
#[derive(Debug, Clone)]
pub enum DoorEvent { Closed }

impl Patch<DoorEvent> for Door {
    fn patch(&mut self, event: &DoorEvent) {
        match event { DoorEvent::Closed => self.open = false }
    }
}

#[state]
#[derive(Debug, Clone, Default)]
pub struct Window { pub open: bool }

#[emits(Window)]
#[derive(Debug, Clone)]
pub enum WindowEvent { Shut }

impl Patch<WindowEvent> for Window {
    fn patch(&mut self, event: &WindowEvent) {
        match event { WindowEvent::Shut => self.open = false }
    }
}

#[action(Door)]
pub struct Close;

impl Handle for Close {
    fn handle(&self, _: &Door, _: &Target) -> Emit<WindowEvent> {
        Ok(vec![WindowEvent::Shut])
    }
}

fn main() {}
