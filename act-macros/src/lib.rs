//! # act-macros
//!
//! The procedural macros of act-rs: [`macro@state`], [`macro@emits`], [`macro@action`],
//! [`macro@given`] and [`macro@reaction`]. Use them through `act_runtime` (`use act_runtime::prelude::*;`), which
//! re-exports them: the generated code names the runtime (and serde and schemars through
//! it), so one dependency is enough.
//!
//! Each macro parses its item into a small model, checks it (collecting every error), and
//! expands it. What one item cannot check alone (an action emits its own state's events, a
//! listed action belongs to the state, two actions do not share a name) is generated as
//! trait bounds and `const` assertions spanned on the user's tokens, so rustc reports them
//! there. When an argument is wrong the item is still emitted, so one mistake gives one
//! message.
//!
//! Every macro takes `crate = path` for a renamed `act-runtime` dependency; without it the
//! macros read the caller's manifest (`[dependencies] act = { package = "act-runtime" }`
//! works as is).

mod action;
mod attr;
mod ctxt;
mod derives;
mod emits;
mod item;
mod reaction;
mod root;
mod shim;
mod state;
mod version;

use proc_macro::TokenStream;

/// Makes a struct a state: what a stream's events fold into.
///
/// Adds `Serialize`, `Deserialize` and `JsonSchema` (unless derived already) and implements
/// `State`. Arguments, all optional:
///
/// * `name = "Cart"`: the name in the registry (default: the struct's name);
/// * `init = path`: a `fn() -> Self` for the initial state (default: `Default::default()`);
/// * `snap = path`: a `fn(&Snapshot<Self>) -> bool` that decides when to snapshot;
/// * `actions(A, B, ..)`: the state's actions, registered by `with_state::<Self>()`; each
///   must be an `#[action(Self)]` with a handler, and their names must differ;
/// * `crate = path`: the path of `act-runtime` when renamed.
///
/// The struct cannot be generic. Its events are the enum marked `#[emits(Self)]`.
///
/// ```ignore
/// use act_runtime::prelude::*;
///
/// #[state(name = "Cart", snap = every_ten, actions(AddItem))]
/// #[derive(Debug, Clone, Default)]
/// pub struct Cart { pub items: Vec<String> }
///
/// fn every_ten(s: &Snapshot<Cart>) -> bool { s.patches >= 10 }
/// ```
#[proc_macro_attribute]
pub fn state(args: TokenStream, item: TokenStream) -> TokenStream {
    state::expand(args.into(), item.into()).into()
}

/// Makes an enum the events of a state: one variant per event, the variant's name is the
/// event's name.
///
/// A variant has named fields, no fields, or exactly one unnamed field (a payload type that
/// is the event's data). Each event gets its own JSON payload and JSON Schema; the fields'
/// `#[serde(...)]`, `#[schemars(...)]` and doc attributes apply to it. Versioned names
/// (`Deposited`, `Deposited_v2`, ...) evolve an event: the highest version is current, the
/// older ones stay readable and are deprecated (an action cannot emit them).
///
/// The state's reducer is an `impl Patch<ThisEnum> for State`; with `passthrough`, it is
/// generated: each event's fields are assigned to the state's fields of the same names
/// (checked by rustc field by field). Arguments: the state type first, then optionally
/// `passthrough` and `crate = path`.
///
/// ```ignore
/// use act_runtime::prelude::*;
///
/// #[emits(Cart)]
/// #[derive(Debug, Clone)]
/// pub enum CartEvent {
///     ItemAdded { sku: String, qty: u32 },
///     CheckedOut,
/// }
///
/// impl Patch<CartEvent> for Cart {
///     fn patch(&mut self, event: &CartEvent) {
///         match event {
///             CartEvent::ItemAdded { sku, .. } => self.items.push(sku.clone()),
///             CartEvent::CheckedOut => self.checked_out = true,
///         }
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn emits(args: TokenStream, item: TokenStream) -> TokenStream {
    emits::expand(args.into(), item.into()).into()
}

