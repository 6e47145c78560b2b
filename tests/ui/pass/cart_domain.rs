// A full domain: every macro, every argument, checked by running the generated code.
use act_runtime::prelude::*;

/// A cart.
#[state(name = "Cart", init = Cart::empty, snap = every_three, actions(AddItem, RemoveItem, CheckOut, Tag))]
#[derive(Debug, Clone, PartialEq)]
pub struct Cart {
    pub items: Vec<(String, u32)>,
    pub checked_out: bool,
    pub tag: String,
}

impl Cart {
    fn empty() -> Self {
        Cart { items: Vec::new(), checked_out: false, tag: "new".into() }
    }
}

fn every_three(s: &Snapshot<Cart>) -> bool {
    s.patches >= 3
}

/// The cart's events.
#[emits(Cart)]
#[derive(Debug, Clone, PartialEq)]
pub enum CartEvent {
    /// An item was added.
    ItemAdded {
        /// Stock keeping unit.
        sku: String,
        #[serde(default = "one")]
        qty: u32,
    },
    ItemRemoved { sku: String },
    CheckedOut,
    Noted(String),
    Tagged { tag: String },
    Tagged_v2 { tag: String, by: String },
}

fn one() -> u32 {
    1
}

impl Patch<CartEvent> for Cart {
    fn patch(&mut self, event: &CartEvent) {
        match event {
            CartEvent::ItemAdded { sku, qty } => self.items.push((sku.clone(), *qty)),
            CartEvent::ItemRemoved { sku } => self.items.retain(|(s, _)| s != sku),
            CartEvent::CheckedOut => self.checked_out = true,
            CartEvent::Noted(_) => {}
            CartEvent::Tagged { tag } | CartEvent::Tagged_v2 { tag, .. } => self.tag = tag.clone(),
        }
    }
}

fn is_open(cart: &Cart) -> bool {
    !cart.checked_out
}

fn is_admin(_: &Cart, actor: &Actor) -> bool {
    actor.name == "admin"
}

mod rules {
    pub fn has_items(cart: &super::Cart) -> bool {
        !cart.items.is_empty()
    }
}

/// Adds an item.
#[action(Cart, emit = CartEvent::ItemAdded, retries = 5)]
#[given(is_open = "cart is checked out")]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    pub sku: String,
    pub qty: u32,
}

#[action(Cart, name = "Remove")]
#[given(is_open = "cart is checked out")]
#[given(rules::has_items = "cart is empty")]
pub struct RemoveItem {
    pub sku: String,
}

impl Handle for RemoveItem {
    fn handle(&self, _: &Cart, _: &Target) -> Emit<CartEvent> {
        Ok(vec![CartEvent::ItemRemoved { sku: self.sku.clone() }])
    }
}

#[action(Cart, emit = CartEvent::CheckedOut)]
#[given(is_open = "cart is checked out", rules::has_items = "cart is empty")]
pub struct CheckOut;

#[action(Cart, emit = CartEvent::Tagged_v2)]
#[given(is_admin = "only admins tag carts")]
pub struct Tag {
    pub tag: String,
    pub by: String,
}

/// A state without events or actions.
#[state]
#[derive(Debug, Clone, Default)]
pub struct Empty {}

/// A state folded by passthrough.
#[state(name = "Profile")]
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub name: String,
    pub age: u32,
}

#[emits(Profile, passthrough)]
#[derive(Debug, Clone)]
pub enum ProfileEvent {
    Renamed { name: String },
    Aged { age: u32, name: String },
    Cleared,
}

