//! Edges of the app's public surface: every call after `shutdown()`, a unit-struct action
//! through JSON, JSON Pointer field paths, and the prelude's ergonomics.

use std::collections::HashMap;

use act_runtime::adapters::SqliteStore;
use act_runtime::prelude::*;
use act_tests::actor;
use act_tests::cart::{AddItem, Cart, CheckOut};
use chrono::{DateTime, Utc};
use serde_json::json;

/// A sheet whose actions carry nested payloads: the decoder (not the schema) rejects a bad
/// date-time or an integer past `u64::MAX`, and names the field.
mod sheet {
    use super::*;

    #[state(name = "Sheet", actions(Fill))]
    #[derive(Debug, Clone, Default)]
    pub struct Sheet {
        pub filled: u32,
    }

    #[emits(Sheet)]
    #[derive(Debug, Clone)]
    pub enum SheetEvent {
        Filled,
    }

    impl Patch<SheetEvent> for Sheet {
        fn patch(&mut self, _: &SheetEvent) {
            self.filled += 1;
        }
    }

    #[action(Sheet)]
    pub struct Fill {
        pub lines: Vec<HashMap<String, DateTime<Utc>>>,
        pub tags: HashMap<String, u64>,
    }

    impl Handle for Fill {
        fn handle(&self, _: &Sheet, _: &Target) -> Emit<SheetEvent> {
            Ok(vec![SheetEvent::Filled])
        }
    }
}

fn target(stream: &str) -> Target {
    Target::new(stream, actor())
}

fn add(sku: &str, qty: u32) -> AddItem {
    AddItem {
        sku: sku.into(),
        qty,
    }
}

fn shut<T: std::fmt::Debug>(what: &str, r: Result<T, ActError>) {
    assert!(
        matches!(r, Err(ActError::ShutDown)),
        "{what} after shutdown: {r:?}"
    );
}

/// Every public call on a shut-down app is `ActError::ShutDown`, whatever the store.
async fn every_call_after_shutdown_is_shut_down(app: Act) {
    app.execute(add("A", 1), target("c")).await.unwrap();
    app.shutdown().await.unwrap();
    app.shutdown().await.unwrap(); // idempotent

    shut("load", app.load::<Cart>("c").await);
    shut(
        "load_with",
        app.load_with::<Cart>("c", &LoadOptions::default().limit(1))
            .await,
    );
    shut("load_json", app.load_json("Cart", "c").await);
    shut("execute", app.execute(add("B", 1), target("c")).await);
    shut(
        "execute_json",
        app.execute_json("AddItem", target("c"), json!({"sku": "B", "qty": 1}))
            .await,
    );
    shut("query", app.query(&Query::stream("c")).await);
    shut(
        "query_with",
        app.query_with(&Query::stream("c"), |_| {}).await,
    );
    shut("correlate", app.correlate(10).await);
    shut("drain", app.drain(DrainOptions::default()).await);
    shut("start", app.start().map(|_| ()));
    shut("reset", app.reset(&["c"]).await);
    shut("unblock", app.unblock(&["c"]).await);
    shut("blocked_streams", app.blocked_streams().await);
    shut("settle_now", app.settle_now(SettleOptions::default()).await);
    app.settle(); // returns at once and does nothing
}

#[tokio::test]
async fn every_call_after_shutdown_is_shut_down_on_memory() {
    every_call_after_shutdown_is_shut_down(act().with_state::<Cart>().build().unwrap()).await;
}

