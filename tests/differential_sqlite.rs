//! The differential test: random workloads on `SqliteStore` and on the in-memory oracle
//! must give identical results.

use act_runtime::adapters::SqliteStore;
use act_runtime::conformance::differential;

#[tokio::test]
async fn sqlite_in_memory_matches_the_oracle() {
    for seed in [1, 2, 3, 5, 8, 13, 21, 34] {
        let stats = differential::run(
            || async { SqliteStore::open_in_memory().await.expect("open") },
            seed,
            500,
        )
        .await;
        assert_eq!(stats.ops, 500);
        assert!(
            stats.events > 0,
            "seed {seed}: the workload committed nothing"
        );
    }
}

#[tokio::test]
async fn sqlite_file_matches_the_oracle() {
    let path = std::env::temp_dir().join(format!(
        "act-differential-{}-{}.db",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let store_path = path.clone();
    let stats = differential::run(
        || async move { SqliteStore::open(store_path).await.expect("open") },
        0xAC7,
        800,
    )
    .await;
    assert!(stats.rows > 0 && stats.events > 0, "{stats:?}");
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}
