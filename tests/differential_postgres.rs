//! The differential test: random workloads on `PostgresStore` and on the in-memory oracle
//! must give identical results (a fresh schema per run).

#[path = "pg_support.rs"]
mod pg_support;

use act_runtime::conformance::differential;

async fn run(seed: u64, ops: usize) -> differential::Stats {
    let schemas = pg_support::Schemas::default();
    let result = differential::compare(|| schemas.store(), seed, ops).await;
    schemas.drop_all().await;
    result.unwrap_or_else(|d| panic!("{d}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_matches_the_oracle() {
    for seed in [1, 2, 3, 5, 8, 13, 21, 34] {
        let stats = run(seed, 500).await;
        assert_eq!(stats.ops, 500);
        assert!(
            stats.events > 0,
            "seed {seed}: the workload committed nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_matches_the_oracle_on_a_long_run() {
    let stats = run(0xAC7, 800).await;
    assert!(stats.rows > 0 && stats.events > 0, "{stats:?}");
}