#[tokio::test]
async fn every_call_after_shutdown_is_shut_down_on_sqlite() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    every_call_after_shutdown_is_shut_down(
        act()
            .with_state::<Cart>()
            .with_store(store)
            .build()
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn a_unit_struct_action_takes_an_empty_object_or_null() {
    let app = act().with_state::<Cart>().build().unwrap();
    app.execute(add("A", 1), target("c1")).await.unwrap();
    let out = app
        .execute_json("CheckOut", target("c1"), json!({}))
        .await
        .unwrap();
    assert_eq!(out.events[0].name, "CheckedOut");
    assert!(app.load::<Cart>("c1").await.unwrap().state.checked_out);

    app.execute(add("A", 1), target("c2")).await.unwrap();
    app.execute_json("CheckOut", target("c2"), serde_json::Value::Null)
        .await
        .unwrap();
    assert!(app.load::<Cart>("c2").await.unwrap().state.checked_out);

    // anything else is still refused, naming the field; nothing commits
    app.execute(add("A", 1), target("c3")).await.unwrap();
    for bad in [json!({"x": 1}), json!([]), json!(1), json!("x")] {
        let err = app
            .execute_json("CheckOut", target("c3"), bad.clone())
            .await
            .unwrap_err();
        assert!(matches!(err, ActError::Validation(_)), "{bad}: {err}");
    }
    assert!(!app.load::<Cart>("c3").await.unwrap().state.checked_out);
    // the typed action is unchanged
    app.execute(CheckOut, target("c3")).await.unwrap();
}

#[test]
fn the_catalog_advertises_an_empty_object_for_a_unit_struct_action() {
    let app = act().with_state::<Cart>().build().unwrap();
    let catalog = serde_json::to_value(app.catalog()).unwrap();
    let action = catalog["states"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "CheckOut")
        .unwrap();
    let schema = &action["schema"];
    assert_eq!(schema["type"], "object", "{schema}");
    assert_eq!(schema["additionalProperties"], false, "{schema}");
    assert_eq!(schema["properties"], json!({}), "{schema}");
    // other actions keep their derived schema
    let add = catalog["states"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "AddItem")
        .unwrap();
    assert!(add["schema"]["properties"]["sku"].is_object());
}

fn decode_paths(err: ActError) -> Vec<String> {
    match err {
        ActError::Validation(v) => v.paths().map(str::to_owned).collect(),
        other => panic!("not a validation error: {other}"),
    }
}

#[tokio::test]
async fn decode_errors_name_the_field_by_json_pointer() {
    let app = act().with_state::<sheet::Sheet>().build().unwrap();
    let ok = "2024-01-01T00:00:00Z";
    let err = app
        .execute_json(
            "Fill",
            target("s"),
            json!({"lines": [{"at": ok}, {"at": "not a date"}], "tags": {}}),
        )
        .await
        .unwrap_err();
    assert_eq!(decode_paths(err), ["/lines/1/at"]);

    // a key with `/` and `~` is escaped (RFC 6901): `~` as `~0`, `/` as `~1`
    let err = app
        .execute_json(
            "Fill",
            target("s"),
            json!({"lines": [], "tags": {"a/b~c": 18_446_744_073_709_551_616.0_f64}}),
        )
        .await
        .unwrap_err();
    assert_eq!(decode_paths(err), ["/tags/a~1b~0c"]);

    let err = app
        .execute_json(
            "Fill",
            target("s"),
            json!({"lines": [{"a/b": "never"}], "tags": {}}),
        )
        .await
        .unwrap_err();
    assert_eq!(decode_paths(err), ["/lines/0/a~1b"]);

    app.execute_json(
        "Fill",
        target("s"),
        json!({"lines": [{"at": ok}], "tags": {"a/b": 1}}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn unblock_and_reset_take_a_slice_of_string_literals() {
    let app = act().with_state::<Cart>().build().unwrap();
    assert_eq!(app.unblock(&["job-1"]).await.unwrap(), 0);
    assert_eq!(app.reset(&["job-1"]).await.unwrap(), 0);
    assert_eq!(app.unblock(&["job-1", "job-2"]).await.unwrap(), 0);
    let owned = vec![String::from("job-1")];
    assert_eq!(app.reset(&owned).await.unwrap(), 0);
}

#[test]
fn the_prelude_names_lifecycle_and_the_pipelines_records() {
    let app = act().with_state::<Cart>().build().unwrap();
    let id = app.on(|e| {
        if let Lifecycle::Settled(summary) = e {
            let _: &DrainSummary = summary;
        }
    });
    assert!(app.off(id));
    let _ = std::mem::size_of::<Correlated>();
    let _ = std::mem::size_of::<StreamFilter>();
}

/// The guide's (`docs/getting-started.md`) examples of sections 2, 3, 4, 8, 9 and 10, verbatim:
/// `the_guides_examples_are_these` checks they are still the guide's.
#[rustfmt::skip]
#[allow(unused_variables, dead_code)]
mod guide {
use act_runtime::prelude::*;

#[state(name = "Cart", snap = every_ten, actions(AddItem, CheckOut))]
#[derive(Debug, Clone, Default)]
pub struct Cart { pub items: Vec<(String, u32)>, pub checked_out: bool }

fn every_ten(s: &Snapshot<Cart>) -> bool { s.patches >= 10 }

#[emits(Cart)]
#[derive(Debug, Clone)]
pub enum CartEvent {
    ItemAdded { sku: String, qty: u32 },
    CheckedOut,
}

impl Patch<CartEvent> for Cart {
    fn patch(&mut self, e: &CartEvent) {
        match e {
            CartEvent::ItemAdded { sku, qty } => self.items.push((sku.clone(), *qty)),
            CartEvent::CheckedOut => self.checked_out = true,
        }
    }
}

#[action(Cart, emit = CartEvent::ItemAdded)]      // passthrough: payload → event
#[given(is_open = "cart is checked out")]
pub struct AddItem { pub sku: String, pub qty: u32 }

#[action(Cart)]
#[given(is_open = "cart is checked out", has_items = "cart is empty")]
pub struct CheckOut;

impl Handle for CheckOut {
    fn handle(&self, _cart: &Cart, _target: &Target) -> Emit<CartEvent> {
        Ok(vec![CartEvent::CheckedOut])           // zero, one or many events, or Err(..)
    }
}

fn is_open(c: &Cart) -> bool { !c.checked_out }
fn has_items(c: &Cart) -> bool { !c.items.is_empty() }

use act_runtime::testing::TestApp;               // feature "testing"

#[tokio::test]
async fn a_checked_out_cart_takes_no_more_items() {
    let t = TestApp::new(act().with_state::<Cart>());
    t.given("cart-1", [CartEvent::ItemAdded { sku: "A1".into(), qty: 2 }]).await;
    t.when(CheckOut, "cart-1").await.then([CartEvent::CheckedOut]);
    t.when(AddItem { sku: "B2".into(), qty: 1 }, "cart-1").await
        .then_error(|e| matches!(e, ActError::Invariant(i) if i.description == "cart is checked out"));
}

pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
let app = act().with_state::<Cart>().build()?;
let target = Target::new("cart-1", Actor::new("u1", "Ada"));
let out = app.execute(AddItem { sku: "A1".into(), qty: 2 }, target.clone()).await?;
println!("{:?} at version {}", out.snapshot.state, out.snapshot.version);

let snap = app.load::<Cart>("cart-1").await?;               // latest state
let events = app.query(&Query::stream("cart-1")).await?;     // committed events

let out = app.execute_json("AddItem", target, serde_json::json!({"sku": "A1", "qty": 2})).await?;
// a bad payload is ActError::Validation naming each field (e.g. `/qty`); nothing commits
// out.events: the events committed; out.version; out.state: the new state as JSON

app.settle();                                   // returns at once; drains in the background
app.on(|e| if let Lifecycle::Settled(summary) = e { /* notify clients */ });
let stream = "cart-1";
app.unblock(&[stream]).await?;

use act_runtime::app::CloseTarget;

let report = app
    .close_with([CloseTarget::restart::<Cart>("cart-1")], |stream, events| async move {
        println!("archiving {} events of {stream}", events.len()); // before they are deleted
        Ok(())
    })
    .await?;
// cart-1 loads as before, at version 0; the next action commits at version 1.
// `CloseTarget::new(stream)` retires a stream instead: `execute` then fails with
// `ActError::StreamClosed`, and `app.is_closed(stream)` says so.
for s in &report.skipped {
    println!("{} not closed: {}", s.stream, s.reason); // pending reactions, a concurrent write, ...
}

app.on(|e| match e {
    Lifecycle::Committed(events) => { /* every commit */ }
    Lifecycle::Blocked(blocked) => { /* alert: a reaction ran out of retries */ }
    _ => {}
});
app.shutdown().await?;   // stops settling, waits for an in-flight drain, disposes the ports
    Ok(())
}
}

#[tokio::test]
async fn the_guides_examples_run() {
    guide::run().await.unwrap();
}

/// The guide's ```rust blocks of sections 2, 3, 4, 8, 9 and 10 appear, line by line, in `guide`.
#[test]
fn the_guides_examples_are_these() {
    let guide = include_str!("../docs/getting-started.md");
    let here: Vec<&str> = include_str!("edges_app.rs")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut blocks = Vec::new();
    let mut open: Option<Vec<&str>> = None;
    for line in guide.lines() {
        match (&mut open, line.trim()) {
            (None, "```rust") => open = Some(Vec::new()),
            (Some(_), "```") => blocks.push(open.take().unwrap()),
            (Some(block), l) => block.push(l),
            (None, _) => {}
        }
    }
    assert_eq!(
        blocks.len(),
        9,
        "the guide's rust blocks moved: update this test"
    );
    for (i, block) in blocks.iter().enumerate() {
        if i == 4 || i == 5 {
            continue; // the reactions of section 6 are examples/bank.rs's
        }
        let lines: Vec<&str> = block.iter().copied().filter(|l| !l.is_empty()).collect();
        let found = here.windows(lines.len()).any(|w| w == lines.as_slice());
        assert!(
            found,
            "the guide's block {i} is not in `guide`:\n{}",
            block.join("\n")
        );
    }
}