/// Makes a struct an action of a state, with the invariants of the `#[given(...)]`
/// attributes below it.
///
/// Adds `Serialize`, `Deserialize` and `JsonSchema` (unless derived already) and implements
/// `Action`. Arguments: the state type first, then optionally `name = "..."` (default: the
/// struct's name), `retries = N` (commit retries on a framework-derived version conflict),
/// `emit = Event::Variant` and `crate = path`.
///
/// The handler is an `impl Handle for ThisStruct` that can only return the state's events.
/// With `emit = Event::Variant` it is generated: the action's fields become the event's
/// fields (checked by rustc field by field), and the variant cannot be a deprecated version.
///
/// ```ignore
/// use act_runtime::prelude::*;
///
/// fn is_open(cart: &Cart) -> bool { !cart.checked_out }
///
/// #[action(Cart, emit = CartEvent::ItemAdded)]
/// #[given(is_open = "cart is checked out")]
/// pub struct AddItem { pub sku: String, pub qty: u32 }
/// ```
#[proc_macro_attribute]
pub fn action(args: TokenStream, item: TokenStream) -> TokenStream {
    action::expand(args.into(), item.into()).into()
}

/// Makes an `async fn` a reaction to one event: a unit struct of the same name that
/// implements `Reaction`, registered with `act().with_reaction(name)`.
///
/// The function is `async fn name(event: &Committed<Events>, app: &Scope) -> Result<(),
/// ReactionError>`, or takes the variant's fields directly. Its parameters, in this order:
///
/// * field bindings, any number: each named after a field of the variant and borrowing it,
///   `amount: &u64` (deref coercions apply: `&str` for a `String` field); a tuple variant's
///   payload is `_0` (`_1`, ... by position). Checked by rustc on these tokens: a wrong
///   name is "no field named", a wrong type "mismatched types";
/// * optionally the committed event, `&Committed<Events>` (recognized by the name
///   `Committed`);
/// * the scope, `&Scope`, always last.
///
/// Arguments:
///
/// * `on = Events::Variant`: the event (checked to exist);
/// * the target, classified at compile time: `to = "stream"` (static), `to = _this_` (the
///   event's own stream), `void` (runs right after the commit, never drained), or
///   `to = resolver` / `to = |event| ...` (dynamic: a function of `&Committed<Events>`
///   returning a `Resolved`, a stream name, or an `Option` of either);
/// * optionally `name = "..."` (default: the function's name), `retries = N`,
///   `block_on_error = bool`, `backoff(exponential | linear | fixed, base_ms = N,
///   max_ms = N, jitter)` (or `strategy = "..."`), `timeout_ms = N` (at least 1; the
///   time one attempt may run), and `crate = path`. Options not given keep
///   `ReactionOptions::DEFAULT`.
///
/// ```ignore
/// #[reaction(on = CartEvent::CheckedOut, to = "sales", retries = 5)]
/// async fn record_sale(e: &Committed<CartEvent>, app: &Scope) -> Result<(), ReactionError> {
///     app.execute(RecordSale { cart: e.stream.clone() }, Target::new("sales", actor())).await?;
///     Ok(())
/// }
///
/// // `CartEvent::ItemAdded { sku: String, qty: u32 }`: the fields, then the event's stream.
/// #[reaction(on = CartEvent::ItemAdded, to = "stock", timeout_ms = 30_000)]
/// async fn reserve(sku: &str, qty: &u32, e: &Committed<CartEvent>, app: &Scope) -> Result<(), ReactionError> {
///     app.execute(Reserve { sku: sku.into(), qty: *qty, cart: e.stream.clone() },
///                 Target::new("stock", actor())).await?;
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn reaction(args: TokenStream, item: TokenStream) -> TokenStream {
    reaction::expand(args.into(), item.into()).into()
}

/// The invariants of an action: `#[given(predicate = "description", ...)]`, placed below
/// `#[action(...)]`, which reads it.
///
/// Each predicate is a path to a `fn(&State) -> bool` or `fn(&State, &Actor) -> bool`;
/// they are checked in order before the handler runs, and the description of the first that
/// returns `false` is the `InvariantError`'s message. Several `#[given]` attributes add up.
///
/// ```ignore
/// #[action(Cart)]
/// #[given(is_open = "cart is checked out", has_items = "cart is empty")]
/// pub struct CheckOut;
/// ```
#[proc_macro_attribute]
pub fn given(_args: TokenStream, item: TokenStream) -> TokenStream {
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        "`#[given]` must be placed below `#[action(...)]`, which reads it: an invariant belongs to an action",
    )
    .to_compile_error();
    let item = proc_macro2::TokenStream::from(item);
    quote::quote!(#error #item).into()
}
