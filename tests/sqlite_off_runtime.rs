//! The SQLite store never runs SQLite on a tokio worker: a commit waiting for a write lock
//! held elsewhere (another process, or the app's own connection to the same file) leaves
//! the runtime free. Each test orders events instead of timing them: the runtime must make
//! progress *while* the commit waits, and only that progress releases the lock.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use act_runtime::adapters::SqliteStore;
use act_runtime::model::{Actor, EventMeta, Message};
use act_runtime::ports::{Query, Store};
use act_tests::TempDb;
use sqlx::{Connection, SqliteConnection};

/// How long a lock holder waits for the runtime's signal before letting go anyway (so a
/// stalled runtime fails the test instead of hanging it).
const HOLD_AT_MOST: Duration = Duration::from_secs(5);
/// Ticks the runtime must make while the commit waits.
const TICKS: usize = 10;

fn tick() -> Message {
    Message::new(
        "Tick",
        serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(),
    )
}

fn meta() -> EventMeta {
    EventMeta {
        correlation: "off-runtime".into(),
        causation: Default::default(),
        actor: Actor::new("t", "Test"),
    }
}

/// Holds the write lock of `path` on a thread of its own (as another process would) until
/// `release` fires or [`HOLD_AT_MOST`] passes; returns once the lock is held.
fn hold_write_lock(
    path: &Path,
    release: std::sync::mpsc::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    let url = format!("sqlite://{}", path.display());
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut conn = SqliteConnection::connect(&url).await.unwrap();
            let tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
            locked_tx.send(()).unwrap();
            let _ = release.recv_timeout(HOLD_AT_MOST);
            tx.commit().await.unwrap();
        });
    });
    locked_rx.recv().unwrap();
    holder
}

/// Commits to every store while another connection holds each file's write lock, and
/// checks the runtime ticked [`TICKS`] times before any commit returned.
async fn commits_wait_off_the_runtime(stores: &[(Arc<SqliteStore>, &Path)]) {
    let mut releases = Vec::new();
    let mut holders = Vec::new();
    for (_, path) in stores {
        let (release, wait) = std::sync::mpsc::channel();
        holders.push(hold_write_lock(path, wait));
        releases.push(release);
    }
    let ticks = Arc::new(AtomicUsize::new(0));
    let commits = stores.iter().map(|(store, _)| {
        let (store, ticks) = (Arc::clone(store), Arc::clone(&ticks));
        tokio::spawn(async move {
            store.commit("s", &[tick()], &meta(), None).await.unwrap();
            ticks.load(Ordering::SeqCst)
        })
    });
    let commits: Vec<_> = commits.collect();
    for _ in 0..TICKS {
        tokio::time::sleep(Duration::from_millis(10)).await;
        ticks.fetch_add(1, Ordering::SeqCst);
    }
    for release in releases {
        release.send(()).unwrap();
    }
    for commit in commits {
        assert_eq!(
            commit.await.unwrap(),
            TICKS,
            "a commit returned before the runtime could tick: it ran on a runtime thread"
        );
    }
    for holder in holders {
        holder.join().unwrap();
    }
    for (store, _) in stores {
        let mut n = 0;
        store.query(&Query::all(), &mut |_| n += 1).await.unwrap();
        assert_eq!(n, 1);
    }
}

#[test]
fn a_commit_waiting_for_another_writer_never_stalls_a_current_thread_runtime() {
    let db = TempDb::new("current");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(SqliteStore::open(&db.0).await.unwrap());
        commits_wait_off_the_runtime(&[(Arc::clone(&store), &db.0)]).await;
        store.dispose().await.unwrap();
    });
}

#[test]
fn two_tenants_waiting_at_once_leave_both_workers_free() {
    let (a, b) = (TempDb::new("tenant-a"), TempDb::new("tenant-b"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sa = Arc::new(SqliteStore::open(&a.0).await.unwrap());
        let sb = Arc::new(SqliteStore::open(&b.0).await.unwrap());
        commits_wait_off_the_runtime(&[(Arc::clone(&sa), &a.0), (Arc::clone(&sb), &b.0)]).await;
        sa.dispose().await.unwrap();
        sb.dispose().await.unwrap();
    });
}

#[tokio::test(flavor = "current_thread")]
async fn an_apps_own_transaction_on_the_same_file_does_not_deadlock_a_commit() {
    let db = TempDb::new("app-tx");
    let store = Arc::new(SqliteStore::open(&db.0).await.unwrap());
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.0.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE app (n INTEGER)")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO app (n) VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let commit = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.commit("s", &[tick()], &meta(), None).await })
    };
    // The app goes on awaiting inside its transaction while the commit waits for the lock.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !commit.is_finished(),
        "the commit cannot pass the app's lock"
    );
    tx.commit().await.unwrap();
    let committed = commit.await.unwrap().unwrap();
    assert_eq!(committed[0].version, 0);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM app")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    store.dispose().await.unwrap();
}
