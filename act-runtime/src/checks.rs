//! The compile-time checks behind the macros.
//!
//! `#[emits]`, `#[action]` and `#[state]` implement these traits and call these functions
//! in the code they generate, so that a mistake in their arguments is reported with a
//! message of its own, naming the state and what it expects. When the compiler adds
//! "required by a bound in `act_runtime::checks::...`" to such a message, the bound is one
//! of the items below; the fix is in the message above it, in the macro's arguments.
//!
//! | check | reported as | fix |
//! |---|---|---|
//! | [`event_of`] ([`EventsOf`]) | `` `E` is not the event enum of `S` `` | emit a variant of the enum marked `#[emits(S)]` |
//! | [`assert_action_of`] ([`ActionOf`]) | `` `A` is not an action of `S` `` | declare `A` with `#[action(S)]`, or list it in its own state |
//! | [`holds`] ([`Predicate`]) | `` `f` is not an invariant predicate over `S` `` | `#[given(f = "...")]` names a `fn(&S) -> bool` or `fn(&S, &Actor) -> bool` |
//!
//! The traits are implemented by the macros only; code outside them has no need to
//! implement them or to call the functions.
//!
//! An action listed in the actions of a state it is not declared for fails
//! [`assert_action_of`] (`` `Open` is not an action of `Door` ``):
//!
//! ```compile_fail,E0277
//! use act_runtime::prelude::*;
//!
//! #[state(actions(Open))]
//! #[derive(Debug, Clone, Default)]
//! pub struct Door { pub open: bool }
//!
//! #[emits(Door)]
//! #[derive(Debug, Clone)]
//! pub enum DoorEvent { Opened }
//!
//! impl Patch<DoorEvent> for Door {
//!     fn patch(&mut self, _: &DoorEvent) { self.open = true }
//! }
//!
//! #[state(actions(Open))]
//! #[derive(Debug, Clone, Default)]
//! pub struct Window { pub open: bool }
//!
//! #[emits(Window)]
//! #[derive(Debug, Clone)]
//! pub enum WindowEvent { Opened }
//!
//! impl Patch<WindowEvent> for Window {
//!     fn patch(&mut self, _: &WindowEvent) { self.open = true }
//! }
//!
//! #[action(Window, emit = WindowEvent::Opened)]
//! pub struct Open;
//! ```
//!
//! Listed in its own state only, it compiles:
//!
//! ```
//! use act_runtime::prelude::*;
//!
//! #[state]
//! #[derive(Debug, Clone, Default)]
//! pub struct Door { pub open: bool }
//!
//! #[emits(Door)]
//! #[derive(Debug, Clone)]
//! pub enum DoorEvent { Opened }
//!
//! impl Patch<DoorEvent> for Door {
//!     fn patch(&mut self, _: &DoorEvent) { self.open = true }
//! }
//!
//! #[state(actions(Open))]
//! #[derive(Debug, Clone, Default)]
//! pub struct Window { pub open: bool }
//!
//! #[emits(Window)]
//! #[derive(Debug, Clone)]
//! pub enum WindowEvent { Opened }
//!
//! impl Patch<WindowEvent> for Window {
//!     fn patch(&mut self, _: &WindowEvent) { self.open = true }
//! }
//!
//! #[action(Window, emit = WindowEvent::Opened)]
//! pub struct Open;
//! ```

use crate::model::{Actor, Emits, EventOf, Handle, Predicate};

/// `Self` is the event enum of state `S`: implemented by `#[emits(S)]` for its enum only
/// (not as a blanket impl over `S::Event`, so that a wrong enum reports this message rather
/// than a type mismatch).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not the event enum of `{S}`",
    label = "an action of `{S}` can only emit `{S}`'s events",
    note = "emit a variant of the enum marked `#[emits({S})]`"
)]
pub trait EventsOf<S: Emits> {
    /// The identity: `Self` is `S::Event`.
    fn into_event(self) -> EventOf<S>;
}

/// `event` as an event of `S`: the handler `#[action(S, emit = E::Variant)]` generates
/// passes its event through this, so that an enum of another state is reported as the one
/// [`EventsOf`] message.
#[inline]
pub fn event_of<S: Emits, E: EventsOf<S>>(event: E) -> EventOf<S> {
    event.into_event()
}

/// `Self` is an action of state `S`: implemented by `#[action(S)]` for its struct, and
/// required of every action listed in `#[state(actions(...))]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an action of `{S}`",
    label = "listed in the actions of `{S}`",
    note = "declare it with `#[action({S})]`, or list it in its own state's `actions(...)`"
)]
pub trait ActionOf<S> {}

/// Asserts at compile time that `A` is an action of `S` with a handler: `#[state]` calls it
/// once per listed action.
pub const fn assert_action_of<S, A: ActionOf<S> + Handle>() {}

/// Evaluates the invariant predicate `p` of a `#[given(p = "...")]` on `state`: a
/// function of another shape is reported as the one [`Predicate`] message.
#[inline]
pub fn holds<S, M, P: Predicate<S, M>>(p: &P, state: &S, actor: &Actor) -> bool {
    p.holds(state, actor)
}
