//! The store conformance kit against `PostgresStore`, a fresh schema per check.

#[path = "pg_support.rs"]
mod pg_support;

use act_runtime::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_passes_the_store_kit() {
    let schemas = pg_support::Schemas::default();
    let report = conformance::store::report(|| schemas.store()).await;
    schemas.drop_all().await;
    println!("{report}");
    report.assert_passed();
}
