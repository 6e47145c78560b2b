//! The event flow diagram generated from the registry, pinned for the bank example (the
//! README renders it) and for an app with every kind of resolver and a projection.

extern crate act_runtime as act;

#[path = "../examples/bank_domain.rs"]
mod bank_domain;
#[path = "../examples/sales_model.rs"]
mod sales_model;

use act_runtime::prelude::*;
use act_runtime::reactions::ReactionError;
use sales_model::{Cart, CartEvent};

#[test]
fn the_bank_diagram_is_pinned() {
    let app = bank_domain::bank_app().build().unwrap();
    insta::assert_snapshot!("bank", app.diagram());
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&format!("```mermaid\n{}```", app.diagram())),
        "the README renders the bank's current diagram"
    );
}

#[act::reaction(on = CartEvent::CheckedOut, to = _this_)]
async fn receipt(_: &Committed<CartEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[act::reaction(on = CartEvent::CheckedOut, void)]
async fn log_sale(_: &Committed<CartEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[tokio::test]
async fn every_resolver_kind_and_projections_are_drawn() {
    let sales = sales_model::SalesByDay::connect("sqlite::memory:")
        .await
        .unwrap();
    let app = act()
        .with_state::<Cart>()
        .with_reaction(receipt)
        .with_reaction(log_sale)
        .with_projection(sales)
        .build()
        .unwrap();
    let chart = app.diagram();
    insta::assert_snapshot!("sales", chart);
    assert!(chart.contains(r#"event_CheckedOut -->|"receipt"| same_CheckedOut"#));
    assert!(
        chart.contains(r#"projection_sales_2d_by_2d_day[("sales-by-day (projection, batch)")]"#)
    );
    assert!(chart.contains("event_CheckedOut --> void_log_sale"));
}
