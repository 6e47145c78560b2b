//! The store conformance kit against `SqliteStore`, in memory and on a temporary file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use act_runtime::adapters::SqliteStore;
use act_runtime::conformance;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "act-conformance-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn sqlite_in_memory_passes_the_store_kit() {
    let report =
        conformance::store::run(|| async { SqliteStore::open_in_memory().await.expect("open") })
            .await;
    println!("{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_passes_the_store_kit() {
    let dir = TempDir::new("kit");
    let n = AtomicUsize::new(0);
    let report = conformance::store::run(|| {
        let path = dir
            .0
            .join(format!("store-{}.db", n.fetch_add(1, Ordering::Relaxed)));
        async move { SqliteStore::open(path).await.expect("open") }
    })
    .await;
    println!("{report}");
}