fn main() {
    assert_eq!(<Cart as State>::NAME, "Cart");
    assert_eq!(Cart::init().tag, "new");
    assert_eq!(<Empty as State>::NAME, "Empty");
    assert_eq!(
        <CartEvent as Event>::NAMES,
        ["ItemAdded", "ItemRemoved", "CheckedOut", "Noted", "Tagged", "Tagged_v2"]
    );
    assert_eq!(<CartEvent as Event>::DEPRECATED, ["Tagged"]);

    // Actions: names, invariants, retries.
    assert_eq!(<AddItem as Action>::NAME, "AddItem");
    assert_eq!(<AddItem as Action>::RETRIES, 5);
    assert_eq!(<RemoveItem as Action>::NAME, "Remove");
    assert_eq!(<RemoveItem as Action>::RETRIES, 3);
    assert_eq!(<CheckOut as Action>::INVARIANTS, ["cart is checked out", "cart is empty"]);
    let ada = Actor::new("u1", "ada");
    let mut cart = Cart::init();
    assert_eq!(CheckOut::given(&cart, &ada), Err("cart is empty"));
    assert_eq!(Tag::given(&cart, &ada), Err("only admins tag carts"));
    assert_eq!(Tag::given(&cart, &Actor::new("u2", "admin")), Ok(()));

    // Generated handlers.
    let target = Target::new("cart-1", ada.clone());
    let add = AddItem { sku: "A1".into(), qty: 2 };
    let events = add.handle(&cart, &target).unwrap();
    assert_eq!(events, [CartEvent::ItemAdded { sku: "A1".into(), qty: 2 }]);
    events[0].apply(&mut cart);
    assert_eq!(cart.items, [("A1".to_string(), 2)]);
    assert_eq!(CheckOut::given(&cart, &ada), Ok(()));
    assert_eq!(CheckOut.handle(&cart, &target).unwrap(), [CartEvent::CheckedOut]);

    // Payloads: only the variant's fields; unit events are `{}`; payload types are whole.
    let data = |e: &CartEvent| e.to_data().unwrap().get().to_owned();
    assert_eq!(data(&events[0]), r#"{"sku":"A1","qty":2}"#);
    assert_eq!(data(&CartEvent::CheckedOut), "{}");
    assert_eq!(data(&CartEvent::Noted("hi".into())), r#""hi""#);
    let raw = |s: &str| serde_json::value::RawValue::from_string(s.into()).unwrap();
    assert_eq!(
        CartEvent::from_data("ItemAdded", &raw(r#"{"sku":"B2"}"#)).unwrap(),
        Some(CartEvent::ItemAdded { sku: "B2".into(), qty: 1 })
    );
    assert_eq!(CartEvent::from_data("CheckedOut", &raw("{}")).unwrap(), Some(CartEvent::CheckedOut));
    assert_eq!(CartEvent::from_data("Unknown", &raw("{}")).unwrap(), None);
    assert!(CartEvent::from_data("ItemAdded", &raw(r#"{"qty":1}"#)).is_err());

    // Schemas: one per event, titled by the event's name, with the docs.
    let schemas = CartEvent::schemas(&mut Default::default());
    assert_eq!(schemas.len(), 6);
    let (name, schema) = &schemas[0];
    assert_eq!(*name, "ItemAdded");
    let schema = schema.as_value();
    assert_eq!(schema["title"], "ItemAdded");
    assert_eq!(schema["description"], "An item was added.");
    assert_eq!(schema["properties"]["sku"]["description"], "Stock keeping unit.");
    assert_eq!(schema["required"], serde_json::json!(["sku"]));

    // Actions are serde types without a serde dependency of their own.
    let add: AddItem = serde_json::from_str(r#"{"sku":"C3","qty":1}"#).unwrap();
    assert_eq!(add.qty, 1);
    assert!(serde_json::from_str::<AddItem>(r#"{"sku":"C3","qty":1,"x":0}"#).is_err());

    // Passthrough: the event's fields land on the state's fields of the same name.
    let mut profile = Profile::init();
    ProfileEvent::Aged { age: 7, name: "Bo".into() }.apply(&mut profile);
    ProfileEvent::Renamed { name: "Al".into() }.apply(&mut profile);
    ProfileEvent::Cleared.apply(&mut profile);
    assert_eq!((profile.name.as_str(), profile.age), ("Al", 7));
}
